"""The negative ELBO, written once; every model, loop and evaluation calls it.

For an image `x`, posterior `q(z|x)`, decoder likelihood `p(x|z)` and prior `p(z)`, with `S`
samples `z_s ~ q(z|x)`:

    -ELBO(x) ≈ -(1/S) Σ_s log p(x | z_s) + β · KL(q(z|x) || p(z))

The KL is analytic or estimated from the same samples `z_s` (see `tfp_vae.kl`). All quantities
are per example and in nats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from tfp_vae.backend import tf, tfd
from tfp_vae.kl import get_kl_estimator
from tfp_vae.seeds import Seed, stateless_seed

__all__ = ["ElboTerms", "log_likelihood_samples", "negative_elbo", "reconstruction_nll"]


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


def log_likelihood_samples(x: tf.Tensor, decoder: Callable[[tf.Tensor], tfd.Distribution],
                           z: tf.Tensor) -> tf.Tensor:
    """`log p(x | z_s)` for every sample `z_s`, decoded in one call.

    Args:
      x: Batch of data, shape `[batch] + event_shape`.
      decoder: Callable mapping latents `[n, latent_dim]` to a distribution over `x` with batch
        shape `[n]` (a tfp_vae decoder, or any Keras model ending in a distribution layer).
      z: Latent samples, `[num_samples, batch, latent_dim]`.

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
    tiled_x = tf.tile(x, tf.concat([[num_samples], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
    return tf.reshape(decoder(flat_z).log_prob(tiled_x), [num_samples, -1])


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
                  beta: float | tf.Tensor | tf.Variable = 1.0, seed: Seed = None) -> ElboTerms:
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
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
    z = posterior.sample(num_samples, seed=stateless_seed(seed))
    reconstruction = reconstruction_nll(x, decoder, z)
    kl = estimator(posterior, prior, test_points=z)
    weighted_kl = tf.cast(beta, kl.dtype) * kl
    return ElboTerms(reconstruction + weighted_kl, reconstruction, kl)
