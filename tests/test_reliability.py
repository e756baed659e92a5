"""Reliability (issue 11): one table of bad inputs and faults, against the CLI and the Python API.

Every row sets something up, runs one `tfp-vae` command (`tfp_vae.cli.main`) or one library
call, and asserts:

- the exit status (CLI) or the exception type (API);
- the message: one line on stderr (CLI) or a one-line exception message, holding a distinctive
  part of the sentence (a success row finds its message on stdout instead);
- that no earlier result was lost: the finished run a row works on (a copy of one module-wide
  run) keeps its `COMPLETE` marker, `metrics.json`, `history.csv` and `run.json` byte for byte,
  unless the row is meant to finish or extend it (then its own check says what must hold), and
  a model a refused `fit` was given keeps its weights.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfp_vae import cli, runs
from tfp_vae.backend import tf
from tfp_vae.compare_kl import main as compare_kl_main
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.data import make_dataset
from tfp_vae.evaluation import active_units, evaluate_elbo, iwae_log_likelihood
from tfp_vae.io import NonFiniteLossError, save_model
from tfp_vae.models import build_model
from tfp_vae.rundir import RunBusyError, RunDir
from tfp_vae.runs import train_run

QUICK = ["--network", "tfp-course", "--train-size", "256", "--test-size", "100",
         "--batch-size", "64", "--verbose", "0", "--no-plots"]
SMALL_MLP = ModelConfig(network="mlp", network_options={"hidden_units": [16]}, latent_dim=2)
TINY_TRAINING = TrainingConfig(data="mnist", train_size=256, test_size=100, batch_size=64,
                               epochs=1, plots=False)
KEPT_FILES = ("metrics.json", "history.csv", "run.json")

_rng = np.random.default_rng(0)
GREY = _rng.random((64, 28, 28, 1), dtype=np.float32)
BINARY = (GREY < 0.3).astype(np.float32)
NAN = BINARY.copy()
NAN[3, 10, 10, 0] = np.nan
BYTES = np.floor(GREY * 255)  # 0-255 pixel values, not divided by 255
FLAT = BINARY[..., 0]  # [n, 28, 28]: no channel axis
LARGE = np.zeros((64, 32, 32, 1), np.float32)  # another image size


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished 2-epoch run (trained under umask 027) that rows copy instead of retraining."""
    out = tmp_path_factory.mktemp("reliability") / "finished"
    old = os.umask(0o027)
    try:
        assert cli.main(["train", *QUICK, "--epochs", "2", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    return out


@pytest.fixture(scope="module")
def small_vae():
    model = build_model(SMALL_MLP)
    model.compile(optimizer="adam")
    return model


@dataclass
class Ctx:
    """What a row's functions get: a temporary folder, a lazily copied finished run, a model."""

    tmp: Path
    finished: Path
    vae: Any
    capsys: pytest.CaptureFixture
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    _run: Path | None = None

    @property
    def run(self) -> Path:
        """A fresh copy of the finished run (made on first use)."""
        if self._run is None:
            self._run = self.tmp / "run"
            shutil.copytree(self.finished, self._run)
        return self._run

    @property
    def has_run(self) -> bool:
        return self._run is not None

    @property
    def new(self) -> str:
        """An --out for a new run that does not exist yet."""
        return str(self.tmp / "new")


@dataclass(frozen=True)
class Row:
    """One bad input or fault.

    `act` returns the CLI arguments (or the status of a `main` it called) when `expect` is an
    exit status, and makes the API call when `expect` is an exception type.
    `check(ctx, stdout)` adds the row's own assertions.
    """

    id: str
    act: Callable[[Ctx], Any]
    expect: int | type[BaseException]
    message: str
    setup: Callable[[Ctx], None] | None = None
    check: Callable[[Ctx, str], None] | None = None
    keeps_run: bool = True


def _snapshot(run: Path) -> dict[str, bytes | bool]:
    kept: dict[str, bytes | bool] = {name: (run / name).read_bytes() for name in KEPT_FILES}
    kept["COMPLETE"] = (run / "COMPLETE").is_file()
    return kept


def _cli(ctx: Ctx, argv) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse errors end the process, as they would for a user
        code = exit_.code
    out, err = ctx.capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------- setups


def _truncate_checkpoint(epoch: int) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        for data_file in (ctx.run / "checkpoints" / f"epoch-{epoch:04d}").glob("ckpt.data-*"):
            data_file.write_bytes(data_file.read_bytes()[:100])  # a full disk or a kill
    return setup


def _truncate_all(ctx: Ctx) -> None:
    _truncate_checkpoint(1)(ctx)
    _truncate_checkpoint(2)(ctx)


def _write(relative: str, text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.run / relative).write_text(text)
    return setup


def _edit_run_json(**training: Any) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        run = RunDir(ctx.run)
        model, saved = run.read_configs()
        run.write_configs(model, saved.replace(**training))
    return setup


def _remove_complete(ctx: Ctx) -> None:
    (ctx.run / "COMPLETE").unlink()


def _hold_lock(ctx: Ctx) -> None:
    """A real second process that owns the run directory until it is killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom tfp_vae.rundir import RunDir\n"
         "with RunDir(sys.argv[1]).lock():\n    print('locked', flush=True)\n"
         "    sys.stdin.read()\n", str(ctx.run)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})

    def stop() -> None:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
    ctx.cleanups.append(stop)
    assert child.stdout.readline().strip() == "locked"
    ctx.state["child"] = child


def _hold_lock_here(ctx: Ctx) -> None:
    """The lock held through another open file of this process (flock locks per open file)."""
    lock = RunDir(ctx.run).lock()
    lock.__enter__()
    ctx.cleanups.append(lambda: lock.__exit__(None, None, None))


def _idx_dir(bad_file: str, content: bytes) -> Callable[[Ctx], None]:
    """A data folder whose Fashion-MNIST files are the real ones except one damaged file."""
    def setup(ctx: Ctx) -> None:
        source = Path(os.environ["TFP_VAE_DATA_DIR"]).resolve()
        real = next(folder for folder in (source / "fashion-mnist", source / "fashion_mnist",
                                          source) if (folder / bad_file).is_file())
        folder = ctx.tmp / "data" / "fashion-mnist"
        folder.mkdir(parents=True)
        for path in real.glob("*-ubyte.gz"):
            (folder / path.name).symlink_to(path)
        (folder / bad_file).unlink()
        (folder / bad_file).write_bytes(content)
    return setup


def _npy(name: str, images: np.ndarray) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        np.save(ctx.tmp / name, images)
    return setup


def _autoencoder_dir(ctx: Ctx) -> None:
    model = build_model(ModelConfig(kind="autoencoder", network="tfp_course", latent_dim=2))
    save_model(model, ctx.tmp / "autoencoder")


def _failing_final_save(ctx: Ctx) -> None:
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")
    patch = pytest.MonkeyPatch()
    patch.setattr(runs, "save_model", no_space)
    ctx.state["unpatch"] = patch.undo
    ctx.cleanups.append(patch.undo)


def _weights_before(ctx: Ctx) -> None:
    ctx.state["weights"] = [w.copy() for w in ctx.vae.get_weights()]


# ------------------------------------------------------------------------------- checks


def _not_created(ctx: Ctx, out: str) -> None:
    assert not Path(ctx.new).exists(), "refused before training, so nothing may be created"


def _weights_kept(ctx: Ctx, out: str) -> None:
    for before, after in zip(ctx.state["weights"], ctx.vae.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def _lock_released_by_a_kill(ctx: Ctx, out: str) -> None:
    child = ctx.state["child"]
    assert f"(pid {child.pid})" in ctx.state["message"]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    with RunDir(ctx.run).lock():  # the kernel released the dead owner's lock
        pass


def _applied_and_trained_on(ctx: Ctx, out: str) -> None:
    run = RunDir(ctx.run)
    assert run.is_complete and run.training_config.epochs == 3
    metrics = run.metrics()
    assert metrics["epochs"] == 3 and metrics["test_num_images"] == 50
    assert [row["epoch"] for row in run.history()] == [1, 2, 3]


def _finished_again_unchanged(ctx: Ctx, out: str) -> None:
    """Resuming with nothing left to train re-derives the same final metrics."""
    assert RunDir(ctx.run).is_complete
    assert (ctx.run / "metrics.json").read_bytes() == (ctx.finished / "metrics.json").read_bytes()


def _retrained_epoch_2(ctx: Ctx, out: str) -> None:
    run = RunDir(ctx.run)
    assert run.is_complete and [row["epoch"] for row in run.history()] == [1, 2]
    assert (ctx.run / "checkpoints" / "latest").read_text().strip() == "epoch-0002"


def _readers_refuse_then_resume_finishes(ctx: Ctx, out: str) -> None:
    run = RunDir(ctx.run)
    assert not run.is_complete
    for read in (run.metrics, run.load_model):
        with pytest.raises(ValueError, match="unfinished run") as info:
            read()
        assert len(str(info.value).splitlines()) == 1
    code, _, err = _cli(ctx, ["evaluate", ctx.run, "--samples", "0"])
    assert code == 2 and "unfinished run" in err and len(err.splitlines()) == 1
    ctx.state["unpatch"]()
    code, _, err = _cli(ctx, ["train", "--resume", "--out", ctx.run, "--verbose", "0"])
    assert code == 0, err
    _finished_again_unchanged(ctx, out)


def _report_printed(ctx: Ctx, out: str) -> None:
    assert '"negative_elbo"' in out and '"active_units"' in out


def _old_run_kept_and_hint_fits(ctx: Ctx, out: str) -> None:
    assert "bernoulli likelihood" not in ctx.state["message"]  # it is already Bernoulli
    assert not list(ctx.tmp.glob(".run.replaced-*"))


# ------------------------------------------------------------------------------- the table


def _train(*argv) -> Callable[[Ctx], list]:
    """`tfp-vae train QUICK... ARGV --out NEW` (`{run}` in ARGV is the copied finished run)."""
    def act(ctx: Ctx) -> list:
        args = [ctx.run if a == "{run}" else a for a in argv]
        return ["train", *QUICK, *args] + ([] if "--out" in args else ["--out", ctx.new])
    return act


def _resume(*argv) -> Callable[[Ctx], list]:
    return lambda ctx: ["train", "--resume", "--out", ctx.run, "--verbose", "0", *argv]


def _command(*argv) -> Callable[[Ctx], list]:
    """A read command on the copied finished run: `{run}` and `{tmp}` are filled in."""
    return lambda ctx: [str(a).format(run=ctx.run, tmp=ctx.tmp) for a in argv]


def _conflict(flag: str, *values: str, named: str | None = None) -> Row:
    return Row(f"resume-conflict{flag}", _resume(flag, *values), 2,
               f"{named or flag} cannot change when resuming")


def _bad_flag(flag: str, value: str, message: str, command: str = "train") -> Row:
    def act(ctx: Ctx) -> list:
        prefix = ["train", *QUICK, "--out", ctx.new] if command == "train" else \
            [command, ctx.tmp / "any"]
        # `--flag=value`, so that a negative number is not read as another option.
        return [*prefix, *([flag, *value.split()] if " " in value else [f"{flag}={value}"])]
    return Row(f"{command}{flag}={value.replace(' ', ',')}", act, 2, message)


def _api(function: Callable, *args: Any, **kwargs: Any) -> Callable[[Ctx], Any]:
    """Calls `function(*args, **kwargs)`; the string `'vae'` stands for the row's model."""
    def act(ctx: Ctx) -> Any:
        return function(*[ctx.vae if isinstance(a, str) and a == "vae" else a for a in args],
                        **kwargs)
    return act


def _method(name: str, *args: Any, **kwargs: Any) -> Callable[[Ctx], Any]:
    return lambda ctx: getattr(ctx.vae, name)(*args, verbose=0, **kwargs)


ROWS = [
    # Every bad numeric flag: argparse refuses it in one sentence, before anything runs.
    _bad_flag("--epochs", "0", "expected a positive integer, got '0'"),
    _bad_flag("--epochs", "-1", "expected a positive integer"),
    _bad_flag("--epochs", "2.5", "expected a positive integer, got '2.5'"),
    _bad_flag("--batch-size", "0", "expected a positive integer"),
    _bad_flag("--latent-dim", "0", "expected a positive integer"),
    _bad_flag("--kl-samples", "0", "expected a positive integer"),
    _bad_flag("--train-size", "abc", "expected a positive integer, got 'abc'"),
    _bad_flag("--test-size", "0", "expected a positive integer"),
    _bad_flag("--validation-size", "-1", "expected an integer >= 0"),
    _bad_flag("--warmup-epochs", "-1", "expected an integer >= 0"),
    _bad_flag("--iwae-samples", "-5", "expected an integer >= 0"),
    _bad_flag("--posterior-flow", "-1", "expected an integer >= 0"),
    _bad_flag("--early-stopping-patience", "0", "expected a positive integer"),
    _bad_flag("--tensorboard-image-every", "0", "expected a positive integer"),
    _bad_flag("--learning-rate", "0", "expected a positive number, got '0'"),
    _bad_flag("--learning-rate", "nan", "expected a finite non-negative number, got 'nan'"),
    _bad_flag("--learning-rate", "inf", "expected a finite non-negative number"),
    _bad_flag("--final-learning-rate", "-1e-5", "expected a finite non-negative number"),
    _bad_flag("--beta", "-1", "expected a finite non-negative number"),
    _bad_flag("--beta", "nan", "expected a finite non-negative number"),
    _bad_flag("--seed", "x", "invalid int value: 'x'"),
    _bad_flag("--image-size", "0 28", "expected a positive integer"),
    _bad_flag("--samples", "-1", "expected an integer >= 0", command="evaluate"),
    _bad_flag("--num", "0", "expected a positive integer", command="sample"),
    _bad_flag("--columns", "0", "expected a positive integer", command="sample"),
    _bad_flag("--offset", "-1", "expected an integer >= 0", command="reconstruct"),
    _bad_flag("--num", "0", "expected a positive integer", command="reconstruct"),
    Row("evaluate-samples-6000", _command("evaluate", "{run}", "--samples", "6000"), 2,
        "--samples must be at most 5000, got 6000"),
    # Data and sizes: checked before training, nothing created.
    Row("unknown-dataset", _train("--dataset", "cifar10"), 2, "Unknown dataset 'cifar10'",
        check=_not_created),
    Row("missing-data-dir", _train("--data-dir", "/nonexistent/data"), 2,
        "Data folder /nonexistent/data does not exist", check=_not_created),
    Row("test-size-1", _train("--test-size", "1"), 2, "test_size 1 is too small",
        check=_not_created),
    Row("train-size-1", _train("--train-size", "1"), 2, "train_size 1 is too small",
        check=_not_created),
    Row("train-size-too-large", _train("--train-size", "70000"), 2,
        "train_size 70000 is more than the 60000 training images", check=_not_created),
    Row("test-size-too-large", _train("--test-size", "20000"), 2,
        "test_size 20000 is more than the 10000 test images", check=_not_created),
    Row("validation-size-too-large", _train("--validation-size", "60000"), 2,
        "validation_size 60000 leaves no training images", check=_not_created),
    Row("early-stopping-without-validation", _train("--early-stopping-patience", "2"), 2,
        "early_stopping_patience needs a validation split", check=_not_created),
    Row("cosine-without-final-rate", _train("--learning-rate-schedule", "cosine"), 2,
        "final_learning_rate must be set exactly when", check=_not_created),
    Row("analytic-kl-with-learnable-prior", _train("--prior", "mixture"), 2,
        "has no closed form against the 'mixture' prior", check=_not_created),
    Row("corrupt-idx-not-gzip", _train("--data-dir", "{tmp}/data"), 2, "not a valid gzip file",
        setup=_idx_dir("t10k-images-idx3-ubyte.gz", b"garbage"), check=_not_created),
    Row("corrupt-idx-wrong-magic", _train("--data-dir", "{tmp}/data"), 2,
        "is not an IDX file with 3 dimension(s)",
        setup=_idx_dir("train-images-idx3-ubyte.gz", gzip.compress(b"\0" * 64)),
        check=_not_created),
    Row("npy-with-nan-pixels", _train("--data", "{tmp}/nan.npy"), 2,
        "contains NaN or infinite pixels", setup=_npy("nan.npy", NAN), check=_not_created),
    Row("npy-with-float-0-255-pixels", _train("--data", "{tmp}/bytes.npy"), 2,
        "scale float images to [0, 1]", setup=_npy("bytes.npy", BYTES), check=_not_created),
    # --out: a file, inside a file, unwritable, another folder, an existing run.
    Row("out-is-a-file", _train("--out", "{tmp}/file"), 2, "is a file; choose a directory",
        setup=lambda ctx: (ctx.tmp / "file").write_text("x")),
    Row("out-inside-a-file", _train("--out", "{tmp}/file/run"), 2, "is inside the file",
        setup=lambda ctx: (ctx.tmp / "file").write_text("x")),
    Row("out-cannot-be-created-proc", _train("--out", "/proc/tfp-vae-test/run"), 2,
        "Cannot write the run directory /proc/tfp-vae-test/run"),
    Row("out-cannot-be-created-sys", _train("--out", "/sys/tfp-vae-test"), 2,
        "Cannot write the run directory /sys/tfp-vae-test"),
    Row("out-non-run-folder", _train("--out", "{tmp}/photos"), 2,
        "is a non-empty directory that is not a tfp-vae run",
        setup=lambda ctx: (ctx.tmp / "photos").mkdir() or (ctx.tmp / "photos" / "a.txt")
        .write_text("mine")),
    Row("existing-run-without-resume", _train("--out", "{run}"), 2,
        "already holds a training run; pass --resume to continue it or --overwrite"),
    Row("resume-and-overwrite", _train("--out", "{run}", "--resume", "--overwrite"), 2,
        "resume and overwrite contradict each other"),
    Row("nothing-to-resume-no-run", lambda ctx: ["train", "--resume", "--out", ctx.new], 2,
        "Nothing to resume", check=_not_created),
    Row("nothing-to-resume-no-checkpoint", _resume(), 2, "has no completed epoch yet",
        setup=lambda ctx: shutil.rmtree(ctx.run / "checkpoints")),
    Row("overwrite-with-typo-data-dir", _train("--out", "{run}", "--overwrite", "--data-dir",
                                               "/tpyo/data"), 2, "does not exist"),
    Row("overwrite-with-test-size-1", _train("--out", "{run}", "--overwrite", "--test-size",
                                             "1"), 2, "test_size 1 is too small"),
    Row("overwrite-that-diverges", _train("--out", "{run}", "--overwrite", "--learning-rate",
                                          "1e30"), 3, "Training stopped because",
        check=_old_run_kept_and_hint_fits),
    # Resuming with settings that contradict the saved run.
    _conflict("--dataset", "mnist", named="--data"),
    _conflict("--latent-dim", "3"),
    _conflict("--learning-rate", "0.01"),
    _conflict("--network", "mlp"),
    _conflict("--likelihood", "normal"),
    _conflict("--seed", "7"),
    _conflict("--batch-size", "32"),
    _conflict("--train-size", "128"),
    _conflict("--validation-size", "10"),
    _conflict("--binarization", "fixed"),
    _conflict("--optimizer", "sgd"),
    _conflict("--posterior", "tril"),
    _conflict("--kl-estimator", "mc"),
    _conflict("--beta", "2"),
    _conflict("--warmup-epochs", "1"),
    _conflict("--learning-rate-schedule", "cosine", "--final-learning-rate", "1e-5",
              named="--final-learning-rate, --learning-rate-schedule"),
    Row("resume-epochs-under-cosine", _resume("--epochs", "3"), 2,
        "--epochs cannot change when resuming",
        setup=_edit_run_json(learning_rate_schedule="cosine", final_learning_rate=1e-5)),
    Row("resume-fewer-epochs-than-trained", _resume("--epochs", "1"), 2,
        "--epochs 1 is fewer than the 2 epochs"),
    Row("resume-unknown-setting", lambda ctx: train_run(ctx.run, resume=True,
                                                        changes={"colour": "red"}),
        ValueError, "Unknown setting(s) ['colour']"),
    Row("resume-allowed-changes", _resume("--epochs", "3", "--test-size", "50"), 0,
        "Applied the changed setting(s) epochs, test_size to the resumed run",
        check=_applied_and_trained_on, keeps_run=False),
    # Two writers, damaged checkpoints, a killed final save.
    Row("concurrent-writer", _resume("--epochs", "3"), 1, "Another process (pid ",
        setup=_hold_lock, check=_lock_released_by_a_kill),
    Row("concurrent-writer-api", lambda ctx: train_run(ctx.run, resume=True), RunBusyError,
        "wait for it to finish or choose another --out", setup=_hold_lock_here),
    Row("missing-latest-pointer", _resume(), 0,
        "Resumed from epoch-0002, the newest intact checkpoint (`latest` was missing)",
        setup=lambda ctx: (ctx.run / "checkpoints" / "latest").unlink(),
        check=_finished_again_unchanged, keeps_run=False),
    Row("truncated-checkpoint", _resume(), 0,
        "Resumed from epoch-0001, the newest intact checkpoint (`latest` named epoch-0002; "
        "skipped epoch-0002", setup=_truncate_checkpoint(2), check=_retrained_epoch_2,
        keeps_run=False),
    Row("all-checkpoints-corrupt", _resume(), 2, "No intact checkpoint in",
        setup=_truncate_all),
    Row("killed-during-final-save", lambda ctx: train_run(ctx.run, resume=True), OSError,
        "No space left on device", setup=_failing_final_save,
        check=_readers_refuse_then_resume_finishes, keeps_run=False),
    Row("evaluate-unfinished-run", _command("evaluate", "{run}"), 2,
        "is an unfinished run (no COMPLETE marker); finish it with `tfp-vae train --resume",
        setup=_remove_complete),
    Row("rundir-metrics-unfinished-run", lambda ctx: RunDir(ctx.run).metrics(), ValueError,
        "is an unfinished run", setup=_remove_complete),
    # Corrupt saved files, and read commands with bad arguments.
    Row("corrupt-run-json", _command("evaluate", "{run}"), 2, "run.json is not valid JSON",
        setup=_write("run.json", '{"format": 2, "mod')),
    Row("corrupt-run-json-resume", _resume(), 2, "run.json is not valid JSON",
        setup=_write("run.json", "[]]")),
    Row("corrupt-model-config", _command("evaluate", "{run}"), 2, "config.json",
        setup=_write("model/config.json", "{not json")),
    Row("corrupt-weights", _command("evaluate", "{run}"), 2, "weights.h5",
        setup=_write("model/weights.h5", "not an HDF5 file")),
    Row("evaluate-missing-dir", _command("evaluate", "{tmp}/nowhere"), 2, "does not exist"),
    Row("evaluate-output-is-a-directory",
        _command("evaluate", "{run}", "--samples", "0", "--test-size", "20", "--output",
                 "{tmp}"), 1, "the report above is complete", check=_report_printed),
    Row("sample-output-is-a-directory", _command("sample", "{run}", "--output", "{tmp}"), 1,
        "is a directory"),
    Row("sample-an-autoencoder", _command("sample", "{tmp}/autoencoder"), 2,
        "holds an autoencoder, which has no prior", setup=_autoencoder_dir),
    Row("reconstruct-offset-beyond-data", _command("reconstruct", "{run}", "--offset", "20000"),
        2, "--offset 20000 is beyond the 10000 test images"),
    # python -m tfp_vae.compare_kl: one convention for exit statuses.
    Row("compare-kl-unknown-flag", lambda ctx: compare_kl_main(["--bogus"]), 2,
        "unrecognized arguments: --bogus"),
    Row("compare-kl-bad-latent-dims", lambda ctx: compare_kl_main(
        ["--skip-training", "--latent-dims", "0", "--out", ctx.new]), 2,
        "latent_dims must be positive integers"),
    Row("compare-kl-out-is-a-file", lambda ctx: compare_kl_main(
        ["--skip-training", "--out", str(ctx.tmp / "file")]), 2, "is a file",
        setup=lambda ctx: (ctx.tmp / "file").write_text("x")),
    # The Python API refuses garbage data.
    Row("make-dataset-nan", _api(make_dataset, NAN), ValueError, "NaN or infinite pixels"),
    Row("make-dataset-0-255", _api(make_dataset, BYTES), ValueError,
        "not [0, 1]; divide uint8 images by 255"),
    Row("make-dataset-no-channel-axis", _api(make_dataset, FLAT), ValueError,
        "pass a non-empty [n, height, width, channels] array"),
    Row("make-dataset-strings", _api(make_dataset, np.array([["a"]])), ValueError,
        "pass numeric images"),
    Row("evaluate-elbo-nan", _api(evaluate_elbo, "vae", NAN), ValueError, "NaN or infinite"),
    Row("evaluate-elbo-0-255", _api(evaluate_elbo, "vae", BYTES), ValueError, "not [0, 1]"),
    Row("evaluate-elbo-wrong-size", _api(evaluate_elbo, "vae", LARGE), ValueError,
        "(32, 32, 1) per image but the model expects (28, 28, 1)"),
    Row("evaluate-elbo-grey-bernoulli", _api(evaluate_elbo, "vae", GREY), ValueError,
        "grey levels, not 0/1, but a Bernoulli likelihood needs binary targets"),
    Row("iwae-nan", _api(iwae_log_likelihood, "vae", NAN, num_samples=2), ValueError,
        "NaN or infinite"),
    Row("iwae-wrong-size", _api(iwae_log_likelihood, "vae", LARGE, num_samples=2), ValueError,
        "but the model expects (28, 28, 1)"),
    Row("iwae-grey-bernoulli", _api(iwae_log_likelihood, "vae", GREY, num_samples=2),
        ValueError, "a Bernoulli likelihood needs binary targets"),
    Row("active-units-nan", _api(active_units, "vae", NAN), ValueError, "NaN or infinite"),
    Row("active-units-no-channel-axis", _api(active_units, "vae", FLAT), ValueError,
        "[n, height, width, channels]"),
    Row("fit-numpy-nan", _method("fit", NAN), ValueError, "NaN or infinite",
        setup=_weights_before, check=_weights_kept),
    Row("fit-numpy-0-255", _method("fit", BYTES), ValueError, "divide uint8 images by 255",
        setup=_weights_before, check=_weights_kept),
    Row("fit-numpy-no-channel-axis", _method("fit", FLAT), ValueError,
        "[n, height, width, channels]", setup=_weights_before, check=_weights_kept),
    Row("fit-numpy-wrong-size", _method("fit", LARGE), ValueError,
        "but the model expects (28, 28, 1)", setup=_weights_before, check=_weights_kept),
    Row("fit-numpy-grey-bernoulli", _method("fit", GREY), ValueError,
        "needs binary targets", setup=_weights_before, check=_weights_kept),
    Row("fit-validation-nan", _method("fit", BINARY, validation_data=(NAN,)), ValueError,
        "validation images contain NaN", setup=_weights_before, check=_weights_kept),
    Row("fit-tf-data-wrong-size", lambda ctx: ctx.vae.fit(
        tf.data.Dataset.from_tensor_slices(LARGE).batch(16), verbose=0), ValueError,
        "have shape (None, 32, 32, 1) but the model expects", setup=_weights_before,
        check=_weights_kept),
    Row("fit-tf-data-unbatched", lambda ctx: ctx.vae.fit(
        tf.data.Dataset.from_tensor_slices(BINARY), verbose=0), ValueError,
        "batch the dataset", setup=_weights_before, check=_weights_kept),
    Row("keras-evaluate-wrong-size", _method("evaluate", LARGE), ValueError,
        "but the model expects (28, 28, 1)"),
    Row("train-run-wrong-input-shape", _api(train_run, None, SMALL_MLP.replace(
        input_shape=(32, 32, 1)), TINY_TRAINING), ValueError,
        "have shape (28, 28, 1) but the model expects (32, 32, 1)"),
    Row("train-run-test-size-1", _api(train_run, None, SMALL_MLP,
                                      TINY_TRAINING.replace(test_size=1)), ValueError,
        "test_size 1 is too small"),
    Row("train-run-in-memory-resume", _api(train_run, None, resume=True), ValueError,
        "An in-memory run (run_dir=None) cannot be resumed"),
    Row("train-run-without-configs", lambda ctx: train_run(ctx.new), ValueError,
        "A new run needs both a ModelConfig and a TrainingConfig"),
    # Configs reject bad values, naming the field.
    Row("model-beta-nan", _api(ModelConfig, beta=float("nan")), ValueError,
        "ModelConfig.beta must be a non-negative number (finite), got nan"),
    Row("model-beta-inf", _api(ModelConfig, beta=float("inf")), ValueError,
        "ModelConfig.beta must be a non-negative number (finite), got inf"),
    Row("model-latent-dim-2.5", _api(ModelConfig, latent_dim=2.5), ValueError,
        "ModelConfig.latent_dim must be a positive integer, got 2.5"),
    Row("model-latent-dim-0", _api(ModelConfig, latent_dim=0), ValueError,
        "ModelConfig.latent_dim must be a positive integer, got 0"),
    Row("model-latent-dim-true", _api(ModelConfig, latent_dim=True), ValueError,
        "ModelConfig.latent_dim must be a positive integer, got True"),
    Row("model-input-shape-2d", _api(ModelConfig, input_shape=(28, 28)), ValueError,
        "ModelConfig.input_shape must be (height, width, channels) of positive integers"),
    Row("model-input-shape-float", _api(ModelConfig, input_shape=(28, 28.5, 1)), ValueError,
        "ModelConfig.input_shape must be (height, width, channels)"),
    Row("model-unknown-network-option", _api(ModelConfig, network="mlp",
                                             network_options={"hiden_units": [8]}),
        ValueError, "unknown key(s) ['hiden_units'] for the 'mlp' network; it takes "
                    "['activation', 'hidden_units']"),
    Row("model-unknown-choice", _api(ModelConfig, posterior="full"), ValueError,
        "ModelConfig.posterior must be one of"),
    Row("training-epochs-0", _api(TrainingConfig, epochs=0), ValueError,
        "TrainingConfig.epochs must be a positive integer, got 0"),
    Row("training-batch-size-float", _api(TrainingConfig, batch_size=1.5), ValueError,
        "TrainingConfig.batch_size must be a positive integer, got 1.5"),
    Row("training-learning-rate-nan", _api(TrainingConfig, learning_rate=float("nan")),
        ValueError, "TrainingConfig.learning_rate must be a positive number (finite)"),
    Row("training-test-size-0", _api(TrainingConfig, test_size=0), ValueError,
        "TrainingConfig.test_size must be a positive integer or None, got 0"),
    Row("training-binarization", _api(TrainingConfig, binarization="sometimes"), ValueError,
        "TrainingConfig.binarization must be one of"),
    Row("training-select-best-string", _api(TrainingConfig, select_best="yes"), ValueError,
        "TrainingConfig.select_best must be true or false, got 'yes'"),
    Row("training-unknown-dataset", _api(TrainingConfig, data="cifar10"), ValueError,
        "Unknown dataset 'cifar10'"),
    Row("training-config-unknown-key", _api(TrainingConfig.from_dict, {"epoch": 3}),
        ValueError, "Unknown training config key(s) ['epoch']"),
]


def test_the_table_is_large_and_ids_are_unique():
    assert len(ROWS) >= 60
    assert len({row.id for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_or_fault(row: Row, finished, small_vae, tmp_path, capsys):
    ctx = Ctx(tmp_path, finished, small_vae, capsys)
    try:
        if row.setup is not None:
            row.setup(ctx)
        before = _snapshot(ctx.run) if ctx.has_run else None
        capsys.readouterr()
        out = ""
        if isinstance(row.expect, int):
            argv = row.act(ctx)
            if isinstance(argv, int):  # a `main` called directly returned its exit status
                code, (out, err) = argv, capsys.readouterr()
            else:
                argv = [str(a).replace("{tmp}", str(tmp_path)) for a in argv]
                code, out, err = _cli(ctx, argv)
            assert code == row.expect, (code, out, err)
            if row.expect == 0:
                assert row.message in out, out
            else:
                lines = err.strip().splitlines()
                assert len(lines) == 1, err
                assert row.message in lines[0], lines[0]
                ctx.state["message"] = lines[0]
        else:
            with pytest.raises(row.expect) as info:
                row.act(ctx)
            message = str(info.value)
            assert len(message.strip().splitlines()) == 1, message
            assert row.message in message, message
            ctx.state["message"] = message
        if row.check is not None:
            row.check(ctx, out)
        if before is not None and row.keeps_run:
            assert _snapshot(ctx.run) == before, "an earlier result was changed"
    finally:
        for cleanup in ctx.cleanups:
            cleanup()


def test_created_folders_and_files_follow_the_umask(finished):
    """The finished run was trained under umask 027: folders 0o750, files 0o640."""
    for folder in (finished, finished / "checkpoints", finished / "checkpoints" / "epoch-0002",
                   finished / "model"):
        assert folder.stat().st_mode & 0o777 == 0o750, folder
    for file in (finished / "metrics.json", finished / "COMPLETE", finished / "run.json",
                 finished / "model" / "weights.h5", finished / "checkpoints" / "latest"):
        assert file.stat().st_mode & 0o777 == 0o640, file


def test_exit_statuses():
    """The CLI's statuses: 2 for input to fix, 1 for runtime trouble, 3 for a non-finite loss."""
    assert cli.exit_status(NonFiniteLossError("x")) == 3
    assert cli.exit_status(RunBusyError("x")) == 1
    assert cli.exit_status(FileNotFoundError("x")) == 2
    assert cli.exit_status(ValueError("x")) == 2
    assert cli.exit_status(OSError("x")) == 1
