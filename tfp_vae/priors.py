"""Priors over the latent space: the isotropic Gaussian and three learnable ones.

A learnable prior is a Keras layer that owns the prior's variables (so a model tracks, trains,
saves and loads them with its other weights) and builds the `tfd.Distribution` `p(z)` from them
whenever `distribution()` is called, inside the gradient tape, so gradients reach them.

- `gaussian`: `N(0, I)`, no variables, no options.
- `mixture`: `Σ_k π_k N(μ_k, diag σ_k²)` (`tfd.MixtureSameFamily`); learns the weights, means
  and scales; option `num_components`.
- `vamp`: `(1/K) Σ_k q(z | u_k)`, the encoder's posteriors at K pseudo-inputs (Tomczak &
  Welling, 2018); learns the pseudo-inputs `u_k` (and shares the encoder); option
  `num_components`.
- `flow`: `N(0, I)` pushed through masked autoregressive flows (`tfb.MaskedAutoregressiveFlow`);
  learns the MADE networks; options `num_layers`, `hidden_units`.

None but `gaussian` has a closed-form KL against a Gaussian posterior: use a Monte Carlo KL
estimator with them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np

from tfp_vae.backend import keras, tf, tfd
from tfp_vae.flows import autoregressive_networks, masked_autoregressive_bijector
from tfp_vae.registry import Registry

__all__ = [
    "PRIORS",
    "FlowPrior",
    "GaussianPrior",
    "MixturePrior",
    "Prior",
    "VampPrior",
    "isotropic_gaussian_prior",
    "make_prior",
    "prior_options",
    "register_prior",
]

PRIORS: Registry[type] = Registry("prior")
register_prior = PRIORS.register
"""Decorator adding a prior: `@register_prior("name")` on a `Prior` subclass."""

# Arguments `make_prior` supplies itself; the rest of a prior's constructor are its options.
_BUILD_ARGUMENTS = {"self", "latent_dim", "input_shape", "posterior_fn", "name", "kwargs"}
_MIN_SCALE = 1e-5


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
    _check_positive_int("latent_dim", latent_dim)
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([latent_dim], dtype=dtype),
        scale_diag=tf.ones([latent_dim], dtype=dtype),
        name="isotropic_gaussian_prior",
    )


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


class Prior(keras.layers.Layer):
    """Base class of tfp_vae priors: a layer holding the variables, building `p(z)` on demand.

    Subclasses create their variables in `__init__` (so they exist before weights are loaded)
    and implement `distribution()`. A prior is never called like a layer.

    Args:
      latent_dim: Python `int`, the latent dimension `d`.
      **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

    Raises:
      ValueError: If `latent_dim` is not a positive integer.
    """

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("latent_dim", latent_dim)
        self.latent_dim = latent_dim

    def distribution(self) -> tfd.Distribution:
        """The prior `p(z)`, a distribution with event shape `[latent_dim]`."""
        raise NotImplementedError

    def call(self, inputs=None):
        raise TypeError(f"{type(self).__name__} is not called on inputs; use .distribution().")


@register_prior("gaussian")
class GaussianPrior(Prior):
    """The fixed isotropic Gaussian `N(0, I)` (no variables); see `isotropic_gaussian_prior`.

    #### Examples

    ```python
    GaussianPrior(2).distribution().log_prob([0.0, 0.0])  # -log(2π)
    ```
    """

    def distribution(self) -> tfd.Distribution:
        return isotropic_gaussian_prior(self.latent_dim)


@register_prior("mixture")
class MixturePrior(Prior):
    """A learnable mixture of diagonal Gaussians, `Σ_k π_k N(μ_k, diag σ_k²)`.

    The weights are `softmax(logits)` (initially uniform), the means start at draws of `N(0, I)`
    (distinct components, so they can separate), and the scales are `softplus(raw) + 1e-5`,
    initially 1.

    Args:
      latent_dim: Python `int`, the latent dimension `d`.
      num_components: Python `int`, the number of components `K`. Default: `10`.
      **kwargs: Passed to `keras.layers.Layer`.

    Raises:
      ValueError: If `latent_dim` or `num_components` is not a positive integer.

    #### Examples

    ```python
    prior = MixturePrior(2, num_components=5)
    prior.distribution().log_prob(tf.zeros([3, 2]))  # [3]
    ```
    """

    def __init__(self, latent_dim: int, num_components: int = 10, **kwargs):
        super().__init__(latent_dim, **kwargs)
        _check_positive_int("num_components", num_components)
        self.num_components = num_components
        self.logits = self.add_weight("logits", [num_components], initializer="zeros")
        self.means = self.add_weight("means", [num_components, latent_dim],
                                     initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.raw_scales = self.add_weight(
            "raw_scales", [num_components, latent_dim],
            initializer=keras.initializers.Constant(np.log(np.expm1(1.0 - _MIN_SCALE))))

    def distribution(self) -> tfd.Distribution:
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=tf.convert_to_tensor(self.means),
                scale_diag=tf.math.softplus(self.raw_scales) + _MIN_SCALE),
            name="mixture_prior")


@register_prior("vamp")
class VampPrior(Prior):
    """The VampPrior: a uniform mixture of the encoder's posteriors at learned pseudo-inputs.

    `p(z) = (1/K) Σ_k q(z | u_k)` (Tomczak & Welling, 2018). The pseudo-inputs are images
    `u_k = sigmoid(raw_k)` in `[0, 1]` (the data range), initially near grey; the encoder is
    shared with the posterior, so the prior follows it as it trains.

    #### Training: the collapsed start of slow-starting encoders

    The prior is made of the encoder's own posteriors, with their scales. While the encoder
    still maps every image (and pseudo-input) to nearly the same code, the KL is near 0 and its
    gradient widens the posterior scale shared by `q(z|x)` and the prior (against `N(0, I)` a
    scale above 1 would cost KL; here a wider scale makes the codes of different images overlap
    and lowers it). If the decoder has not learned to use `z` by then, the codes become noise,
    the decoder ignores them, and training stays at full posterior collapse (KL ≈ 0, about 206
    nats per MNIST image). The default ReLU `mlp` escapes within its first 100 steps and trains
    at full KL weight from the start; Burda et al.'s tanh 200-200 MLP spends a few hundred steps
    on that plateau and collapses. Measured on 10 000 MNIST images (batch 100, latent 50): the
    tanh net stays at a validation negative ELBO of 208 for 10 epochs at KL weight 1, and also
    with a linear warm-up over 5, 10 or 30 epochs (first-epoch weight 1/n, 0.03 already too
    much), with 500 pseudo-inputs, or with pseudo-inputs initialised near black (as Tomczak &
    Welling) or from training images; with `TrainingConfig(warmup_epochs=100)` (weight 0.01 in
    the first epoch, the paper's 100-epoch warm-up) it leaves the plateau in epoch 4 and
    reaches 181 after 8 epochs. So: with a slow-starting encoder, warm the KL up from about
    0.01 over many epochs.

    Args:
      latent_dim: Python `int`, the latent dimension `d`.
      input_shape: Shape of one image, e.g. `(28, 28, 1)`.
      posterior_fn: Callable mapping images `[K] + input_shape` to the posterior `q(z|u)` with
        batch shape `[K]`, without attaching a KL term (a `VAE` passes its encoder's).
      num_components: Python `int`, the number of pseudo-inputs `K`. Default: `50`.
      **kwargs: Passed to `keras.layers.Layer`.

    Raises:
      ValueError: If `latent_dim` or `num_components` is not a positive integer.

    #### Examples

    ```python
    vae = VAE(ModelConfig(prior="vamp", kl_estimator="mc"))
    vae.prior.log_prob(tf.zeros([3, 2]))  # [3]
    ```
    """

    def __init__(self, latent_dim: int, input_shape: Sequence[int],
                 posterior_fn: Callable[[tf.Tensor], tfd.Distribution],
                 num_components: int = 50, **kwargs):
        super().__init__(latent_dim, **kwargs)
        _check_positive_int("num_components", num_components)
        self.num_components = num_components
        # A plain callable, not a tracked layer: the encoder's weights belong to the encoder.
        self._posterior_fn = posterior_fn
        self.raw_pseudo_inputs = self.add_weight(
            "raw_pseudo_inputs", [num_components, *input_shape],
            initializer=keras.initializers.RandomNormal(stddev=0.1))

    @property
    def pseudo_inputs(self) -> tf.Tensor:
        """The `K` pseudo-inputs, images in `[0, 1]`."""
        return tf.math.sigmoid(self.raw_pseudo_inputs)

    def distribution(self) -> tfd.Distribution:
        components = self._posterior_fn(self.pseudo_inputs)
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.zeros([self.num_components])),
            components_distribution=components, name="vamp_prior")


@register_prior("flow")
class FlowPrior(Prior):
    """`N(0, I)` pushed through a stack of masked autoregressive flows (MAF).

    Each layer is a `tfb.MaskedAutoregressiveFlow` driven by a MADE network
    (`tfb.AutoregressiveNetwork`); the latent order is reversed between layers. `log_prob` costs
    one pass per layer; sampling (only needed to generate images) costs `d` passes.

    Args:
      latent_dim: Python `int`, the latent dimension `d`.
      num_layers: Python `int`, the number of flow layers. Default: `2`.
      hidden_units: Hidden layer sizes of each MADE network. Default: `(32, 32)`.
      **kwargs: Passed to `keras.layers.Layer`.

    Raises:
      ValueError: If a size is not a positive integer.

    #### Examples

    ```python
    prior = FlowPrior(2, num_layers=3)
    prior.distribution().sample(4)  # [4, 2]
    ```
    """

    def __init__(self, latent_dim: int, num_layers: int = 2,
                 hidden_units: Sequence[int] = (32, 32), **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.networks = autoregressive_networks(latent_dim, num_layers, hidden_units,
                                                name="prior_made")

    def distribution(self) -> tfd.Distribution:
        return tfd.TransformedDistribution(isotropic_gaussian_prior(self.latent_dim),
                                           masked_autoregressive_bijector(self.networks),
                                           name="flow_prior")


def prior_options(name: str) -> tuple[str, ...]:
    """The `ModelConfig.prior_options` keys a registered prior accepts.

    Raises:
      ValueError: If `name` is not a registered prior.
    """
    parameters = inspect.signature(PRIORS.get(name).__init__).parameters
    return tuple(sorted(set(parameters) - _BUILD_ARGUMENTS))


def make_prior(name: str, latent_dim: int, options: dict | None = None,
               input_shape: Sequence[int] | None = None,
               posterior_fn: Callable[[tf.Tensor], tfd.Distribution] | None = None) -> Prior:
    """Builds the registered prior `name` with its variables.

    Args:
      name: A name in `PRIORS`: `'gaussian'`, `'mixture'`, `'vamp'` or `'flow'`.
      latent_dim: Python `int`, the latent dimension.
      options: The prior's keyword options (see `prior_options(name)`). Default: `None`.
      input_shape: Image shape, for priors defined through the encoder (`vamp`).
        Default: `None`.
      posterior_fn: The encoder's images -> posterior map, for `vamp`. Default: `None`.

    Returns:
      A `Prior` layer; `.distribution()` is `p(z)`.

    Raises:
      ValueError: If `name` is unknown, an option is unknown or invalid, or `vamp` lacks its
        encoder.

    #### Examples

    ```python
    prior = make_prior("mixture", 2, {"num_components": 4})
    prior.distribution().sample(3)
    ```
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(prior_options(name)))
    if unknown:
        raise ValueError(f"The {name!r} prior has no option(s) {unknown}; it takes "
                         f"{list(prior_options(name))}.")
    cls = PRIORS.get(name)
    parameters = inspect.signature(cls.__init__).parameters
    if "posterior_fn" in parameters:
        if posterior_fn is None or input_shape is None:
            raise ValueError(f"The {name!r} prior is built from the encoder; pass input_shape "
                             "and posterior_fn (a VAE does this itself).")
        options.update(input_shape=tuple(input_shape), posterior_fn=posterior_fn)
    return cls(latent_dim, name=f"{PRIORS.canonical(name)}_prior", **options)
