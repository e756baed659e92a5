import json
import re

import numpy as np
import pytest

from tfp_vae.config import ModelConfig, fitted_configs


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


# TrainingConfig ----------------------------------------------------------------------------

from tfp_vae.config import TrainingConfig, canonical_name, cli_name  # noqa: E402


@pytest.mark.parametrize("training", [
    TrainingConfig(),
    TrainingConfig(data="mnist", epochs=30, batch_size=100, validation_size=10000,
                   learning_rate_schedule="cosine", final_learning_rate=1e-4, seed=3,
                   early_stopping_patience=5, iwae_samples=5000, jit_compile=True,
                   tensorboard_dir="logs", strategy="mirrored", plots=False),
])
def test_training_config_json_round_trip(training):
    text = training.to_json()
    again = TrainingConfig.from_json(text)
    assert again == training and again.to_json() == text


def test_spellings_are_translated_in_one_place():
    training = TrainingConfig(data="fashion-mnist", strategy="multi-worker")
    assert (training.data, training.strategy) == ("fashion_mnist", "multi_worker")
    assert ModelConfig(kl_attachment="loss-fn", kl_estimator="mc-entropy").kl_attachment == "loss"
    assert canonical_name("loss-fn") == "loss" and cli_name("loss") == "loss-fn"
    assert cli_name("fashion_mnist") == "fashion-mnist"
    assert canonical_name(cli_name("mc_ratio_cv")) == "mc_ratio_cv"


@pytest.mark.parametrize("changes, message", [
    ({"data": "cifar"}, "Unknown dataset 'cifar'"),
    ({"epochs": 0}, "TrainingConfig.epochs must be a positive integer"),
    ({"batch_size": 2.5}, "TrainingConfig.batch_size must be a positive integer"),
    ({"learning_rate": float("nan")}, "TrainingConfig.learning_rate must be a positive number"),
    ({"learning_rate": 0}, "TrainingConfig.learning_rate must be a positive number"),
    ({"binarization": "otsu"}, "TrainingConfig.binarization must be one of"),
    ({"validation_size": -1}, "TrainingConfig.validation_size must be an integer >= 0"),
    ({"test_size": 0}, "TrainingConfig.test_size must be a positive integer or None"),
    ({"learning_rate_schedule": "cosine"}, "final_learning_rate must be set exactly when"),
    ({"final_learning_rate": 1e-4}, "final_learning_rate must be set exactly when"),
    ({"early_stopping_patience": 3}, "needs a validation split"),
    ({"jit_compile": "yes"}, "TrainingConfig.jit_compile must be true or false"),
    ({"strategy": "tpu"}, "TrainingConfig.strategy must be one of"),
])
def test_invalid_training_values_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**changes)


def test_training_config_rejects_unknown_keys_and_non_finite_json():
    with pytest.raises(ValueError, match=r"Unknown training config key\(s\) \['lr'\]"):
        TrainingConfig.from_dict({"lr": 0.1})
    with pytest.raises(ValueError, match="beta must be a non-negative number"):
        ModelConfig.from_json('{"beta": Infinity}')


@pytest.mark.parametrize("changes, message", [
    ({"seed": -7}, None),  # any integer: the field's metadata says minimum=None
    ({"plots": "no"}, "TrainingConfig.plots must be true or false, got 'no'"),
    ({"select_best": None}, "TrainingConfig.select_best must be true or false"),
    ({"iwae_samples": -1}, "TrainingConfig.iwae_samples must be an integer >= 0"),
    ({"tensorboard_image_every": 0}, "TrainingConfig.tensorboard_image_every must be a "
                                     "positive integer"),
    ({"final_learning_rate": 0, "learning_rate_schedule": "cosine"},
     "TrainingConfig.final_learning_rate must be a positive number (finite) or None"),
])
def test_fields_are_checked_by_their_type_and_metadata(changes, message):
    if message is None:
        assert TrainingConfig(**changes).seed == -7
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainingConfig(**changes)
    with pytest.raises(ValueError, match="ModelConfig.posterior_flow must be an integer >= 0"):
        ModelConfig(posterior_flow=-1)


def test_fitted_configs_fit_open_fields_to_the_data_and_keep_given_ones(tmp_path):
    model, training = fitted_configs({"latent_dim": 3}, {"data": "fashion-mnist"})
    assert (model.latent_dim, model.input_shape, model.likelihood) == (3, (28, 28, 1),
                                                                       "bernoulli")
    assert (training.data, training.binarization) == ("fashion_mnist", "dynamic")
    grey = np.random.default_rng(0).uniform(0.1, 0.9, (6, 8, 10, 1)).astype(np.float32)
    np.save(tmp_path / "grey.npy", grey)
    model, training = fitted_configs(None, {"data": str(tmp_path / "grey.npy")})
    assert (model.input_shape, model.likelihood, training.binarization) == (
        (8, 10, 1), "normal", "none")
    model, training = fitted_configs({"likelihood": "continuous_bernoulli"},
                                     {"data": str(tmp_path / "grey.npy"),
                                      "binarization": "dynamic"})
    assert (model.likelihood, training.binarization) == ("continuous_bernoulli", "dynamic")
