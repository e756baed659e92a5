"""Reading a finished run: its saved model and settings, its test images, its report.

A run or model directory written by `tfp_vae.runs.train_run` (or `tfp_vae.io.save_model`) is
read here: `saved_run` finds the model and how it was trained, `load_test_split` gives the test
images exactly as the run's final metrics saw them, and `evaluate_saved`, `sample_saved`,
`reconstruct_saved` and `plot_saved` are what `tfp-vae evaluate`, `sample`, `reconstruct` and
`plot` do. `rounded` and `summary` format metrics for a report; `default_run_path` names where
a run goes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tfp_vae.config import ModelConfig, TrainingConfig, cli_name
from tfp_vae.data import DataSplits, load_splits
from tfp_vae.evaluation import evaluate_model, rounded
from tfp_vae.io import CONFIG_FILE, load_model, read_metadata
from tfp_vae.models import VAE, Autoencoder
from tfp_vae.plots import plot_reconstructions, plot_samples, write_run_plots
from tfp_vae.rundir import RunDir

__all__ = ["SavedRun", "default_run_path", "evaluate_saved", "load_test_split", "plot_saved",
           "reconstruct_saved", "rounded", "sample_saved", "saved_run", "summary"]

Log = Callable[[str], None]


def summary(metrics: Mapping[str, Any], run: RunDir | None = None,
            plots: Sequence[Path] = ()) -> str:
    """A run's test results, and what it wrote, in a few sentences (`tfp-vae train` prints it).

    Args:
      metrics: The run's final metrics (`RunResult.metrics`, or `RunDir.metrics()`).
      run: Its run directory, to name the files written; `None` names none. Default: `None`.
      plots: The plots written. Default: `()`.

    Returns:
      One sentence per line: the test negative ELBO (an autoencoder's reconstruction NLL), the
      IWAE log-likelihood if it was measured, and the run's files.

    #### Examples

    ```python
    print(summary(RunDir("runs/fashion-mnist-vae").metrics()))
    ```
    """
    if "test_negative_elbo" in metrics:
        lines = [f"Test negative ELBO: {metrics['test_negative_elbo']:.2f} nats per image "
                 f"({metrics['test_negative_elbo_bits_per_dim']:.4f} bits/dim; reconstruction "
                 f"{metrics['test_reconstruction']:.2f} + KL {metrics['test_kl']:.2f}), "
                 f"{metrics['test_active_units']} of {metrics['latent_dim']} latent units "
                 "active."]
        if "test_iwae_log_likelihood" in metrics:
            lines.append(f"Test IWAE log-likelihood (k = {metrics['test_iwae_num_samples']}): "
                         f"{metrics['test_iwae_log_likelihood']:.2f} ± "
                         f"{metrics['test_iwae_log_likelihood_standard_error']:.2f} nats.")
    else:
        lines = [f"Test reconstruction NLL: {metrics['test_reconstruction']:.2f} nats per "
                 "image."]
    if run is not None:
        names = ", ".join(path.name for path in plots)
        lines.append(f"Wrote {run.metrics_file}, {run.history_file}, the model in "
                     f"{run.model_dir} and {len(plots)} plots in {run.plots_dir}"
                     + (f": {names}." if names else "."))
    return "\n".join(lines)


def default_run_path(model_config: ModelConfig, training_config: TrainingConfig,
                     name: str | None = None) -> Path:
    """`runs/DATA-KIND`, e.g. `runs/fashion-mnist-vae` or `runs/my_faces-vae` for a folder.

    Args:
      model_config: The run's model.
      training_config: How it is trained (its data source names the run).
      name: A name for the run instead, e.g. a recipe's: `runs/NAME`. Default: `None`.

    Returns:
      The run directory's `Path`, relative to the working directory.
    """
    if name:
        return Path("runs") / name
    data = training_config.data
    name = Path(data).stem if ("/" in data or os.sep in data or Path(data).suffix) else data
    return Path("runs") / f"{cli_name(name)}-{model_config.kind}"


class SavedRun(NamedTuple):
    """A saved model and how it was trained (see `saved_run`); unpacks as a 3-tuple.

    Attributes:
      model_dir: The model directory.
      run: Its `RunDir`, or `None` for a model saved outside a run.
      training: The `TrainingConfig` it was trained with.
    """

    model_dir: Path
    run: RunDir | None
    training: TrainingConfig

    @property
    def plots_dir(self) -> Path:
        """Where its plots go: the run's `plots/`, else a `plots/` beside the model."""
        return self.run.plots_dir if self.run else self.model_dir.parent / "plots"

    def load_model(self) -> VAE | Autoencoder:
        """The saved model (see `tfp_vae.io.load_model`)."""
        return load_model(self.model_dir)

    def test_split(self, data_dir: str | os.PathLike | None = None, test_size: int | None = None,
                   offset: int = 0, log: Log | None = None
                   ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Its test images as its final metrics saw them (see `load_test_split`).

        Args:
          data_dir: Overrides the run's data folder. Default: `None`.
          test_size: How many images from `offset`; `None` takes the run's `test_size`.
            Default: `None`.
          offset: Index of the first image. Default: `0`.
          log: Receives warnings, one sentence each. Default: `None`.

        Returns:
          `(images, labels, class_names)`.
        """
        size = self.training.test_size if test_size is None else test_size
        return load_test_split(self.training, data_dir, size, offset, self.run, log)

    def validation_split(self, data_dir: str | os.PathLike | None = None) -> np.ndarray:
        """Its validation images as its model selection saw them (binarized once, as in
        `tfp_vae.data.load_splits`): what to compare runs on without the test set.

        Args:
          data_dir: Overrides the run's data folder. Default: `None`.

        Returns:
          The images, `[validation_size, height, width, channels]`.

        Raises:
          ValueError: If it was trained without a validation split.
        """
        if not self.training.validation_size:
            raise ValueError(f"{self.model_dir} was trained without a validation split "
                             "(--validation-size 0); evaluate it on the test split instead.")
        training = self.training
        return load_splits(training.data, data_dir or training.data_dir,
                           validation_size=training.validation_size, test_size=1,
                           binarization=training.binarization, seed=training.seed,
                           image_size=training.image_size).x_validation


def saved_run(path: str | os.PathLike) -> SavedRun:
    """Where a saved model lives and how it was trained, from a run or model directory.

    Args:
      path: A run directory (complete), its `model/` folder, or a model directory written by
        `tfp_vae.io.save_model` outside a run.

    Returns:
      A `SavedRun` `(model_dir, run_dir or None, training_config)`.

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
            return SavedRun(run.model_dir, run, run.training_config)
    if (path / CONFIG_FILE).is_file():
        training = read_metadata(path).get("training", {})
        fields = {f.name for f in dataclasses.fields(TrainingConfig)}
        return SavedRun(path, None,
                        TrainingConfig(**{k: v for k, v in training.items() if k in fields}))
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


def evaluate_saved(path: str | os.PathLike, num_samples: int = 100, seed: int = 0,
                   data_dir: str | os.PathLike | None = None, test_size: int | None = None,
                   log: Log | None = None, split: str = "test") -> dict[str, Any]:
    """Evaluates a saved model on its run's test images: the report of `tfp-vae evaluate`.

    Args:
      path: A run or model directory (see `saved_run`).
      num_samples: Importance samples per image for the IWAE bound (`0` skips it; an
        autoencoder has none). Default: `100`.
      seed: Seed of the evaluation's samples. Default: `0`.
      data_dir: Overrides the run's data folder. Default: `None`.
      test_size: Use the first N test images; `None` uses the run's. Default: `None`.
      log: Receives warnings (e.g. the data changed since training). Default: `None`.
      split: `'test'`, or `'validation'`: the run's validation images, to compare or select
        runs without looking at the test set (`test_size` must then be `None`).
        Default: `'test'`.

    Returns:
      A JSON-ready dict: `model`, `dataset`, `split`, the rounded metrics of
      `tfp_vae.evaluation.evaluate_model`, and `seconds`.

    Raises:
      ValueError, FileNotFoundError: As `saved_run` and `load_test_split`; a `'validation'`
        split of a run trained without one, or with `test_size`.

    #### Examples

    ```python
    evaluate_saved("runs/fashion-mnist-vae", num_samples=1000)["iwae_log_likelihood"]
    ```
    """
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}.")
    if split == "validation" and test_size is not None:
        raise ValueError("--test-size applies to the test split only; drop it with "
                         "--split validation.")
    saved = saved_run(path)
    model = saved.load_model()
    if split == "validation":
        images = saved.validation_split(data_dir)
    else:
        images, _, _ = saved.test_split(data_dir, test_size, log=log)
    start = time.perf_counter()
    result = evaluate_model(model, images, seed=seed,
                            iwae_samples=num_samples if isinstance(model, VAE) else 0)
    return {"model": str(saved.model_dir), "dataset": saved.training.data, "split": split,
            **rounded(result), "seconds": round(time.perf_counter() - start, 1)}


def sample_saved(path: str | os.PathLike, output: str | os.PathLike | None = None,
                 num_images: int = 64, columns: int = 8, seed: int = 0) -> Path:
    """Writes a PNG grid of images decoded from a saved VAE's prior (`tfp-vae sample`).

    Args:
      path: A run or model directory (see `saved_run`).
      output: The PNG file; `None` writes `samples.png` in its plots folder. Default: `None`.
      num_images: How many images. Default: `64`.
      columns: Images per row. Default: `8`.
      seed: Seed of the prior samples. Default: `0`.

    Returns:
      The PNG's `Path`.

    Raises:
      ValueError: If the model is an autoencoder (it has no prior), or as `saved_run`.
    """
    saved = saved_run(path)
    model = saved.load_model()
    if not isinstance(model, VAE):
        raise ValueError(f"{saved.model_dir} holds an autoencoder, which has no prior to sample "
                         "from; train a VAE.")
    return plot_samples(model, output or saved.plots_dir / "samples.png", num_samples=num_images,
                        seed=seed, columns=columns)


def reconstruct_saved(path: str | os.PathLike, output: str | os.PathLike | None = None,
                      num_images: int = 10, offset: int = 0,
                      data_dir: str | os.PathLike | None = None, log: Log | None = None
                      ) -> tuple[Path, int]:
    """Writes a PNG of test images above their reconstructions (`tfp-vae reconstruct`).

    Args:
      path: A run or model directory (see `saved_run`).
      output: The PNG file; `None` writes `reconstructions.png` in its plots folder.
        Default: `None`.
      num_images: How many test images. Default: `10`.
      offset: Index of the first. Default: `0`.
      data_dir: Overrides the run's data folder. Default: `None`.
      log: Receives warnings. Default: `None`.

    Returns:
      `(png_path, images_shown)`; fewer images than asked for when the test set ends.

    Raises:
      ValueError: If `offset` is beyond the test images, or as `saved_run`.
    """
    saved = saved_run(path)
    model = saved.load_model()
    images, _, _ = saved.test_split(data_dir, num_images, offset=offset, log=log)
    written = plot_reconstructions(model, images,
                                   output or saved.plots_dir / "reconstructions.png",
                                   num_images=num_images)
    return written, len(images)


def plot_saved(path: str | os.PathLike, output_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None, test_size: int | None = None,
               log: Log | None = None) -> list[Path]:
    """Writes every plot of a saved run again (`tfp-vae plot`; see `write_run_plots`).

    Args:
      path: A run or model directory (see `saved_run`).
      output_dir: Folder for the PNGs; `None` uses its plots folder. Default: `None`.
      data_dir: Overrides the run's data folder. Default: `None`.
      test_size: Use the first N test images; `None` uses the run's. Default: `None`.
      log: Receives warnings. Default: `None`.

    Returns:
      The PNG paths (training curves only for a run with a `history.csv`).
    """
    saved = saved_run(path)
    model = saved.load_model()
    images, labels, class_names = saved.test_split(data_dir, test_size, log=log)
    return write_run_plots(model, output_dir or saved.plots_dir, images, labels,
                           class_names, saved.run.history() if saved.run else None)
