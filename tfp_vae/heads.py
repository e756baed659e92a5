"""Distribution heads: posteriors over z (Diag, TriL, optionally flowed by an inverse
autoregressive flow) and likelihoods over x (Bernoulli, Normal).

A head is the list of layers that turns a network body's features into a distribution: a
`Dense` sized by the distribution layer's static `params_size` (when the body does not already
produce the parameters), then a `tfp.layers` distribution layer, and for a flow posterior an
`InverseAutoregressiveFlow` layer that transforms that distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tfp_vae.backend import keras, tf, tfd, tfpl
from tfp_vae.flows import autoregressive_networks, masked_autoregressive_bijector
from tfp_vae.kl import KLDivergenceAddLoss, KLDivergenceRegularizer
from tfp_vae.registry import Registry

__all__ = [
    "POSTERIORS",
    "LIKELIHOODS",
    "IndependentContinuousBernoulli",
    "IndependentBernoulli",
    "IndependentNormal",
    "InverseAutoregressiveFlow",
    "MultivariateNormalDiag",
    "MultivariateNormalTriL",
    "likelihood_head",
    "posterior_distribution",
    "posterior_head",
]

# Floors keep scales away from 0, where log-densities (and gradients) become inf/NaN.
_POSTERIOR_MIN_SCALE = 1e-5
_LIKELIHOOD_MIN_SCALE = 1e-3


class _SingleActivityRegularization:
    """Applies an activity regularizer to the distribution output only.

    Keras runs an activity regularizer on every flattened output, and a TFP distribution layer
    returns (distribution, sample) from `__call__`, so upstream counts the KL twice
    (TFP issue #1215).
    """

    def _handle_activity_regularization(self, inputs, outputs):
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[0]
        super()._handle_activity_regularization(inputs, outputs)


class MultivariateNormalDiag(_SingleActivityRegularization, tfpl.DistributionLambda):
    """A `d`-variate normal with diagonal covariance, parameterised by `2d` real numbers.

    The first `d` parameters are the mean; the scale is `softplus(raw) + 1e-5`.

    Args:
      event_size: Python `int`, the latent dimension `d`.
      convert_to_tensor_fn: How the distribution becomes a tensor for the next layer.
        Default: `tfd.Distribution.sample` (a reparameterised draw of z).
      validate_args: Python `bool`, TFP's runtime argument checks. Default: `False`.
      **kwargs: Passed to `tfp.layers.DistributionLambda` (e.g. `activity_regularizer`).

    #### Examples

    ```python
    keras.Sequential([keras.layers.Dense(MultivariateNormalDiag.params_size(2)),
                      MultivariateNormalDiag(2)])
    ```
    """

    def __init__(self, event_size: int,
                 convert_to_tensor_fn: Callable = tfd.Distribution.sample,
                 validate_args: bool = False, **kwargs):
        super().__init__(
            lambda t: MultivariateNormalDiag.new(t, event_size, validate_args),
            convert_to_tensor_fn, **kwargs)
        self._event_size = event_size

    @staticmethod
    def new(params: tf.Tensor, event_size: int, validate_args: bool = False,
            name: str | None = None) -> tfd.MultivariateNormalDiag:
        """Builds the distribution from its `2 * event_size` parameters."""
        params = tf.convert_to_tensor(params, name="params")
        loc, raw_scale = tf.split(params, 2, axis=-1)
        return tfd.MultivariateNormalDiag(
            loc=loc, scale_diag=tf.math.softplus(raw_scale) + _POSTERIOR_MIN_SCALE,
            validate_args=validate_args, name=name or "MultivariateNormalDiag")

    @staticmethod
    def params_size(event_size: int, name: str | None = None) -> int:
        """The number of parameters: `2 * event_size`."""
        return 2 * int(event_size)

    def get_config(self) -> dict:
        config = {"event_size": self._event_size}
        base = super().get_config()
        base.pop("make_distribution_fn", None)
        return {**base, **config}


class MultivariateNormalTriL(_SingleActivityRegularization, tfpl.MultivariateNormalTriL):
    """`tfp.layers.MultivariateNormalTriL` whose activity regularizer is applied once.

    Parameters: `d` for the mean and `d(d+1)/2` for a lower-triangular scale built by
    `FillScaleTriL(diag_shift=1e-5)` (softplus diagonal), see `params_size`.
    """


class _FlowPosterior(tfd.TransformedDistribution):
    """A flowed posterior; its mean (which has no closed form) is a seeded Monte Carlo mean."""

    _MEAN_SAMPLES = 256

    def _mean(self, **kwargs):
        # A fixed seed keeps `mean()` repeatable (reconstructions, active units, latent plots).
        return tf.reduce_mean(self.sample(self._MEAN_SAMPLES, seed=(0, 0)), axis=0)


class InverseAutoregressiveFlow(_SingleActivityRegularization, tfpl.DistributionLambda):
    """Transforms a posterior distribution by an inverse autoregressive flow (IAF).

    `z = f(z0)` with `z0 ~ q0(z|x)` (the Diag/TriL head) and `f` a stack of inverted
    `tfb.MaskedAutoregressiveFlow` layers (Kingma et al., 2016), latent order reversed between
    layers. The result is a `tfd.TransformedDistribution`: reparameterised samples in one pass
    per layer, and `log_prob`, at the samples it drew, from TFP's bijector cache. The flow's
    MADE networks are shared by all images (the context reaches the flow through `q0`), and
    there is no closed-form KL: use a Monte Carlo estimator (`mc` or `mc_ratio_cv`). Nor is
    there a closed-form mean: `mean()` averages 256 samples drawn with a fixed seed.

    Args:
      event_size: Python `int`, the latent dimension `d`.
      num_layers: Python `int` >= 1, the number of flow layers. Default: `1`.
      hidden_units: Hidden sizes of each MADE network. Default: `(32, 32)`.
      convert_to_tensor_fn: Default: `tfd.Distribution.sample`.
      **kwargs: Passed to `tfp.layers.DistributionLambda` (e.g. `activity_regularizer`).

    #### Examples

    ```python
    keras.Sequential([keras.layers.Dense(MultivariateNormalDiag.params_size(2)),
                      MultivariateNormalDiag(2), InverseAutoregressiveFlow(2, num_layers=2)])
    ```
    """

    def __init__(self, event_size: int, num_layers: int = 1,
                 hidden_units: Sequence[int] = (32, 32),
                 convert_to_tensor_fn: Callable = tfd.Distribution.sample, **kwargs):
        super().__init__(self._transform, convert_to_tensor_fn, **kwargs)
        self._event_size = int(event_size)
        self._hidden_units = tuple(int(h) for h in hidden_units)
        self.networks = autoregressive_networks(self._event_size, num_layers,
                                                self._hidden_units, name="iaf_made")

    def _transform(self, distribution: tfd.Distribution) -> tfd.TransformedDistribution:
        distribution = getattr(distribution, "tensor_distribution", distribution)
        return _FlowPosterior(
            distribution, masked_autoregressive_bijector(self.networks, inverse=True),
            name="iaf_posterior")

    def get_config(self) -> dict:
        base = super().get_config()
        base.pop("make_distribution_fn", None)
        return {**base, "event_size": self._event_size, "num_layers": len(self.networks),
                "hidden_units": self._hidden_units}


class IndependentBernoulli(tfpl.IndependentBernoulli):
    """`tfp.layers.IndependentBernoulli` over pixels, parameterised by logits.

    Converts to a tensor by its mean (the pixel probabilities) rather than a sample, so a
    decoder's tensor output is an image of probabilities.

    Args:
      event_shape: Shape of one image, e.g. `(28, 28, 1)`.
      convert_to_tensor_fn: Default: `tfd.Distribution.mean`.
      **kwargs: Passed to `tfp.layers.IndependentBernoulli`.
    """

    def __init__(self, event_shape: Sequence[int],
                 convert_to_tensor_fn: Callable = tfd.Distribution.mean, **kwargs):
        super().__init__(event_shape, convert_to_tensor_fn=convert_to_tensor_fn, **kwargs)


class IndependentNormal(tfpl.DistributionLambda):
    """Independent normal pixels with a floored scale, `2 * prod(event_shape)` parameters.

    Parameters come in (loc, raw scale) pairs per pixel, so a conv decoder with `2C` output
    channels places the pair of each pixel next to each other. Upstream's
    `tfp.layers.IndependentNormal` uses `softplus(raw)` with no floor, which collapses to 0 on
    near-constant pixels (the black borders of MNIST) and produces NaN; here the scale is
    `softplus(raw) + min_scale`.

    Args:
      event_shape: Shape of one image, e.g. `(28, 28, 1)`.
      min_scale: Python `float`, the scale floor. Default: `1e-3`.
      convert_to_tensor_fn: Default: `tfd.Distribution.mean`.
      validate_args: Default: `False`.
      **kwargs: Passed to `tfp.layers.DistributionLambda`.
    """

    def __init__(self, event_shape: Sequence[int], min_scale: float = _LIKELIHOOD_MIN_SCALE,
                 convert_to_tensor_fn: Callable = tfd.Distribution.mean,
                 validate_args: bool = False, **kwargs):
        event_shape = tuple(int(d) for d in event_shape)
        super().__init__(
            lambda t: IndependentNormal.new(t, event_shape, min_scale, validate_args),
            convert_to_tensor_fn, **kwargs)
        self._event_shape = event_shape
        self._min_scale = min_scale

    @staticmethod
    def new(params: tf.Tensor, event_shape: Sequence[int],
            min_scale: float = _LIKELIHOOD_MIN_SCALE, validate_args: bool = False,
            name: str | None = None) -> tfd.Independent:
        """Builds the distribution from `2 * prod(event_shape)` parameters."""
        params = tf.convert_to_tensor(params, name="params")
        event_shape = list(event_shape)
        batch_shape = tf.shape(params)[:-1]
        pairs = tf.reshape(params, tf.concat([batch_shape, event_shape, [2]], axis=0))
        loc, raw_scale = tf.unstack(pairs, axis=-1)
        return tfd.Independent(
            tfd.Normal(loc=loc, scale=tf.math.softplus(raw_scale) + min_scale,
                       validate_args=validate_args),
            reinterpreted_batch_ndims=len(event_shape), validate_args=validate_args,
            name=name or "IndependentNormal")

    @staticmethod
    def params_size(event_shape: Sequence[int], name: str | None = None) -> int:
        """The number of parameters: `2 * prod(event_shape)`."""
        return 2 * int(np.prod(event_shape))

    def get_config(self) -> dict:
        base = super().get_config()
        base.pop("make_distribution_fn", None)
        return {**base, "event_shape": self._event_shape, "min_scale": self._min_scale}


class IndependentContinuousBernoulli(tfpl.DistributionLambda):
    """Independent continuous Bernoulli pixels (Loaiza-Ganem & Cunningham, 2019), from logits.

    `tfd.ContinuousBernoulli` is the normalised density on [0, 1] of which the Bernoulli
    cross-entropy on grey levels is the unnormalised part: the right likelihood for grey-level
    or colour pixels in [0, 1] when a Bernoulli decoder's cross-entropy is not a density.
    One parameter (a logit) per pixel.

    Args:
      event_shape: Shape of one image, e.g. `(28, 28, 1)`.
      convert_to_tensor_fn: Default: `tfd.Distribution.mean`.
      validate_args: Default: `False`.
      **kwargs: Passed to `tfp.layers.DistributionLambda`.
    """

    def __init__(self, event_shape: Sequence[int],
                 convert_to_tensor_fn: Callable = tfd.Distribution.mean,
                 validate_args: bool = False, **kwargs):
        event_shape = tuple(int(d) for d in event_shape)
        super().__init__(
            lambda t: IndependentContinuousBernoulli.new(t, event_shape, validate_args),
            convert_to_tensor_fn, **kwargs)
        self._event_shape = event_shape

    @staticmethod
    def new(params: tf.Tensor, event_shape: Sequence[int], validate_args: bool = False,
            name: str | None = None) -> tfd.Independent:
        """Builds the distribution from `prod(event_shape)` logits."""
        params = tf.convert_to_tensor(params, name="params")
        logits = tf.reshape(params, tf.concat([tf.shape(params)[:-1], list(event_shape)], 0))
        return tfd.Independent(
            tfd.ContinuousBernoulli(logits=logits, validate_args=validate_args),
            reinterpreted_batch_ndims=len(event_shape), validate_args=validate_args,
            name=name or "IndependentContinuousBernoulli")

    @staticmethod
    def params_size(event_shape: Sequence[int], name: str | None = None) -> int:
        """The number of parameters: `prod(event_shape)`."""
        return int(np.prod(event_shape))

    def get_config(self) -> dict:
        base = super().get_config()
        base.pop("make_distribution_fn", None)
        return {**base, "event_shape": self._event_shape}


POSTERIORS: Registry[type] = Registry("posterior")
POSTERIORS.add("diag", MultivariateNormalDiag)
POSTERIORS.add("tril", MultivariateNormalTriL)
LIKELIHOODS: Registry[type] = Registry("likelihood")
LIKELIHOODS.add("bernoulli", IndependentBernoulli)
LIKELIHOODS.add("normal", IndependentNormal)
LIKELIHOODS.add("continuous_bernoulli", IndependentContinuousBernoulli)


def params_per_pixel(likelihood: str) -> int:
    """How many parameters a likelihood head needs per pixel (a conv decoder's channels)."""
    return int(LIKELIHOODS.get(likelihood).params_size((1, 1, 1)))


def posterior_head(latent_dim: int, posterior: str = "diag",
                   kl: KLDivergenceAddLoss | KLDivergenceRegularizer | None = None,
                   flow_layers: int = 0) -> list[keras.layers.Layer]:
    """Layers mapping encoder features to the posterior `q(z|x)`, optionally attaching the KL.

    Args:
      latent_dim: Python `int`, the latent dimension.
      posterior: `'diag'` (`MultivariateNormalDiag`) or `'tril'` (`MultivariateNormalTriL`).
        Default: `'diag'`.
      kl: `None` (the KL is computed in the loss function), a `KLDivergenceAddLoss` layer
        (appended after the distribution layers) or a `KLDivergenceRegularizer` (set as the last
        distribution layer's activity regularizer). Default: `None`.
      flow_layers: Python `int`, layers of an `InverseAutoregressiveFlow` after the Gaussian;
        `0` means none. Default: `0`.

    Returns:
      A list of Keras layers: `Dense`, the distribution layer, the flow layer if any, and the
      add-loss layer if any.

    Raises:
      ValueError: If `posterior` is unknown.
      TypeError: If `kl` is neither `None` nor a tfp_vae KL attachment.

    #### Examples

    ```python
    prior = isotropic_gaussian_prior(16)
    layers = posterior_head(16, "tril", KLDivergenceAddLoss(prior, use_exact_kl=True))
    ```
    """
    layer_cls = POSTERIORS.get(posterior)
    if kl is not None and not isinstance(kl, (KLDivergenceAddLoss, KLDivergenceRegularizer)):
        raise TypeError("kl must be None, a tfp_vae.KLDivergenceAddLoss or a "
                        f"tfp_vae.KLDivergenceRegularizer, got {type(kl).__name__}.")
    regularizer = kl if isinstance(kl, KLDivergenceRegularizer) else None
    layers = [
        keras.layers.Dense(layer_cls.params_size(latent_dim), name="posterior_params"),
        layer_cls(latent_dim, activity_regularizer=None if flow_layers else regularizer,
                  name="posterior_base" if flow_layers else "posterior"),
    ]
    if flow_layers:
        layers.append(InverseAutoregressiveFlow(latent_dim, flow_layers,
                                                activity_regularizer=regularizer,
                                                name="posterior"))
    if isinstance(kl, KLDivergenceAddLoss):
        layers.append(kl)
    return layers


def posterior_distribution(layers: Sequence[keras.layers.Layer], x: tf.Tensor
                           ) -> tfd.Distribution:
    """Runs encoder layers on `x` and returns `q(z|x)` without attaching any KL term.

    Network layers are called as usual; distribution layers only build their distribution (no
    activity regularizer runs) and `KLDivergenceAddLoss` layers are skipped. A VampPrior uses
    this to evaluate the encoder at its pseudo-inputs from inside the KL term itself.

    Args:
      layers: An encoder's layers (e.g. `encoder.layers` of a tfp_vae encoder).
      x: Images, `[batch] + input_shape`.

    Returns:
      The posterior, batch shape `[batch]`.

    #### Examples

    ```python
    q = posterior_distribution(vae.encoder.layers, images)
    ```
    """
    value = x
    for layer in layers:
        if isinstance(layer, KLDivergenceAddLoss):
            continue
        if isinstance(layer, tfpl.DistributionLambda):
            # The layer's own distribution-building function: calling the layer would also run
            # its activity regularizer, i.e. the KL term that is asking for this prior.
            value = layer._make_distribution_fn(value)
        else:
            value = layer(value)
    return value


def likelihood_head(event_shape: Sequence[int], likelihood: str = "bernoulli",
                    dense: bool = False) -> list[keras.layers.Layer]:
    """Layers mapping decoder outputs to the likelihood `p(x|z)`.

    Args:
      event_shape: Shape of one image, e.g. `(28, 28, 1)`.
      likelihood: `'bernoulli'` (`IndependentBernoulli`, logits), `'normal'`
        (`IndependentNormal`, floored scale) or `'continuous_bernoulli'`
        (`IndependentContinuousBernoulli`, logits). Default: `'bernoulli'`.
      dense: Python `bool`; `True` adds a `Dense(params_size)` (for MLP decoders), `False`
        expects the body to emit the parameters as channels and only flattens them.
        Default: `False`.

    Returns:
      A list of Keras layers ending in the distribution layer.

    Raises:
      ValueError: If `likelihood` is unknown.
    """
    layer_cls = LIKELIHOODS.get(likelihood)
    event_shape = tuple(int(d) for d in event_shape)
    first = (keras.layers.Dense(layer_cls.params_size(event_shape), name="likelihood_params")
             if dense else keras.layers.Flatten(name="likelihood_params"))
    return [first, layer_cls(event_shape, name="likelihood")]
