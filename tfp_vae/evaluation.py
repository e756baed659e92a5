"""Evaluation: test-set negative ELBO, the importance-weighted log-likelihood, active units.

#### Mathematical details

For an image `x` with `D` pixels, posterior `q(z|x)`, likelihood `p(x|z)` and prior `p(z)`:

- Negative ELBO (nats): `-E_q[log p(x|z)] + KL(q(z|x) || p(z))`, computed by
  `tfp_vae.losses.negative_elbo` (the one place the ELBO is written); in bits per dimension it
  is divided by `D log 2`.
- IWAE bound (Burda et al., 2016) with `k` samples `z_i ~ q(z|x)` and weights
  `w_i = p(x|z_i) p(z_i) / q(z_i|x)`:
  `log p(x) >= L_k = E[log (1/k) Σ_i w_i]`. `L_1` is the ELBO, `L_k <= L_{k+1}`, and
  `L_k -> log p(x)` as `k -> ∞`. The average is taken in log space (log-sum-exp).
- Active units (Burda et al., 2016): latent dimension `u` is active when
  `Cov_x(E_{q(z|x)}[z_u]) > 0.01`; a collapsed dimension has a posterior mean that ignores x.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import numpy as np

from tfp_vae.backend import tf
from tfp_vae.data import check_images
from tfp_vae.losses import log_importance_weights, negative_elbo, reconstruction_nll
from tfp_vae.models import VAE, Autoencoder
from tfp_vae.seeds import fold_in

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "active_units",
    "evaluate_elbo",
    "evaluate_model",
    "iwae_log_likelihood",
    "nats_to_bits_per_dim",
    "posterior_means",
    "rounded",
]

ACTIVE_UNIT_THRESHOLD = 0.01
# Compiled evaluation functions per model, built once: a `tf.function` made per call would be
# retraced on every call (and TensorFlow warns after five).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# IWAE chunks in flight at once: the next chunk's sampling overlaps this one's decoding.
_PARALLEL_CHUNKS = 2


def _compiled(model: VAE | Autoencoder, key: Hashable, python_function: Callable,
              *arguments: Any, input_signature: list[tf.TensorSpec] | None = None
              ) -> Callable:
    """`python_function(model, *arguments, ...)` as a `tf.function`, built once per model.

    The `tf.function` wraps a `functools.partial`, not a closure: TensorFlow counts the traces
    of every `tf.function` of one code object together (`__code__`), so closures made for six
    models in a row would warn of retracing although each model is traced once. The partial
    holds a weak proxy of the model, so the cache does not keep a model alive.
    """
    functions = _COMPILED.setdefault(model, {})
    if key not in functions:
        functions[key] = tf.function(
            functools.partial(python_function, weakref.proxy(model), *arguments),
            input_signature=input_signature, reduce_retracing=True)
    return functions[key]


def _elbo_terms(model, kl_estimator, num_samples, x, seed):
    return negative_elbo(x, model.encoder(x), model.decoder, model.prior, kl_estimator,
                         num_samples, beta=1.0, seed=seed)


@tf.autograph.experimental.do_not_convert  # plain TensorFlow: tf.while_loop, no autograph
def _iwae_bound(model, x, num_samples, chunk, seed):
    posterior, prior = model.encoder(x), model.prior

    def add_chunk(index, total):
        size = tf.minimum(chunk, num_samples - index * chunk)
        z = posterior.sample(size, seed=tf.random.experimental.stateless_fold_in(
            seed, index))                                              # [size, batch, d]
        log_w = log_importance_weights(x, posterior, model.decoder, prior, z,
                                       fused_bernoulli=True)[0]        # [size, batch]
        return index + 1, tf.reduce_logsumexp(
            tf.stack([total, tf.reduce_logsumexp(log_w, axis=0)]), axis=0)

    # A running log-sum-exp from log 0; memory is that of the chunks in flight.
    _, total = tf.while_loop(
        lambda index, _: index * chunk < num_samples, add_chunk,
        (tf.constant(0), tf.fill(tf.shape(x)[:1], tf.constant(-np.inf, posterior.dtype))),
        parallel_iterations=_PARALLEL_CHUNKS)
    log_k = tf.math.log(tf.cast(num_samples, tf.float64))
    return total - tf.cast(log_k, total.dtype)                        # [batch]


def _posterior_mean(model, x):
    return model.encoder(x).mean() if isinstance(model, VAE) else model.encoder(x)


def _autoencoder_nll(model, x):
    return reconstruction_nll(x, model.decoder, model.encoder(x))


def nats_to_bits_per_dim(nats: float, input_shape: tuple[int, ...]) -> float:
    """Converts nats per image to bits per dimension (pixel).

    Args:
      nats: Python `float`, a negative log-likelihood (or bound) per image in nats.
      input_shape: Shape of one image, e.g. `(28, 28, 1)`.

    Returns:
      `nats / (D log 2)` with `D = prod(input_shape)`.
    """
    return float(nats) / (int(np.prod(input_shape)) * math.log(2.0))


def _batches(images: np.ndarray, batch_size: int, model: VAE | Autoencoder,
             targets: bool = True) -> Iterator[tf.Tensor]:
    """Batches of `images` after `check_images`: shape `[n] + model.config.input_shape`,
    finite pixels in [0, 1], and, where they are `targets` of a Bernoulli likelihood, 0/1."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    images = check_images(images, input_shape=model.config.input_shape,
                          binary=targets and model.config.likelihood == "bernoulli")
    for start in range(0, len(images), batch_size):
        yield tf.constant(images[start:start + batch_size])


def _mean_and_standard_error(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    error = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(error)


def evaluate_elbo(model: VAE, images: np.ndarray, batch_size: int = 500,
                  num_samples: int = 1, kl_estimator: str | None = None, seed: int = 0
                  ) -> dict[str, float]:
    """Mean negative ELBO of `images`, split into reconstruction and KL, in nats and bits/dim.

    The KL weight is 1 (the true ELBO, whatever β the model was trained with). Each batch is one
    vectorised call of `tfp_vae.losses.negative_elbo`.

    Args:
      model: A tfp_vae `VAE`.
      images: `[n] + input_shape` array, already binarized if the likelihood is Bernoulli.
      batch_size: Python `int`, images per call. Default: `500`.
      num_samples: Python `int`, posterior samples per image for the reconstruction term.
        Default: `1`.
      kl_estimator: KL estimator name (`tfp_vae.kl.KL_ESTIMATORS`); `None` means `'analytic'`
        where a closed form exists (Gaussian prior and posterior), else the model's own Monte
        Carlo estimator (learnable priors, flow posteriors). Default: `None`.
      seed: Python `int`, stateless seed of the posterior samples. Default: `0`.

    Returns:
      A dict with `negative_elbo`, `reconstruction` and `kl` (nats per image, means over the
      images), `negative_elbo_standard_error`, `negative_elbo_bits_per_dim`, and `num_images`.

    Raises:
      TypeError: If `model` is not a `VAE`.
      ValueError: If `batch_size` is invalid, or `images` are not `[n] + input_shape`, have
        NaN pixels or pixels outside [0, 1], or grey levels under a Bernoulli likelihood.

    #### Examples

    ```python
    evaluate_elbo(vae, x_test)["negative_elbo"]  # e.g. 238.4 nats
    ```
    """
    if not isinstance(model, VAE):
        raise TypeError(f"evaluate_elbo needs a tfp_vae VAE, got {type(model).__name__}.")
    if kl_estimator is None:
        closed_form = model.config.prior == "gaussian" and not model.config.posterior_flow
        kl_estimator = "analytic" if closed_form else model.config.kl_estimator

    terms = _compiled(model, ("elbo", kl_estimator, num_samples), _elbo_terms, kl_estimator,
                      num_samples)

    parts: dict[str, list[np.ndarray]] = {"negative_elbo": [], "reconstruction": [], "kl": []}
    for index, x in enumerate(_batches(images, batch_size, model)):
        result = terms(x, fold_in(seed, index))
        for name in parts:
            parts[name].append(getattr(result, name).numpy())
    values = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    mean, error = _mean_and_standard_error(values["negative_elbo"])
    return {
        "negative_elbo": mean,
        "negative_elbo_standard_error": error,
        "reconstruction": float(values["reconstruction"].mean()),
        "kl": float(values["kl"].mean()),
        "negative_elbo_bits_per_dim": nats_to_bits_per_dim(mean, model.config.input_shape),
        "num_images": int(len(values["negative_elbo"])),
    }


def iwae_log_likelihood(model: VAE, images: np.ndarray, num_samples: int = 100,
                        batch_size: int = 100, max_decoded: int = 4096, seed: int = 0,
                        return_per_image: bool = False) -> dict[str, float | np.ndarray]:
    """Importance-weighted estimate `L_k` of `log p(x)` with `k = num_samples` (IWAE bound).

    For each batch of images, the encoder runs once and the `k` samples are drawn and decoded
    in chunks of `max(1, max_decoded // batch)` samples, all images of the batch together (a
    `[chunk, batch]` array of log-weights per step of a compiled loop; no Python loop over
    images or chunks). Chunk `c` of batch `b` is drawn with the seed `fold_in(seed, b, c)`, so
    the estimate depends on `seed`, `batch_size` and `max_decoded`. Each chunk's log-weights
    (`tfp_vae.losses.log_importance_weights`, with the fused Bernoulli log-likelihood where the
    likelihood is Bernoulli) are folded into a running log-sum-exp, so large `k` (thousands)
    neither overflows nor needs more memory than two chunks of decoder activations.

    Args:
      model: A tfp_vae `VAE`.
      images: `[n] + input_shape` array, binarized if the likelihood is Bernoulli.
      num_samples: Python `int`, importance samples `k` per image. Default: `100`.
      batch_size: Python `int`, images per chunk. Default: `100`.
      max_decoded: Python `int`, upper bound on latent codes decoded in one step (memory bound:
        the decoder's activations for this many codes). Larger steps were not faster for the
        Burda MLP on 2 CPU cores (`benchmarks/bench_iwae_eval.py`). Default: `4096`.
      seed: Python `int`, stateless seed: the same seed gives the same estimate. Default: `0`.
      return_per_image: Python `bool`, also return the per-image `L_k`. Default: `False`.

    Returns:
      A dict with `log_likelihood` (mean of `L_k` over images, nats), its
      `log_likelihood_standard_error`, `negative_log_likelihood_bits_per_dim`, `num_samples`,
      `num_images` and, if requested, `per_image` (`[n]` NumPy array).

    Raises:
      TypeError: If `model` is not a `VAE`.
      ValueError: If `num_samples`, `batch_size` or `max_decoded` is invalid, or `images` are
        not `[n] + input_shape`, not finite in [0, 1], or not 0/1 under a Bernoulli likelihood.

    #### Examples

    ```python
    iwae_log_likelihood(vae, x_test[:1000], num_samples=1000)["log_likelihood"]
    ```
    """
    if not isinstance(model, VAE):
        raise TypeError(f"iwae_log_likelihood needs a tfp_vae VAE, got {type(model).__name__}.")
    for name, value in (("num_samples", num_samples), ("max_decoded", max_decoded)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    scalar = tf.TensorSpec([], tf.int32)
    # One trace for every batch size, k and chunk (only the fused XLA part compiles per shape).
    bound = _compiled(model, "iwae", _iwae_bound, input_signature=[
        tf.TensorSpec([None, *model.config.input_shape], tf.float32), scalar, scalar,
        tf.TensorSpec([2], tf.int32)])

    per_image = []
    for index, x in enumerate(_batches(images, batch_size, model)):
        chunk = max(1, min(num_samples, max_decoded // int(x.shape[0])))
        per_image.append(bound(x, tf.constant(num_samples), tf.constant(chunk),
                               fold_in(seed, index)).numpy())
    values = np.concatenate(per_image)
    mean, error = _mean_and_standard_error(values)
    result: dict[str, float | np.ndarray] = {
        "log_likelihood": mean,
        "log_likelihood_standard_error": error,
        "negative_log_likelihood_bits_per_dim": nats_to_bits_per_dim(
            -mean, model.config.input_shape),
        "num_samples": int(num_samples),
        "num_images": int(len(values)),
    }
    if return_per_image:
        result["per_image"] = values
    return result


def posterior_means(model: VAE | Autoencoder, images: np.ndarray, batch_size: int = 500
                    ) -> np.ndarray:
    """Posterior means `E_q[z|x]` (a `VAE`) or codes `z` (an `Autoencoder`) of `images`.

    Args:
      model: A tfp_vae `VAE` or `Autoencoder`.
      images: `[n] + input_shape` array.
      batch_size: Python `int`, images per call. Default: `500`.

    Returns:
      A `[n, latent_dim]` NumPy array.
    """
    encode = _compiled(model, "posterior_means", _posterior_mean)
    return np.concatenate([encode(x).numpy()
                           for x in _batches(images, batch_size, model, targets=False)])


def active_units(model: VAE | Autoencoder, images: np.ndarray, batch_size: int = 500,
                 threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict[str, int | list[float]]:
    """Counts latent dimensions whose posterior mean varies across the data (not collapsed).

    Dimension `u` is active when `Cov_x(E_q[z_u | x]) > threshold` (Burda et al., 2016).

    Args:
      model: A tfp_vae `VAE` (or `Autoencoder`, whose codes are used).
      images: `[n] + input_shape` array, `n >= 2`.
      batch_size: Python `int`. Default: `500`.
      threshold: Python `float`. Default: `0.01`.

    Returns:
      A dict with `active_units` (count), `latent_dim` and `posterior_mean_variance` (the
      per-dimension variance, a list).

    Raises:
      ValueError: If fewer than 2 images are given, or they are not `[n] + input_shape` or not
        finite in [0, 1].

    #### Examples

    ```python
    active_units(vae, x_test)["active_units"]  # e.g. 2 of 2
    ```
    """
    means = posterior_means(model, images, batch_size)
    if len(means) < 2:
        raise ValueError("active_units needs at least 2 images to measure a variance.")
    variance = means.astype(np.float64).var(axis=0)
    return {"active_units": int((variance > threshold).sum()),
            "latent_dim": int(means.shape[1]),
            "posterior_mean_variance": [float(v) for v in variance]}


def evaluate_model(model: VAE | Autoencoder, images: np.ndarray, iwae_samples: int = 0,
                   batch_size: int = 500, seed: int = 0) -> dict[str, float | int | list]:
    """Everything `tfp-vae evaluate` reports: negative ELBO (split), IWAE bound, active units.

    For an `Autoencoder` there is no ELBO: its reconstruction negative log-likelihood is reported
    as `reconstruction`.

    Args:
      model: A tfp_vae `VAE` or `Autoencoder`.
      images: `[n] + input_shape` array, binarized if the likelihood is Bernoulli.
      iwae_samples: Python `int`, importance samples per image; `0` skips the IWAE bound.
        Default: `0`.
      batch_size: Python `int`, images per call for the ELBO. Default: `500`.
      seed: Python `int`, stateless seed. Default: `0`.

    Returns:
      A flat dict of JSON-serialisable numbers (nats per image unless the name says bits/dim).

    #### Examples

    ```python
    evaluate_model(vae, x_test, iwae_samples=1000)
    ```
    """
    result: dict[str, float | int | list] = {}
    if isinstance(model, VAE):
        result.update(evaluate_elbo(model, images, batch_size=batch_size, seed=seed))
        if iwae_samples:
            iwae = iwae_log_likelihood(model, images, num_samples=iwae_samples, seed=seed)
            result.update({f"iwae_{name}": value for name, value in iwae.items()
                           if name != "num_images"})
    else:
        nll = _compiled(model, "reconstruction_nll", _autoencoder_nll)
        values = np.concatenate([nll(x).numpy() for x in _batches(images, batch_size, model)])
        mean, error = _mean_and_standard_error(values)
        result.update({"reconstruction": mean, "reconstruction_standard_error": error,
                       "reconstruction_bits_per_dim": nats_to_bits_per_dim(
                           mean, model.config.input_shape),
                       "num_images": int(len(values))})
    units = active_units(model, images, batch_size=batch_size)
    result["active_units"] = units["active_units"]
    result["latent_dim"] = units["latent_dim"]
    result["posterior_mean_variance"] = units["posterior_mean_variance"]
    return result


def rounded(metrics: Mapping[str, Any], digits: int = 4) -> dict[str, Any]:
    """Metrics with floats (also inside lists) rounded to `digits` decimals, for reports.

    Args:
      metrics: Metric name -> value.
      digits: Decimals to keep. Default: `4`.

    Returns:
      A new dict; values that are not floats or lists are unchanged.

    #### Examples

    ```python
    rounded({"test_negative_elbo": 88.712345, "epochs": 3})  # {..: 88.7123, "epochs": 3}
    ```
    """
    def value(v):
        if isinstance(v, float):
            return round(v, digits)
        if isinstance(v, list):
            return [value(item) for item in v]
        return v
    return {name: value(v) for name, v in metrics.items()}
