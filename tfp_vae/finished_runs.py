"""Reading a finished run: its saved model and settings, its test images, its report.

A run or model directory written by `tfp_vae.runs.train_run` (or `tfp_vae.io.save_model`) is
read here: `saved_run` finds the model and how it was trained, `load_test_split` gives the test
images exactly as the run's final metrics saw them, `rounded` formats metrics for a report, and
`default_run_path` names where a run of a dataset and model kind goes. `tfp-vae evaluate`,
`sample`, `reconstruct` and `plot` are thin users of these.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfp_vae.config import ModelConfig, TrainingConfig, cli_name
from tfp_vae.data import DataSplits, load_splits
from tfp_vae.io import CONFIG_FILE, read_metadata
from tfp_vae.rundir import RunDir

__all__ = ["default_run_path", "load_test_split", "rounded", "saved_run"]


def rounded(metrics: Mapping[str, Any], digits: int = 4) -> dict[str, Any]:
    """Metrics with floats (also inside lists) rounded to `digits` decimals, for reports.

    Args:
      metrics: Metric name -> value.
      digits: Decimals to keep. Default: `4`.

    Returns:
      A new dict; values that are not floats or lists are unchanged.

    #### Examples

    ```python
    rounded({"test_negative_elbo": 88.712345, "epochs": 3})  # {..: 88.7123, "epochs": 3}
    ```
    """
    def value(v):
        if isinstance(v, float):
            return round(v, digits)
        if isinstance(v, list):
            return [value(item) for item in v]
        return v
    return {name: value(v) for name, v in metrics.items()}


def default_run_path(model_config: ModelConfig, training_config: TrainingConfig) -> Path:
    """`runs/DATA-KIND`, e.g. `runs/fashion-mnist-vae` or `runs/my_faces-vae` for a folder."""
    data = training_config.data
    name = Path(data).stem if ("/" in data or os.sep in data or Path(data).suffix) else data
    return Path("runs") / f"{cli_name(name)}-{model_config.kind}"


def saved_run(path: str | os.PathLike) -> tuple[Path, RunDir | None, TrainingConfig]:
    """Where a saved model lives and how it was trained, from a run or model directory.

    Args:
      path: A run directory (complete), its `model/` folder, or a model directory written by
        `tfp_vae.io.save_model` outside a run.

    Returns:
      `(model_dir, run_dir or None, training_config)`.

    Raises:
      FileNotFoundError: If `path` does not exist.
      ValueError: If the run is unfinished or `path` holds no saved model.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a directory written by "
                                "`tfp-vae train`.")
    for candidate in (path, path.parent):
        run = RunDir(candidate)
        if run.exists and (candidate == path or path == run.model_dir):
            run.require_complete()
            return run.model_dir, run, run.training_config
    if (path / CONFIG_FILE).is_file():
        training = read_metadata(path).get("training", {})
        fields = {f.name for f in dataclasses.fields(TrainingConfig)}
        return path, None, TrainingConfig(**{k: v for k, v in training.items() if k in fields})
    raise ValueError(f"{path} holds no saved model (no {CONFIG_FILE} in it or in "
                     f"{path / 'model'}); pass a directory written by `tfp-vae train`.")


def load_test_split(training: TrainingConfig, data_dir: str | os.PathLike | None = None,
                    test_size: int | None = None, offset: int = 0, run: RunDir | None = None,
                    log: Callable[[str], None] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A run's test images (binarized exactly as the run's final metrics saw them).

    Args:
      training: The run's `TrainingConfig`.
      data_dir: Overrides `training.data_dir`. Default: `None`.
      test_size: How many images from `offset`; `None` takes all. Default: `None`.
      offset: Index of the first image. Default: `0`.
      run: The run the images are for; if its recorded data hash differs from the data found
        now, `log` gets a warning. Default: `None`.
      log: Receives warnings, one sentence each. Default: `None`.

    Returns:
      `(images, labels, class_names)`.

    Raises:
      ValueError: If `offset` is beyond the test images (a range running past their end is
        cut short).
    """
    stop = None if test_size is None else offset + test_size

    def splits_until(stop: int | None) -> DataSplits:
        return load_splits(training.data, data_dir or training.data_dir, test_size=stop,
                           binarization=training.binarization, seed=training.seed,
                           image_size=training.image_size)

    try:
        splits = splits_until(stop)
    except ValueError:
        if stop is None:
            raise
        splits = splits_until(None)  # fewer test images than asked for: the range is cut
    changed = run.data_changed(splits.sha256) if run is not None else None
    if changed and log is not None:
        log(changed)
    images, labels = splits.x_test[offset:stop], splits.y_test[offset:stop]
    if len(images) == 0:
        raise ValueError(f"--offset {offset} is beyond the {len(splits.x_test)} test images of "
                         f"{splits.name}; use an offset below {len(splits.x_test)}.")
    return images, labels, splits.class_names
