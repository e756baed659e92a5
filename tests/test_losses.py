import numpy as np
import pytest

from tfp_vae.backend import tf, tfd
from tfp_vae.kl import analytic_kl
from tfp_vae.losses import negative_elbo, reconstruction_nll
from tfp_vae.priors import isotropic_gaussian_prior

D = 2
X = np.random.default_rng(0).integers(0, 2, size=(6, 5)).astype(np.float32)
W = np.random.default_rng(1).normal(size=(D, 5)).astype(np.float32)


def decoder(z):
    return tfd.Independent(tfd.Bernoulli(logits=z @ W), reinterpreted_batch_ndims=1)


POSTERIOR = tfd.MultivariateNormalDiag(
    np.random.default_rng(2).normal(size=(6, D)).astype(np.float32),
    np.random.default_rng(3).uniform(0.2, 1.0, size=(6, D)).astype(np.float32))
PRIOR = isotropic_gaussian_prior(D)


def test_reconstruction_averages_over_samples():
    z = POSTERIOR.sample(3, seed=(1, 2))
    one_by_one = np.mean([-decoder(z[s]).log_prob(X) for s in range(3)], axis=0)
    np.testing.assert_allclose(reconstruction_nll(X, decoder, z), one_by_one, rtol=1e-6)


def numpy_log_bernoulli(x, z):
    logits = z.astype(np.float64) @ W.astype(np.float64)
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def test_reconstruction_of_one_sample_per_example_is_the_bernoulli_nll():
    z = POSTERIOR.sample(seed=(4, 5)).numpy()  # [batch, latent_dim]: no sample axis
    np.testing.assert_allclose(reconstruction_nll(X, decoder, z), -numpy_log_bernoulli(X, z),
                               rtol=1e-5)


def test_negative_elbo_draws_one_sample_by_default():
    default = negative_elbo(X, POSTERIOR, decoder, PRIOR, seed=11)
    one = negative_elbo(X, POSTERIOR, decoder, PRIOR, "analytic", num_samples=1, seed=11)
    np.testing.assert_array_equal(default.negative_elbo, one.negative_elbo)
    z = POSTERIOR.sample(1, seed=tf.constant([11, 0]))[0].numpy()
    np.testing.assert_allclose(default.reconstruction, -numpy_log_bernoulli(X, z), rtol=1e-5)


def test_negative_elbo_is_reconstruction_plus_beta_kl():
    terms = negative_elbo(X, POSTERIOR, decoder, PRIOR, "analytic", num_samples=4, beta=2.5,
                          seed=7)
    np.testing.assert_allclose(terms.kl, analytic_kl(POSTERIOR, PRIOR), rtol=1e-6)
    np.testing.assert_allclose(terms.negative_elbo, terms.reconstruction + 2.5 * terms.kl,
                               rtol=1e-6)
    z = POSTERIOR.sample(4, seed=tf.constant([7, 0]))
    np.testing.assert_allclose(terms.reconstruction, reconstruction_nll(X, decoder, z),
                               rtol=1e-6)


def test_mc_kl_uses_the_same_samples_as_the_reconstruction():
    terms = negative_elbo(X, POSTERIOR, decoder, PRIOR, "mc", num_samples=1, seed=3)
    z = POSTERIOR.sample(1, seed=tf.constant([3, 0]))[0]
    expected = -decoder(z).log_prob(X) + POSTERIOR.log_prob(z) - PRIOR.log_prob(z)
    np.testing.assert_allclose(terms.negative_elbo, expected, rtol=1e-5)


def test_mc_and_analytic_negative_elbo_agree_in_expectation():
    n = 20000
    analytic = negative_elbo(X, POSTERIOR, decoder, PRIOR, "analytic", n, seed=1).negative_elbo
    mc = negative_elbo(X, POSTERIOR, decoder, PRIOR, "mc", n, seed=1).negative_elbo
    # Same samples for the reconstruction, so the difference is the MC KL error alone.
    lr = (POSTERIOR.log_prob(POSTERIOR.sample(n, seed=tf.constant([1, 0])))
          - PRIOR.log_prob(POSTERIOR.sample(n, seed=tf.constant([1, 0])))).numpy()
    se = lr.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(mc.numpy() - analytic.numpy()) < 4.5 * se)


def test_bad_arguments():
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="num_samples must be a positive integer"):
            negative_elbo(X, POSTERIOR, decoder, PRIOR, num_samples=bad)
    with pytest.raises(ValueError, match="Unknown KL estimator"):
        negative_elbo(X, POSTERIOR, decoder, PRIOR, kl_estimator="exact")
