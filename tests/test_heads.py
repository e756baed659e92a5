import numpy as np
import pytest

from tfp_vae.backend import tf, tfd, tfpl
from tfp_vae.heads import (
    IndependentBernoulli,
    IndependentNormal,
    MultivariateNormalDiag,
    MultivariateNormalTriL,
    likelihood_head,
    posterior_head,
)
from tfp_vae.kl import KLDivergenceAddLoss
from tfp_vae.priors import isotropic_gaussian_prior


def test_params_sizes():
    assert MultivariateNormalDiag.params_size(4) == 8
    assert MultivariateNormalTriL.params_size(4) == 4 + 10
    assert IndependentNormal.params_size((28, 28, 1)) == 2 * 784
    assert IndependentBernoulli.params_size((28, 28, 1)) == 784


def test_diag_head_builds_mvn_diag_with_softplus_scale():
    params = np.array([[1.0, -2.0, 0.0, 3.0]], np.float32)
    q = MultivariateNormalDiag(2)(params)
    assert isinstance(q.tensor_distribution, tfd.MultivariateNormalDiag)
    np.testing.assert_allclose(q.mean(), [[1.0, -2.0]])
    np.testing.assert_allclose(q.stddev(), [[np.log(2.0) + 1e-5, np.log1p(np.exp(3.0)) + 1e-5]],
                               rtol=1e-6)


def test_normal_likelihood_scale_is_floored():
    # Upstream IndependentNormal's softplus scale underflows to 0 and log_prob becomes inf/NaN.
    params = np.full((2, 2 * 4), -200.0, np.float32)
    ours = IndependentNormal((2, 2))(params)
    np.testing.assert_allclose(ours.stddev(), 1e-3, rtol=1e-6)
    assert np.all(np.isfinite(ours.log_prob(np.zeros((2, 2, 2), np.float32))))
    upstream = tfpl.IndependentNormal((2, 2))(params)
    assert not np.all(np.isfinite(upstream.log_prob(np.zeros((2, 2, 2), np.float32))))


def test_normal_likelihood_pairs_loc_and_scale_per_pixel():
    params = np.array([[0.5, 0.0, -0.5, 1.0]], np.float32)  # (loc, raw scale) per pixel
    likelihood = IndependentNormal((2,))(params)
    np.testing.assert_allclose(likelihood.mean(), [[0.5, -0.5]])
    np.testing.assert_allclose(likelihood.stddev(),
                               [[np.log(2.0) + 1e-3, np.log1p(np.e) + 1e-3]], rtol=1e-6)


def test_bernoulli_head_uses_logits_and_converts_to_mean():
    logits = np.zeros((3, 4), np.float32)
    likelihood = IndependentBernoulli((2, 2))(logits)
    np.testing.assert_allclose(tf.convert_to_tensor(likelihood), np.full((3, 2, 2), 0.5))
    np.testing.assert_allclose(likelihood.log_prob(np.ones((3, 2, 2), np.float32)),
                               4 * np.log(0.5), rtol=1e-6)


def test_posterior_head_places_the_kl_attachment():
    kl = KLDivergenceAddLoss(isotropic_gaussian_prior(2), use_exact_kl=True)
    layers = posterior_head(2, "tril", kl)
    assert layers[-1] is kl and isinstance(layers[1], MultivariateNormalTriL)
    assert layers[0].units == MultivariateNormalTriL.params_size(2)


def test_head_errors_are_clear():
    with pytest.raises(ValueError, match="Unknown posterior 'full'; choose one of"):
        posterior_head(2, "full")
    with pytest.raises(ValueError, match="Unknown likelihood 'poisson'"):
        likelihood_head((28, 28, 1), "poisson")
    with pytest.raises(TypeError, match="kl must be None"):
        posterior_head(2, "diag", kl="add_loss")


def test_continuous_bernoulli_head_is_a_normalised_density_and_trains_on_grey_levels(tmp_path):
    from tfp_vae.config import ModelConfig, TrainingConfig
    from tfp_vae.heads import IndependentContinuousBernoulli
    from tfp_vae.io import load_model, save_model
    from tfp_vae.runs import train_run

    # One pixel, three logits: the density integrates to 1 over [0, 1] (midpoint rule).
    head = IndependentContinuousBernoulli((1,))
    q = head(np.array([[-4.0], [0.3], [5.0]], np.float32))
    grid = (np.arange(20000, dtype=np.float32) + 0.5) / 20000
    density = np.exp(q.log_prob(grid.reshape(-1, 1, 1)).numpy())  # [grid, 3]
    np.testing.assert_allclose(density.mean(axis=0), 1.0, atol=1e-3)
    # A VAE on grey levels (no binarization) with it trains, and save -> load is exact.
    model = ModelConfig(network="mlp", network_options={"hidden_units": [32]}, latent_dim=2,
                        likelihood="continuous_bernoulli")
    result = train_run(None, model, TrainingConfig(
        data="mnist", binarization="none", train_size=512, test_size=100, batch_size=64,
        epochs=2, plots=False))
    assert result.history[1]["loss"] < result.history[0]["loss"]
    save_model(result.model, tmp_path / "model")
    x = load_splits_grey()
    np.testing.assert_allclose(
        load_model(tmp_path / "model").decode(np.zeros((1, 2), np.float32)).log_prob(x).numpy(),
        result.model.decode(np.zeros((1, 2), np.float32)).log_prob(x).numpy(), rtol=1e-6)


def load_splits_grey():
    from tfp_vae.data import load_splits

    return load_splits("mnist", test_size=1, binarization="none").x_test
