"""Evaluation: ELBO split, IWAE bound (k = 1 equals the ELBO, rises with k), active units."""

import math

import numpy as np
import pytest

from tfp_vae import ModelConfig, build_model, keras
from tfp_vae.evaluation import (
    active_units,
    evaluate_elbo,
    evaluate_model,
    iwae_log_likelihood,
    nats_to_bits_per_dim,
)


@pytest.fixture(scope="module")
def trained(binary_fashion):
    """A briefly trained course-network VAE (latent 2) and 256 binary test images."""
    x_train, x_test = binary_fashion
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(latent_dim=2, network="course"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x_train, epochs=2, batch_size=128, verbose=0)
    return model, x_test[:256]


def test_elbo_splits_into_reconstruction_and_kl(trained):
    model, x = trained
    result = evaluate_elbo(model, x, batch_size=100)
    assert result["num_images"] == len(x)
    assert result["negative_elbo"] == pytest.approx(result["reconstruction"] + result["kl"],
                                                    rel=1e-5)
    assert 0 < result["kl"] < result["negative_elbo"]
    assert result["negative_elbo_bits_per_dim"] == pytest.approx(
        result["negative_elbo"] / (784 * math.log(2)))
    assert nats_to_bits_per_dim(784 * math.log(2), (28, 28, 1)) == pytest.approx(1.0)
    # A trained model is far better than the 784·log 2 = 543 nats of a coin flip per pixel.
    assert result["negative_elbo"] < 543


def test_elbo_matches_keras_evaluate(trained):
    model, x = trained
    keras_loss = model.evaluate(x, batch_size=128, verbose=0, return_dict=True)["loss"]
    result = evaluate_elbo(model, x)
    assert abs(result["negative_elbo"] - keras_loss) < 3 * result["negative_elbo_standard_error"]


def test_iwae_with_one_sample_equals_the_elbo_in_expectation(trained):
    model, x = trained
    elbo = evaluate_elbo(model, x, seed=1, num_samples=1)
    iwae = iwae_log_likelihood(model, x, num_samples=1, seed=2, return_per_image=True)
    # Per-image differences of two independent one-sample estimates: mean 0 in expectation.
    difference = iwae["per_image"] + evaluate_elbo_per_image(model, x)
    standard_error = difference.std(ddof=1) / math.sqrt(len(difference))
    assert abs(difference.mean()) < 4 * standard_error
    assert abs(iwae["log_likelihood"] + elbo["negative_elbo"]) < 4 * standard_error + 1e-3


def evaluate_elbo_per_image(model, x):
    from tfp_vae.losses import negative_elbo

    terms = negative_elbo(x, model.encoder(x), model.decoder, model.prior, "analytic", 1,
                          seed=3)
    return terms.negative_elbo.numpy()


def test_iwae_rises_with_k_and_is_reproducible(trained):
    model, x = trained
    estimates = {k: iwae_log_likelihood(model, x, num_samples=k, seed=0, return_per_image=True)
                 for k in (1, 10, 100)}
    means = [estimates[k]["log_likelihood"] for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2], means
    # The gain is significant, image by image.
    gain = estimates[100]["per_image"] - estimates[1]["per_image"]
    assert gain.mean() > 5 * gain.std(ddof=1) / math.sqrt(len(gain))
    again = iwae_log_likelihood(model, x, num_samples=10, seed=0)
    assert again["log_likelihood"] == pytest.approx(means[1], abs=1e-4)
    assert again["negative_log_likelihood_bits_per_dim"] == pytest.approx(
        -means[1] / (784 * math.log(2)), rel=1e-6)


def test_iwae_with_5000_samples_is_stable_in_bounded_chunks(trained):
    model, x = trained
    few = x[:3]
    big = iwae_log_likelihood(model, few, num_samples=5000, max_decoded=3000,
                              return_per_image=True)
    small = iwae_log_likelihood(model, few, num_samples=100, seed=1, return_per_image=True)
    assert np.all(np.isfinite(big["per_image"]))
    # L_5000 >= L_100 in expectation; the spread of L_100 is well under a nat here.
    assert np.all(big["per_image"] > small["per_image"] - 1.0)
    # Importance weights of a (log-)likelihood in the hundreds of nats: a naive mean of
    # exp(log w) would underflow to 0 in float32.
    assert np.all(big["per_image"] < -50)


def test_active_units_detects_collapse(trained):
    model, x = trained
    result = active_units(model, x)
    assert result["active_units"] == 2 and result["latent_dim"] == 2
    assert min(result["posterior_mean_variance"]) > 0.01
    collapsed = build_model(ModelConfig(latent_dim=3, network="mlp",
                                        network_options={"hidden_units": [16]}))
    head = collapsed.encoder.get_layer("posterior_params")
    kernel, bias = head.get_weights()
    kernel[:, :3] = 0.0  # the posterior mean no longer depends on x
    kernel[0, 0] = 1e-3  # ... except a whisper in one dimension, far below the threshold
    head.set_weights([kernel, bias])
    result = active_units(collapsed, x)
    assert result["active_units"] == 0
    assert max(result["posterior_mean_variance"]) < 0.01


def test_evaluate_model_reports_everything(trained):
    model, x = trained
    result = evaluate_model(model, x[:64], iwae_samples=5)
    for key in ("negative_elbo", "reconstruction", "kl", "negative_elbo_bits_per_dim",
                "iwae_log_likelihood", "iwae_num_samples", "active_units"):
        assert key in result
    assert result["iwae_num_samples"] == 5


def test_bad_arguments_raise(trained):
    model, x = trained
    with pytest.raises(ValueError, match="num_samples"):
        iwae_log_likelihood(model, x, num_samples=0)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_elbo(model, x, batch_size=0)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_elbo(model, x[:0])
    autoencoder = build_model(ModelConfig(kind="autoencoder", network="mlp",
                                          network_options={"hidden_units": [8]}))
    with pytest.raises(TypeError, match="VAE"):
        iwae_log_likelihood(autoencoder, x)
