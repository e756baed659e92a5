"""`RunDir`: a training run's directory, its layout, lock, recovery, checkpoints and results.

A run directory `DIR` holds:

    DIR/run.json          {"format": 2, "model": ModelConfig, "training": TrainingConfig}
    DIR/data.json         the data source and, for your own images, their content hash
    DIR/checkpoints/      epoch-NNNN/ per completed epoch (model + optimizer), `latest`,
                          and best/ (the best validation epoch, with a validation split)
    DIR/history.csv       one row per epoch: training and validation losses, wall time
    DIR/model/            the final saved model (config.json, weights.h5, metadata.json)
    DIR/metrics.json      final test / validation / train metrics
    DIR/plots/*.png       latent grid, label clusters, reconstructions, samples, curves
    DIR/COMPLETE          written last and atomically: only a run with it is finished

`tfp_vae.runs.train_run` creates, resumes and replaces runs under the directory's lock.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tfp_vae.backend import keras
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.io import epoch_checkpoints, load_checkpoint, load_model
from tfp_vae.models import VAE, Autoencoder
from tfp_vae.resuming import RESUMABLE_FIELDS, resume_configs

__all__ = ["RESUMABLE_FIELDS", "RUN_FORMAT", "RunBusyError", "RunDir", "RunError"]

RUN_FORMAT = 2
BEST = "best"
_LATEST = "latest"


class RunError(RuntimeError):
    """A training run could not start or finish; the message is one sentence."""


class RunBusyError(RunError):
    """Another process owns the run directory."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        # mkstemp creates the file 0600; a result file gets the user's usual permissions.
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _migrate_v1(settings: Mapping[str, Any]) -> tuple[ModelConfig, TrainingConfig]:
    """Configs from a `run.json` written by tfp_vae 0.1's CLI (a flat dict of its flags)."""
    model = ModelConfig(
        kind=settings["model"], latent_dim=settings["latent_dim"],
        network=settings["network"], posterior=settings["posterior"],
        likelihood=settings["likelihood"], kl_attachment=settings["kl_attachment"],
        kl_estimator=settings["kl_estimator"], num_samples=settings["kl_samples"],
        beta=settings["beta"], dtype_policy=settings.get("dtype_policy", "float32"))
    training = TrainingConfig(
        data=settings["dataset"], binarization=settings["binarization"],
        batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
        seed=settings["seed"], train_size=settings["train_size"],
        test_size=settings["test_size"], warmup_epochs=settings["warmup_epochs"])
    return model, training


class _Entry:
    """A file or folder of the layout: `run.metrics_file` is `run.path / "metrics.json"`."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, run: RunDir | None, owner: type | None = None) -> Any:
        return self if run is None else run.path / self.name


def _csv_number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class RunDir:
    """A training run's directory: its layout, configs, lock, checkpoints and results.

    Creating a `RunDir` touches nothing on disk; `train_run` creates, resumes or replaces the
    run under the directory's lock.

    Args:
      path: The run directory.

    #### Examples

    ```python
    run = RunDir("runs/fashion-mnist-vae")
    if run.is_complete:
        print(run.metrics()["test_negative_elbo"], run.training_config.epochs)
    model = run.load_model()
    ```
    """

    RUN_FILE = "run.json"
    COMPLETE_FILE = "COMPLETE"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # The layout (see the module docstring): each is a `Path` below `path`.
    run_file = _Entry(RUN_FILE)
    data_file = _Entry("data.json")
    checkpoints_dir = _Entry("checkpoints")
    model_dir = _Entry("model")
    plots_dir = _Entry("plots")
    history_file = _Entry("history.csv")
    metrics_file = _Entry("metrics.json")
    complete_file = _Entry(COMPLETE_FILE)

    @property
    def lock_file(self) -> Path:
        return self.path.parent / f".{self.path.name}.lock"

    @property
    def exists(self) -> bool:
        """Whether the directory holds a run (a `run.json`)."""
        return self.run_file.is_file()

    @property
    def is_complete(self) -> bool:
        """Whether the run finished: its `COMPLETE` marker, written last, exists."""
        return self.complete_file.is_file()

    # Configs -------------------------------------------------------------------------------

    def read_configs(self) -> tuple[ModelConfig, TrainingConfig]:
        """The run's `(ModelConfig, TrainingConfig)` from `run.json`.

        Runs written by tfp_vae 0.1 (a flat dict of command-line settings) are read too.

        Raises:
          ValueError: If `run.json` is missing, not JSON, or not a valid run description.
        """
        try:
            data = json.loads(self.run_file.read_text())
        except FileNotFoundError:
            raise ValueError(f"{self.path} holds no training run ({self.run_file} is "
                             "missing).") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.run_file} is not valid JSON ({error}); the run "
                             "description is corrupt.") from None
        try:
            if isinstance(data, dict) and "format" not in data and "dataset" in data:
                return _migrate_v1(data)
            if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
                raise ValueError(f"its format is not {RUN_FORMAT}")
            return (ModelConfig.from_dict(data["model"]),
                    TrainingConfig.from_dict(data["training"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{self.run_file} is not a tfp_vae run description ({error}); "
                             "start a new run with --overwrite.") from None

    @property
    def model_config(self) -> ModelConfig:
        return self.read_configs()[0]

    @property
    def training_config(self) -> TrainingConfig:
        return self.read_configs()[1]

    def write_configs(self, model_config: ModelConfig, training_config: TrainingConfig) -> None:
        """Writes `run.json` atomically."""
        text = json.dumps({"format": RUN_FORMAT, "model": model_config.to_dict(),
                           "training": training_config.to_dict()}, indent=2, sort_keys=True)
        _write_text_atomically(self.run_file, text + "\n")

    def write_data_record(self, source: str, sha256: str | None) -> None:
        """Records where the run's data came from (and its content hash, for your own images)."""
        _write_text_atomically(self.data_file, json.dumps(
            {"source": source, "sha256": sha256}, indent=2) + "\n")

    def data_changed(self, sha256: str | None) -> str | None:
        """One warning sentence if data with content hash `sha256` is not what the run used."""
        try:
            recorded = json.loads(self.data_file.read_text())
        except (OSError, ValueError):
            return None
        if recorded.get("sha256") and sha256 and recorded["sha256"] != sha256:
            return (f"Warning: the data in {recorded.get('source')} changed since {self.path} "
                    f"was trained (content hash {recorded['sha256'][:12]}… then, "
                    f"{sha256[:12]}… now); its results describe the old data.")
        return None

    # Results -------------------------------------------------------------------------------

    def write_history(self, history: Sequence[Mapping[str, float]]) -> Path:
        """Writes `history.csv` atomically (columns: epoch, losses, validation losses, ...)."""
        first = ["epoch", "loss", "reconstruction_loss", "kl_loss"]
        first += ["validation_" + name for name in first[1:]]
        found = list(dict.fromkeys(name for row in history for name in row))
        names = [name for name in first if name in found] + [n for n in found if n not in first]
        lines = [",".join(names)]
        for row in history:
            lines.append(",".join(_csv_number(row.get(name)) for name in names))
        _write_text_atomically(self.history_file, "\n".join(lines) + "\n")
        return self.history_file

    def history(self) -> list[dict[str, float]]:
        """The rows of `history.csv` (empty if there is none)."""
        if not self.history_file.is_file():
            return []
        with open(self.history_file, newline="") as stream:
            return [{name: float(value) for name, value in row.items() if value != ""}
                    for row in csv.DictReader(stream)]

    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Writes `metrics.json` atomically.

        Raises:
          ValueError: If a metric is not a finite JSON number.
        """
        text = json.dumps(dict(metrics), indent=2, allow_nan=False)
        _write_text_atomically(self.metrics_file, text + "\n")
        return self.metrics_file

    def metrics(self) -> dict[str, Any]:
        """The final metrics of a complete run.

        Raises:
          ValueError: If the run is not complete (its metrics could be stale or missing).
        """
        self.require_complete()
        return json.loads(self.metrics_file.read_text())

    def load_model(self) -> VAE | Autoencoder:
        """The final saved model of a complete run.

        Raises:
          ValueError: If the run is not complete, or its model directory is damaged.
        """
        self.require_complete()
        return load_model(self.model_dir)

    def require_complete(self) -> None:
        """Refuses an unfinished run: its results may be stale, partial or missing.

        Raises:
          ValueError: If the run has no `COMPLETE` marker (one sentence saying how to finish it).
        """
        if not self.is_complete:
            raise ValueError(f"{self.path} is an unfinished run (no {self.COMPLETE_FILE} "
                             "marker); finish it with `tfp-vae train --resume --out "
                             f"{self.path}`.")

    def mark_complete(self, summary: Mapping[str, Any]) -> None:
        """Writes the `COMPLETE` marker, last and atomically."""
        _write_text_atomically(self.complete_file, json.dumps(dict(summary), indent=2) + "\n")

    # Creation, lock, stale files, checkpoints ------------------------------------------------

    def check_writable(self) -> None:
        """Refuses a path that cannot become a run directory.

        Raises:
          ValueError: If the path or a parent is a file, or the folder is not writable.
        """
        path = self.path
        probe = path if path.exists() else path.parent
        while not probe.exists():
            probe = probe.parent
        if probe == path and not probe.is_dir():
            raise ValueError(f"--out {path} is a file; choose a directory path.")
        if not probe.is_dir():
            raise ValueError(f"--out {path} is inside the file {probe}; choose a directory path.")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ValueError(f"Cannot write to {probe} (permission denied); choose a writable "
                             "--out.")

    def check_new(self, overwrite: bool = False) -> None:
        """Refuses a new run over a folder that is not a run, or (unless `overwrite`) a run.

        Call it after `check_writable`, which refuses a path that is a file.

        Raises:
          ValueError: One sentence saying what is there and what to pass instead.
        """
        if self.path.is_dir() and any(self.path.iterdir()):
            if not self.exists:
                raise ValueError(f"{self.path} is a non-empty directory that is not a tfp-vae "
                                 "run; choose another --out.")
            if not overwrite:
                raise ValueError(f"{self.path} already holds a training run; pass --resume to "
                                 "continue it or --overwrite to start over.")

    def latest_checkpoint(self) -> str | None:
        """The epoch folder that `checkpoints/latest` names, or `None` without one."""
        pointer = self.checkpoints_dir / _LATEST
        return pointer.read_text().strip() if pointer.is_file() else None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the run's OS-level lock; a second holder gets `RunBusyError` at once.

        The lock file `.NAME.lock` beside the directory stays while the directory exists. When
        the holder leaves no run directory (a check failed), the lock file and the parent
        folders it had to create are removed: nothing half-made is left behind.

        Raises:
          RunBusyError: If another process holds the lock.
          ValueError: If the lock file cannot be created (e.g. a read-only folder).
        """
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        handle = self._acquire()
        try:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            if not self.path.exists():
                # Still held: a process that opened the file meanwhile finds it unlinked
                # (`_acquire` checks) and locks a new one.
                self.lock_file.unlink(missing_ok=True)
                for folder in missing:  # innermost first; stops at one that is not empty
                    try:
                        folder.rmdir()
                    except OSError:
                        break
            os.close(handle)

    def _acquire(self) -> int:
        """Opens and locks `lock_file`; returns the descriptor."""
        for attempt in range(10):  # retried only when a holder's clean-up raced with us
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as error:
                if isinstance(error, FileNotFoundError) and attempt < 9:
                    continue  # a failed run's clean-up removed the new parent folder meanwhile
                raise ValueError(f"Cannot write the run directory {self.path}: "
                                 f"{error.strerror}; choose a writable --out.") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(handle)
                raise RunBusyError(f"Another process (pid {owner}) is using the run directory "
                                   f"{self.path}; wait for it to finish or choose another "
                                   "--out.") from None
            try:
                if os.path.samestat(os.fstat(handle), os.stat(self.lock_file)):
                    return handle
            except FileNotFoundError:
                pass
            os.close(handle)  # the previous holder removed this file after we opened it
        raise RunBusyError(f"Other processes keep creating and removing the lock of {self.path}; "
                           "try again when they have finished.")

    def _aside_paths(self) -> list[Path]:
        return sorted(self.path.parent.glob(f".{self.path.name}.replaced-*"))

    def recover(self) -> list[str]:
        """Cleans up after killed processes; call with the lock held.

        Removes stale temporary folders of interrupted writes, and settles an interrupted
        overwrite: the old run set aside is restored if the new run has no checkpoint yet,
        and deleted otherwise.

        Returns:
          One sentence per action taken.
        """
        messages = []
        for aside in self._aside_paths():
            if self._checkpoint_candidates():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                if self.path.exists():
                    shutil.rmtree(self.path)
                os.replace(aside, self.path)
                messages.append(f"Restored the earlier run in {self.path}, which an interrupted "
                                "--overwrite had set aside before the new run's first "
                                "checkpoint.")
        stale = []
        for folder in (self.path, self.checkpoints_dir):
            if folder.is_dir():
                stale += [p for p in folder.iterdir()
                          if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if stale:
            messages.append(f"Removed {len(stale)} unfinished temporary file(s) left by an "
                            "interrupted write.")
        return messages

    def _checkpoint_candidates(self) -> list[Path]:
        return list(epoch_checkpoints(self.checkpoints_dir).values())[::-1]

    def set_aside(self) -> Path:
        """Moves the existing run out of the way (for an overwrite); returns where it went."""
        aside = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.replaced-",
                                      dir=self.path.parent))
        aside.rmdir()
        os.replace(self.path, aside)
        return aside

    def restore_checkpoint(self, optimizer_fn: Callable[[], keras.optimizers.Optimizer]
                           ) -> tuple[VAE | Autoencoder, keras.optimizers.Optimizer,
                                      dict[str, Any], list[str]]:
        """Loads the newest intact checkpoint, falling back past damaged ones.

        Args:
          optimizer_fn: Makes a fresh optimizer of the run's kind (its state is restored).

        Returns:
          `(model, optimizer, state, messages)`; `messages` says which checkpoint was used
          and why others were skipped.

        Raises:
          ValueError: If the run has no intact checkpoint.
        """
        messages, skipped = [], []
        named = self.latest_checkpoint()
        for candidate in self._checkpoint_candidates():
            try:
                model, optimizer, state = load_checkpoint(candidate, optimizer_fn)
            except (ValueError, OSError, IndexError) as error:
                # A truncated checkpoint file makes TensorFlow's reader raise IndexError.
                skipped.append(f"{candidate.name} ({str(error).splitlines()[0]})")
                continue
            if skipped or candidate.name != named:
                reason = ("; skipped " + "; ".join(skipped)) if skipped else ""
                pointer_note = (f"`latest` named {named}" if named else "`latest` was missing")
                messages.append(f"Resumed from {candidate.name}, the newest intact checkpoint "
                                f"({pointer_note}{reason}).")
            return model, optimizer, state, messages
        if skipped:
            raise ValueError(f"No intact checkpoint in {self.checkpoints_dir}: "
                             + "; ".join(skipped) + ". Start again with --overwrite.")
        raise ValueError(f"Nothing to resume: {self.checkpoints_dir} has no completed epoch "
                         "yet; start the run again with --overwrite.")

    def resume_configs(self, model_config: ModelConfig | None = None,
                       training_config: TrainingConfig | None = None,
                       changes: Mapping[str, Any] | None = None
                       ) -> tuple[ModelConfig, TrainingConfig, list[str]]:
        """The configs a resumed run trains with; see `tfp_vae.resuming.resume_configs`.

        Args:
          model_config: A config to compare with the saved one. Default: `None`.
          training_config: Likewise for training. Default: `None`.
          changes: Field changes by name, e.g. `{"epochs": 10}`. Default: `None`.

        Returns:
          `(model_config, training_config, messages)`.

        Raises:
          ValueError: If a change is not allowed for a resumed run (one sentence).
        """
        saved_model, saved_training = self.read_configs()
        trained = max(epoch_checkpoints(self.checkpoints_dir), default=0)
        return resume_configs(self.path, saved_model, saved_training, trained, model_config,
                              training_config, changes)
