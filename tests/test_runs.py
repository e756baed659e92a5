"""`train_run`: the one training run (in memory and in a run directory), resume, overwrite."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.io import load_model, read_metadata
from tfp_vae.rundir import RunBusyError, RunDir
from tfp_vae.runs import _reconcile_best, _RunCallback, best_validation_epoch, train_run

MODEL = ModelConfig(network="mlp", network_options={"hidden_units": [32]}, latent_dim=2)
TRAINING = TrainingConfig(data="mnist", train_size=512, test_size=200, batch_size=64,
                          epochs=2, jit_compile=False, plots=False)


def test_in_memory_run_trains_and_reports_the_elbo():
    result = train_run(None, MODEL, TRAINING)
    assert result.run_dir is None and result.plots == []
    losses = [row["loss"] for row in result.history]
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert losses[1] < losses[0] - 10  # a real fall on real data, not noise
    metrics = result.metrics
    assert metrics["test_num_images"] == 200 and metrics["train_num_images"] == 512
    assert metrics["test_negative_elbo"] == pytest.approx(
        metrics["test_reconstruction"] + metrics["test_kl"], abs=2e-3)
    # An untrained Bernoulli decoder gives about 784 ln 2 = 543 nats; two epochs beat it.
    assert 150 < metrics["test_negative_elbo"] < 543
    assert "validation_negative_elbo" not in metrics


def test_run_directory_layout_configs_and_complete_marker(tmp_path):
    out = tmp_path / "run"
    result = train_run(out, MODEL, TRAINING.replace(epochs=1, plots=True))
    run = RunDir(out)
    assert run.is_complete and result.run_dir.path == out
    # The run records where the data came from ($TFP_VAE_DATA_DIR here), as an absolute path.
    folder = str(Path(os.environ["TFP_VAE_DATA_DIR"]).resolve())
    assert run.read_configs() == (MODEL, TRAINING.replace(epochs=1, plots=True, data_dir=folder))
    assert json.loads(run.run_file.read_text())["format"] == 2
    assert run.metrics() == result.metrics
    assert run.history()[0]["loss"] == pytest.approx(result.history[0]["loss"])
    assert sorted(p.name for p in run.plots_dir.iterdir()) == [
        "label_clusters.png", "latent_grid.png", "reconstructions.png", "samples.png",
        "training_curves.png"]
    again = run.load_model()
    for loaded, trained in zip(again.trainable_weights, result.model.trainable_weights,
                               strict=True):
        np.testing.assert_array_equal(loaded.numpy(), trained.numpy())
    assert run.lock_file.parent == tmp_path and not any(
        p.name.startswith(".run.replaced") for p in tmp_path.iterdir())


def test_same_initial_weights_and_batches_give_identical_attachments():
    """The loss function, add-loss layer and regularizer train the same model exactly."""
    base = train_run(None, MODEL, TRAINING.replace(epochs=1))
    start = base.model.get_weights()
    finals = {}
    for attachment in ("loss", "add_loss", "regularizer"):
        result = train_run(None, MODEL.replace(kl_attachment=attachment),
                           TRAINING.replace(epochs=1, seed=1), initial_weights=start)
        finals[attachment] = result.metrics["test_negative_elbo"]
        assert result.history[0]["loss"] == pytest.approx(
            finals.setdefault("first_loss", result.history[0]["loss"]), rel=1e-5)
    assert finals["add_loss"] == pytest.approx(finals["loss"], abs=1e-3)
    assert finals["regularizer"] == pytest.approx(finals["loss"], abs=1e-3)


def test_validation_split_selects_the_best_epoch():
    training = TRAINING.replace(epochs=3, validation_size=500, learning_rate=3e-3)
    result = train_run(None, MODEL, training)
    validation = [row["validation_loss"] for row in result.history]
    assert result.metrics["selected_epoch"] == int(np.argmin(validation)) + 1
    assert result.metrics["validation_num_images"] == 500
    assert any("Selected the weights of epoch" in m for m in result.messages)


def test_early_stopping_stops_after_patience():
    # A learning rate this small cannot improve the validation loss by chance for long, and a
    # patience of 1 stops at the first epoch without improvement.
    training = TRAINING.replace(epochs=6, validation_size=500, early_stopping_patience=1,
                                learning_rate=1e-9)
    result = train_run(None, MODEL, training)
    best = int(np.argmin([row["validation_loss"] for row in result.history])) + 1
    assert len(result.history) == best + 1 < 6
    assert any("Stopped early" in m for m in result.messages)


def test_resume_trains_on_and_refuses_contradicting_settings(tmp_path):
    out = tmp_path / "run"
    train_run(out, MODEL, TRAINING.replace(epochs=1))
    messages = []
    result = train_run(out, resume=True, changes={"epochs": 2, "test_size": 100},
                       log=messages.append)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.metrics["test_num_images"] == 100
    assert RunDir(out).training_config.epochs == 2
    assert any("Resuming" in m and "after epoch 1" in m for m in messages)
    assert any("Applied the changed setting(s) epochs, test_size" in m for m in messages)
    with pytest.raises(ValueError, match=r"--latent-dim, --learning-rate cannot change when "
                                         r"resuming"):
        train_run(out, resume=True, changes={"latent_dim": 3, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="--data cannot change"):
        train_run(out, resume=True, training_config=TRAINING.replace(data="fashion_mnist"))
    assert RunDir(out).is_complete  # a refused resume leaves the finished run as it was


def test_a_run_resumes_from_elsewhere_without_the_data_variable(tmp_path, monkeypatch):
    # Trained with $TFP_VAE_DATA_DIR set; resumed from another folder without it (offline:
    # a Keras download attempt fails the test).
    train_run(tmp_path / "run", MODEL, TRAINING.replace(epochs=1, test_size=50))
    monkeypatch.delenv("TFP_VAE_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    result = train_run("run", resume=True, changes={"epochs": 2})
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_overwrite_validates_first_and_keeps_the_old_run_on_failure(tmp_path):
    out = tmp_path / "run"
    first = train_run(out, MODEL, TRAINING.replace(epochs=1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_run(out, MODEL, TRAINING.replace(data_dir=str(tmp_path / "typo")), overwrite=True)
    assert RunDir(out).is_complete and RunDir(out).metrics() == first.metrics
    with pytest.raises(ValueError, match="already holds a training run; pass --resume"):
        train_run(out, MODEL, TRAINING)
    second = train_run(out, MODEL, TRAINING.replace(seed=5, epochs=1), overwrite=True)
    assert RunDir(out).training_config.seed == 5
    assert RunDir(out).metrics() == second.metrics != first.metrics
    assert [p.name for p in tmp_path.iterdir() if "replaced" in p.name] == []


def test_a_run_directory_has_one_owner(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock(), pytest.raises(RunBusyError, match=r"Another process \(pid \d+\) is using"):
        train_run(run, MODEL, TRAINING)
    assert not run.path.exists()


def test_resume_falls_back_past_a_damaged_checkpoint_and_cleans_stale_files(tmp_path):
    out = tmp_path / "run"
    train_run(out, MODEL, TRAINING.replace(epochs=2))
    run = RunDir(out)
    (run.checkpoints_dir / "latest").unlink()
    for data_file in (run.checkpoints_dir / "epoch-0002").glob("ckpt.data-*"):
        data_file.write_bytes(data_file.read_bytes()[:100])  # truncated by a full disk
    stale = run.checkpoints_dir / ".epoch-0003.tmp-abc"
    stale.mkdir()
    messages = []
    result = train_run(out, resume=True, changes={"epochs": 3}, log=messages.append)
    assert not stale.exists()
    assert any("Removed 1 unfinished temporary" in m for m in messages)
    assert any("Resumed from epoch-0001, the newest intact checkpoint (`latest` was missing; "
               "skipped epoch-0002" in m for m in messages)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


def test_an_interrupted_overwrite_is_undone_by_the_next_start(tmp_path):
    out = tmp_path / "run"
    first = train_run(out, MODEL, TRAINING.replace(epochs=1))
    run = RunDir(out)
    aside = run.set_aside()  # what a killed --overwrite leaves: the old run set aside...
    out.mkdir()
    (out / "run.json").write_text("{}")  # ...and a new run without a checkpoint
    messages = []
    result = train_run(out, resume=True, log=messages.append)
    assert not aside.exists() and any("Restored the earlier run" in m for m in messages)
    assert result.metrics["test_negative_elbo"] == pytest.approx(
        first.metrics["test_negative_elbo"], abs=1e-3)


def test_a_version_1_run_json_still_resumes(tmp_path):
    out = tmp_path / "run"
    train_run(out, ModelConfig(network="tfp_course", latent_dim=2),
              TrainingConfig(train_size=256, test_size=100, batch_size=64, epochs=1,
                             plots=False))
    (out / "run.json").write_text(json.dumps({
        "dataset": "fashion-mnist", "test_size": 100, "model": "vae", "latent_dim": 2,
        "network": "course", "posterior": "diag", "likelihood": "bernoulli",
        "kl_attachment": "loss-fn", "kl_estimator": "analytic", "kl_samples": 1, "beta": 1.0,
        "warmup_epochs": 0, "batch_size": 64, "learning_rate": 0.001, "seed": 0,
        "binarization": "dynamic", "train_size": 256, "dtype_policy": "float32"}))
    result = train_run(out, resume=True, changes={"epochs": 2})
    assert len(result.history) == 2
    assert json.loads((out / "run.json").read_text())["format"] == 2


def test_a_tril_posterior_trains_on_a_network_that_prefers_xla():
    # The mlp network compiles with XLA by default, which fails on FillScaleTriL.
    result = train_run(None, MODEL.replace(posterior="tril"), TRAINING.replace(
        epochs=1, jit_compile=None, train_size=256))
    assert np.isfinite(result.metrics["test_negative_elbo"])


def test_a_failed_resume_leaves_run_json_byte_identical(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist").symlink_to(Path(os.environ["TFP_VAE_DATA_DIR"]).resolve() / "mnist")
    out = tmp_path / "run"
    train_run(out, MODEL, TRAINING.replace(epochs=1, data_dir=str(data)))
    before = RunDir(out).run_file.read_bytes()
    messages = []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_run(out, resume=True, changes={"epochs": 3, "data_dir": str(tmp_path / "typo")},
                  log=messages.append)
    # The files in the run's own data folder are gone (moved, or never copied here).
    (data / "mnist").unlink()
    (data / "mnist").mkdir()
    with pytest.raises(FileNotFoundError, match="Missing .*train-images"):
        train_run(out, resume=True, changes={"epochs": 3}, log=messages.append)
    assert RunDir(out).run_file.read_bytes() == before
    assert RunDir(out).is_complete and RunDir(out).training_config.epochs == 1
    assert not any("Applied" in m for m in messages)  # nothing was applied


def test_a_run_that_fails_its_checks_leaves_nothing_behind(tmp_path):
    cases = [
        (dict(training_config=TRAINING.replace(data_dir=str(tmp_path / "typo"))),
         FileNotFoundError, "does not exist"),
        (dict(training_config=TRAINING.replace(test_size=1)), ValueError, "too small"),
        (dict(resume=True), ValueError, "Nothing to resume"),
    ]
    for options, error, message in cases:
        options = {"model_config": MODEL, "training_config": TRAINING, **options}
        with pytest.raises(error, match=message):
            train_run(tmp_path / "new" / "run", **options)
        assert list(tmp_path.iterdir()) == []  # no .run.lock, no new/


def test_init_from_starts_at_a_saved_models_weights_and_refuses_a_misfit(tmp_path):
    base = train_run(tmp_path / "base", MODEL, TRAINING.replace(learning_rate=3e-3))
    # A different objective and sample count fine-tune the same architecture; at a learning
    # rate of 1e-12 one epoch of Adam moves no weight by more than ~1e-11 from the start.
    tuned = train_run(None, MODEL.replace(objective="iwae", num_samples=5),
                      TRAINING.replace(epochs=1, learning_rate=1e-12,
                                       init_from=str(tmp_path / "base")))
    for layer, tuned_layer in zip(base.model.layers, tuned.model.layers, strict=True):
        for start, end in zip(layer.get_weights(), tuned_layer.get_weights(), strict=True):
            np.testing.assert_allclose(end, start, rtol=0, atol=1e-9)
    fresh = train_run(None, MODEL, TRAINING.replace(epochs=1, learning_rate=1e-12))
    # Same weights, same seeded evaluation: the same test ELBO, far from an untrained model's.
    assert tuned.metrics["test_negative_elbo"] == pytest.approx(
        base.metrics["test_negative_elbo"], abs=1e-3)
    assert tuned.metrics["test_negative_elbo"] < fresh.metrics["test_negative_elbo"] - 100
    # The model folder works too; a misfit or a missing model fails before anything is written.
    cases = [(str(tmp_path / "base" / "model"), MODEL.replace(latent_dim=3),
              "do not match the shapes"),
             (str(tmp_path / "nothing"), MODEL, "does not exist"),
             (str(tmp_path), MODEL, "is not a saved model")]
    for source, model, message in cases:
        with pytest.raises(ValueError, match=message):
            train_run(tmp_path / "new", model, TRAINING.replace(init_from=source))
        assert not (tmp_path / "new").exists() and not (tmp_path / ".new.lock").exists()


def test_warm_up_epochs_never_win_model_selection():
    # During a KL warm-up the validation loss is β-weighted, lower than the negative ELBO it
    # becomes; with a learning rate this small it rises with β, so a selection that let warm-up
    # epochs compete would pick epoch 1.
    training = TRAINING.replace(epochs=4, validation_size=500, warmup_epochs=3,
                                learning_rate=1e-9)
    result = train_run(None, MODEL, training)
    validation = [row["validation_loss"] for row in result.history]
    assert [row["kl_weight"] for row in result.history] == pytest.approx([1 / 3, 2 / 3, 1, 1])
    assert validation[0] < min(validation[2:])
    assert result.metrics["selected_epoch"] == int(np.argmin(validation[2:])) + 3


def test_early_stopping_patience_counts_from_the_end_of_the_warm_up():
    training = TRAINING.replace(epochs=6, validation_size=500, warmup_epochs=3,
                                early_stopping_patience=1, learning_rate=1e-9)
    result = train_run(None, MODEL, training)
    validation = [row["validation_loss"] for row in result.history]
    best = int(np.argmin(validation[2:])) + 3
    assert result.metrics["selected_epoch"] == best
    assert len(result.history) == min(best + 1, 6) >= 4


def test_a_resumed_run_ignores_warm_up_epochs_in_its_history():
    history = [{"epoch": 1, "validation_loss": 80.0}, {"epoch": 2, "validation_loss": 95.0},
               {"epoch": 3, "validation_loss": 93.0}, {"epoch": 4, "loss": 90.0}]
    progress = _RunCallback(None, history, TRAINING, lambda: None, warmup_epochs=2)
    assert (progress.best_epoch, progress.best_loss) == (3, 93.0)
    assert _RunCallback(None, history, TRAINING, lambda: None).best_epoch == 1
    assert best_validation_epoch(history, warmup_epochs=3) == (3, 93.0)
    assert best_validation_epoch(history, warmup_epochs=4) == (0, math.inf)


def _forge_best_epoch(run, epoch):
    metadata_file = run.checkpoints_dir / "best" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["metrics"]["epoch"] = epoch
    metadata_file.write_text(json.dumps(metadata))


def test_a_resume_repairs_or_restarts_a_best_checkpoint_that_is_not_the_selected_epoch(tmp_path):
    training = TRAINING.replace(validation_size=500)
    result = train_run(tmp_path / "run", MODEL, training)
    run = RunDir(tmp_path / "run")
    # Killed after epoch 2's checkpoint, before its weights were copied as the best: the
    # restored weights are epoch 2's, so they become the best checkpoint.
    _forge_best_epoch(run, 1)
    history = [{"epoch": 1, "validation_loss": 60.0}, {"epoch": 2, "validation_loss": 50.0}]
    progress = _RunCallback(run, history, training, lambda: None)
    assert _reconcile_best(run, progress, result.model, 2, training) is None
    assert read_metadata(run.checkpoints_dir / "best")["metrics"]["epoch"] == 2
    for kept, trained in zip(load_model(run.checkpoints_dir / "best").get_weights(),
                             result.model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, trained)
    # A run whose best checkpoint holds another epoch than the one its history selects (a
    # warm-up epoch, chosen by an older tfp_vae): those weights are gone, so selection
    # starts again after the resume, and says so.
    progress = _RunCallback(run, [{**history[0], "validation_loss": 40.0}, history[1]],
                            training, lambda: None)
    message = _reconcile_best(run, progress, result.model, 2, training)
    assert message == ("The weights of epoch 1, the best validation loss before this resume, "
                       "were not kept (the best checkpoint held epoch 2); model selection "
                       "starts again with epoch 3.")
    assert (progress.best_epoch, progress.first_candidate) == (0, 3)
    assert not (run.checkpoints_dir / "best").exists()
