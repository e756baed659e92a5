import numpy as np
import pytest

from tfp_vae.backend import keras, tf, tfd, tfpl
from tfp_vae.heads import (
    IndependentBernoulli,
    IndependentContinuousBernoulli,
    IndependentNormal,
    InverseAutoregressiveFlow,
    MultivariateNormalDiag,
    MultivariateNormalTriL,
    likelihood_head,
    posterior_distribution,
    posterior_head,
)
from tfp_vae.kl import KLDivergenceAddLoss, KLDivergenceRegularizer
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


def test_diag_head_splits_the_last_axis_passes_validate_args_and_names_its_distribution():
    # Leading batch axes stay batch axes: loc is the first half of the *last* axis.
    params = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    q = MultivariateNormalDiag.new(params, 2)
    assert q.batch_shape == (2, 3) and q.event_shape == (2,)
    np.testing.assert_array_equal(q.mean(), params[..., :2])
    for layer_options, new_options, expected in (({}, {}, False),
                                                 ({"validate_args": True},
                                                  {"validate_args": True}, True)):
        for distribution in (MultivariateNormalDiag(2, **layer_options)(params).tensor_distribution,
                             MultivariateNormalDiag.new(params, 2, **new_options)):
            assert distribution.name == "MultivariateNormalDiag"
            assert distribution.validate_args is expected
    assert MultivariateNormalDiag.new(params, 2, name="q_z_given_x").name == "q_z_given_x"
    # convert_to_tensor_fn reaches the layer: its tensor is then the posterior mean, not a draw.
    mean_layer = MultivariateNormalDiag(2, convert_to_tensor_fn=tfd.Distribution.mean)
    np.testing.assert_array_equal(tf.convert_to_tensor(mean_layer(params)), params[..., :2])


@pytest.mark.parametrize("head, name, params_per_pixel", [
    (IndependentNormal, "IndependentNormal", 2),
    (IndependentContinuousBernoulli, "IndependentContinuousBernoulli", 1),
])
def test_likelihood_heads_pass_validate_args_and_name_their_distribution(head, name,
                                                                         params_per_pixel):
    params = np.zeros((2, params_per_pixel * 6), np.float32)
    for layer_options, new_options, expected in (({}, {}, False),
                                                 ({"validate_args": True},
                                                  {"validate_args": True}, True)):
        for distribution in (head((2, 3), **layer_options)(params).tensor_distribution,
                             head.new(params, (2, 3), **new_options)):
            assert distribution.name == name
            assert distribution.validate_args is expected
            assert distribution.distribution.validate_args is expected
    assert head.new(params, (2, 3), name="p_x_given_z").name == "p_x_given_z"


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
    with pytest.raises(TypeError) as error:
        posterior_head(2, "diag", kl="add_loss")
    assert str(error.value) == ("kl must be None, a tfp_vae.KLDivergenceAddLoss or a "
                                "tfp_vae.KLDivergenceRegularizer, got str.")


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


def test_head_defaults_are_a_diag_posterior_and_a_flattened_bernoulli_likelihood():
    posterior = posterior_head(3)
    assert [type(layer) for layer in posterior] == [keras.layers.Dense, MultivariateNormalDiag]
    assert posterior[0].units == 6
    likelihood = likelihood_head((2, 2))
    assert [type(layer) for layer in likelihood] == [keras.layers.Flatten, IndependentBernoulli]


@pytest.mark.parametrize("flow_layers", [0, 2])
@pytest.mark.parametrize("attachment", [None, "add_loss", "regularizer"])
def test_posterior_head_names_its_layers_and_attaches_the_kl_exactly_once(attachment,
                                                                          flow_layers):
    prior = isotropic_gaussian_prior(2)
    kl = {None: None, "add_loss": KLDivergenceAddLoss(prior),
          "regularizer": KLDivergenceRegularizer(prior)}[attachment]
    layers = posterior_head(2, "diag", kl, flow_layers=flow_layers)
    names = ["posterior_params", "posterior_base", "posterior"] if flow_layers else [
        "posterior_params", "posterior"]
    types = [keras.layers.Dense, MultivariateNormalDiag] + (
        [InverseAutoregressiveFlow] if flow_layers else [])
    head = layers[:len(names)]
    assert [layer.name for layer in head] == names  # get_layer("posterior") finds q(z|x)
    assert [type(layer) for layer in head] == types
    assert layers[len(names):] == ([kl] if attachment == "add_loss" else [])
    # The regularizer sits on the last distribution layer only (the flow when there is one).
    assert [layer.activity_regularizer for layer in head] == [None] * (len(names) - 1) + [
        kl if attachment == "regularizer" else None]
    if flow_layers:
        assert len(head[-1].networks) == flow_layers
    encoder = keras.Sequential(layers)
    encoder(np.zeros((3, 5), np.float32))
    assert len(encoder.losses) == (0 if attachment is None else 1)


_LIKELIHOOD_CLASSES = {"bernoulli": IndependentBernoulli, "normal": IndependentNormal,
                       "continuous_bernoulli": IndependentContinuousBernoulli}


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("likelihood", sorted(_LIKELIHOOD_CLASSES))
def test_likelihood_head_layers_and_their_tensor_is_the_mean(likelihood, dense):
    layer_cls = _LIKELIHOOD_CLASSES[likelihood]
    layers = likelihood_head((2, 2), likelihood, dense=dense)
    assert [layer.name for layer in layers] == ["likelihood_params", "likelihood"]
    assert type(layers[-1]) is layer_cls
    if dense:
        assert type(layers[0]) is keras.layers.Dense
        assert layers[0].units == layer_cls.params_size((2, 2))
    else:
        assert type(layers[0]) is keras.layers.Flatten
    params = np.random.default_rng(0).normal(size=(3, layer_cls.params_size((2, 2))))
    distribution = layers[-1](params.astype(np.float32))
    # A decoder's tensor output is the mean image (not a sample).
    np.testing.assert_array_equal(tf.convert_to_tensor(distribution), distribution.mean())


def test_continuous_bernoulli_head_maps_logits_to_pixels_in_order():
    logits = np.array([[-3.0, -0.5, 0.7, 4.0]], np.float32)
    likelihood = IndependentContinuousBernoulli((2, 2))(logits)
    assert likelihood.batch_shape == (1,) and likelihood.event_shape == (2, 2)
    # Density ∝ exp(λx) on [0, 1]: mean = 1 / (1 - exp(-λ)) - 1 / λ.
    lam = logits.astype(np.float64).reshape(1, 2, 2)
    np.testing.assert_allclose(likelihood.mean(), 1 / (1 - np.exp(-lam)) - 1 / lam, rtol=1e-5)


@pytest.mark.parametrize("layer_cls", [IndependentNormal, IndependentContinuousBernoulli])
def test_likelihood_heads_keep_every_leading_batch_dimension(layer_cls):
    # Parameters [samples, batch, params] (a decoder applied to posterior.sample(k) directly).
    params = np.random.default_rng(1).normal(
        size=(3, 4, layer_cls.params_size((2, 2)))).astype(np.float32)
    likelihood = layer_cls((2, 2))(params)
    assert likelihood.batch_shape == (3, 4) and likelihood.event_shape == (2, 2)
    assert likelihood.log_prob(np.full((3, 4, 2, 2), 0.5, np.float32)).shape == (3, 4)
    flat = layer_cls((2, 2))(params.reshape(12, -1))
    np.testing.assert_allclose(tf.reshape(likelihood.mean(), [12, 2, 2]), flat.mean(),
                               rtol=1e-6)
    if layer_cls is IndependentNormal:
        np.testing.assert_allclose(likelihood.mean(), params[..., 0::2].reshape(3, 4, 2, 2))


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: MultivariateNormalDiag(3, name="posterior"),
     {"name": "posterior", "event_size": 3, "convert_to_tensor_fn": "sample"}),
    (lambda: IndependentNormal((2, 2), min_scale=0.05, name="likelihood"),
     {"name": "likelihood", "event_shape": (2, 2), "min_scale": 0.05,
      "convert_to_tensor_fn": "mean"}),
    (lambda: IndependentContinuousBernoulli((2, 2), name="likelihood"),
     {"name": "likelihood", "event_shape": (2, 2), "convert_to_tensor_fn": "mean"}),
    (lambda: InverseAutoregressiveFlow(2, num_layers=3, hidden_units=(8,), name="posterior"),
     {"name": "posterior", "event_size": 2, "num_layers": 3, "hidden_units": (8,),
      "convert_to_tensor_fn": "sample"}),
], ids=["diag", "normal", "continuous_bernoulli", "iaf"])
def test_distribution_layers_round_trip_through_their_keras_config(make, expected):
    layer = make()
    config = layer.get_config()
    assert "make_distribution_fn" not in config  # a pickled closure: never in the config
    assert {key: config[key] for key in expected} == expected
    clone = type(layer).from_config(config)
    if isinstance(layer, InverseAutoregressiveFlow):
        clone.set_weights(layer.get_weights())  # raises unless the networks have equal shapes
        base = tfd.MultivariateNormalDiag([[0.3, -0.2]], [[0.7, 1.1]])
        z = np.array([[[0.1, 0.4]], [[-1.0, 2.0]]], np.float32)
        np.testing.assert_array_equal(clone._transform(base).log_prob(z),
                                      layer._transform(base).log_prob(z))
        return
    size = type(layer).params_size(3 if isinstance(layer, MultivariateNormalDiag) else (2, 2))
    params = np.random.default_rng(2).normal(size=(2, size)).astype(np.float32)
    params[:, 1::2] = -30.0  # the scale floor (min_scale) shows in the normal's stddev
    cloned, original = clone(params), layer(params)
    np.testing.assert_array_equal(cloned.mean(), original.mean())
    np.testing.assert_array_equal(cloned.log_prob(original.mean()),
                                  original.log_prob(original.mean()))
    if isinstance(layer, IndependentNormal):
        np.testing.assert_allclose(clone(params).stddev(), 0.05, rtol=1e-6)


def _flow(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return InverseAutoregressiveFlow(2, **kwargs)


def _dense_kernel_shapes(flow):
    return [[tuple(v.shape) for v in network.trainable_variables if v.shape.rank == 2]
            for network in flow.networks]


def test_inverse_autoregressive_flow_defaults_and_arguments_reach_its_networks():
    assert _dense_kernel_shapes(_flow()) == [[(2, 32), (32, 32), (32, 4)]]
    assert _dense_kernel_shapes(_flow(num_layers=2, hidden_units=(8,))) == [
        [(2, 8), (8, 4)], [(2, 8), (8, 4)]]
    # Named apart from a flow prior's networks ("made_*") in checkpoints and TensorBoard.
    assert [network.name for network in _flow(num_layers=2).networks] == ["iaf_made_0",
                                                                          "iaf_made_1"]
    # convert_to_tensor_fn is honoured: the layer's tensor is then the (seeded) flow mean.
    flow = _flow(convert_to_tensor_fn=tfd.Distribution.mean)
    posterior = flow(MultivariateNormalDiag(2)(np.array([[0.3, 0.1, -0.2, 0.5]], np.float32)))
    np.testing.assert_array_equal(tf.convert_to_tensor(posterior), posterior.mean())


def test_flow_posterior_samples_are_the_inverse_autoregressive_transform_of_base_samples():
    flow = _flow(hidden_units=(8,))
    rng = np.random.default_rng(3)
    flow.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in flow.get_weights()])
    base = tfd.MultivariateNormalDiag([[0.3, -0.2]], [[0.7, 1.1]])
    z0 = base.sample(4, seed=(1, 2))
    posterior = flow._transform(base)
    assert posterior.name == "iaf_posterior"
    z = posterior.sample(4, seed=(1, 2))
    # IAF (Kingma et al., 2016): shift and log-scale are read from the base sample z0, one pass,
    # z = (z0 - shift(z0)) * exp(-log_scale(z0)), log_scale squashed to 2 tanh(raw / 2).
    shift, raw = tf.unstack(flow.networks[0](z0), axis=-1)
    expected = (z0 - shift) * tf.exp(-2.0 * tf.tanh(raw / 2.0))
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)
    assert float(tf.reduce_max(tf.abs(z - z0))) > 0.1  # the flow is not the identity


def test_flow_posterior_mean_is_a_repeatable_per_example_monte_carlo_mean():
    flow = _flow()
    flow.set_weights([np.zeros(w.shape, np.float32) for w in flow.get_weights()])  # identity
    loc, scale = [[0.3, -0.2], [2.0, 1.0]], [[0.7, 1.1], [0.5, 0.9]]
    posterior = flow._transform(tfd.MultivariateNormalDiag(loc, scale))
    mean = posterior.mean()
    assert mean.shape == (2, 2)  # one mean per example: averaged over samples only
    np.testing.assert_array_equal(mean, posterior.mean())
    # 256 samples of the identity flow: the base mean within 4 standard errors (scale / 16).
    assert np.all(np.abs(mean - np.array(loc)) < 4 * np.array(scale) / 16)


def test_posterior_distribution_skips_an_add_loss_layer_wherever_it_sits():
    # A KL add-loss layer between the Gaussian and a flow (a hand-built encoder): skipped, not the
    # end of the encoder, and never called (it would add the KL that asks for this posterior).
    prior = isotropic_gaussian_prior(2)
    add_loss, flow = KLDivergenceAddLoss(prior), _flow(hidden_units=(8,))
    layers = [keras.layers.Dense(4), MultivariateNormalDiag(2), add_loss, flow]
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    q = posterior_distribution(layers, x)
    assert isinstance(q, tfd.TransformedDistribution) and q.batch_shape == (1,)
    expected = flow._transform(layers[1]._make_distribution_fn(layers[0](x)))
    np.testing.assert_allclose(q.sample(3, seed=(4, 5)), expected.sample(3, seed=(4, 5)),
                               rtol=1e-6)
    assert not add_loss.losses and not add_loss.built
