"""The inverse autoregressive flow posterior (`heads.InverseAutoregressiveFlow`)."""

import numpy as np
import pytest

from tfp_vae.backend import keras, tf, tfd
from tfp_vae.config import ModelConfig
from tfp_vae.data import make_dataset
from tfp_vae.evaluation import iwae_log_likelihood
from tfp_vae.heads import InverseAutoregressiveFlow, posterior_head
from tfp_vae.io import load_model, save_model
from tfp_vae.kl import get_kl_estimator
from tfp_vae.models import build_model
from tfp_vae.priors import isotropic_gaussian_prior, make_prior


def iaf(num_layers=2, seed=0):
    keras.utils.set_random_seed(seed)
    return InverseAutoregressiveFlow(2, num_layers=num_layers)


def tiny(seed=0, **fields):
    keras.utils.set_random_seed(seed)
    fields.setdefault("kl_estimator", "mc")
    return build_model(ModelConfig(network="mlp", network_options={"hidden_units": [64]},
                                   latent_dim=2, posterior_flow=2, **fields))


def test_flow_posterior_density_integrates_to_one(latent_grid):
    base = tfd.MultivariateNormalDiag([[0.3, -0.2]], [[0.7, 1.1]])
    posterior = iaf()._transform(base)
    assert latent_grid.integral(posterior) == pytest.approx(1.0, abs=2e-3)
    gap = posterior.log_prob(latent_grid.points[:, None]) - base.log_prob(
        latent_grid.points[:, None])
    assert float(tf.reduce_max(tf.abs(gap[::97]))) > 0.1  # the flow changes the density


def test_samples_are_reparameterised_and_log_prob_is_exact_at_them():
    layer = iaf()
    loc = tf.Variable([[0.3, -0.2], [1.0, 0.5]])
    with tf.GradientTape() as tape:
        posterior = layer._transform(tfd.MultivariateNormalDiag(loc, [[0.7, 1.1], [0.5, 0.9]]))
        z = posterior.sample(5, seed=(1, 2))
        cached = posterior.log_prob(z)          # from the bijector cache
        total = tf.reduce_sum(z)
    recomputed = posterior.log_prob(tf.identity(z) + 0.0)  # by inverting the flow
    np.testing.assert_allclose(cached, recomputed, rtol=1e-4, atol=1e-4)
    assert posterior.reparameterization_type == tfd.FULLY_REPARAMETERIZED
    variables = [loc, *layer.trainable_variables]
    assert len(variables) == 1 + 2 * 6  # two MADE networks of three dense layers
    for variable, gradient in zip(variables, tape.gradient(total, variables), strict=True):
        assert gradient is not None and float(tf.norm(gradient)) > 0, variable.name


@pytest.mark.parametrize("prior_name", ["gaussian", "mixture"])
@pytest.mark.parametrize("estimator", ["mc", "mc_ratio_cv"])
def test_monte_carlo_kl_of_a_flow_posterior_is_unbiased(prior_name, estimator, latent_grid,
                                                        grouped_kl_estimate):
    keras.utils.set_random_seed(0)
    prior = make_prior(prior_name, 2).distribution()
    layer = iaf()
    loc, scale = [[0.5, -0.3], [1.0, 0.8]], [[1.2, 1.5], [1.4, 1.1]]
    reference = latent_grid.kl(layer._transform(tfd.MultivariateNormalDiag(loc, scale)), prior)
    mean, standard_error = grouped_kl_estimate(get_kl_estimator(estimator), loc, scale, prior,
                                               seed=4, transform=layer._transform)
    assert np.all(reference > 0.02)
    assert np.all(np.abs(mean - reference) < 4 * standard_error + 2e-3), (mean, reference)


def test_head_puts_the_flow_last_and_the_regularizer_on_it():
    from tfp_vae.kl import KLDivergenceRegularizer

    regularizer = KLDivergenceRegularizer(isotropic_gaussian_prior(2))
    layers = posterior_head(2, "tril", regularizer, flow_layers=3)
    assert [type(layer).__name__ for layer in layers] == [
        "Dense", "MultivariateNormalTriL", "InverseAutoregressiveFlow"]
    assert layers[1].activity_regularizer is None and layers[2].activity_regularizer is regularizer
    assert len(layers[2].networks) == 3


@pytest.mark.parametrize("estimator", ["analytic", "mc_entropy", "mc_stl"])
def test_config_refuses_estimators_a_flow_posterior_cannot_use(estimator):
    with pytest.raises(ValueError) as error:
        ModelConfig(posterior_flow=1, kl_estimator=estimator)
    assert str(error.value) == (
        f"ModelConfig.kl_estimator={estimator!r} needs a Gaussian posterior (a closed-form KL "
        "or entropy, or tensor parameters); with posterior_flow > 0 choose 'mc' or "
        "'mc_ratio_cv'.")


@pytest.mark.parametrize("attachment", ["loss", "add_loss", "regularizer"])
def test_gradients_reach_every_flow_variable(attachment, binary_mnist):
    vae = tiny(kl_attachment=attachment, prior="mixture")
    flow = vae.encoder.get_layer("posterior")
    assert isinstance(flow, InverseAutoregressiveFlow)
    variables = flow.trainable_variables
    assert len(variables) == 12
    with tf.GradientTape() as tape:
        loss = vae.compute_losses(tf.constant(binary_mnist[1][:32]), training=True)["loss"]
    for variable, gradient in zip(variables, tape.gradient(loss, variables), strict=True):
        assert gradient is not None and float(tf.norm(gradient)) > 0, variable.name


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_short_fit_with_a_flow_posterior_lowers_the_loss(objective, binary_mnist):
    vae = tiny(objective=objective, num_samples=2, kl_estimator="mc_ratio_cv")
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = vae.fit(make_dataset(binary_mnist[0], batch_size=64, seed=0), epochs=3,
                      verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 20


def test_save_and_load_give_identical_log_likelihoods(tmp_path, binary_mnist):
    vae = tiny(kl_attachment="regularizer")
    x_test = binary_mnist[1][:16]
    save_model(vae, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    results = [iwae_log_likelihood(m, x_test, num_samples=8, seed=0)["log_likelihood"]
               for m in (vae, loaded, tiny(seed=1, kl_attachment="regularizer"))]
    assert results[0] == results[1] != results[2]


def test_mean_is_a_repeatable_monte_carlo_mean(latent_grid):
    base = tfd.MultivariateNormalDiag([[0.3, -0.2]], [[0.7, 1.1]])
    posterior = iaf()._transform(base)
    mean = posterior.mean()
    np.testing.assert_array_equal(mean, posterior.mean())
    density = np.exp(np.asarray(posterior.log_prob(latent_grid.points[:, None]), np.float64))
    exact = (density[:, 0, None] * latent_grid.points).sum(0) * latent_grid.area
    # 256 samples: standard error about scale / 16 per coordinate.
    np.testing.assert_allclose(mean[0], exact, atol=0.25)
