"""The IWAE objective in `tfp_vae.losses`: k = 1 is the ELBO, TFP agreement, DReG, training."""

import math

import numpy as np
import pytest

from tfp_vae.backend import keras, tf, tfd, tfp
from tfp_vae.config import ModelConfig
from tfp_vae.data import make_dataset
from tfp_vae.evaluation import iwae_log_likelihood
from tfp_vae.losses import negative_elbo, negative_iwae_bound
from tfp_vae.models import build_model
from tfp_vae.priors import isotropic_gaussian_prior
from tfp_vae.training import train_loop


def tiny(**fields):
    """A small MLP VAE on 28x28 images, cheap enough for many test cases."""
    keras.utils.set_random_seed(fields.pop("seed", 0))
    return build_model(ModelConfig(network="mlp", network_options={"hidden_units": [64]},
                                   latent_dim=2, **fields))


@pytest.mark.parametrize("fields", [
    {}, {"prior": "mixture", "kl_estimator": "mc"},
    {"prior": "flow", "posterior_flow": 2, "kl_estimator": "mc"},
    {"prior": "vamp", "posterior": "tril", "kl_estimator": "mc"},
])
def test_iwae_with_one_sample_is_the_elbo(fields, binary_mnist):
    """L_1 = log p(x|z) + log p(z) - log q(z|x) at the same z: the ELBO with the `mc` KL."""
    vae = tiny(**fields)
    x = tf.constant(binary_mnist[1][:32])
    posterior = vae.encoder(x)
    iwae = negative_iwae_bound(x, posterior, vae.decoder, vae.prior, num_samples=1, seed=7)
    elbo = negative_elbo(x, posterior, vae.decoder, vae.prior, "mc", num_samples=1, seed=7)
    np.testing.assert_allclose(iwae.negative_iwae_bound, elbo.negative_elbo, rtol=1e-6)
    assert float(tf.reduce_mean(elbo.kl)) != 0.0


def test_iwae_defaults_to_one_sample_and_beta_one(binary_mnist):
    vae = tiny()
    x = tf.constant(binary_mnist[1][:16])
    posterior = vae.encoder(x)

    def bound(**options):
        return negative_iwae_bound(x, posterior, vae.decoder, vae.prior, seed=4, **options)

    default = bound()
    for name in ("negative_iwae_bound", "log_weights"):
        np.testing.assert_array_equal(getattr(default, name),
                                      getattr(bound(num_samples=1, beta=1.0), name))
    assert not np.allclose(default.negative_iwae_bound, bound(num_samples=2).negative_iwae_bound)


@pytest.mark.parametrize("gradient_estimator", ["reparameterized", "doubly_reparameterized"])
def test_iwae_terms_are_the_log_weights_at_the_returned_samples(gradient_estimator,
                                                                binary_mnist):
    """The bound is log-mean-exp of log p(x|z) + beta (log p(z) - log q(z|x)) at the terms' own
    z, with beta passed through (a KL warm-up), for either gradient estimator (DReG's extra term
    has value 0)."""
    vae = tiny()
    x = tf.constant(binary_mnist[1][:8])
    posterior = vae.encoder(x)
    terms = negative_iwae_bound(x, posterior, vae.decoder, vae.prior, num_samples=6, beta=0.3,
                                gradient_estimator=gradient_estimator, seed=9)
    assert terms.z.shape == (6, 8, 2)
    log_likelihood = vae.decoder(tf.reshape(terms.z, (-1, 2))).log_prob(
        tf.tile(x, (6, 1, 1, 1))).numpy().reshape(6, 8)
    log_weights = log_likelihood + 0.3 * (vae.prior.log_prob(terms.z).numpy()
                                          - posterior.log_prob(terms.z).numpy())
    np.testing.assert_allclose(terms.log_likelihood, log_likelihood, rtol=1e-5)
    np.testing.assert_allclose(terms.log_weights, log_weights, rtol=1e-5)
    bound = np.logaddexp.reduce(log_weights.astype(np.float64), axis=0) - math.log(6)
    np.testing.assert_allclose(terms.negative_iwae_bound, -bound, rtol=1e-5)
    with pytest.raises(ValueError, match="^gradient_estimator must be one of "
                                         r"\['reparameterized', 'doubly_reparameterized'\], got "
                                         "'dreg'.$"):
        negative_iwae_bound(x, posterior, vae.decoder, vae.prior, gradient_estimator="dreg")


def _toy_problem():
    """One 3-pixel observation, a linear-Gaussian decoder with variables, a Diag posterior."""
    keras.utils.set_random_seed(3)
    dense = keras.layers.Dense(3)
    dense.build((None, 2))
    x = tf.constant([[0.5, -1.0, 2.0]])
    loc = tf.Variable([[0.3, -0.2]])
    raw_scale = tf.Variable([[0.1, -0.4]])

    def decoder(z):
        return tfd.Independent(tfd.Normal(dense(z), 0.7), 1)

    def posterior():
        return tfd.MultivariateNormalDiag(loc, tf.math.softplus(raw_scale))

    return x, decoder, posterior, dense.trainable_variables, [loc, raw_scale]


def _tfp_vi_loss(x, decoder, posterior, k, estimator, seed):
    """tfp.vi's importance-weighted loss for the same problem (batch of one, unbatched q)."""
    q = posterior()
    loc, scale = q.loc[0], q.scale.diag[0]
    prior = isotropic_gaussian_prior(2)
    return tfp.vi.monte_carlo_variational_loss(
        lambda z: decoder(z).log_prob(x[0]) + prior.log_prob(z),
        tfd.MultivariateNormalDiag(loc, scale), importance_sample_size=k,
        gradient_estimator=estimator, seed=seed,
        stopped_surrogate_posterior=tfd.MultivariateNormalDiag(tf.stop_gradient(loc),
                                                               tf.stop_gradient(scale)))


@pytest.mark.parametrize("gradient_estimator", ["reparameterized", "doubly_reparameterized"])
def test_iwae_value_and_encoder_gradient_match_tfp_vi(gradient_estimator):
    """Same samples as `tfp.vi.monte_carlo_variational_loss`: same bound, same q gradient."""
    x, decoder, posterior, decoder_variables, encoder_variables = _toy_problem()
    seed, k = tf.constant([5, 6], tf.int32), 16
    tfp_estimator = {"reparameterized": tfp.vi.GradientEstimators.REPARAMETERIZATION,
                     "doubly_reparameterized":
                     tfp.vi.GradientEstimators.DOUBLY_REPARAMETERIZED}[gradient_estimator]
    with tf.GradientTape(persistent=True) as tape:
        ours = negative_iwae_bound(x, posterior(), decoder, isotropic_gaussian_prior(2), k,
                                   gradient_estimator=gradient_estimator,
                                   seed=tfp.random.split_seed(seed, 2)[0]).negative_iwae_bound
        theirs = _tfp_vi_loss(x, decoder, posterior, k, tfp_estimator, seed)
    np.testing.assert_allclose(ours[0], theirs, rtol=1e-5)
    for mine, reference in zip(tape.gradient(ours, encoder_variables),
                               tape.gradient(theirs, encoder_variables), strict=True):
        assert float(tf.norm(mine)) > 1e-3
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


def test_dreg_changes_only_the_encoder_gradient():
    """DReG keeps the value and the decoder's IWAE gradient; the encoder's changes."""
    x, decoder, posterior, decoder_variables, encoder_variables = _toy_problem()
    gradients, values = {}, {}
    for estimator in ("reparameterized", "doubly_reparameterized"):
        with tf.GradientTape() as tape:
            loss = negative_iwae_bound(x, posterior(), decoder, isotropic_gaussian_prior(2), 8,
                                       gradient_estimator=estimator, seed=11).negative_iwae_bound
        values[estimator] = loss
        gradients[estimator] = tape.gradient(loss, decoder_variables + encoder_variables)
    np.testing.assert_allclose(values["reparameterized"], values["doubly_reparameterized"],
                               rtol=1e-6)
    standard, dreg = gradients["reparameterized"], gradients["doubly_reparameterized"]
    for mine, reference in zip(dreg[:2], standard[:2], strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)
    assert max(float(tf.reduce_max(tf.abs(a - b)))
               for a, b in zip(dreg[2:], standard[2:], strict=True)) > 1e-3


@pytest.mark.parametrize("gradient_estimator", ["reparameterized", "doubly_reparameterized"])
def test_each_images_bound_depends_on_its_own_posterior_only(gradient_estimator):
    """A batch of two images with separate posterior variables: image 0's loss has no gradient
    with respect to image 1's posterior (a DReG term summed over the batch would give one, and
    scale the batch-mean encoder gradient by the batch size)."""
    keras.utils.set_random_seed(4)
    dense = keras.layers.Dense(3)
    dense.build((None, 2))

    def decoder(z):
        return tfd.Independent(tfd.Normal(dense(z), 1.0), reinterpreted_batch_ndims=1)

    loc = tf.Variable([[0.3, -0.2], [1.0, 0.5]])
    log_scale = tf.Variable([[-0.5, 0.1], [0.2, -1.0]])
    x = tf.constant([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = negative_iwae_bound(x, tfd.MultivariateNormalDiag(loc, tf.exp(log_scale)),
                                   decoder, isotropic_gaussian_prior(2), 8,
                                   gradient_estimator=gradient_estimator, seed=3)
        first = loss.negative_iwae_bound[0]
    for gradient in tape.gradient(first, [loc, log_scale]):
        assert float(tf.reduce_max(tf.abs(gradient[0]))) > 1e-3
        np.testing.assert_array_equal(gradient[1], np.zeros(2))


def test_dreg_encoder_gradient_is_unbiased():
    """Averaged over seeds, DReG's encoder gradient agrees with the reparameterised one."""
    x, decoder, posterior, _, encoder_variables = _toy_problem()
    prior = isotropic_gaussian_prior(2)

    @tf.function
    def gradient(estimator, seed):
        with tf.GradientTape() as tape:
            loss = negative_iwae_bound(x, posterior(), decoder, prior, 8,
                                       gradient_estimator=estimator, seed=seed)
        return tf.concat([tf.reshape(g, [-1]) for g in
                          tape.gradient(loss.negative_iwae_bound, encoder_variables)], 0)

    draws = {e: np.stack([gradient(e, tf.constant([i, 0])).numpy() for i in range(400)])
             for e in ("reparameterized", "doubly_reparameterized")}
    difference = draws["reparameterized"].mean(0) - draws["doubly_reparameterized"].mean(0)
    standard_error = np.sqrt(sum(d.var(0, ddof=1) for d in draws.values()) / 400)
    assert np.all(np.abs(difference) < 4 * standard_error)
    # The point of DReG: a lower-variance encoder gradient.
    assert draws["doubly_reparameterized"].var(0).sum() < draws["reparameterized"].var(0).sum()


@pytest.fixture(scope="module")
def trained_vae(binary_mnist):
    vae = tiny(seed=1)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    vae.fit(make_dataset(binary_mnist[0], batch_size=64, seed=0), epochs=3, verbose=0)
    return vae


def test_iwae_bound_increases_with_k_on_a_trained_model(trained_vae, binary_mnist):
    x_test = binary_mnist[1][:128]
    bounds = {k: iwae_log_likelihood(trained_vae, x_test, num_samples=k, seed=0,
                                     return_per_image=True)["per_image"] for k in (1, 10, 100)}
    for smaller, larger in ((1, 10), (10, 100)):
        gain = bounds[larger] - bounds[smaller]
        assert gain.mean() > 3 * gain.std(ddof=1) / math.sqrt(len(gain)), (smaller, larger)
    # L_1 is the ELBO: about the trained model's negative ELBO, far below an untrained 543 nats.
    assert -300 < bounds[1].mean() < bounds[100].mean() < 0


@pytest.mark.parametrize("gradient_estimator", ["reparameterized", "doubly_reparameterized"])
def test_fit_with_the_iwae_objective_reports_honest_metrics(gradient_estimator, binary_mnist):
    vae = tiny(objective="iwae", num_samples=4, kl_estimator="mc",
               gradient_estimator=gradient_estimator)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = vae.fit(make_dataset(binary_mnist[0], batch_size=64, seed=0), epochs=3,
                      verbose=0).history
    assert set(history) == {"loss", "negative_iwae_bound", "negative_elbo",
                            "reconstruction_loss", "kl_loss"}
    assert history["loss"] == history["negative_iwae_bound"]
    # With the `mc` KL from the same samples, -L_k <= -ELBO holds batch by batch (Jensen).
    assert all(b < e for b, e in zip(history["negative_iwae_bound"], history["negative_elbo"],
                                     strict=True))
    assert history["loss"][-1] < history["loss"][0] - 20


def test_custom_loop_trains_the_iwae_objective(binary_mnist):
    vae = tiny(objective="iwae", num_samples=3, prior="mixture", kl_estimator="mc_entropy")
    history = train_loop(vae, make_dataset(binary_mnist[0], batch_size=64, seed=0), epochs=2,
                         optimizer=keras.optimizers.Adam(2e-3))
    assert set(history) == {"loss", "negative_iwae_bound", "negative_elbo",
                            "reconstruction_loss", "kl_loss"}
    assert history["loss"][1] < history["loss"][0]


@pytest.mark.parametrize("fields, message", [
    ({"objective": "iwae", "kl_attachment": "add_loss"},
     "ModelConfig.objective='iwae' puts log p(z) - log q(z|x) inside the bound, so it needs "
     "kl_attachment='loss', got 'add_loss'."),
    ({"gradient_estimator": "doubly_reparameterized"},
     "ModelConfig.gradient_estimator='doubly_reparameterized' is a gradient of the IWAE bound "
     "for a Gaussian posterior; set objective='iwae' and posterior_flow=0."),
    ({"objective": "iwae", "gradient_estimator": "doubly_reparameterized", "posterior_flow": 1,
      "kl_estimator": "mc"},
     "ModelConfig.gradient_estimator='doubly_reparameterized' is a gradient of the IWAE bound "
     "for a Gaussian posterior; set objective='iwae' and posterior_flow=0."),
    ({"objective": "vimco"}, "ModelConfig.objective must be one of ['elbo', 'iwae'], got "
                             "'vimco'."),
])
def test_config_refuses_objective_combinations_that_cannot_work(fields, message):
    with pytest.raises(ValueError) as error:
        ModelConfig(**fields)
    assert str(error.value) == message


def test_iwae_config_round_trips_through_json():
    config = ModelConfig(objective="iwae", num_samples=5,
                         gradient_estimator="doubly_reparameterized")
    assert ModelConfig.from_json(config.to_json()) == config
