import json

import pytest

from tfp_vae.config import ModelConfig


@pytest.mark.parametrize("config", [
    ModelConfig(),
    ModelConfig(kind="autoencoder", network="mlp", network_options={"hidden_units": (64, 32)}),
    ModelConfig(input_shape=(32, 32, 3), latent_dim=16, posterior="tril", likelihood="normal",
                kl_attachment="regularizer", kl_estimator="mc_entropy", num_samples=4, beta=0.5,
                network_options={"filters": (64, 128)}),
])
def test_json_round_trip(config):
    text = config.to_json()
    assert json.loads(text)["latent_dim"] == config.latent_dim
    again = ModelConfig.from_json(text)
    assert again == config
    assert again.to_json() == text


def test_tuples_are_normalised_so_round_trip_is_exact():
    config = ModelConfig(network_options={"filters": (64, 128)})
    assert config.network_options == {"filters": [64, 128]}
    assert isinstance(ModelConfig.from_json(config.to_json()).input_shape, tuple)


def test_unknown_key_is_rejected_by_name():
    data = ModelConfig().to_dict() | {"latent_size": 3}
    with pytest.raises(ValueError, match=r"Unknown model config key\(s\) \['latent_size'\]"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize("field,value,message", [
    ("posterior", "full", "ModelConfig.posterior must be one of"),
    ("kl_attachment", "layer", "ModelConfig.kl_attachment must be one of"),
    ("latent_dim", 0, "ModelConfig.latent_dim must be a positive integer"),
    ("num_samples", 1.5, "ModelConfig.num_samples must be a positive integer"),
    ("beta", -1.0, "ModelConfig.beta must be a non-negative number"),
    ("input_shape", (28, 28), r"ModelConfig.input_shape must be \(height, width, channels\)"),
])
def test_invalid_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{field: value})


def test_bad_json_is_a_clear_error():
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelConfig.from_json("{latent_dim: 2")
