"""Priors over the latent space."""

from __future__ import annotations

from tfp_vae.backend import tf, tfd

__all__ = ["isotropic_gaussian_prior"]


def isotropic_gaussian_prior(latent_dim: int, dtype: tf.DType = tf.float32) -> tfd.Distribution:
    """The standard normal prior `N(0, I)` over a `latent_dim`-dimensional latent space.

    It is written as a `MultivariateNormalDiag` (not `Independent(Normal)`) because TFP registers
    the exact KL divergence of both `MultivariateNormalDiag` and `MultivariateNormalTriL`
    posteriors against a `MultivariateNormalDiag`, but not against `Independent(Normal)`.

    Args:
      latent_dim: Python `int`, dimension of the latent space. Must be positive.
      dtype: Floating `tf.DType` of the prior. Default value: `tf.float32`.

    Returns:
      A `tfd.MultivariateNormalDiag` with zero mean and unit scale and event shape
      `[latent_dim]`.

    Raises:
      ValueError: If `latent_dim` is not a positive integer.

    #### Examples

    ```python
    prior = isotropic_gaussian_prior(2)
    prior.sample(5).shape  # [5, 2]
    ```
    """
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([latent_dim], dtype=dtype),
        scale_diag=tf.ones([latent_dim], dtype=dtype),
        name="isotropic_gaussian_prior",
    )
