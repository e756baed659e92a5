"""Saving and loading models, and atomic per-epoch training checkpoints, without pickle.

A saved model is a directory of three files:

- `config.json`: the `ModelConfig`; loading rebuilds the model from it with `build_model`.
- `weights.h5`: the weights, written by tf_keras `save_weights` (HDF5 holds arrays only).
- `metadata.json`: format version, creation time, package versions, training metrics and
  training settings (dataset, binarization, seed).

Keras's own formats cannot do this job: the `.keras` format stores TFP distribution layers as
pickled Python functions (loading needs `safe_mode=False`, i.e. may run code from the file),
`MultivariateNormalTriL` does not reload, `KLDivergenceAddLoss` has no `get_config`, and a
`KLDivergenceRegularizer` breaks SavedModel tracing (TFP issues #1604, #742, #1266). Loading here
reads JSON and arrays only, so a directory can never run code.

Every write goes to a temporary sibling directory first and is moved into place with one
`os.replace`, so a process killed mid-save leaves either the previous complete directory or none,
never a half-written one that looks complete.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from tfp_vae.backend import keras, tf
from tfp_vae.config import ModelConfig
from tfp_vae.models import VAE, Autoencoder, build_model

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "EpochCheckpoint",
    "NonFiniteLossError",
    "NonFiniteLossWatch",
    "epoch_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "read_metadata",
    "save_checkpoint",
    "save_model",
]

CONFIG_FILE = "config.json"
_EPOCH_PREFIX = "epoch-"  # checkpoint folders are epoch-NNNN
WEIGHTS_FILE = "weights.h5"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
_FORMAT = "tfp_vae.model"

_CHECKPOINT_PREFIX = "ckpt"
_CHECKPOINT_STATE = "state.json"
_LATEST = "latest"


class NonFiniteLossError(RuntimeError):
    """Raised after training stopped because the loss became NaN or infinite."""


def _package_versions() -> dict[str, str]:
    import matplotlib
    import tensorflow_probability as tfp

    from tfp_vae import __version__

    return {"tfp_vae": __version__, "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "tf_keras": keras.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__,
            "python": platform.python_version()}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing, so {path.parent} is not a complete saved "
                         f"{what}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the saved {what} is corrupt or "
                         "was edited by hand.") from None


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as stream:
                os.fsync(stream.fileno())


@contextmanager
def _atomic_directory(target: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary sibling of `target`; on success it replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it.")
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    # mkdtemp creates the folder 0700; the saved directory gets the user's usual permissions.
    mask = os.umask(0)
    os.umask(mask)
    temporary.chmod(0o777 & ~mask)
    try:
        yield temporary
        _fsync_tree(temporary)
        if target.exists():
            # os.replace cannot move a directory onto a non-empty one: move the old one aside
            # first. Between the two renames `target` is absent, never incomplete.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def save_model(model: VAE | Autoencoder, directory: str | os.PathLike,
               metrics: Mapping[str, Any] | None = None,
               training: Mapping[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Saves a tfp_vae model as `config.json` + `weights.h5` + `metadata.json`, atomically.

    Works for every model `build_model` makes: Diag/TriL posteriors, every KL attachment
    (`loss`, `add_loss`, `regularizer`), Bernoulli/Normal likelihoods, every network body, and
    the `Autoencoder`.

    Args:
      model: A built tfp_vae `VAE` or `Autoencoder` (it carries its `ModelConfig`).
      directory: Where to save; created with its parents, replaced if it exists.
      metrics: Optional JSON-serialisable training/test metrics stored in the metadata.
        Default: `None`.
      training: Optional JSON-serialisable training settings (dataset, binarization, seed, ...)
        stored in the metadata, so that evaluation can rebuild the same data. Default: `None`.
      overwrite: Python `bool`, replace an existing directory. Default: `True`.

    Returns:
      The `Path` of the saved directory.

    Raises:
      TypeError: If `model` is not a tfp_vae model.
      FileExistsError: If `directory` exists and `overwrite=False`.
      ValueError: If `metrics` or `training` is not JSON-serialisable (NaN included).

    #### Examples

    ```python
    save_model(vae, "runs/demo/model", metrics={"test_negative_elbo": 245.1})
    same = load_model("runs/demo/model")
    ```
    """
    if not isinstance(model, (VAE, Autoencoder)):
        raise TypeError(f"save_model needs a tfp_vae VAE or Autoencoder, got "
                        f"{type(model).__name__}.")
    if not model.built:
        raise ValueError("The model has no weights yet; build it with tfp_vae.build_model.")
    metadata = {
        "format": _FORMAT, "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_class": type(model).__name__, "versions": _package_versions(),
        "metrics": dict(metrics or {}), "training": dict(training or {}),
    }
    try:
        metadata_text = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metrics and training must be JSON-serialisable finite values: "
                         f"{error}.") from None
    directory = Path(directory)
    with _atomic_directory(directory, overwrite) as temporary:
        (temporary / CONFIG_FILE).write_text(model.config.to_json() + "\n")
        model.save_weights(str(temporary / WEIGHTS_FILE))
        (temporary / METADATA_FILE).write_text(metadata_text + "\n")
    return directory


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The `metadata.json` of a saved model directory.

    Args:
      directory: A directory written by `save_model`.

    Returns:
      The metadata dict (`created`, `versions`, `metrics`, `training`, ...).

    Raises:
      ValueError: If the file is missing, not JSON, or not tfp_vae metadata.
    """
    metadata = _read_json(Path(directory) / METADATA_FILE, "model")
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT:
        raise ValueError(f"{Path(directory) / METADATA_FILE} is not tfp_vae model metadata.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory} was saved in format version "
                         f"{metadata.get('format_version')!r}; this tfp_vae reads version "
                         f"{FORMAT_VERSION}.")
    return metadata


def _read_config(path: Path, what: str) -> ModelConfig:
    data = _read_json(path, what)
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} does not describe a valid model: {error}") from None


def _load_weights_into(model: VAE | Autoencoder, weights: Path, config_path: Path) -> None:
    try:
        model.load_weights(str(weights))
    except (ValueError, KeyError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(f"The weights in {weights} do not fit the model described by "
                         f"{config_path} (e.g. a different latent size or network): "
                         f"{first_line}") from None


def load_model(directory: str | os.PathLike) -> VAE | Autoencoder:
    """Rebuilds a model saved by `save_model` from its JSON config and loads its weights.

    Nothing is unpickled or executed: the config is plain JSON validated by `ModelConfig`, the
    weights are HDF5 arrays whose count and shapes must match the rebuilt model.

    Args:
      directory: A directory written by `save_model`.

    Returns:
      The `VAE` or `Autoencoder`, with the same posterior parameters and, for the same seed, the
      same samples as the saved model.

    Raises:
      FileNotFoundError: If `directory` does not exist.
      ValueError: If a file is missing or corrupt, the config has unknown keys or invalid
        values, or the weights do not fit the config (e.g. a different latent size).

    #### Examples

    ```python
    vae = load_model("runs/demo/model")
    images = vae.sample(16, seed=0)
    ```
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"No saved model at {directory}: the directory does not exist.")
    read_metadata(directory)
    config = _read_config(directory / CONFIG_FILE, "model")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{weights} is missing, so {directory} is not a complete saved model.")
    model = build_model(config)
    _load_weights_into(model, weights, directory / CONFIG_FILE)
    return model


def _checkpoint(model: keras.Model, optimizer: keras.optimizers.Optimizer | None):
    objects = {"model": model}
    if optimizer is not None:
        objects["optimizer"] = optimizer
    return tf.train.Checkpoint(**objects)


def save_checkpoint(directory: str | os.PathLike, model: VAE | Autoencoder,
                    optimizer: keras.optimizers.Optimizer | None, epoch: int,
                    state: Mapping[str, Any] | None = None, keep: int = 2) -> Path:
    """Writes the checkpoint of a completed epoch atomically and points `latest` at it.

    The checkpoint `directory/epoch-NNNN/` holds the config, a TensorFlow object checkpoint of
    the model and optimizer (weights, Adam moments, iteration count: arrays only) and
    `state.json` (the epoch and any JSON `state`, e.g. the history so far). It is written to a
    temporary directory and renamed into place, then the one-line file `latest` is replaced
    atomically. A kill at any moment leaves `latest` naming a complete checkpoint.

    Args:
      directory: The checkpoints folder of a run.
      model: The tfp_vae model being trained.
      optimizer: Its optimizer, or `None` to save the model only.
      epoch: Python `int`, the number of completed epochs.
      state: Optional JSON-serialisable training state. Default: `None`.
      keep: Python `int`, how many most recent checkpoints to keep. Default: `2`.

    Returns:
      The `Path` of the new checkpoint.

    Raises:
      ValueError: If `state` is not JSON-serialisable.
    """
    directory = Path(directory)
    target = directory / f"{_EPOCH_PREFIX}{epoch:04d}"
    with _atomic_directory(target) as temporary:
        (temporary / CONFIG_FILE).write_text(model.config.to_json() + "\n")
        _checkpoint(model, optimizer).write(str(temporary / _CHECKPOINT_PREFIX))
        _write_json(temporary / _CHECKPOINT_STATE, {"epoch": int(epoch), **dict(state or {})})
    pointer = directory / f".{_LATEST}.tmp"
    pointer.write_text(target.name + "\n")
    os.replace(pointer, directory / _LATEST)
    old = [p for done, p in epoch_checkpoints(directory).items() if done < epoch]
    for path in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(path, ignore_errors=True)
    return target


def epoch_checkpoints(directory: str | os.PathLike) -> dict[int, Path]:
    """The `epoch-NNNN` folders `save_checkpoint` wrote in a checkpoints folder, by epoch.

    Args:
      directory: The checkpoints folder of a run (it need not exist).

    Returns:
      A `dict` from the epoch (Python `int`) to its folder, oldest first; complete or not
      (`latest_checkpoint` gives the complete one). Other names are left out.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    found = {int(p.name[len(_EPOCH_PREFIX):]): p for p in directory.glob(_EPOCH_PREFIX + "*")
             if p.is_dir() and p.name[len(_EPOCH_PREFIX):].isdigit()}
    return dict(sorted(found.items()))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint `latest` names in a checkpoints folder, or `None` if there is none.

    Args:
      directory: The checkpoints folder of a run.

    Returns:
      The `Path` of the latest complete checkpoint, or `None`.

    Raises:
      ValueError: If `latest` names a checkpoint that does not exist.
    """
    pointer = Path(directory) / _LATEST
    if not pointer.is_file():
        return None
    target = Path(directory) / pointer.read_text().strip()
    if not (target / _CHECKPOINT_STATE).is_file():
        raise ValueError(f"{pointer} names {target.name}, which is missing or incomplete.")
    return target


def load_checkpoint(checkpoint: str | os.PathLike,
                    optimizer_fn: Callable[[], keras.optimizers.Optimizer] | None = None
                    ) -> tuple[VAE | Autoencoder, keras.optimizers.Optimizer | None,
                               dict[str, Any]]:
    """Rebuilds the model (and optimizer) of a checkpoint written by `save_checkpoint`.

    Args:
      checkpoint: A checkpoint directory, e.g. `latest_checkpoint(run / "checkpoints")`.
      optimizer_fn: Makes a fresh optimizer of the kind used in training; its variables
        (moments, iteration count) are restored. `None` restores the model only.
        Default: `None`.

    Returns:
      `(model, optimizer, state)`; `state["epoch"]` is the number of completed epochs.

    Raises:
      ValueError: If the checkpoint is incomplete or does not fit its config.

    #### Examples

    ```python
    model, optimizer, state = load_checkpoint(latest_checkpoint("runs/demo/checkpoints"),
                                              lambda: keras.optimizers.Adam(1e-3))
    model.compile(optimizer=optimizer)
    ```
    """
    checkpoint = Path(checkpoint)
    config = _read_config(checkpoint / CONFIG_FILE, "checkpoint")
    state = _read_json(checkpoint / _CHECKPOINT_STATE, "checkpoint")
    model = build_model(config)
    optimizer = optimizer_fn() if optimizer_fn is not None else None
    try:
        status = _checkpoint(model, optimizer).read(str(checkpoint / _CHECKPOINT_PREFIX))
        if optimizer is not None:
            # Slot variables are restored when the optimizer creates them.
            optimizer.build(model.trainable_variables)
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(f"Cannot restore the checkpoint {checkpoint}: {first_line}") from None
    return model, optimizer, state


class NonFiniteLossWatch(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose training loss is NaN/Inf, and times each epoch.

    Attributes:
      non_finite: `None`, or a one-sentence description of where the loss became non-finite.
    """

    def __init__(self):
        super().__init__()
        self.non_finite: str | None = None
        self._epoch = 0
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.non_finite = (f"the training loss became {float(loss)} in epoch "
                               f"{self._epoch + 1}, batch {batch + 1}")
            self.model.stop_training = True


class EpochCheckpoint(NonFiniteLossWatch):
    """Checkpoints every completed epoch atomically and stops training on a NaN/Inf loss.

    After each batch the training loss is checked; a non-finite value stops training at once
    and the epoch is not checkpointed, so the last checkpoint holds the last good weights. After
    each good epoch `save_checkpoint` writes the model, optimizer and history.

    Args:
      directory: The checkpoints folder.
      initial_epoch: Python `int`, epochs completed before this `fit` (when resuming).
        Default: `0`.
      history: Per-epoch logs of those earlier epochs, continued by this callback.
        Default: `None`.
      keep: How many checkpoints to keep. Default: `2`.

    Attributes:
      history: List of per-epoch log dicts (including earlier epochs).
      non_finite: `None`, or a one-sentence description of where the loss became non-finite.
      Each history row also has the epoch number (`epoch`, 1-based) and its wall time
      (`seconds`).

    #### Examples

    ```python
    checkpoint = EpochCheckpoint("runs/demo/checkpoints")
    vae.fit(data, epochs=5, callbacks=[checkpoint])
    if checkpoint.non_finite: print(checkpoint.non_finite)
    ```
    """

    def __init__(self, directory: str | os.PathLike, initial_epoch: int = 0,
                 history: list[dict[str, float]] | None = None, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.initial_epoch = int(initial_epoch)
        self.history = list(history or [])
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        if self.non_finite is None and not all(np.isfinite(v) for v in logs.values()):
            bad = sorted(name for name, value in logs.items() if not np.isfinite(value))
            self.non_finite = f"{', '.join(bad)} became non-finite in epoch {epoch + 1}"
            self.model.stop_training = True
        if self.non_finite is not None:
            return
        seconds = time.perf_counter() - self._start
        self.history.append({"epoch": epoch + 1, **logs, "seconds": seconds})
        save_checkpoint(self.directory, self.model, self.model.optimizer, epoch + 1,
                        {"history": self.history}, keep=self.keep)
