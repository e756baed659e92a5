"""Evaluation checked against references computed independently of tfp_vae.

Toy models on 4x4 binary images make the quantities exact: an encoder that is one `Dense` on the
pixels (a Gaussian posterior linear in x) and a decoder that is one `Dense` on z (Bernoulli logits
`z W + b`). Their log-densities, KL and log-mean-exp are recomputed here in NumPy (float64), and
`log p(x)` of the 2-D latent model is integrated on a grid. A briefly trained conv VAE on real
Fashion-MNIST checks the same identities at realistic scale.
"""

import gc
import logging
import math
import weakref

import numpy as np
import pytest

from tfp_vae import ModelConfig, build_model, keras
from tfp_vae.backend import tf
from tfp_vae.evaluation import (
    _COMPILED,
    active_units,
    evaluate_elbo,
    evaluate_model,
    iwae_log_likelihood,
    nats_to_bits_per_dim,
    posterior_means,
    rounded,
)
from tfp_vae.losses import log_importance_weights, log_likelihood_samples, negative_elbo
from tfp_vae.models import VAE
from tfp_vae.seeds import fold_in

TOY_SHAPE = (4, 4, 1)
PIXELS = 16
POSTERIOR_MIN_SCALE = 1e-5  # documented in tfp_vae.heads.MultivariateNormalDiag


# ---------------------------------------------------------------- NumPy references (float64)

def softplus(a):
    return np.logaddexp(0.0, a)


def inverse_softplus(y):
    return np.log(np.expm1(y))


def log_bernoulli(x, logits):
    """`log p(x | logits)` summed over pixels; `x` `[n, 16]`, logits broadcast against it."""
    return np.sum(x * logits - softplus(logits), axis=-1)


def log_normal(z, mean, std):
    return np.sum(-0.5 * ((z - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi),
                  axis=-1)


def normal_kl(mean, std):
    """`KL(N(mean, diag std²) || N(0, I))` in closed form, per row."""
    return 0.5 * np.sum(std**2 + mean**2 - 1.0 - 2.0 * np.log(std), axis=-1)


def log_mean_exp(values, axis=0):
    top = values.max(axis=axis, keepdims=True)
    return (np.log(np.mean(np.exp(values - top), axis=axis, keepdims=True)) + top).squeeze(axis)


# ---------------------------------------------------------------- toy models

class Toy:
    """A VAE on 4x4 images with a linear-Gaussian encoder and a linear-logit decoder."""

    def __init__(self, encoder_kernel, encoder_bias, decoder_kernel, decoder_bias):
        self.params = [np.asarray(p, np.float64) for p in
                       (encoder_kernel, encoder_bias, decoder_kernel, decoder_bias)]
        latent_dim = len(decoder_kernel)
        config = ModelConfig(input_shape=TOY_SHAPE, latent_dim=latent_dim, network="mlp")
        self.model = VAE(config,
                         encoder_body=[keras.layers.InputLayer(TOY_SHAPE),
                                       keras.layers.Flatten()],
                         decoder_body=[keras.layers.InputLayer((latent_dim,))])
        self.model(tf.zeros((1, *TOY_SHAPE)))
        self.model.encoder.get_layer("posterior_params").set_weights(
            [np.float32(encoder_kernel), np.float32(encoder_bias)])
        self.model.decoder.get_layer("likelihood_params").set_weights(
            [np.float32(decoder_kernel), np.float32(decoder_bias)])

    def posterior(self, x):
        """Posterior mean and standard deviation, `[n, d]` each."""
        kernel, bias = self.params[:2]
        loc, raw = np.split(x.reshape(len(x), -1) @ kernel + bias, 2, axis=-1)
        return loc, softplus(raw) + POSTERIOR_MIN_SCALE

    def log_likelihood(self, x, z):
        """`log p(x|z)` for `z` `[..., n, d]` and `x` `[n, 4, 4, 1]`."""
        kernel, bias = self.params[2:]
        return log_bernoulli(x.reshape(len(x), -1), z @ kernel + bias)

    def log_weights(self, x, z):
        mean, std = self.posterior(x)
        return (self.log_likelihood(x, z) + log_normal(z, 0.0, 1.0)
                - log_normal(z, mean, std))


def toy_images(n, seed=0):
    return (np.random.default_rng(seed).random((n, *TOY_SHAPE)) < 0.4).astype(np.float32)


def linear_toy(seed=0, encoder_scale=0.5, decoder_scale=1.5):
    rng = np.random.default_rng(seed)
    return Toy(encoder_scale * rng.normal(size=(PIXELS, 4)),
               np.concatenate([rng.normal(size=2), inverse_softplus([0.6, 0.8])]),
               decoder_scale * rng.normal(size=(2, PIXELS)), rng.normal(size=PIXELS))


def blind_decoder_toy(seed=0, encoder_scale=0.5):
    """The decoder ignores z (zero kernel): `log p(x|z) = log p(x)` exactly."""
    toy = linear_toy(seed, encoder_scale)
    kernel, bias = toy.params[:2]
    return Toy(kernel, bias, np.zeros((2, PIXELS)), toy.params[3])


def exact_log_p(toy, x):
    """`log p(x)` of a blind-decoder toy: the likelihood itself."""
    return log_bernoulli(x.reshape(len(x), -1), toy.params[3])


def seeded_latents(model, x, num_samples, batch_size, max_decoded, seed):
    """The latent samples `iwae_log_likelihood` documents: chunks of `max_decoded // batch`
    samples per batch, seeded by `fold_in(seed, batch index, chunk index)`."""
    per_batch = []
    for index, start in enumerate(range(0, len(x), batch_size)):
        batch = x[start:start + batch_size]
        posterior = model.encoder(batch)
        chunk = max(1, min(num_samples, max_decoded // len(batch)))
        sizes = [chunk] * (num_samples // chunk) + [num_samples % chunk] * bool(
            num_samples % chunk)
        per_batch.append(np.concatenate([
            posterior.sample(size, seed=fold_in(seed, index, chunk_index)).numpy()
            for chunk_index, size in enumerate(sizes)]))
    return per_batch


@pytest.fixture(scope="module")
def trained(binary_fashion):
    """A briefly trained course-network VAE (latent 2) and 256 binary test images."""
    x_train, x_test = binary_fashion
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(latent_dim=2, network="tfp_course"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x_train, epochs=2, batch_size=128, verbose=0)
    return model, x_test[:256]


# ---------------------------------------------------------------- IWAE

def test_iwae_is_the_log_mean_exp_of_the_seeded_log_weights():
    toy, x = linear_toy(), toy_images(6)
    # 6 images in batches of 4 and 2; 10 samples in chunks of 3, 3, 3, 1 and of 6, 4.
    result = iwae_log_likelihood(toy.model, x, num_samples=10, batch_size=4, max_decoded=12,
                                 seed=5, return_per_image=True)
    latents = seeded_latents(toy.model, x, 10, 4, 12, seed=5)
    expected = np.concatenate([log_mean_exp(toy.log_weights(x[i:i + 4], z.astype(np.float64)))
                               for i, z in zip((0, 4), latents, strict=True)])
    np.testing.assert_allclose(result["per_image"], expected, rtol=1e-5)
    assert result["log_likelihood"] == pytest.approx(expected.mean(), rel=1e-5)
    assert result["log_likelihood_standard_error"] == pytest.approx(
        expected.std(ddof=1) / math.sqrt(6), rel=1e-4)
    assert result["negative_log_likelihood_bits_per_dim"] == pytest.approx(
        -expected.mean() / (PIXELS * math.log(2)), rel=1e-5)
    assert result["num_samples"] == 10 and result["num_images"] == 6
    default = iwae_log_likelihood(toy.model, x[:2])  # defaults: k = 100, seed 0
    assert default["num_samples"] == 100 and default["log_likelihood"] == iwae_log_likelihood(
        toy.model, x[:2], num_samples=100, seed=0)["log_likelihood"]


def tfp_log_weights(model, x, num_samples, batch_size, max_decoded, seed):
    """`[k, batch]` log-weights per batch by TFP's `log_prob` (no fused path), each chunk drawn
    as `iwae_log_likelihood` documents and weighed by the posterior that drew it."""
    per_batch = []
    for batch_index in range(-(-len(x) // batch_size)):
        images = x[batch_index * batch_size:(batch_index + 1) * batch_size]
        posterior = model.encoder(images)
        chunk = max(1, min(num_samples, max_decoded // len(images)))
        chunks = []
        for chunk_index, drawn in enumerate(range(0, num_samples, chunk)):
            z = posterior.sample(min(chunk, num_samples - drawn),
                                 seed=fold_in(seed, batch_index, chunk_index))
            chunks.append(log_importance_weights(images, posterior, model.decoder, model.prior,
                                                 z)[0].numpy())
        per_batch.append(np.concatenate(chunks))
    return per_batch


@pytest.mark.parametrize("fields", [
    {}, {"prior": "vamp", "prior_options": {"num_components": 4}, "posterior_flow": 2},
    {"prior": "flow", "posterior": "tril"},
    {"prior": "mixture", "prior_options": {"num_components": 3}, "likelihood": "normal"}],
    ids=["gaussian", "vamp-iaf", "flow-tril", "mixture-normal"])
def test_iwae_of_every_prior_and_posterior_is_the_log_mean_exp_of_tfps_log_weights(fields):
    # 7 images in batches of 4 and 3; k = 11 in chunks of 3 (3, 3, 3, 2) and of 4 (4, 4, 3).
    keras.utils.set_random_seed(1)
    model = build_model(ModelConfig(
        input_shape=TOY_SHAPE, latent_dim=3, network="mlp",
        network_options={"hidden_units": [8]},
        kl_estimator="mc" if fields else "analytic",
        **fields))
    x = toy_images(7, seed=3)
    result = iwae_log_likelihood(model, x, num_samples=11, batch_size=4, max_decoded=12,
                                 seed=2, return_per_image=True)["per_image"]
    log_weights = tfp_log_weights(model, x, 11, 4, 12, seed=2)
    expected = np.concatenate([log_mean_exp(w.astype(np.float64)) for w in log_weights])
    assert np.ptp(np.concatenate(log_weights, axis=1), axis=0).min() > 0.1  # samples matter
    np.testing.assert_allclose(result, expected, rtol=2e-6)


@pytest.mark.parametrize("num_samples", [1, 7, 100])
def test_iwae_is_exact_when_the_posterior_is_the_prior_and_the_decoder_ignores_z(num_samples):
    # q(z|x) = p(z) and p(x|z) = p(x): every importance weight equals p(x), so L_k = log p(x)
    # exactly for every k (a missing or doubled `- log k` is off by log k).
    toy = blind_decoder_toy()
    kernel = np.zeros((PIXELS, 4))
    bias = np.concatenate([[0.0, 0.0], inverse_softplus([1 - POSTERIOR_MIN_SCALE] * 2)])
    toy = Toy(kernel, bias, *toy.params[2:])
    x = toy_images(5)
    result = iwae_log_likelihood(toy.model, x, num_samples=num_samples, batch_size=2,
                                 max_decoded=9, return_per_image=True)
    np.testing.assert_allclose(result["per_image"], exact_log_p(toy, x), rtol=1e-5)


def test_iwae_converges_to_the_grid_integrated_log_likelihood_of_a_2d_latent_model():
    rng = np.random.default_rng(3)
    # A posterior broader than the prior (std 1.5) keeps p(z)/q(z), hence every weight, bounded.
    toy = Toy(0.1 * rng.normal(size=(PIXELS, 4)),
              np.concatenate([[0.3, -0.2], inverse_softplus([1.5, 1.5])]),
              1.5 * rng.normal(size=(2, PIXELS)), rng.normal(size=PIXELS))
    x = toy_images(4, seed=3)
    # log p(x) = log ∫ p(x|z) p(z) dz on a 401 x 401 grid over [-8, 8]² (the Gaussian integrand
    # is smooth, so the Riemann sum is exact to far below a millinat).
    axis = np.linspace(-8.0, 8.0, 401)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 1, 2)
    log_joint = toy.log_likelihood(x, grid) + log_normal(grid, 0.0, 1.0)       # [G, n]
    log_p = log_mean_exp(log_joint) + math.log(len(grid) * (axis[1] - axis[0]) ** 2)

    k = 3000
    result = iwae_log_likelihood(toy.model, x, num_samples=k, return_per_image=True, seed=1)
    # Tolerance from the estimator itself: with relative weight spread s = sd(w)/E[w], L_k has
    # standard error s/√k and bias about -s²/(2k) (delta method).
    mean, std = toy.posterior(x)
    z = mean + std * np.random.default_rng(4).normal(size=(20000, *mean.shape))
    weights = np.exp(toy.log_weights(x, z) - log_p)
    spread = weights.std(axis=0) / weights.mean(axis=0)
    np.testing.assert_allclose(result["per_image"], log_p,
                               atol=4 * spread.max() / math.sqrt(k) + spread.max() ** 2 / k)
    # The ELBO (L_1 in expectation) sits visibly below: the gap is KL(q(z|x) || p(z|x)).
    elbo = -evaluate_elbo(toy.model, x, num_samples=2000)["negative_elbo"]
    assert elbo < log_p.mean() - 0.1


def test_iwae_with_one_sample_is_the_monte_carlo_elbo_of_the_same_sample(trained):
    model, x = trained
    x = x[:128]
    iwae = iwae_log_likelihood(model, x, num_samples=1, batch_size=128, seed=4,
                               return_per_image=True)["per_image"]
    # The same sample z (seed fold_in(4, batch 0, chunk 0)): log w = -(reconstruction + MC KL).
    same = negative_elbo(x, model.encoder(x), model.decoder, model.prior, "mc", 1,
                         seed=fold_in(4, 0, 0)).negative_elbo.numpy()
    np.testing.assert_allclose(iwae, -same, rtol=1e-5)
    # Against the analytic-KL ELBO of independent samples: equal in expectation; the tolerance
    # is the standard error of the paired per-image difference.
    analytic = negative_elbo(x, model.encoder(x), model.decoder, model.prior, "analytic", 1,
                             seed=9).negative_elbo.numpy()
    difference = iwae + analytic
    assert abs(difference.mean()) < 4 * difference.std(ddof=1) / math.sqrt(len(x))


def test_iwae_rises_with_k_and_is_reproducible(trained):
    model, x = trained
    estimates = {k: iwae_log_likelihood(model, x, num_samples=k, seed=0, return_per_image=True)
                 for k in (1, 10, 100)}
    means = [estimates[k]["log_likelihood"] for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2], means
    # Paired per image, the gain is many standard errors of the per-image difference.
    for low, high in ((1, 10), (10, 100)):
        gain = estimates[high]["per_image"] - estimates[low]["per_image"]
        assert gain.mean() > 5 * gain.std(ddof=1) / math.sqrt(len(gain))
    again = iwae_log_likelihood(model, x, num_samples=10, seed=0)
    assert again["log_likelihood"] == pytest.approx(means[1], abs=1e-4)


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


# ---------------------------------------------------------------- ELBO

def test_elbo_parts_equal_independently_computed_reconstruction_and_kl():
    toy, x = blind_decoder_toy(), toy_images(8)
    toy.model.kl_weight.assign(0.3)  # a β-VAE: the evaluation still reports the true ELBO
    mean, std = toy.posterior(x)
    reconstruction, kl = -exact_log_p(toy, x), normal_kl(mean, std)
    assert kl.mean() > 1.0  # a KL that matters: dropping, scaling or β-weighting it shows
    for num_samples in (1, 3):
        result = evaluate_elbo(toy.model, x, batch_size=3, num_samples=num_samples)
        assert result["reconstruction"] == pytest.approx(reconstruction.mean(), rel=1e-5)
        assert result["kl"] == pytest.approx(kl.mean(), rel=1e-5)
        assert result["negative_elbo"] == pytest.approx((reconstruction + kl).mean(), rel=1e-5)
        assert result["negative_elbo_standard_error"] == pytest.approx(
            (reconstruction + kl).std(ddof=1) / math.sqrt(8), rel=1e-4)
        assert result["negative_elbo_bits_per_dim"] == pytest.approx(
            (reconstruction + kl).mean() / (PIXELS * math.log(2)), rel=1e-5)
        assert result["num_images"] == 8
    assert nats_to_bits_per_dim(784 * math.log(2), (28, 28, 1)) == pytest.approx(1.0)


def test_elbo_draws_its_num_samples_per_image_in_batches_of_500_by_default():
    # The documented draws: batch i of 500 images is seeded by fold_in(seed, i); the linear
    # toy's decoder uses z, so another sample count or batching gives other numbers.
    toy, x = linear_toy(), toy_images(601, seed=6)
    for num_samples in (1, 4):
        reference = np.concatenate([negative_elbo(
            tf.constant(x[start:start + 500]), toy.model.encoder(x[start:start + 500]),
            toy.model.decoder, toy.model.prior, "analytic", num_samples,
            seed=fold_in(2, index)).negative_elbo.numpy() for index, start in enumerate((0, 500))])
        result = evaluate_elbo(toy.model, x, num_samples=num_samples, seed=2)
        assert result["negative_elbo"] == pytest.approx(reference.mean(), rel=1e-6)
    assert evaluate_elbo(toy.model, x, num_samples=4, seed=2)["negative_elbo"] != \
        pytest.approx(evaluate_elbo(toy.model, x, num_samples=1, seed=2)["negative_elbo"],
                      rel=1e-6)


def test_elbo_uses_the_closed_form_kl_wherever_it_exists_and_seed_0_by_default():
    # A model trained with a Monte Carlo KL is still evaluated with the exact KL when prior and
    # posterior have one; a flow posterior has none, so its own estimator is used.
    config = ModelConfig(input_shape=TOY_SHAPE, latent_dim=2, network="mlp", kl_estimator="mc",
                         network_options={"hidden_units": [8]})
    keras.utils.set_random_seed(0)
    x = toy_images(50, seed=7)
    model = build_model(config)
    default = evaluate_elbo(model, x)
    assert default == evaluate_elbo(model, x, kl_estimator="analytic", seed=0)
    assert default["kl"] != pytest.approx(evaluate_elbo(model, x, kl_estimator="mc")["kl"],
                                          rel=1e-6)
    assert default != evaluate_elbo(model, x, kl_estimator="analytic", seed=1)
    flow = build_model(config.replace(posterior_flow=1))
    assert evaluate_elbo(flow, x) == evaluate_elbo(flow, x, kl_estimator="mc", seed=0)
    autoencoder = build_model(config.replace(kind="autoencoder", kl_estimator="analytic"))
    with pytest.raises(TypeError, match="^evaluate_elbo needs a tfp_vae VAE, got Autoencoder"):
        evaluate_elbo(autoencoder, x)


def test_elbo_kl_of_a_trained_model_is_the_closed_form(trained):
    model, x = trained
    posterior = model.encoder(x)
    kl = normal_kl(posterior.mean().numpy().astype(np.float64),
                   posterior.stddev().numpy().astype(np.float64))
    result = evaluate_elbo(model, x, batch_size=100)
    assert result["kl"] == pytest.approx(kl.mean(), rel=1e-5)
    # A trained model is far better than the 784·log 2 = 543 nats of a coin flip per pixel.
    assert result["kl"] < result["negative_elbo"] < 543


def test_elbo_matches_keras_evaluate(trained):
    model, x = trained
    keras_result = model.evaluate(x, batch_size=128, verbose=0, return_dict=True)
    posterior = model.encoder(x)
    kl = normal_kl(posterior.mean().numpy().astype(np.float64),
                   posterior.stddev().numpy().astype(np.float64)).mean()
    np.testing.assert_allclose(keras_result["kl_loss"], kl, rtol=1e-5)
    np.testing.assert_allclose(keras_result["loss"],
                               keras_result["reconstruction_loss"] + keras_result["kl_loss"],
                               rtol=1e-6)
    # Keras draws one posterior sample per image; evaluate_elbo averages 32. Their difference
    # is sampling noise with the standard error computed from the within-image spread of
    # log p(x|z): between-image variation cancels in this paired comparison.
    samples = log_likelihood_samples(x, model.decoder,
                                     posterior.sample(32, seed=(7, 0))).numpy()
    within = samples.var(axis=0, ddof=1).mean()
    standard_error = math.sqrt(within * (1 + 1 / 32) / len(x))
    assert 4 * standard_error < kl / 2, (standard_error, kl)  # so a dropped/doubled KL shows
    result = evaluate_elbo(model, x, num_samples=32)
    assert abs(result["negative_elbo"] - keras_result["loss"]) < 4 * standard_error
    assert result["kl"] == pytest.approx(kl, rel=1e-5)


# ---------------------------------------------------------------- active units

def straddling_toy(variances):
    """Posterior means `c_u · x_0` with pixel 0 half 0 and half 1: variance `c_u² / 4`."""
    d = len(variances)
    kernel = np.zeros((PIXELS, 2 * d))
    kernel[0, :d] = 2 * np.sqrt(variances)
    bias = np.concatenate([np.zeros(d), np.zeros(d)])
    return Toy(kernel, bias, np.zeros((d, PIXELS)), np.zeros(PIXELS))


def test_active_units_straddle_the_threshold():
    variances = [0.0099, 0.0101, 0.05, 0.25, 0.0]
    toy = straddling_toy(variances)
    x = toy_images(1000, seed=1)
    x[:, 0, 0, 0] = np.arange(1000) % 2
    result = active_units(toy.model, x, batch_size=300)
    np.testing.assert_allclose(result["posterior_mean_variance"], variances, rtol=1e-5,
                               atol=1e-12)
    # 0.0101, 0.05 and 0.25 are above Burda et al.'s 0.01; 0.0099 and 0 are not.
    assert result["active_units"] == 3 and result["latent_dim"] == 5
    # The comparison is strict: a variance of exactly 0.25 (codes 0 and 1) is not above 0.25.
    assert active_units(toy.model, x, threshold=0.25)["active_units"] == 0
    assert active_units(toy.model, x, threshold=0.2499)["active_units"] == 1
    # Two images are enough to measure a variance (codes 0 and 1 again: 0.25).
    assert active_units(toy.model, x[:2])["posterior_mean_variance"][3] == 0.25


def test_a_trained_model_uses_both_latent_dimensions(trained):
    model, x = trained
    result = active_units(model, x)
    means = model.encoder(x).mean().numpy().astype(np.float64)
    np.testing.assert_allclose(result["posterior_mean_variance"], means.var(axis=0), rtol=1e-5)
    assert result["active_units"] == 2


# ---------------------------------------------------------------- evaluate_model

def test_evaluate_model_values():
    toy, x = blind_decoder_toy(), toy_images(40, seed=2)
    mean, std = toy.posterior(x)
    reconstruction, kl = -exact_log_p(toy, x), normal_kl(mean, std)
    result = evaluate_model(toy.model, x, iwae_samples=5, batch_size=16, seed=3)
    assert result["reconstruction"] == pytest.approx(reconstruction.mean(), rel=1e-5)
    assert result["kl"] == pytest.approx(kl.mean(), rel=1e-5)
    assert result["negative_elbo"] == pytest.approx((reconstruction + kl).mean(), rel=1e-5)
    np.testing.assert_allclose(result["posterior_mean_variance"], mean.var(axis=0), rtol=1e-5)
    assert result["active_units"] == int((mean.var(axis=0) > 0.01).sum()) == 2
    assert result["latent_dim"] == 2 and result["num_images"] == 40


def test_evaluate_model_passes_its_arguments_on():
    # A decoder that uses z: every estimate depends on the seed and on how images are batched
    # (each batch folds its index into the seed), so these equalities pin the plumbing.
    toy, x = linear_toy(), toy_images(40, seed=2)
    result = evaluate_model(toy.model, x, iwae_samples=5, batch_size=16, seed=3)
    elbo = evaluate_elbo(toy.model, x, batch_size=16, seed=3)
    iwae = iwae_log_likelihood(toy.model, x, num_samples=5, seed=3)
    for name, value in elbo.items():
        assert result[name] == value, name
    for name in ("log_likelihood", "log_likelihood_standard_error",
                 "negative_log_likelihood_bits_per_dim", "num_samples"):
        assert result[f"iwae_{name}"] == iwae[name], name
    # Exactly these metrics: the image count once (not again as `iwae_num_images`).
    assert set(result) == set(elbo) | {f"iwae_{name}" for name in iwae if name != "num_images"} \
        | {"active_units", "latent_dim", "posterior_mean_variance"}
    assert result["reconstruction"] != evaluate_elbo(toy.model, x, seed=3)["reconstruction"]
    # Defaults: seed 0, batches of 500 (601 images: two batches, whose draws differ from one
    # batch of 601 or batches of 501), and no IWAE bound unless asked for.
    x = toy_images(601, seed=4)
    default = evaluate_model(toy.model, x)
    assert default["negative_elbo"] == evaluate_elbo(toy.model, x, batch_size=500,
                                                     seed=0)["negative_elbo"]
    assert default["negative_elbo"] != evaluate_elbo(toy.model, x, batch_size=501,
                                                     seed=0)["negative_elbo"]
    assert not any(name.startswith("iwae_") for name in default)


def test_evaluate_model_of_an_autoencoder_reports_its_reconstruction_likelihood(binary_fashion):
    keras.utils.set_random_seed(1)
    autoencoder = build_model(ModelConfig(kind="autoencoder", latent_dim=3, network="mlp",
                                          network_options={"hidden_units": [8]}))
    x = binary_fashion[1][:50]
    codes = autoencoder.encoder(x)
    logits = keras.Sequential(autoencoder.decoder.layers[:-1])(codes).numpy()
    nll = -log_bernoulli(x.reshape(50, -1).astype(np.float64), logits.astype(np.float64))
    result = evaluate_model(autoencoder, x, batch_size=20)
    assert result["reconstruction"] == pytest.approx(nll.mean(), rel=1e-5)
    assert result["reconstruction_standard_error"] == pytest.approx(
        nll.std(ddof=1) / math.sqrt(50), rel=1e-4)
    assert result["reconstruction_bits_per_dim"] == pytest.approx(
        nll.mean() / (784 * math.log(2)), rel=1e-5)
    np.testing.assert_allclose(result["posterior_mean_variance"],
                               codes.numpy().astype(np.float64).var(axis=0), rtol=1e-5)
    assert "negative_elbo" not in result and result["num_images"] == 50


def test_posterior_means_and_active_units_take_grey_images():
    # Grey pixels are fine as encoder inputs (latent plots of un-binarized images); only the
    # Bernoulli likelihood's targets must be 0/1.
    toy = linear_toy()
    grey = np.random.default_rng(5).random((30, *TOY_SHAPE)).astype(np.float32)
    np.testing.assert_allclose(posterior_means(toy.model, grey), toy.posterior(grey)[0],
                               rtol=1e-5, atol=1e-6)
    assert active_units(toy.model, grey)["latent_dim"] == 2
    with pytest.raises(ValueError, match="0/1|binar"):
        evaluate_elbo(toy.model, grey)


def test_iwae_defaults_batches_of_100_and_no_per_image_values():
    toy, x = linear_toy(), toy_images(201, seed=8)
    default = iwae_log_likelihood(toy.model, x, num_samples=4)
    assert "per_image" not in default
    assert default == iwae_log_likelihood(toy.model, x, num_samples=4, batch_size=100, seed=0)
    assert default["log_likelihood"] != iwae_log_likelihood(
        toy.model, x, num_samples=4, batch_size=101)["log_likelihood"]
    autoencoder = build_model(ModelConfig(kind="autoencoder", input_shape=TOY_SHAPE,
                                          latent_dim=2, network="mlp",
                                          network_options={"hidden_units": [8]}))
    with pytest.raises(TypeError, match="^iwae_log_likelihood needs a tfp_vae VAE, got "
                                        "Autoencoder"):
        iwae_log_likelihood(autoencoder, x)


def test_one_image_has_a_value_and_no_standard_error_two_have_one():
    toy = linear_toy()
    elbo = evaluate_elbo(toy.model, toy_images(1))
    assert np.isfinite(elbo["negative_elbo"]) and math.isnan(elbo["negative_elbo_standard_error"])
    two = evaluate_elbo(toy.model, toy_images(2, seed=1))
    assert np.isfinite(two["negative_elbo_standard_error"])
    assert evaluate_elbo(toy.model, toy_images(2, seed=1), batch_size=1)["num_images"] == 2
    with pytest.raises(ValueError, match=r"per image but the model expects \(4, 4, 1\)"):
        evaluate_elbo(toy.model, np.zeros((3, 5, 5, 1), np.float32))


def test_rounded_keeps_four_decimals_inside_lists_and_leaves_other_values():
    assert rounded({"nll": 88.712345, "curve": [1.234567, 2.0], "epochs": 3, "name": "x"}) == {
        "nll": 88.7123, "curve": [1.2346, 2.0], "epochs": 3, "name": "x"}
    assert rounded({"nll": 88.712345}, digits=1) == {"nll": 88.7}


# ---------------------------------------------------------------- errors

def test_bad_arguments_raise(trained):
    model, x = trained
    with pytest.raises(ValueError, match="num_samples must be a positive integer, got 0"):
        iwae_log_likelihood(model, x, num_samples=0)
    for bad in (2.5, "10", True):
        with pytest.raises(ValueError, match=f"^num_samples must be a positive integer, got "
                                             f"{bad!r}"):
            iwae_log_likelihood(model, x, num_samples=bad)
    with pytest.raises(ValueError, match="max_decoded must be a positive integer"):
        iwae_log_likelihood(model, x, max_decoded=0)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_elbo(model, x, batch_size=0)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_elbo(model, x[:0])
    with pytest.raises(ValueError, match="at least 2 images"):
        active_units(model, x[:1])
    autoencoder = build_model(ModelConfig(kind="autoencoder", network="mlp",
                                          network_options={"hidden_units": [8]}))
    with pytest.raises(TypeError, match="iwae_log_likelihood needs a tfp_vae VAE"):
        iwae_log_likelihood(autoencoder, x)
    with pytest.raises(TypeError, match="evaluate_elbo needs a tfp_vae VAE"):
        evaluate_elbo(autoencoder, x)


# ---------------------------------------------------------------- compiled once per model

class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_evaluating_models_in_a_row_traces_each_once_without_retracing_warnings(monkeypatch):
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    # TensorFlow warns at most twice per detector and process: a fresh manager makes the
    # outcome independent of the tests that ran before.
    monkeypatch.setattr(polymorphic_function, "_frequent_tracing_detector_manager",
                        polymorphic_function._FrequentTracingDetectorManager())
    records = _Records()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(records)
    try:
        x = toy_images(8)
        toys = [linear_toy(seed) for seed in range(6)]
        for toy in toys:
            evaluate_model(toy.model, x, iwae_samples=4)
        evaluate_model(toys[0].model, x, iwae_samples=8, seed=1)  # again: no new trace
        # Nor for other batch sizes, a last partial batch or another chunk size.
        iwae_log_likelihood(toys[0].model, toy_images(7), num_samples=5, batch_size=3,
                            max_decoded=6)
    finally:
        logger.removeHandler(records)
    assert not [m for m in records.messages if "retracing" in m], records.messages
    for toy in toys:
        functions = _COMPILED[toy.model]
        assert set(functions) == {("elbo", "analytic", 1), "iwae", "posterior_means"}
        assert [f.experimental_get_tracing_count() for f in functions.values()] == [1, 1, 1]


def test_the_compiled_functions_do_not_keep_a_model_alive():
    toy = linear_toy(0)
    evaluate_model(toy.model, toy_images(8), iwae_samples=4)
    reference = weakref.ref(toy.model)
    del toy
    gc.collect()
    assert reference() is None
