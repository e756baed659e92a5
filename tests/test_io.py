"""Save/load: identical outputs for every variant, clear errors for tampered directories,
atomic writes, and checkpoints that restore the optimizer state."""

import json
import shutil

import numpy as np
import pytest

from tfp_vae import ModelConfig, build_model, keras
from tfp_vae.backend import tf
from tfp_vae.io import (
    EpochCheckpoint,
    epoch_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    read_metadata,
    save_checkpoint,
    save_model,
)
from tfp_vae.models import VAE

_SMALL = {"hidden_units": [16]}

VARIANTS = {
    "diag-loss-bernoulli-mlp": ModelConfig(network="mlp", network_options=_SMALL),
    "tril-regularizer-bernoulli-mlp": ModelConfig(
        latent_dim=3, network="mlp", network_options=_SMALL, posterior="tril",
        kl_attachment="regularizer"),
    "diag-add_loss-normal-mlp": ModelConfig(
        latent_dim=3, network="mlp", network_options=_SMALL, kl_attachment="add_loss",
        likelihood="normal"),
    "tril-add_loss-mc-normal-course": ModelConfig(
        network="course", posterior="tril", kl_attachment="add_loss", kl_estimator="mc",
        num_samples=2, likelihood="normal"),
    "diag-regularizer-mc-bernoulli-conv": ModelConfig(
        network="conv", network_options={"filters": [4, 8], "hidden_units": 8},
        kl_attachment="regularizer", kl_estimator="mc_entropy"),
    "autoencoder-course": ModelConfig(kind="autoencoder", network="course"),
}


def _images(n=6, seed=0):
    return tf.constant((np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.4)
                       .astype(np.float32))


def _perturbed(config):
    """A model whose weights differ from a fresh build (so loading must really happen)."""
    model = build_model(config)
    rng = np.random.default_rng(1)
    for variable in model.trainable_variables:
        variable.assign_add(rng.normal(0, 0.05, variable.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_save_load_gives_identical_outputs(name, tmp_path):
    model = _perturbed(VARIANTS[name])
    x = _images()
    directory = save_model(model, tmp_path / "model", metrics={"test_negative_elbo": 1.5},
                           training={"dataset": "mnist"})
    assert sorted(p.name for p in directory.iterdir()) == [
        "config.json", "metadata.json", "weights.h5"]
    loaded = load_model(directory)
    assert type(loaded) is type(model) and loaded.config == model.config
    for before, after in zip(model.trainable_variables, loaded.trainable_variables,
                             strict=True):
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    if isinstance(model, VAE):
        q, q_loaded = model.encode(x), loaded.encode(x)
        np.testing.assert_array_equal(q.mean(), q_loaded.mean())
        np.testing.assert_array_equal(q.covariance(), q_loaded.covariance())
        np.testing.assert_array_equal(model.sample(5, seed=7), loaded.sample(5, seed=7))
        assert not np.array_equal(model.sample(5, seed=7), loaded.sample(5, seed=8))
        if model.config.kl_estimator == "analytic":
            # Monte Carlo KL draws fresh samples; its inputs (q's parameters) are checked above.
            np.testing.assert_allclose(model.compute_losses(x)["kl_loss"].numpy(),
                                       loaded.compute_losses(x)["kl_loss"].numpy(), rtol=1e-5)
    else:
        np.testing.assert_array_equal(model.encode(x), loaded.encode(x))
    np.testing.assert_array_equal(model.reconstruct(x), loaded.reconstruct(x))
    metadata = read_metadata(directory)
    assert metadata["metrics"] == {"test_negative_elbo": 1.5}
    assert metadata["training"] == {"dataset": "mnist"}
    assert metadata["versions"]["tensorflow"] == tf.__version__
    assert metadata["created"].endswith("+00:00")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved") / "model"
    save_model(build_model(VARIANTS["diag-loss-bernoulli-mlp"]), directory)
    return directory


def _copy(saved, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def test_missing_weights_is_a_clear_error(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    (directory / "weights.h5").unlink()
    with pytest.raises(ValueError, match=r"weights\.h5 is missing"):
        load_model(directory)


def test_unknown_config_key_is_a_clear_error(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["__reduce__"] = "os.system"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"Unknown model config key\(s\) \['__reduce__'\]"):
        load_model(directory)


def test_wrong_latent_size_is_a_clear_error(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["latent_dim"] = 5
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit the model.*latent size"):
        load_model(directory)


@pytest.mark.parametrize("file", ["config.json", "metadata.json"])
def test_bad_json_is_a_clear_error(saved, tmp_path, file):
    directory = _copy(saved, tmp_path)
    (directory / file).write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_model(directory)


def test_missing_directory_and_foreign_metadata(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing")
    directory = _copy(saved, tmp_path)
    (directory / "metadata.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(ValueError, match="not tfp_vae model metadata"):
        load_model(directory)


def test_a_failed_save_leaves_the_previous_directory_intact(saved, tmp_path, monkeypatch):
    directory = _copy(saved, tmp_path)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    model = _perturbed(VARIANTS["diag-loss-bernoulli-mlp"])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the weights")

    monkeypatch.setattr(type(model), "save_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, directory)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, tmp_path / "fresh")
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]  # no temporary left behind
    load_model(directory)


def test_save_rejects_non_finite_metrics(tmp_path):
    model = build_model(VARIANTS["diag-loss-bernoulli-mlp"])
    with pytest.raises(ValueError, match="JSON-serialisable finite"):
        save_model(model, tmp_path / "m", metrics={"loss": float("nan")})
    assert not (tmp_path / "m").exists()


def test_checkpoint_restores_weights_and_optimizer_state(tmp_path):
    config = VARIANTS["tril-regularizer-bernoulli-mlp"]
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = _images(64).numpy()
    checkpoint = EpochCheckpoint(tmp_path / "checkpoints")
    model.fit(x, epochs=3, batch_size=32, verbose=0, callbacks=[checkpoint])
    assert [row["epoch"] for row in checkpoint.history] == [1, 2, 3]
    latest = latest_checkpoint(tmp_path / "checkpoints")
    assert latest.name == "epoch-0003"
    # Only the two most recent checkpoints are kept.
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch-*")) == [
        "epoch-0002", "epoch-0003"]
    restored, optimizer, state = load_checkpoint(latest, lambda: keras.optimizers.Adam(1e-3))
    assert state["epoch"] == 3 and len(state["history"]) == 3
    assert int(optimizer.iterations) == 6
    for before, after in zip(model.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(model.optimizer.variables, optimizer.variables, strict=True):
        np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_checkpoint_pointer_only_moves_to_complete_checkpoints(tmp_path, monkeypatch):
    model = build_model(VARIANTS["diag-loss-bernoulli-mlp"])
    save_checkpoint(tmp_path, model, None, 1)
    monkeypatch.setattr(tf.train.Checkpoint, "write",
                        lambda self, prefix: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, None, 2)
    assert latest_checkpoint(tmp_path).name == "epoch-0001"
    assert not (tmp_path / "epoch-0002").exists()
    restored, _, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["epoch"] == 1
    (tmp_path / "latest").write_text("epoch-0009\n")
    with pytest.raises(ValueError, match="missing or incomplete"):
        latest_checkpoint(tmp_path)


def test_checkpoints_are_ordered_and_pruned_by_epoch_past_9999(tmp_path):
    # `epoch-10000` sorts before `epoch-9999` as text: pruning by name would delete the new one.
    model = build_model(VARIANTS["diag-loss-bernoulli-mlp"])
    for epoch in (9998, 9999, 10000):
        save_checkpoint(tmp_path, model, None, epoch)
    (tmp_path / "epoch-notes").mkdir()
    assert list(epoch_checkpoints(tmp_path)) == [9999, 10000]
    assert latest_checkpoint(tmp_path).name == "epoch-10000"
    assert epoch_checkpoints(tmp_path / "missing") == {}


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = build_model(VARIANTS["diag-loss-bernoulli-mlp"])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = _images(64).numpy()

    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                head = self.model.decoder.get_layer("likelihood_params")
                kernel, bias = head.get_weights()
                head.set_weights([kernel * np.nan, bias])

    checkpoint = EpochCheckpoint(tmp_path)
    history = model.fit(x, epochs=4, batch_size=16, verbose=0,
                        callbacks=[Poison(), checkpoint])
    assert checkpoint.non_finite == "the training loss became nan in epoch 2, batch 1"
    assert len(history.history["loss"]) == 2  # stopped in epoch 2, not 4
    assert latest_checkpoint(tmp_path).name == "epoch-0001"
    restored, _, _ = load_checkpoint(latest_checkpoint(tmp_path))
    assert all(np.all(np.isfinite(w)) for w in restored.get_weights())
