import numpy as np
import pytest

from tfp_vae import losses
from tfp_vae.backend import keras, tf, tfd
from tfp_vae.heads import IndependentBernoulli, IndependentNormal
from tfp_vae.kl import analytic_kl
from tfp_vae.losses import log_likelihood_samples, negative_elbo, reconstruction_nll
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


def dense_head(layer, event_shape, scale, seed=5):
    """`Dense` on 3-D latents, then a tfp_vae likelihood layer; weights drawn at `scale`."""
    size = layer.params_size(event_shape)
    head = keras.Sequential([keras.layers.Dense(size), layer(event_shape)])
    head.build((None, 3))
    rng = np.random.default_rng(seed)
    head.set_weights([scale * rng.normal(size=(3, size)), scale * rng.normal(size=size)])
    return head


def count_fused_calls(monkeypatch):
    calls, fused = [], losses._fused_bernoulli_log_prob
    monkeypatch.setattr(losses, "_fused_bernoulli_log_prob",
                        lambda *args: calls.append(args) or fused(*args))
    return calls


@pytest.mark.parametrize("event_shape", [(28, 28, 1), (5, 7, 3)])
def test_fused_bernoulli_log_likelihood_is_the_bernoulli_log_prob(event_shape, monkeypatch):
    # Logits up to about ±60: factors 1 + exp(-|l|) from 1 to 2. 784 pixels make 8 groups of
    # 98 factors; 105 make 2 groups of 53 (one padded).
    head = dense_head(IndependentBernoulli, event_shape, scale=8.0)
    rng = np.random.default_rng(6)
    x = (rng.random((4, *event_shape)) < 0.3).astype(np.float32)
    z = rng.normal(size=(6, 4, 3)).astype(np.float32)
    calls = count_fused_calls(monkeypatch)
    fused = log_likelihood_samples(x, head, z, fused_bernoulli=True)
    assert len(calls) == 1
    kernel, bias = (w.astype(np.float64) for w in head.get_weights())
    logits = z.astype(np.float64) @ kernel + bias                   # [6, 4, pixels]
    expected = np.sum(x.reshape(4, -1) * logits - np.logaddexp(0.0, logits), axis=-1)
    assert np.abs(expected).min() > 300  # hundreds of nats: rtol 1e-6 is float32 round-off
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    np.testing.assert_allclose(fused, log_likelihood_samples(x, head, z), rtol=1e-6)
    assert len(calls) == 1  # the default is the distribution's own log_prob
    # Logits 0: every pixel has probability 1/2 and each group's product is 2^98 (or 2^53).
    blind = dense_head(IndependentBernoulli, event_shape, scale=0.0)
    np.testing.assert_allclose(log_likelihood_samples(x, blind, z, fused_bernoulli=True),
                               np.full((6, 4), -np.prod(event_shape) * np.log(2.0)), rtol=1e-6)


def test_fused_bernoulli_takes_a_plain_tfp_distribution_too(monkeypatch):
    # A hand-written decoder returning a plain tfd.Independent (no Keras tensor coercion).
    rng = np.random.default_rng(8)
    kernel = rng.normal(size=(3, 12)).astype(np.float32)

    def decoder(z):
        logits = tf.reshape(z @ kernel, [-1, 2, 2, 3])
        return tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)

    x = (rng.random((4, 2, 2, 3)) < 0.5).astype(np.float32)
    z = rng.normal(size=(5, 4, 3)).astype(np.float32)
    calls = count_fused_calls(monkeypatch)
    fused = log_likelihood_samples(x, decoder, z, fused_bernoulli=True)
    assert len(calls) == 1
    np.testing.assert_allclose(fused, log_likelihood_samples(x, decoder, z), rtol=1e-6)


def test_fused_bernoulli_stays_finite_for_large_colour_images():
    # 64x64x4 = 16 384 pixels: 164 groups of at most 100 factors. The product is taken within a
    # group only; a product across the 164 groups (2^164 at logits 0) overflows float32.
    event_shape = (64, 64, 4)
    blind = dense_head(IndependentBernoulli, event_shape, scale=0.0)
    x = (np.random.default_rng(9).random((2, *event_shape)) < 0.5).astype(np.float32)
    z = np.zeros((3, 2, 3), np.float32)
    np.testing.assert_allclose(log_likelihood_samples(x, blind, z, fused_bernoulli=True),
                               np.full((3, 2), -np.prod(event_shape) * np.log(2.0)), rtol=1e-6)


def test_fused_bernoulli_leaves_other_likelihoods_to_their_log_prob(monkeypatch):
    head = dense_head(IndependentNormal, (4, 4, 1), scale=0.5)
    rng = np.random.default_rng(7)
    x = rng.random((3, 4, 4, 1)).astype(np.float32)
    z = rng.normal(size=(2, 3, 3)).astype(np.float32)
    calls = count_fused_calls(monkeypatch)
    np.testing.assert_array_equal(log_likelihood_samples(x, head, z, fused_bernoulli=True),
                                  log_likelihood_samples(x, head, z))
    # A likelihood that is not an Independent at all (one-hot categories over 4 classes).
    kernel = rng.normal(size=(3, 4)).astype(np.float32)
    one_hot = np.eye(4, dtype=np.float32)[[0, 2, 3]]

    def categorical(codes):
        return tfd.OneHotCategorical(logits=codes @ kernel, dtype=tf.float32)

    np.testing.assert_array_equal(
        log_likelihood_samples(one_hot, categorical, z, fused_bernoulli=True),
        log_likelihood_samples(one_hot, categorical, z))
    assert not calls


def test_bad_arguments():
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="num_samples must be a positive integer"):
            negative_elbo(X, POSTERIOR, decoder, PRIOR, num_samples=bad)
    with pytest.raises(ValueError, match="Unknown KL estimator"):
        negative_elbo(X, POSTERIOR, decoder, PRIOR, kl_estimator="exact")
