"""The two training objectives, each written once: the negative ELBO and the negative IWAE bound.

Every model, loop and evaluation calls these functions.

#### Mathematical details

For an image `x`, posterior `q(z|x)`, decoder likelihood `p(x|z)` and prior `p(z)`, with `S`
samples `z_s ~ q(z|x)`:

    -ELBO(x) ≈ -(1/S) Σ_s log p(x | z_s) + β · KL(q(z|x) || p(z))

The KL is analytic or estimated from the same samples `z_s` (see `tfp_vae.kl`). The IWAE bound
(Burda et al., 2016) with `k` samples and log-weights
`log w_i = log p(x|z_i) + β (log p(z_i) - log q(z_i|x))` (`β = 1`: the true bound) is

    L_k(x) = log (1/k) Σ_i w_i  ≤  log p(x),

`L_1` is the single-sample ELBO with the `mc` KL estimator, and `L_k` grows with `k`. Its
doubly-reparameterised gradient (DReG, Tucker et al., 2019) replaces the encoder's gradient by
`Σ_i w̃_i² ∂log w_i/∂z_i · ∂z_i/∂φ` (`w̃` the normalised weights, `q`'s parameters stopped in
`log w`), whose signal-to-noise ratio does not vanish as `k` grows; the decoder and prior keep
the usual IWAE gradient `Σ_i w̃_i ∇θ log w_i`. All quantities are per example and in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from tfp_vae.backend import tf, tfd
from tfp_vae.kl import get_kl_estimator, stop_gradient_parameters
from tfp_vae.seeds import Seed, stateless_seed

__all__ = [
    "GRADIENT_ESTIMATORS",
    "OBJECTIVES",
    "ElboTerms",
    "IwaeTerms",
    "log_importance_weights",
    "log_likelihood_samples",
    "negative_elbo",
    "negative_iwae_bound",
    "reconstruction_nll",
]

#: Training objectives: the evidence lower bound and the importance-weighted bound.
OBJECTIVES = ("elbo", "iwae")
#: Gradient estimators of the IWAE bound (named as in `tfp.vi.GradientEstimators`).
GRADIENT_ESTIMATORS = ("reparameterized", "doubly_reparameterized")


class ElboTerms(NamedTuple):
    """Per-example terms of the negative ELBO, each of shape `[batch]`, in nats.

    Attributes:
      negative_elbo: `reconstruction + beta * kl`.
      reconstruction: `-E_q[log p(x|z)]`, estimated with the posterior samples.
      kl: `KL(q(z|x) || p(z))` (unweighted).
    """

    negative_elbo: tf.Tensor
    reconstruction: tf.Tensor
    kl: tf.Tensor


class IwaeTerms(NamedTuple):
    """The negative IWAE bound of a batch and what it was computed from.

    Attributes:
      negative_iwae_bound: `-L_k(x)`, shape `[batch]`.
      log_weights: `log w_i`, shape `[k, batch]`.
      log_likelihood: `log p(x | z_i)`, shape `[k, batch]`.
      z: The samples `z_i ~ q(z|x)`, shape `[k, batch, latent_dim]`.
    """

    negative_iwae_bound: tf.Tensor
    log_weights: tf.Tensor
    log_likelihood: tf.Tensor
    z: tf.Tensor


# The fused Bernoulli log-likelihood multiplies the factors `1 + exp(-|l|)` (each in (1, 2]) in
# groups of at most this many before taking one log per group: 2^100 stays finite in float32.
_BERNOULLI_GROUP = 100


def _bernoulli_log_prob(logits: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """`Σ_j log Bernoulli(x_j | logits_j)` over the last axis, one `exp` per pixel.

    `x l - softplus(l) = x l - max(l, 0) - log(1 + exp(-|l|))`, TFP's `Bernoulli.log_prob`
    (`-sigmoid_cross_entropy_with_logits`), with the logs of one group's factors summed as the
    log of their product.
    """
    size = int(logits.shape[-1])
    groups = -(-size // _BERNOULLI_GROUP)
    group = -(-size // groups)
    factors = 1.0 + tf.exp(-tf.abs(logits))
    padding = [[0, 0]] * (logits.shape.rank - 1) + [[0, groups * group - size]]
    factors = tf.reshape(tf.pad(factors, padding, constant_values=1.0),
                         tf.concat([tf.shape(logits)[:-1], [groups, group]], axis=0))
    log_normalizer = tf.reduce_sum(tf.math.log(tf.reduce_prod(factors, axis=-1)), axis=-1)
    return tf.reduce_sum(x * logits - tf.nn.relu(logits), axis=-1) - log_normalizer


# XLA fuses the pixel-wise work into one pass (the logits are not re-read per operation).
_fused_bernoulli_log_prob = tf.function(_bernoulli_log_prob, jit_compile=True)


def _bernoulli_logits(likelihood: tfd.Distribution, x: tf.Tensor) -> tf.Tensor | None:
    """The logits of an `Independent(Bernoulli(logits))` over all of `x`'s event, else `None`."""
    likelihood = getattr(likelihood, "tensor_distribution", likelihood)
    pixels = getattr(likelihood, "distribution", None)
    if (isinstance(likelihood, tfd.Independent) and isinstance(pixels, tfd.Bernoulli)
            and pixels.logits is not None and x.shape[1:].is_fully_defined()
            and likelihood.event_shape == x.shape[1:] and likelihood.batch_shape.rank == 1):
        return tf.convert_to_tensor(pixels.logits)
    return None


def log_likelihood_samples(x: tf.Tensor, decoder: Callable[[tf.Tensor], tfd.Distribution],
                           z: tf.Tensor, fused_bernoulli: bool = False) -> tf.Tensor:
    """`log p(x | z_s)` for every sample `z_s`, decoded in one call.

    With `fused_bernoulli=True` and a likelihood that is an `Independent` `Bernoulli` with
    logits over the whole image (tfp_vae's `IndependentBernoulli` head), `log p(x|z)` is
    computed from the logits by one XLA-compiled function instead of TFP's `log_prob`: the
    same formula, `Σ_j x_j l_j - softplus(l_j)`, equal to float32 round-off, with one `exp` per
    pixel and one `log` per 100 pixels (the `log(1 + exp(-|l|))` terms of a group are summed as
    the log of their product) and without tiling `x`. It is meant for evaluation (it is about
    twice as fast for an MLP decoder); other likelihoods ignore the flag.

    Args:
      x: Batch of data, shape `[batch] + event_shape`.
      decoder: Callable mapping latents `[n, latent_dim]` to a distribution over `x` with batch
        shape `[n]` (a tfp_vae decoder, or any Keras model ending in a distribution layer).
      z: Latent samples, `[num_samples, batch, latent_dim]`.
      fused_bernoulli: Python `bool`, use the fused Bernoulli log-likelihood where it applies.
        Default: `False`.

    Returns:
      A `[num_samples, batch]` tensor.

    #### Examples

    ```python
    log_likelihood_samples(x, vae.decoder, posterior.sample(16))  # [16, batch]
    ```
    """
    x = tf.convert_to_tensor(x)
    z = tf.convert_to_tensor(z)
    num_samples = tf.shape(z)[0]
    flat_z = tf.reshape(z, [-1, tf.shape(z)[-1]])
    likelihood = decoder(flat_z)
    logits = _bernoulli_logits(likelihood, x) if fused_bernoulli else None
    if logits is not None:
        pixels = int(np.prod(x.shape[1:]))
        logits = tf.reshape(logits, [num_samples, -1, pixels])
        return _fused_bernoulli_log_prob(logits, tf.reshape(tf.cast(x, logits.dtype),
                                                            [1, -1, pixels]))
    tiled_x = tf.tile(x, tf.concat([[num_samples], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
    return tf.reshape(likelihood.log_prob(tiled_x), [num_samples, -1])


def reconstruction_nll(x: tf.Tensor, decoder: Callable[[tf.Tensor], tfd.Distribution],
                       z: tf.Tensor) -> tf.Tensor:
    """Monte Carlo reconstruction term `-(1/S) Σ_s log p(x | z_s)`.

    Args:
      x: Batch of data, shape `[batch] + event_shape`.
      decoder: Callable mapping latents `[n, latent_dim]` to a distribution over `x` with batch
        shape `[n]`.
      z: Latent samples, `[batch, latent_dim]` or `[num_samples, batch, latent_dim]`.

    Returns:
      A `[batch]` tensor.

    #### Examples

    ```python
    z = posterior.sample(4)                      # [4, batch, latent_dim]
    reconstruction_nll(x, vae.decoder, z)        # [batch]
    ```
    """
    z = tf.convert_to_tensor(z)
    if z.shape.rank == 2:
        return -decoder(z).log_prob(x)
    return -tf.reduce_mean(log_likelihood_samples(x, decoder, z), axis=0)


def negative_elbo(x: tf.Tensor, posterior: tfd.Distribution,
                  decoder: Callable[[tf.Tensor], tfd.Distribution], prior: tfd.Distribution,
                  kl_estimator: str = "analytic", num_samples: int = 1,
                  beta: float | tf.Tensor | tf.Variable = 1.0, seed: Seed = None,
                  z: tf.Tensor | None = None) -> ElboTerms:
    """Per-example negative ELBO, with analytic or Monte Carlo KL against `prior`.

    The same `num_samples` posterior samples feed the reconstruction term and, for Monte Carlo
    estimators, the KL term (the estimator of Kingma & Welling, 2014, for `S = 1`).

    Args:
      x: Batch of data, shape `[batch] + event_shape`.
      posterior: `q(z|x)` with batch shape `[batch]`, e.g. a tfp_vae encoder's output.
      decoder: Callable mapping `[n, latent_dim]` latents to `p(x|z)` with batch shape `[n]`.
      prior: `p(z)`, e.g. `isotropic_gaussian_prior(latent_dim)`.
      kl_estimator: Name in `tfp_vae.kl.KL_ESTIMATORS`. Default: `'analytic'`.
      num_samples: Python `int`, posterior samples per example. Default: `1`.
      beta: Weight of the KL term (β-VAE). Default: `1.0`.
      seed: Stateless seed for the posterior samples. Default: `None`.
      z: Posterior samples to use instead of drawing (`[batch, latent_dim]` for one sample,
        e.g. the one the encoder's distribution layer drew, or `[S, batch, latent_dim]`);
        `num_samples` and `seed` are then ignored. Default: `None`.

    Returns:
      `ElboTerms(negative_elbo, reconstruction, kl)`, each `[batch]`.

    Raises:
      ValueError: If `kl_estimator` is unknown or `num_samples` is not a positive integer.

    #### Examples

    ```python
    terms = negative_elbo(x, vae.encode(x), vae.decoder, vae.prior, "mc", num_samples=8)
    tf.reduce_mean(terms.negative_elbo)
    ```
    """
    estimator = get_kl_estimator(kl_estimator)
    _check_num_samples(num_samples)
    if z is None:
        z = posterior.sample(num_samples, seed=stateless_seed(seed))
    reconstruction = reconstruction_nll(x, decoder, z)
    kl = estimator(posterior, prior, test_points=z)
    weighted_kl = tf.cast(beta, kl.dtype) * kl
    return ElboTerms(reconstruction + weighted_kl, reconstruction, kl)


def _check_num_samples(num_samples) -> None:
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")


def log_importance_weights(x: tf.Tensor, posterior: tfd.Distribution,
                           decoder: Callable[[tf.Tensor], tfd.Distribution],
                           prior: tfd.Distribution, z: tf.Tensor,
                           beta: float | tf.Tensor | tf.Variable = 1.0,
                           fused_bernoulli: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """Log importance weights `log p(x|z) + β (log p(z) - log q(z|x))` of given samples.

    Args:
      x: Batch of data, shape `[batch] + event_shape`.
      posterior: `q(z|x)`, batch shape `[batch]`.
      decoder: Callable mapping `[n, latent_dim]` latents to `p(x|z)` with batch shape `[n]`.
      prior: `p(z)`.
      z: Samples of `posterior`, `[k, batch, latent_dim]`.
      beta: Weight of the prior/posterior log-ratio; `1.0` gives the IWAE bound's weights.
        Default: `1.0`.
      fused_bernoulli: Python `bool`, compute a Bernoulli `log p(x|z)` by the fused function of
        `log_likelihood_samples` (evaluation). Default: `False`.

    Returns:
      `(log_weights, log_likelihood)`, both `[k, batch]`.

    #### Examples

    ```python
    z = posterior.sample(100)
    log_w, _ = log_importance_weights(x, posterior, vae.decoder, vae.prior, z)
    tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(100.0)  # L_100 per image
    ```
    """
    log_likelihood = log_likelihood_samples(x, decoder, z, fused_bernoulli)
    log_ratio = prior.log_prob(z) - posterior.log_prob(z)
    return log_likelihood + tf.cast(beta, log_ratio.dtype) * log_ratio, log_likelihood


def negative_iwae_bound(x: tf.Tensor, posterior: tfd.Distribution,
                        decoder: Callable[[tf.Tensor], tfd.Distribution],
                        prior: tfd.Distribution, num_samples: int = 1,
                        beta: float | tf.Tensor | tf.Variable = 1.0,
                        gradient_estimator: str = "reparameterized",
                        seed: Seed = None) -> IwaeTerms:
    """Per-example negative IWAE bound `-L_k(x)` with `k = num_samples` importance samples.

    With `gradient_estimator='doubly_reparameterized'` the value is the same and only the
    gradient changes: the encoder's is the DReG estimator, computed from `∂log w/∂z` (one extra
    backward pass through the decoder), and the decoder's and prior's are the usual IWAE
    gradient. (`tfp.vi.monte_carlo_variational_loss` with `DOUBLY_REPARAMETERIZED` gives the same
    gradient for the surrogate's parameters but weights the target's by `w̃²`, which is meant for
    a fixed target; here the target is the trained decoder and prior.)

    Args:
      x: Batch of data, shape `[batch] + event_shape`.
      posterior: `q(z|x)` with batch shape `[batch]`, reparameterised.
      decoder: Callable mapping `[n, latent_dim]` latents to `p(x|z)` with batch shape `[n]`.
      prior: `p(z)`.
      num_samples: Python `int`, the importance samples `k`. Default: `1`.
      beta: Weight of `log p(z) - log q(z|x)` in the log-weights (KL warm-up); `1.0` is the
        IWAE bound. Default: `1.0`.
      gradient_estimator: `'reparameterized'` or `'doubly_reparameterized'`.
        Default: `'reparameterized'`.
      seed: Stateless seed for the samples. Default: `None`.

    Returns:
      `IwaeTerms(negative_iwae_bound, log_weights, log_likelihood, z)`.

    Raises:
      ValueError: If `num_samples` is not a positive integer or `gradient_estimator` is
        unknown, or the doubly-reparameterised gradient is asked of a posterior whose
        parameters are not tensors (a flow posterior).

    #### Examples

    ```python
    terms = negative_iwae_bound(x, vae.encode(x), vae.decoder, vae.prior, num_samples=8)
    tf.reduce_mean(terms.negative_iwae_bound)
    ```
    """
    _check_num_samples(num_samples)
    if gradient_estimator not in GRADIENT_ESTIMATORS:
        raise ValueError(f"gradient_estimator must be one of {list(GRADIENT_ESTIMATORS)}, got "
                         f"{gradient_estimator!r}.")
    z = posterior.sample(num_samples, seed=stateless_seed(seed))
    if gradient_estimator == "reparameterized":
        log_weights, log_likelihood = log_importance_weights(x, posterior, decoder, prior, z,
                                                             beta)
        bound = tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)
        return IwaeTerms(-bound, log_weights, log_likelihood, z)
    frozen_posterior = stop_gradient_parameters(posterior)
    stopped_z = tf.stop_gradient(z)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(stopped_z)
        log_weights, log_likelihood = log_importance_weights(
            x, frozen_posterior, decoder, prior, stopped_z, beta)
    # Each log w_i depends on its own z_i only, so the gradient of the sum is per sample.
    d_log_weights_dz = tf.stop_gradient(tape.gradient(log_weights, stopped_z))
    normalized_weights = tf.stop_gradient(tf.nn.softmax(log_weights, axis=0))
    # Value 0; its gradient is the encoder's DReG gradient Σ w̃² ∂log w/∂z ∂z/∂φ.
    path = tf.reduce_sum(tf.square(normalized_weights) * tf.reduce_sum(
        d_log_weights_dz * (z - stopped_z), axis=-1), axis=0)
    bound = tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)
    return IwaeTerms(-(bound + path), log_weights, log_likelihood, z)
