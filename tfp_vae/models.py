"""Keras models: the `VAE` and a deterministic `Autoencoder` baseline, built from a config."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfp_vae.backend import check_tf_keras, keras, tf, tfd
from tfp_vae.config import ModelConfig
from tfp_vae.data import check_images
from tfp_vae.heads import (
    likelihood_head,
    params_per_pixel,
    posterior_distribution,
    posterior_head,
)
from tfp_vae.kl import KLDivergenceAddLoss, KLDivergenceRegularizer, get_kl_estimator
from tfp_vae.losses import negative_elbo, negative_iwae_bound, reconstruction_nll
from tfp_vae.networks import get_network
from tfp_vae.priors import Prior, make_prior
from tfp_vae.seeds import Seed, stateless_seed

__all__ = ["Autoencoder", "VAE", "build_decoder", "build_encoder", "build_model"]


def _kl_attachment(config: ModelConfig, prior, weight: tf.Variable):
    if config.kl_attachment == "loss":
        return None
    options = {"use_exact_kl": config.kl_estimator == "analytic", "weight": weight}
    if config.kl_estimator != "analytic":
        options["mc_estimator"] = config.kl_estimator
        if config.num_samples > 1:
            options["test_points_fn"] = lambda q: q.sample(config.num_samples)
    if config.kl_attachment == "add_loss":
        return KLDivergenceAddLoss(prior, name="kl_divergence", **options)
    return KLDivergenceRegularizer(prior, **options)


def _body_dtype(config: ModelConfig):
    if config.dtype_policy == "float32":
        return None
    return keras.mixed_precision.Policy(config.dtype_policy)


def _encoder_layers(config: ModelConfig, body: Sequence[keras.layers.Layer] | None,
                    kl: KLDivergenceAddLoss | KLDivergenceRegularizer | None
                    ) -> list[keras.layers.Layer]:
    if body is None:
        body = get_network(config.network).encoder(config.input_shape, dtype=_body_dtype(config),
                                                   **config.network_options)
    check_tf_keras(body, "encoder body")
    head = posterior_head(config.latent_dim, config.posterior, kl,
                          flow_layers=config.posterior_flow)
    return [*body, *head]


def build_encoder(config: ModelConfig, body: Sequence[keras.layers.Layer] | None = None,
                  kl: KLDivergenceAddLoss | KLDivergenceRegularizer | None = None
                  ) -> keras.Sequential:
    """The encoder: network body, then the posterior head (and the KL attachment, if any).

    Args:
      config: The `ModelConfig`.
      body: Optional list of tf_keras layers replacing the registered body. Default: `None`.
      kl: Optional KL attachment for the posterior head. Default: `None`.

    Returns:
      A `keras.Sequential` mapping images to `q(z|x)`.

    Raises:
      TypeError: If `body` contains Keras 3 objects.
    """
    return keras.Sequential(_encoder_layers(config, body, kl), name="encoder")


def build_decoder(config: ModelConfig, body: Sequence[keras.layers.Layer] | None = None
                  ) -> keras.Sequential:
    """The decoder: network body, then the likelihood head.

    Args:
      config: The `ModelConfig`.
      body: Optional list of tf_keras layers replacing the registered body; it must end in
        features (a `Dense` likelihood head is added). Default: `None`.

    Returns:
      A `keras.Sequential` mapping latents `[n, latent_dim]` to `p(x|z)`.

    Raises:
      TypeError: If `body` contains Keras 3 objects.
    """
    network = get_network(config.network)
    dense_head = network.dense_head or body is not None
    if body is None:
        body = network.decoder(config.latent_dim, config.input_shape,
                               params_per_pixel(config.likelihood),
                               dtype=_body_dtype(config), **config.network_options)
    check_tf_keras(body, "decoder body")
    head = likelihood_head(config.input_shape, config.likelihood, dense=dense_head)
    return keras.Sequential([*body, *head], name="decoder")


def _features(data):
    return data[0] if isinstance(data, (tuple, list)) else data


class _LatentModel(keras.Model):
    """Shared training/evaluation steps; subclasses define `compute_losses`."""

    metric_names: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a tfp_vae.ModelConfig, got {type(config).__name__}.")
        self.config = config
        self._trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compute_losses(self, x: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Batch-mean losses for `x`, keyed by `metric_names`; `'loss'` is minimised."""
        raise NotImplementedError

    def _record(self, losses):
        for name, value in losses.items():
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.compute_losses(_features(data), training=True)
            # Under a tf.distribute strategy every replica computes the mean over its share of
            # the global batch and the optimizer sums the replicas' gradients, so dividing by
            # the replica count gives the gradient of the global-batch mean.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = losses["loss"] / tf.cast(replicas, losses["loss"].dtype)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._record(losses)

    def test_step(self, data):
        return self._record(self.compute_losses(_features(data), training=False))

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras `fit`, after cheap checks of the images (see `check_input`)."""
        self.check_input(x, "training images")
        validation = kwargs.get("validation_data")
        if validation is not None:
            self.check_input(_features(validation), "validation images")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras `evaluate`, after cheap checks of the images (see `check_input`)."""
        self.check_input(x, "images")
        return super().evaluate(x, y, *args, **kwargs)

    def check_input(self, data, name: str = "images") -> None:
        """Cheap checks of what `fit` / `evaluate` get, before TensorFlow sees it.

        NumPy arrays and tensors go through `tfp_vae.data.check_images` (shape
        `[n] + config.input_shape`, finite pixels in [0, 1], and 0/1 pixels under a Bernoulli
        likelihood); a `tf.data.Dataset` has its element shape compared with `input_shape`.
        Other inputs are left to Keras.

        Args:
          data: The `x` of `fit` / `evaluate` (or the images of `validation_data`).
          name: What to call the images in an error. Default: `'images'`.

        Raises:
          ValueError: One sentence on the first problem found.
        """
        expected = tuple(self.config.input_shape)
        if isinstance(data, (np.ndarray, tf.Tensor)):
            check_images(np.asarray(data), name, binary=self.config.likelihood == "bernoulli",
                         input_shape=expected)
        elif isinstance(data, tf.data.Dataset):
            spec = _features(data.element_spec)
            if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None:
                return
            shape = tuple(spec.shape.as_list())
            if len(shape) == len(expected) + 1 and all(
                    d is None or d == e for d, e in zip(shape[1:], expected, strict=True)):
                return
            hint = ("batch the dataset (e.g. dataset.batch(128))" if shape == expected else
                    f"resize the images or build the model with input_shape={shape[1:]}")
            raise ValueError(f"The {name} of the dataset have shape {shape} but the model "
                             f"expects batches of shape {(None, *expected)}; {hint}.")

    def decode(self, z: tf.Tensor) -> tfd.Distribution:
        """The likelihood `p(x|z)` for latents `z` of shape `[n, latent_dim]`."""
        check_tf_keras(z, "z")
        return self.decoder(z)


class VAE(_LatentModel):
    """A variational autoencoder whose encoder and decoder end in TFP distribution layers.

    Trains with `compile`/`fit` (or `tfp_vae.training.train_loop`) on unlabeled images or
    `(image, label)` pairs and reports, on train and validation data, `reconstruction_loss`
    (`-E_q log p(x|z)`, nats per example), `kl_loss` (the KL term as it enters the loss, i.e.
    `kl_weight · KL`) and `loss`, what training minimises:

    - `objective='elbo'`: `loss = reconstruction_loss + kl_loss`, the negative ELBO when
      `kl_weight = 1`. Where the KL comes from is set by `config.kl_attachment`: the loss
      function (`negative_elbo`), a `KLDivergenceAddLoss` layer or a `KLDivergenceRegularizer`;
      all three give the same per-example KL at the same scale.
    - `objective='iwae'`: `loss` is the negative IWAE bound with `num_samples` importance
      samples, also reported under its own name `negative_iwae_bound`, and `negative_elbo`
      (`reconstruction_loss` + unweighted KL, from the same samples) is reported beside it.

    The prior `p(z)` is `config.prior` (see `tfp_vae.priors`); a learnable prior's variables
    are the model's own (trained, saved and loaded with it), and `vae.prior` builds the current
    distribution from them.

    Args:
      config: A `ModelConfig` with `kind='vae'`. Default: `ModelConfig()`.
      encoder_body: Optional list of tf_keras layers replacing the registered encoder body.
        Default: `None`.
      decoder_body: Optional list of tf_keras layers ending in features, replacing the
        registered decoder body. Default: `None`.
      **kwargs: Passed to `keras.Model`.

    Raises:
      TypeError: If a body contains Keras 3 objects or `config` is not a `ModelConfig`.

    #### Examples

    ```python
    vae = VAE(ModelConfig(latent_dim=2))
    vae.compile(optimizer=tfp_vae.keras.optimizers.Adam(1e-3))
    vae.fit(train_images, epochs=5, batch_size=128, validation_data=(test_images,))
    images = vae.sample(16, seed=0)
    ```
    """

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The reported metrics; `loss` is what training minimises."""
        if self.config.objective == "iwae":
            return ("loss", "negative_iwae_bound", "negative_elbo", "reconstruction_loss",
                    "kl_loss")
        return ("loss", "reconstruction_loss", "kl_loss")

    def __init__(self, config: ModelConfig | None = None,
                 encoder_body: Sequence[keras.layers.Layer] | None = None,
                 decoder_body: Sequence[keras.layers.Layer] | None = None, **kwargs):
        config = ModelConfig() if config is None else config
        super().__init__(config, **kwargs)
        self.kl_weight = tf.Variable(config.beta, trainable=False, dtype=tf.float32,
                                     name="kl_weight")
        # The KL attachments ask for the prior each time they run (the first time while the
        # encoder is being built), so a learnable prior is rebuilt from its current variables
        # inside the gradient tape. A VampPrior runs the encoder's layers on its pseudo-inputs.
        layers: list[keras.layers.Layer] = []
        prior_layer = make_prior(
            config.prior, config.latent_dim, config.prior_options, config.input_shape,
            lambda images: posterior_distribution(layers, images))
        kl = _kl_attachment(config, prior_layer.distribution, self.kl_weight)
        layers.extend(_encoder_layers(config, encoder_body, kl))
        self.encoder = keras.Sequential(layers, name="encoder")
        self.decoder = build_decoder(config, decoder_body)
        # Tracked after the encoder and decoder: the weights file lists layers in this order.
        self.prior_layer: Prior = prior_layer

    @property
    def prior(self) -> tfd.Distribution:
        """The prior `p(z)`, built from the prior layer's current variables."""
        return self.prior_layer.distribution()

    def call(self, x, training=None):
        return self.decoder(self.encoder(x, training=training), training=training)

    def compute_losses(self, x: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Batch means of the training objective and its parts for images `x`.

        Args:
          x: Images, `[batch] + input_shape`.
          training: Python `bool`, passed to the layers. Default: `False`.

        Returns:
          A dict keyed by `metric_names`: scalar `loss`, `reconstruction_loss` and `kl_loss`
          (weighted KL), and with the IWAE objective `negative_iwae_bound` (= `loss`) and
          `negative_elbo`.
        """
        posterior = self.encoder(x, training=training)
        config = self.config
        if config.objective == "iwae":
            return self._iwae_losses(x, posterior, training)
        # With one sample, every attachment uses the sample the encoder's distribution layer
        # drew, so the three attachments train the same model from the same weights and seed.
        drawn = tf.convert_to_tensor(posterior) if config.num_samples == 1 else None
        if config.kl_attachment == "loss":
            terms = negative_elbo(x, posterior, lambda z: self.decoder(z, training=training),
                                  self.prior, config.kl_estimator, config.num_samples,
                                  self.kl_weight, z=drawn)
            reconstruction = tf.reduce_mean(terms.reconstruction)
            kl = tf.reduce_mean(terms.negative_elbo - terms.reconstruction)
        else:
            # The encoder's KL layer/regularizer has added weight * batch-mean KL to self.losses.
            z = drawn if drawn is not None else posterior.sample(config.num_samples)
            reconstruction = tf.reduce_mean(
                reconstruction_nll(x, lambda z: self.decoder(z, training=training), z))
            kl = tf.add_n(self.encoder.losses)
        return {"loss": reconstruction + kl, "reconstruction_loss": reconstruction,
                "kl_loss": kl}

    def _iwae_losses(self, x, posterior, training):
        config = self.config
        prior = self.prior
        terms = negative_iwae_bound(x, posterior, lambda z: self.decoder(z, training=training),
                                    prior, config.num_samples, self.kl_weight,
                                    config.gradient_estimator)
        loss = tf.reduce_mean(terms.negative_iwae_bound)
        # The ELBO from the same samples, reported beside the bound that is minimised.
        reconstruction = -tf.reduce_mean(terms.log_likelihood)
        kl = tf.reduce_mean(get_kl_estimator(config.kl_estimator)(
            posterior, prior, test_points=terms.z))
        return {"loss": loss, "negative_iwae_bound": loss, "negative_elbo": reconstruction + kl,
                "reconstruction_loss": reconstruction, "kl_loss": self.kl_weight * kl}

    def encode(self, x: tf.Tensor) -> tfd.Distribution:
        """The posterior `q(z|x)` for images `x` (batch shape `[batch]`).

        What the encoder's distribution layer emits: TFP's tensor-coercible wrapper around the
        distribution (a `_TensorCoercible`; `isinstance(q, tfd.MultivariateNormalTriL)` is
        False). It has every method of the distribution (`mean`, `sample`, `log_prob`, ...),
        `tf.convert_to_tensor(q)` draws a sample, and `q.tensor_distribution` is the
        distribution itself.
        """
        check_tf_keras(x, "x")
        return self.encoder(x)

    def reconstruct(self, x: tf.Tensor, sample_latent: bool = False, seed: Seed = None
                    ) -> tf.Tensor:
        """Mean of `p(x|z)` at the posterior mean of `z` (or at a posterior sample).

        Args:
          x: Images, `[batch] + input_shape`.
          sample_latent: Python `bool`, decode a sample of `q(z|x)` instead of its mean.
            Default: `False`.
          seed: Stateless seed for that sample. Default: `None`.

        Returns:
          Reconstructed images (pixel means), same shape as `x`.
        """
        posterior = self.encode(x)
        z = posterior.sample(seed=stateless_seed(seed)) if sample_latent else posterior.mean()
        return self.decode(z).mean()

    def sample(self, num_samples: int, seed: Seed = None) -> tf.Tensor:
        """Images generated from the prior: the mean of `p(x|z)` for `z ~ p(z)`.

        Args:
          num_samples: Python `int`, number of images.
          seed: Stateless seed; the same seed gives the same images. Default: `None`.

        Returns:
          A `[num_samples] + input_shape` tensor of pixel means.
        """
        z = self.prior.sample(num_samples, seed=stateless_seed(seed))
        return self.decode(z).mean()


class Autoencoder(_LatentModel):
    """Deterministic autoencoder baseline with the same bodies and likelihood as the `VAE`.

    The encoder maps an image to a point `z`; the loss is the reconstruction negative
    log-likelihood `-log p(x|z)` in nats per example (metrics `loss`, `reconstruction_loss`).

    Args:
      config: A `ModelConfig` (KL fields are ignored). Default: `ModelConfig(kind='autoencoder')`.
      **kwargs: Passed to `keras.Model`.

    #### Examples

    ```python
    ae = Autoencoder(ModelConfig(kind="autoencoder", latent_dim=2))
    ae.compile(optimizer="adam")
    ae.fit(train_images, epochs=2)
    ```
    """

    metric_names = ("loss", "reconstruction_loss")

    def __init__(self, config: ModelConfig | None = None, **kwargs):
        config = ModelConfig(kind="autoencoder") if config is None else config
        super().__init__(config, **kwargs)
        body = get_network(config.network).encoder(config.input_shape,
                                                   dtype=_body_dtype(config),
                                                   **config.network_options)
        self.encoder = keras.Sequential(
            [*body, keras.layers.Dense(config.latent_dim, name="code")], name="encoder")
        self.decoder = build_decoder(config)

    def call(self, x, training=None):
        return self.decoder(self.encoder(x, training=training), training=training)

    def compute_losses(self, x: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Batch-mean reconstruction negative log-likelihood as `loss` and `reconstruction_loss`."""
        z = self.encoder(x, training=training)
        reconstruction = tf.reduce_mean(
            reconstruction_nll(x, lambda z: self.decoder(z, training=training), z))
        return {"loss": reconstruction, "reconstruction_loss": reconstruction}

    def encode(self, x: tf.Tensor) -> tf.Tensor:
        """The code `z` of images `x`, `[batch, latent_dim]`."""
        check_tf_keras(x, "x")
        return self.encoder(x)

    def reconstruct(self, x: tf.Tensor) -> tf.Tensor:
        """Mean of `p(x|z)` at the code of `x`."""
        return self.decode(self.encode(x)).mean()


def build_model(config: ModelConfig) -> VAE | Autoencoder:
    """Builds the model a config describes (`VAE` or `Autoencoder`) and creates its weights.

    Args:
      config: A `ModelConfig`.

    Returns:
      A built `VAE` or `Autoencoder`.

    Raises:
      ValueError: If the config describes an input shape the network cannot handle.

    #### Examples

    ```python
    vae = build_model(ModelConfig.from_json(open("config.json").read()))
    ```
    """
    model = (Autoencoder if config.kind == "autoencoder" else VAE)(config)
    model(tf.zeros((1, *config.input_shape)))
    return model
