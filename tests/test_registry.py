"""The one registry helper: registration, lookup errors, deprecated aliases, user extensions."""

import warnings

import numpy as np
import pytest

from tfp_vae import ModelConfig, build_model
from tfp_vae.backend import keras, tfd
from tfp_vae.kl import KL_ESTIMATORS, analytic_kl, get_kl_estimator, register_kl_estimator
from tfp_vae.networks import NETWORKS, get_network, network_options, register_network
from tfp_vae.priors import isotropic_gaussian_prior
from tfp_vae.registry import Registry


def test_register_get_and_unknown_name_lists_the_known_ones():
    registry = Registry("widget")

    @registry.register("b")
    def b():
        return 2

    registry.add("a", 1)
    assert registry.get("b") is b and registry["a"] == 1
    assert sorted(registry) == ["a", "b"] and len(registry) == 2 and "a" in registry
    with pytest.raises(ValueError, match=r"Unknown widget 'c'; choose one of \['a', 'b'\]\."):
        registry.get("c")
    with pytest.raises(KeyError):
        registry["c"]
    with pytest.raises(ValueError, match="already registered"):
        registry.add("a", 3)
    registry.add("a", 3, replace=True)
    assert registry.get("a") == 3


def test_deprecated_alias_warns_and_resolves():
    registry = Registry("widget")
    registry.add("new", 1)
    registry.alias("old", "new")
    assert list(registry) == ["new"] and "old" in registry
    with pytest.warns(DeprecationWarning, match="'old' is deprecated; use 'new'"):
        assert registry.get("old") == 1
    with pytest.warns(DeprecationWarning):
        assert ModelConfig(network="course").network == "tfp_course"


def test_every_built_in_name_is_registered():
    assert sorted(KL_ESTIMATORS) == ["analytic", "mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]
    assert sorted(NETWORKS) == ["conv", "conv_64_128", "mlp", "tfp_course"]
    assert get_kl_estimator("analytic") is analytic_kl
    with pytest.raises(ValueError, match="Unknown KL estimator 'exact'"):
        get_kl_estimator("exact")


def test_a_user_estimator_is_one_decorated_function_usable_in_a_model():
    @register_kl_estimator("test_scaled_analytic")
    def scaled(posterior, prior, num_samples=1, seed=None, test_points=None):
        return 2.0 * tfd.kl_divergence(posterior, prior)

    try:
        prior = isotropic_gaussian_prior(3)
        q = tfd.MultivariateNormalDiag(np.ones((2, 3), np.float32), np.full((2, 3), 0.5,
                                                                            np.float32))
        np.testing.assert_allclose(get_kl_estimator("test_scaled_analytic")(q, prior),
                                   2 * analytic_kl(q, prior), rtol=1e-6)
        assert ModelConfig(kl_estimator="test_scaled_analytic").kl_estimator == \
            "test_scaled_analytic"
    finally:
        KL_ESTIMATORS._entries.pop("test_scaled_analytic")


def test_a_user_network_body_builds_a_vae():
    def encoder(input_shape, width=8, dtype=None):
        return [keras.layers.InputLayer(input_shape=input_shape), keras.layers.Flatten(),
                keras.layers.Dense(width, activation="relu", dtype=dtype)]

    def decoder(latent_dim, output_shape, params_per_pixel, width=8, dtype=None):
        return [keras.layers.InputLayer(input_shape=(latent_dim,)),
                keras.layers.Dense(width, activation="relu", dtype=dtype)]

    register_network("test_tiny", encoder, decoder, dense_head=True, description="Dense 8")
    try:
        assert network_options("test_tiny") == ("width",)
        vae = build_model(ModelConfig(network="test_tiny", network_options={"width": 5}))
        assert vae.encoder.layers[1].units == 5
        assert get_network("test_tiny").jit_compile is False
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\].*takes \['width'\]"):
            ModelConfig(network="test_tiny", network_options={"depth": 2})
    finally:
        NETWORKS._entries.pop("test_tiny")


def test_no_deprecation_warning_for_canonical_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ModelConfig(network="tfp_course")
