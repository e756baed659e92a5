"""The `tfp-vae` command end to end on small real-data subsets: train, evaluate, sample,
reconstruct, plot; kill-and-resume; NaN stop; bad arguments."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tfp_vae import cli
from tfp_vae.backend import keras
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.io import NonFiniteLossError
from tfp_vae.plots import read_history
from tfp_vae.runs import train_run

_QUICK = ["--network", "tfp-course", "--train-size", "512", "--test-size", "200",
          "--batch-size", "64", "--verbose", "0"]


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _png(path):
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= 100
    assert image[..., :3].std() > 0.05
    return image


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["train", *_QUICK, "--epochs", "1", "--validation-size", "300", "--out",
                     str(out)]) == 0
    return out


def test_train_writes_model_metrics_history_and_plots(run_dir):
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "COMPLETE", "checkpoints", "data.json", "history.csv", "metrics.json", "model", "plots",
        "run.json"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_num_images"] == 200
    assert metrics["train_num_images"] == 512
    for prefix in ("test_", "train_"):
        assert 150 < metrics[prefix + "negative_elbo"] < 600
        assert metrics[prefix + "negative_elbo"] == pytest.approx(
            metrics[prefix + "reconstruction"] + metrics[prefix + "kl"], abs=1e-3)
    assert 0 <= metrics["test_active_units"] <= metrics["latent_dim"] == 2
    assert metrics["train_seconds"] > 0
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,reconstruction_loss,kl_loss,validation_loss")
    assert metrics["validation_num_images"] == 300
    assert len(history) == 2
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == [
        "label_clusters.png", "latent_grid.png", "reconstructions.png", "samples.png",
        "training_curves.png"]
    for png in (run_dir / "plots").iterdir():
        _png(png)
    metadata = json.loads((run_dir / "model" / "metadata.json").read_text())
    assert metadata["metrics"]["test_negative_elbo"] == metrics["test_negative_elbo"]
    assert metadata["training"]["data"] == "fashion_mnist"


def test_evaluate_prints_and_writes_json(run_dir, capsys, tmp_path):
    output = tmp_path / "evaluation.json"
    code, out, _ = _run(["evaluate", run_dir, "--samples", "20", "--test-size", "100",
                         "--output", output], capsys)
    assert code == 0
    report = json.loads(out)
    assert report == json.loads(output.read_text())
    assert report["num_images"] == 100 and report["iwae_num_samples"] == 20
    # log p(x) >= L_20 >= ELBO (in expectation; the gap is several standard errors here).
    assert report["iwae_log_likelihood"] > -report["negative_elbo"]
    assert report["negative_elbo"] == pytest.approx(report["reconstruction"] + report["kl"],
                                                    abs=1e-3)
    # The same model directory evaluated through its model/ folder gives the same numbers.
    code, out, _ = _run(["evaluate", run_dir / "model", "--samples", "0", "--test-size",
                         "100"], capsys)
    assert code == 0
    assert json.loads(out)["negative_elbo"] == report["negative_elbo"]


def test_sample_reconstruct_and_plot(run_dir, capsys, tmp_path):
    code, out, _ = _run(["sample", run_dir, "--num", "20", "--columns", "5", "--output",
                         tmp_path / "s.png"], capsys)
    assert code == 0 and "Wrote 20 prior samples" in out
    _png(tmp_path / "s.png")
    code, out, _ = _run(["reconstruct", run_dir, "--num", "6", "--offset", "10", "--output",
                         tmp_path / "r.png"], capsys)
    assert code == 0 and "from index 10" in out
    image = _png(tmp_path / "r.png")
    assert image.shape[1] > 2 * image.shape[0]
    code, out, _ = _run(["plot", run_dir, "--test-size", "300", "--output-dir",
                         tmp_path / "plots"], capsys)
    assert code == 0 and "Wrote 5 plots" in out
    assert len(list((tmp_path / "plots").glob("*.png"))) == 5


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "expected a positive integer"),
    (["train", "--beta", "-1"], "non-negative number"),
    (["train", "--posterior", "full"], "invalid choice"),
    (["train", "--warmup-epochs", "-2"], "integer >= 0"),
    (["train", "--learning-rate", "nan"], "non-negative number"),
    (["evaluate"], "required: DIR"),
    (["evaluate", "x", "--samples", "-1"], "integer >= 0"),
    (["frobnicate"], "invalid choice"),
    ([], "required: COMMAND"),
])
def test_bad_arguments_exit_2_with_one_sentence(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_every_subcommand_has_help_with_examples(capsys):
    for command in ("train", "evaluate", "sample", "reconstruct", "plot"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"examples:\n  tfp-vae {command}" in capsys.readouterr().out


def test_runtime_errors_are_one_sentence(run_dir, capsys, tmp_path):
    cases = [
        (["evaluate", tmp_path / "missing"], 2, "does not exist"),
        (["evaluate", tmp_path], 2, "holds no saved model"),
        (["evaluate", run_dir, "--samples", "6000"], 2, "at most 5000"),
        (["train", *_QUICK, "--out", run_dir], 2, "pass --resume to continue it or "
                                                  "--overwrite"),
        (["train", *_QUICK, "--out", tmp_path / "new", "--resume"], 2, "Nothing to resume"),
        (["train", *_QUICK, "--out", tmp_path / "new", "--init-from", tmp_path / "none"], 2,
         "init_from="),
    ]
    for argv, code, message in cases:
        result, _, err = _run(argv, capsys)
        assert result == code, err
        assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # a refused train leaves no .new.lock behind


def test_kill_during_training_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tfp_vae", "train", *_QUICK, "--train-size", "256",
         "--epochs", "200", "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "latest").is_file():
            assert process.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    from tfp_vae.io import latest_checkpoint, load_checkpoint

    latest = latest_checkpoint(out / "checkpoints")
    _, optimizer, state = load_checkpoint(latest, lambda: keras.optimizers.Adam(1e-3))
    done = state["epoch"]
    assert done >= 1 and int(optimizer.iterations) == 4 * done  # 256 images / batch 64
    assert not (out / "model").exists() and not (out / "metrics.json").exists()
    code, stdout, err = _run(["train", "--out", out, "--resume", "--epochs", done + 1,
                              "--verbose", "0"], capsys)
    assert code == 0, err
    assert f"Resuming {out} after epoch {done} (optimizer step {4 * done})" in stdout
    history = read_history(out / "history.csv")
    assert history["epoch"] == list(range(1, done + 2))
    # Epochs before the kill keep their recorded losses.
    assert history["loss"][0] == pytest.approx(state["history"][0]["loss"])
    _, optimizer, state = load_checkpoint(latest_checkpoint(out / "checkpoints"),
                                          lambda: keras.optimizers.Adam(1e-3))
    assert state["epoch"] == done + 1 and int(optimizer.iterations) == 4 * (done + 1)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == done + 1


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for variable in self.model.decoder.trainable_variables:
                    variable.assign(variable * np.nan)

    out = tmp_path / "run"
    model = ModelConfig(network="tfp_course")
    training = TrainingConfig(train_size=128, test_size=200, batch_size=64, epochs=3)
    with pytest.raises(NonFiniteLossError) as error:
        train_run(out, model, training, callbacks=[Poison()])
    assert cli.exit_status(error.value) == 3
    message = str(error.value)
    assert "Training stopped because the training loss became nan in epoch 2, batch 1" in message
    assert "(epoch-0001) is kept" in message and len(message.splitlines()) == 1
    assert "--likelihood bernoulli" not in message
    assert (out / "checkpoints" / "latest").read_text().strip() == "epoch-0001"
    assert not (out / "model").exists()
    assert Path(out / "checkpoints" / "epoch-0001" / "state.json").is_file()


def test_train_under_mirrored_strategy_with_mixed_bfloat16(tmp_path, capsys):
    out = tmp_path / "mirrored"
    code, _, err = _run(["train", *_QUICK, "--epochs", "1", "--out", out, "--strategy",
                         "mirrored", "--dtype-policy", "mixed_bfloat16"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert 150 < metrics["test_negative_elbo"] < 600
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["dtype_policy"] == "mixed_bfloat16"
    assert json.loads((out / "run.json").read_text())["training"]["strategy"] == "mirrored"


def test_help_prints_no_tensorflow_log_line():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-m", "tfp_vae", "train", "--help"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "--tensorboard DIR" in quiet.stdout
    assert quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-m", "tfp_vae", "--verbose", "--help"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert loud.returncode == 0 and loud.stderr.strip()  # --verbose brings the logs back


def test_train_with_a_learnable_prior_a_flow_posterior_and_the_iwae_objective(tmp_path, capsys):
    out = tmp_path / "beyond"
    code, _, err = _run(["train", *_QUICK, "--dataset", "mnist", "--epochs", "1", "--out", out,
                         "--prior", "vamp", "--kl-estimator", "mc", "--posterior-flow", "1",
                         "--objective", "iwae", "--kl-samples", "3", "--no-plots"], capsys)
    assert code == 0, err
    config = json.loads((out / "model" / "config.json").read_text())
    assert (config["prior"], config["posterior_flow"], config["objective"],
            config["num_samples"]) == ("vamp", 1, "iwae", 3)
    history = read_history(out / "history.csv")
    assert history["loss"] == history["negative_iwae_bound"]
    assert history["negative_iwae_bound"][0] < history["negative_elbo"][0]
    assert 150 < json.loads((out / "metrics.json").read_text())["test_negative_elbo"] < 600
    code, _, err = _run(["train", "--prior", "mixture", "--out", tmp_path / "refused"], capsys)
    assert code == 2
    assert ("ModelConfig.kl_estimator='analytic' has no closed form against the 'mixture' "
            "prior; choose a Monte Carlo estimator") in err
