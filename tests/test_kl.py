"""KL estimators against closed forms, and one-KL-per-example for every attachment."""

import numpy as np
import pytest

from tfp_vae import kl as klmod
from tfp_vae.backend import keras, tf, tfb, tfd, tfpl
from tfp_vae.heads import MultivariateNormalDiag, MultivariateNormalTriL
from tfp_vae.kl import (
    KLDivergenceAddLoss,
    KLDivergenceRegularizer,
    analytic_kl,
    get_kl_estimator,
    kl_weight_variables,
    stop_gradient_parameters,
)
from tfp_vae.priors import isotropic_gaussian_prior

D = 3
RNG = np.random.default_rng(1234)
LOC = RNG.normal(size=(5, D)).astype(np.float32)
SCALE = RNG.uniform(0.3, 1.5, size=(5, D)).astype(np.float32)


def diag_closed_form(loc, scale):
    """KL(N(μ, diag σ²) || N(0, I)) = ½ Σ (σ² + μ² - 1 - log σ²)."""
    return 0.5 * np.sum(scale**2 + loc**2 - 1.0 - np.log(scale**2), axis=-1)


def full_closed_form(loc, tril):
    """KL(N(μ, LLᵀ) || N(0, I)) = ½ (tr Σ + μᵀμ - d - log det Σ)."""
    cov = tril @ np.swapaxes(tril, -1, -2)
    d = loc.shape[-1]
    return 0.5 * (np.trace(cov, axis1=-2, axis2=-1) + np.sum(loc**2, -1) - d
                  - np.linalg.slogdet(cov)[1])


def random_tril(batch, d, rng):
    tril = np.tril(rng.normal(scale=0.4, size=(batch, d, d)))
    idx = np.arange(d)
    tril[:, idx, idx] = rng.uniform(0.4, 1.3, size=(batch, d))
    return tril.astype(np.float32)


def test_analytic_kl_diag_matches_closed_form():
    q = tfd.MultivariateNormalDiag(LOC, SCALE)
    np.testing.assert_allclose(analytic_kl(q, isotropic_gaussian_prior(D)),
                               diag_closed_form(LOC, SCALE), rtol=1e-5)


def test_analytic_kl_full_covariance_matches_closed_form():
    tril = random_tril(5, D, np.random.default_rng(7))
    q = tfd.MultivariateNormalTriL(LOC, tril)
    np.testing.assert_allclose(analytic_kl(q, isotropic_gaussian_prior(D)),
                               full_closed_form(LOC, tril), rtol=1e-5)


def test_analytic_kl_of_prior_with_itself_is_zero():
    prior = isotropic_gaussian_prior(D)
    np.testing.assert_allclose(analytic_kl(prior, prior), 0.0, atol=1e-7)


def test_unknown_estimator_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown KL estimator 'mcmc'; choose one of"):
        get_kl_estimator("mcmc")


# Monte Carlo estimators: n independent single-sample estimates of each example's KL; the mean
# must be within 4.5 standard errors (SE = sample std / sqrt(n)) of the closed form. With the 4 x
# 2 x 5 checks below the chance of a false failure is below 1e-3 for a correct estimator.
N_REPS = 20000


def single_sample_estimates(name, q, seed):
    """[N_REPS, batch] independent one-sample estimates (the batch tiled N_REPS times)."""
    loc = tf.tile(q.loc[tf.newaxis], [N_REPS, 1, 1])
    if isinstance(q, tfd.MultivariateNormalTriL):
        tiled = tfd.MultivariateNormalTriL(loc, tf.tile(q.scale.to_dense()[tf.newaxis],
                                                        [N_REPS, 1, 1, 1]))
    else:
        tiled = tfd.MultivariateNormalDiag(loc, tf.tile(q.stddev()[tf.newaxis], [N_REPS, 1, 1]))
    return get_kl_estimator(name)(tiled, isotropic_gaussian_prior(D), seed=seed).numpy()


def posterior(kind, wide):
    rng = np.random.default_rng(3)
    loc = rng.normal(scale=0.5, size=(5, D)).astype(np.float32)
    if kind == "diag":
        low, high = (0.8, 1.3) if wide else (0.1, 0.6)
        return tfd.MultivariateNormalDiag(loc, rng.uniform(low, high, (5, D)).astype(np.float32))
    tril = np.tril(rng.normal(scale=0.1, size=(5, D, D)))
    idx = np.arange(D)
    low, high = (0.85, 1.2) if wide else (0.1, 0.6)
    tril[:, idx, idx] = rng.uniform(low, high, (5, D))
    return tfd.MultivariateNormalTriL(loc, tril.astype(np.float32))


@pytest.mark.parametrize("kind", ["diag", "tril"])
@pytest.mark.parametrize("name,wide", [("mc", False), ("mc_entropy", False), ("mc_stl", False),
                                        ("mc_ratio_cv", True)])
def test_mc_estimators_are_unbiased(name, wide, kind):
    # mc_ratio_cv has infinite variance when a posterior variance is below half the prior's,
    # so it is checked on posteriors wide enough for the standard error to exist.
    q = posterior(kind, wide)
    estimates = single_sample_estimates(name, q, seed=11)
    truth = analytic_kl(q, isotropic_gaussian_prior(D)).numpy()
    standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(N_REPS)
    assert np.all(np.abs(estimates.mean(axis=0) - truth) < 4.5 * standard_error), (
        estimates.mean(axis=0), truth, standard_error)


@pytest.mark.parametrize("name,variance", [
    # Per-sample variance for q = N(μ, diag σ²) against N(0, I), derived in kl.py's docstrings.
    ("mc", lambda m, s: np.sum(m**2 * s**2 + 0.5 * (s**2 - 1) ** 2, -1)),
    ("mc_entropy", lambda m, s: np.sum(m**2 * s**2 + 0.5 * s**4, -1)),
])
def test_mc_variance_matches_theory(name, variance):
    q = posterior("diag", wide=False)
    estimates = single_sample_estimates(name, q, seed=5)
    centered = estimates - estimates.mean(axis=0)
    sample_var = centered.var(axis=0, ddof=1)
    # Standard error of a sample variance: sqrt((m4 - s^4) / n), with the 4th central moment m4.
    se_var = np.sqrt((np.mean(centered**4, axis=0) - sample_var**2) / N_REPS)
    expected = variance(q.loc.numpy(), q.stddev().numpy())
    assert np.all(np.abs(sample_var - expected) < 5 * se_var), (sample_var, expected, se_var)


def test_entropy_estimator_has_lower_variance_for_narrow_posteriors():
    q = posterior("diag", wide=False)
    assert np.all(single_sample_estimates("mc_entropy", q, 1).std(0)
                  < single_sample_estimates("mc", q, 1).std(0))


def test_std_falls_as_one_over_sqrt_samples():
    q = tfd.MultivariateNormalDiag(tf.fill([4000, D], 0.3), tf.fill([4000, D], 0.5))
    prior = isotropic_gaussian_prior(D)
    std_1 = klmod.monte_carlo_kl(q, prior, num_samples=1, seed=2).numpy().std()
    std_16 = klmod.monte_carlo_kl(q, prior, num_samples=16, seed=3).numpy().std()
    # 4000 replicates: the ratio of sample stds has a relative SE of about 2.5 %.
    assert 0.25 * 0.9 < std_16 / std_1 < 0.25 * 1.1


def test_seeds_make_estimates_reproducible():
    q = posterior("tril", wide=False)
    prior = isotropic_gaussian_prior(D)
    for name in ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]:
        estimator = get_kl_estimator(name)
        a = estimator(q, prior, num_samples=4, seed=42).numpy()
        np.testing.assert_array_equal(a, estimator(q, prior, num_samples=4, seed=42).numpy())
        assert not np.array_equal(a, estimator(q, prior, num_samples=4, seed=43).numpy())


def test_stl_gradient_is_unbiased_and_vanishes_at_the_prior():
    prior = isotropic_gaussian_prior(D)
    loc = tf.Variable(tf.fill([N_REPS, D], 0.4))
    raw = tf.Variable(tf.fill([N_REPS, D], 0.7))
    with tf.GradientTape(persistent=True) as tape:
        q = tfd.MultivariateNormalDiag(loc, raw)
        stl = tf.reduce_sum(klmod.mc_stl_kl(q, prior, seed=9))
        exact = tf.reduce_sum(analytic_kl(q, prior))
    grad_stl = tape.gradient(stl, [loc, raw])
    grad_exact = tape.gradient(exact, [loc, raw])
    for g, e in zip(grad_stl, grad_exact, strict=True):
        g, e = g.numpy(), e.numpy()
        se = g.std(axis=0, ddof=1) / np.sqrt(N_REPS)
        assert np.all(np.abs(g.mean(axis=0) - e[0]) < 4.5 * se)

    at_prior = tfd.MultivariateNormalDiag(tf.Variable(tf.zeros([8, D])),
                                          tf.Variable(tf.ones([8, D])))
    with tf.GradientTape(persistent=True) as tape:
        stl = tf.reduce_sum(klmod.mc_stl_kl(at_prior, prior, seed=1))
        naive = tf.reduce_sum(klmod.monte_carlo_kl(at_prior, prior, seed=1))
    variables = at_prior.trainable_variables
    assert all(np.allclose(g, 0.0, atol=1e-6) for g in tape.gradient(stl, variables))
    assert not all(np.allclose(g, 0.0, atol=1e-3) for g in tape.gradient(naive, variables))


# Attachments: every posterior x attachment x exact/MC adds exactly one term, equal to the
# per-example KL averaged over the batch.
BATCH = 16
X = np.random.default_rng(0).normal(size=(BATCH, 4)).astype(np.float32)
HEADS = {"diag": MultivariateNormalDiag, "tril": MultivariateNormalTriL}


def encoder_with(head, attachment, **kl_options):
    prior = isotropic_gaussian_prior(D)
    layers = [keras.layers.Dense(HEADS[head].params_size(D),
                                 kernel_initializer=keras.initializers.RandomNormal(seed=1),
                                 bias_initializer=keras.initializers.RandomNormal(seed=2))]
    if attachment == "add_loss":
        layers += [HEADS[head](D), KLDivergenceAddLoss(prior, **kl_options)]
    else:
        layers += [HEADS[head](D, activity_regularizer=KLDivergenceRegularizer(prior,
                                                                               **kl_options))]
    return keras.Sequential(layers)


def mean_true_kl(model, x=X):
    head_input = model.layers[0](x)
    q = model.layers[1](head_input)
    return float(tf.reduce_mean(analytic_kl(q, isotropic_gaussian_prior(D))))


@pytest.mark.parametrize("head", ["diag", "tril"])
@pytest.mark.parametrize("attachment", ["add_loss", "regularizer"])
def test_exact_kl_is_added_once_as_batch_mean(head, attachment):
    model = encoder_with(head, attachment, use_exact_kl=True)
    model(X)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), mean_true_kl(model), rtol=1e-5)


@pytest.mark.parametrize("head", ["diag", "tril"])
@pytest.mark.parametrize("attachment", ["add_loss", "regularizer"])
@pytest.mark.parametrize("mc_estimator", ["mc", "mc_entropy", "mc_stl"])
def test_monte_carlo_kl_is_added_once_as_batch_mean(head, attachment, mc_estimator):
    num = 4000
    seed = tf.constant([3, 4])
    model = encoder_with(head, attachment, mc_estimator=mc_estimator,
                         test_points_fn=lambda q: q.sample(num, seed=seed),
                         test_points_reduce_axis=0)
    model(X)
    assert len(model.losses) == 1
    q = model.layers[1](model.layers[0](X))
    prior = isotropic_gaussian_prior(D)
    z = q.sample(num, seed=seed)  # the same points the layer used: [num, batch, D]
    if mc_estimator == "mc_entropy":
        per_point = -q.entropy() - prior.log_prob(z)
    else:
        per_point = q.log_prob(z) - prior.log_prob(z)
    per_point = per_point.numpy()
    np.testing.assert_allclose(float(model.losses[0]), per_point.mean(), rtol=1e-5)
    se = np.sqrt(np.sum(per_point.var(axis=0, ddof=1)) / num) / BATCH
    assert abs(float(model.losses[0]) - mean_true_kl(model)) < 4.5 * se


@pytest.mark.parametrize("head", ["diag", "tril"])
@pytest.mark.parametrize("attachment", ["add_loss", "regularizer"])
def test_default_single_sample_kl_has_batch_mean_scale(head, attachment):
    # 4096 copies of one input: the term is a mean of 4096 one-sample estimates of one KL.
    x = np.repeat(X[:1], 4096, axis=0)
    model = encoder_with(head, attachment)
    model(x)
    assert len(model.losses) == 1
    q = model.layers[1](model.layers[0](x))
    spread = klmod.monte_carlo_kl(q, isotropic_gaussian_prior(D), seed=8).numpy().std()
    assert abs(float(model.losses[0]) - mean_true_kl(model, x)) < 4.5 * spread / np.sqrt(4096)


def test_reduce_axis_does_not_change_the_scale():
    values = []
    for axis in [None, 0, ()]:
        model = encoder_with("diag", "add_loss", test_points_reduce_axis=axis,
                             test_points_fn=lambda q: q.sample(8, seed=tf.constant([1, 1])))
        model(X)
        values.append(float(model.losses[0]))
    np.testing.assert_allclose(values, values[0], rtol=1e-6)


def test_our_regularizer_on_upstream_layer_counts_once():
    prior = isotropic_gaussian_prior(D)
    model = keras.Sequential([
        keras.layers.Dense(tfpl.MultivariateNormalTriL.params_size(D)),
        tfpl.MultivariateNormalTriL(D, activity_regularizer=KLDivergenceRegularizer(
            prior, use_exact_kl=True))])
    model(X)
    np.testing.assert_allclose(float(tf.add_n(model.losses)), mean_true_kl(model), rtol=1e-5)


def test_upstream_defects_that_tfp_vae_fixes():
    """Documents upstream tfp 0.25: doubled regularizer KL (#1215) and batch-sum add-loss KL."""
    prior = isotropic_gaussian_prior(D)
    reg = keras.Sequential([
        keras.layers.Dense(tfpl.MultivariateNormalTriL.params_size(D)),
        tfpl.MultivariateNormalTriL(D, activity_regularizer=tfpl.KLDivergenceRegularizer(
            prior, use_exact_kl=True))])
    reg(X)
    true_mean = mean_true_kl(reg)
    assert len(reg.losses) == 2
    np.testing.assert_allclose([float(v) for v in reg.losses], [true_mean] * 2, rtol=1e-5)

    add = keras.Sequential([reg.layers[0], tfpl.MultivariateNormalTriL(D),
                            tfpl.KLDivergenceAddLoss(prior, use_exact_kl=True)])
    add(X)
    np.testing.assert_allclose(float(add.losses[0]), BATCH * true_mean, rtol=1e-5)

    ours = keras.Sequential([reg.layers[0], MultivariateNormalTriL(D),
                             KLDivergenceAddLoss(prior, use_exact_kl=True)])
    ours(X)
    np.testing.assert_allclose(float(ours.losses[0]), true_mean, rtol=1e-5)


@pytest.mark.parametrize("attachment", ["add_loss", "regularizer"])
def test_weight_scales_and_can_be_changed_without_rebuilding(attachment):
    model = encoder_with("diag", attachment, use_exact_kl=True, weight=0.5)
    model(X)
    true_mean = mean_true_kl(model)
    np.testing.assert_allclose(float(model.losses[0]), 0.5 * true_mean, rtol=1e-5)
    (variable,) = kl_weight_variables(model)
    variable.assign(2.0)
    model(X)
    np.testing.assert_allclose(float(model.losses[0]), 2.0 * true_mean, rtol=1e-5)


def test_invalid_attachment_options_are_clear_errors():
    prior = isotropic_gaussian_prior(D)
    with pytest.raises(ValueError, match=r"^mc_estimator must be a Monte Carlo estimator; pass "
                                         r"use_exact_kl=True for the analytic KL\.$"):
        KLDivergenceAddLoss(prior, mc_estimator="analytic")
    with pytest.raises(ValueError, match=r"^test_points_fn is only used by Monte Carlo KL; pass "
                                         r"use_exact_kl=False to use it\.$"):
        KLDivergenceRegularizer(prior, use_exact_kl=True, test_points_fn=lambda q: q.sample(2))
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        klmod.monte_carlo_kl(prior, prior, num_samples=0)


def test_no_closed_form_names_both_distributions():
    q = tfd.MultivariateNormalDiag(tf.zeros([3, 2]), tf.ones([3, 2]))
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(4)),
                                    tfd.MultivariateNormalDiag(tf.zeros([4, 2]), tf.ones([4, 2])))
    with pytest.raises(NotImplementedError, match=(
            r"^The analytic KL has no closed form for a MultivariateNormalDiag posterior against "
            r"a MixtureSameFamily prior .*use a Monte Carlo estimator: 'mc', ")):
        analytic_kl(q, mixture)


def test_stop_gradient_parameters_refuses_a_distribution_without_tensor_parameters():
    flow = tfd.TransformedDistribution(tfd.Normal(0.0, 1.0), tfb.Exp())
    with pytest.raises(ValueError, match=r"^Cannot stop the gradient of TransformedDistribution: "
                                         r"its parameters are not tensors; use the `mc` or "
                                         r"`mc_ratio_cv` estimator instead\.$"):
        stop_gradient_parameters(flow)


def test_the_regularizer_says_how_to_save_instead_of_serialising():
    regularizer = KLDivergenceRegularizer(isotropic_gaussian_prior(2))
    with pytest.raises(NotImplementedError, match="not Keras-serialisable; save tfp_vae models "
                                                  "with their JSON config and weights instead"):
        regularizer.get_config()


@pytest.mark.parametrize("name", ["mc", "mc_entropy", "mc_ratio_cv"])
def test_sampling_estimators_document_their_shared_arguments(name):
    doc = get_kl_estimator(name).__doc__
    assert "{sampling_args}" not in doc
    for argument in ("num_samples:", "seed:", "test_points:", "Returns:", "Raises:"):
        assert argument in doc, (name, argument)


def test_the_add_loss_layer_refuses_a_keras_3_tensor_by_name():
    import keras as keras3  # Keras 3, installed with TensorFlow >= 2.16

    with pytest.raises(TypeError, match=r"^`inputs of KLDivergenceAddLoss` is a Keras 3 object"):
        KLDivergenceAddLoss(isotropic_gaussian_prior(2))(keras3.Input((4,)))


def test_kl_weight_variables_finds_every_distinct_variable_once():
    class Holder(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.plain = tf.Module()  # a submodule that is not a Keras layer

    shared = tf.Variable(0.5)
    layers = [KLDivergenceAddLoss(isotropic_gaussian_prior(2), weight=w)
              for w in (shared, 2.0, shared)]
    model = keras.Sequential([keras.layers.Dense(MultivariateNormalDiag.params_size(2)),
                              MultivariateNormalDiag(2), *layers, Holder()])
    found = kl_weight_variables(model)
    assert len(found) == 2 and found[0] is shared and found[1] is layers[1].weight


@pytest.mark.parametrize("attachment", ["add_loss", "regularizer"])
def test_the_kl_weight_is_a_named_non_trainable_float32_variable(attachment):
    prior = isotropic_gaussian_prior(2)
    kl = (KLDivergenceAddLoss(prior, weight=0.5) if attachment == "add_loss"
          else KLDivergenceRegularizer(prior, weight=0.5))
    head = MultivariateNormalDiag(2, activity_regularizer=kl if attachment == "regularizer"
                                  else None)
    model = keras.Sequential([keras.layers.Dense(MultivariateNormalDiag.params_size(2)), head,
                              *([kl] if attachment == "add_loss" else [])])
    model(tf.zeros([3, 4]))
    (weight,) = kl_weight_variables(model)
    assert not weight.trainable and weight.dtype == tf.float32
    assert weight.name.startswith("kl_weight") and float(weight.numpy()) == 0.5
    assert not any(weight is v for v in model.trainable_variables)


def test_sample_means_work_when_the_batch_rank_is_only_known_at_run_time():
    prior = tfd.Normal(0.0, 1.0)

    def estimate(loc):
        return klmod.monte_carlo_kl(tfd.Normal(loc, 0.5), prior, num_samples=3, seed=1)

    loc = tf.constant([[0.0, 1.0, 2.0], [0.5, -1.0, 0.2]])
    unknown_rank = tf.function(estimate, input_signature=[tf.TensorSpec(None, tf.float32)])
    np.testing.assert_allclose(unknown_rank(loc), estimate(loc), rtol=1e-6)
    assert unknown_rank(loc).shape == (2, 3)
