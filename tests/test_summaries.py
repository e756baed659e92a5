"""TensorBoard logs of a run, read back with TensorBoard's own event reader."""

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfp_vae.backend import tf
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.data import load_splits
from tfp_vae.evaluation import active_units
from tfp_vae.runs import train_run
from tfp_vae.summaries import VAESummaries

MODEL = ModelConfig(network="mlp", network_options={"hidden_units": [32]}, latent_dim=2)


def _events(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def _scalar(accumulator, tag):
    """(steps, values) of a tf.summary scalar (stored as a tensor event in TF2)."""
    events = accumulator.Tensors(tag)
    return [e.step for e in events], [float(tf.make_ndarray(e.tensor_proto)) for e in events]


def test_a_run_writes_loss_terms_kl_weight_active_units_and_images(tmp_path):
    logs = tmp_path / "logs"
    training = TrainingConfig(data="mnist", train_size=256, test_size=100, batch_size=64,
                              epochs=3, warmup_epochs=2, validation_size=200, plots=False,
                              jit_compile=False, tensorboard_dir=str(logs),
                              tensorboard_image_every=2, select_best=False)
    result = train_run(None, MODEL, training)
    train = _events(logs / "train")
    steps, losses = _scalar(train, "epoch_loss")
    assert steps == [0, 1, 2]
    np.testing.assert_allclose(losses, [row["loss"] for row in result.history], rtol=1e-5)
    _, kl_losses = _scalar(train, "epoch_kl_loss")
    np.testing.assert_allclose(kl_losses, [row["kl_loss"] for row in result.history], rtol=1e-5)
    # Linear warm-up over 2 epochs: 0.5, then 1.
    assert _scalar(train, "epoch_kl_weight") == ([0, 1, 2], [0.5, 1.0, 1.0])
    # Measured on the validation images (never the test set) with the epoch's weights.
    _, units = _scalar(train, "epoch_active_units")
    x_validation = load_splits("mnist", validation_size=200, train_size=256, test_size=100,
                               seed=0).x_validation
    assert units[-1] == active_units(result.model, x_validation)["active_units"]
    validation = _events(logs / "validation")
    _, validation_losses = _scalar(validation, "epoch_loss")
    np.testing.assert_allclose(validation_losses,
                               [row["validation_loss"] for row in result.history], rtol=1e-5)
    images = _events(logs / "images")
    # Every 2nd epoch (step 1) and the last (step 2).
    assert [e.step for e in images.Tensors("reconstructions")] == [1, 2]
    assert [e.step for e in images.Tensors("prior_samples")] == [1, 2]


def test_image_every_must_be_positive():
    with pytest.raises(ValueError, match="image_every must be a positive number of epochs"):
        VAESummaries("logs", np.zeros((2, 28, 28, 1), np.float32), image_every=0)
    with pytest.raises(ValueError, match="tensorboard_image_every"):
        TrainingConfig(tensorboard_image_every=0)
