"""`train_run`: the one place where a tfp_vae training run happens.

A training run trains a model end to end: data splits, model and optimizer (under a
`tf.distribute` strategy), KL warm-up, per-epoch checkpoints, validation, model selection and
early stopping, final metrics, the saved model and plots, and last the `COMPLETE` marker of its
`RunDir` (see `tfp_vae.rundir` for the layout). The `tfp-vae` command, the notebooks, the
recipes and the KL study all call `train_run`.

What keeps runs from being lost or mixed:

- A run directory is owned by one process at a time: an OS lock (`fcntl.flock`) on the file
  `.DIR.lock` beside it, which the kernel releases when the process dies.
- `overwrite=True` checks everything first, then moves the old run aside and deletes it only
  once the new run has written its first checkpoint; if the new run fails before that, or is
  killed, the old run is restored (at once, or by the next start).
- Readers trust only `COMPLETE`; a run without it is unfinished and can be resumed.
- Resuming falls back to the newest intact checkpoint when `latest` is missing or a checkpoint
  is truncated, and says which one it used. Stale temporary folders of killed writes are removed.
- Resuming with settings that contradict the saved run is refused, naming them; the settings
  that can safely change (epochs, test size, evaluation, logging) are applied.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfp_vae.backend import keras, tf
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.data import (
    DataSplits,
    binarize,
    check_images,
    data_folder,
    is_image_source,
    load_splits,
    make_dataset,
)
from tfp_vae.evaluation import (
    active_units,
    evaluate_elbo,
    evaluate_model,
    iwae_log_likelihood,
    rounded,
)
from tfp_vae.io import (
    NonFiniteLossError,
    NonFiniteLossWatch,
    load_model,
    read_metadata,
    save_checkpoint,
    save_model,
)
from tfp_vae.models import VAE, Autoencoder, build_model
from tfp_vae.networks import get_network
from tfp_vae.plots import write_run_plots
from tfp_vae.rundir import BEST, RUN_FORMAT, RunBusyError, RunDir, RunError
from tfp_vae.summaries import tensorboard_callbacks
from tfp_vae.training import KLWeightScheduler, linear_kl_warmup

__all__ = [
    "RUN_FORMAT",
    "RunBusyError",
    "RunDir",
    "RunError",
    "RunResult",
    "best_validation_epoch",
    "train_run",
]

_TRAIN_EVAL_IMAGES = 10000
_CLUSTER_IMAGES = 5000
_SUMMARY_IMAGES = 500


@dataclass
class RunResult:
    """What `train_run` returns.

    Attributes:
      model: The trained `VAE` or `Autoencoder` (the best validation epoch's weights when the
        run selects by validation loss).
      history: Per-epoch dicts: `epoch`, `loss`, `reconstruction_loss`, `kl_loss`,
        `validation_*` (with a validation split), `seconds`.
      metrics: Final metrics (nats per image unless the name says otherwise).
      run_dir: The `RunDir`, or `None` for an in-memory run.
      plots: Paths of the PNG plots written.
      messages: What the run reported (resume point, fallbacks), one sentence each.
    """

    model: VAE | Autoencoder
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    run_dir: RunDir | None = None
    plots: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


# Training ----------------------------------------------------------------------------------


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _optimizer_fn(training: TrainingConfig, steps_per_epoch: int
                  ) -> Callable[[], keras.optimizers.Optimizer]:
    def make() -> keras.optimizers.Optimizer:
        rate: Any = training.learning_rate
        total = max(1, training.epochs * steps_per_epoch)
        if training.learning_rate_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(
                training.learning_rate, total,
                alpha=training.final_learning_rate / training.learning_rate)
        elif training.learning_rate_schedule == "exponential":
            rate = keras.optimizers.schedules.ExponentialDecay(
                training.learning_rate, total,
                training.final_learning_rate / training.learning_rate)
        elif training.learning_rate_schedule == "burda":
            # 3^i epochs at learning_rate · 10^(-i/7), i = 0..7 (Burda et al. 2016, sec. 5).
            # The rate changes after epochs 1, 4, 13, ..., 1093; the schedule is called with
            # the 0-based step, and a boundary step still gets the rate before it.
            ends = np.cumsum([3 ** i for i in range(7)])
            rate = keras.optimizers.schedules.PiecewiseConstantDecay(
                [int(end) * steps_per_epoch - 1 for end in ends],
                [training.learning_rate * 10 ** (-i / 7) for i in range(8)])
        cls = {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax,
               "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}
        return cls[training.optimizer](rate)

    return make


def _honest_name(name: str) -> str:
    """Keras calls every held-out metric `val_*`; in a run it is the validation split."""
    return "validation_" + name[4:] if name.startswith("val_") else name


def best_validation_epoch(history: Sequence[Mapping[str, float]], warmup_epochs: int = 0
                          ) -> tuple[int, float]:
    """The epoch that model selection picks from a run's history, and its validation loss.

    Only epochs at the final KL weight compete: during a KL warm-up of `warmup_epochs` epochs
    the validation loss is β-weighted, so lower than the negative ELBO it becomes.

    Args:
      history: Sequence of mappings (a run's history rows), each with an `epoch` (1-based)
        and, where the epoch was validated, a `validation_loss`.
      warmup_epochs: Python `int` >= 0, the run's KL warm-up; epochs before epoch
        `warmup_epochs` are not candidates. Default: `0`.

    Returns:
      `(epoch, validation_loss)` of the first epoch with the lowest validation loss, or
      `(0, inf)` where no epoch is a candidate.

    #### Examples

    ```python
    best_validation_epoch([{"epoch": 1, "validation_loss": 80.0},
                           {"epoch": 2, "validation_loss": 93.0}], warmup_epochs=2)  # (2, 93.0)
    ```
    """
    candidates = [row for row in history
                  if "validation_loss" in row and row["epoch"] >= warmup_epochs]
    if not candidates:
        return 0, math.inf
    best = min(candidates, key=lambda row: row["validation_loss"])
    return int(best["epoch"]), float(best["validation_loss"])


class _RunCallback(NonFiniteLossWatch):
    """History rows, NaN stop, per-epoch checkpoint, best-validation weights, early stopping."""

    def __init__(self, run: RunDir | None, history: list[dict[str, float]],
                 training: TrainingConfig, on_first_checkpoint: Callable[[], None],
                 warmup_epochs: int = 0):
        super().__init__()
        self.run = run
        self.history = history
        self.training = training
        self.on_first_checkpoint = on_first_checkpoint
        # During a KL warm-up the validation loss is β-weighted, so lower than the negative
        # ELBO it becomes: only epochs at the final KL weight compete for the best, and
        # early stopping's patience counts from the end of the warm-up.
        self.first_candidate = warmup_epochs  # the first (1-based) epoch that may be selected
        self.best_epoch, self.best_loss = best_validation_epoch(history, warmup_epochs)
        self.best_weights: list[np.ndarray] | None = None
        self.stopped_early = False

    def on_epoch_end(self, epoch, logs=None):
        logs = {_honest_name(name): float(value) for name, value in (logs or {}).items()}
        if self.non_finite is None and not all(np.isfinite(v) for v in logs.values()):
            bad = sorted(name for name, value in logs.items() if not np.isfinite(value))
            self.non_finite = f"{', '.join(bad)} became non-finite in epoch {epoch + 1}"
        if self.non_finite is not None:
            self.model.stop_training = True
            return
        row = {"epoch": epoch + 1, **logs, "seconds": time.perf_counter() - self._start}
        self.history.append(row)
        if self.run is not None:
            save_checkpoint(self.run.checkpoints_dir, self.model, self.model.optimizer,
                            epoch + 1, {"history": self.history})
            self.on_first_checkpoint()
        validation = row.get("validation_loss")
        if (validation is not None and epoch + 1 >= self.first_candidate
                and validation < self.best_loss):
            self.best_loss, self.best_epoch = validation, epoch + 1
            if self.run is not None:
                save_model(self.model, self.run.checkpoints_dir / BEST,
                           metrics={"validation_loss": validation, "epoch": epoch + 1},
                           training=self.training.to_dict())
            else:
                self.best_weights = self.model.get_weights()
        patience = self.training.early_stopping_patience
        if patience is not None and (
                epoch + 1 - max(self.best_epoch, self.first_candidate) >= patience):
            self.stopped_early = True
            self.model.stop_training = True


def _reconcile_best(run: RunDir, progress: _RunCallback, model: VAE | Autoencoder,
                    trained_epochs: int, training: TrainingConfig) -> str | None:
    """Makes a resumed run's `best` checkpoint hold the epoch its history selects.

    They differ when a run was killed between an epoch's checkpoint and the copy of its weights
    as the best (the restored weights are that epoch's, so they are copied now), or when the
    run was started by a tfp_vae that let KL warm-up epochs win (those weights are gone, so
    selection starts again with the next epoch, and this says so).
    """
    best_dir = run.checkpoints_dir / BEST
    try:
        kept = read_metadata(best_dir).get("metrics", {}).get("epoch")
    except ValueError:  # none written yet, or unreadable: rewritten or replaced below
        kept = None
    if progress.best_epoch == 0 or kept == progress.best_epoch:
        return None
    if progress.best_epoch == trained_epochs:
        save_model(model, best_dir, metrics={"validation_loss": progress.best_loss,
                                             "epoch": trained_epochs},
                   training=training.to_dict())
        return None
    lost = progress.best_epoch
    shutil.rmtree(best_dir, ignore_errors=True)
    progress.best_epoch, progress.best_loss = 0, math.inf
    progress.first_candidate = trained_epochs + 1
    return (f"The weights of epoch {lost}, the best validation loss before this resume, were "
            f"not kept (the best checkpoint held epoch {kept}); model selection starts again "
            f"with epoch {trained_epochs + 1}.")


def _final_metrics(model: VAE | Autoencoder, splits: DataSplits, training: TrainingConfig,
                   history: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    train_eval = splits.x_train[:_TRAIN_EVAL_IMAGES]
    if training.binarization != "none":
        train_eval = binarize(train_eval, training.seed, "train")
    parts = [("test_", splits.x_test), ("train_", train_eval)]
    if len(splits.x_validation):
        parts.insert(1, ("validation_", splits.x_validation))
    metrics: dict[str, Any] = {}
    for prefix, images in parts:
        if isinstance(model, VAE):
            result = evaluate_elbo(model, images, seed=training.seed)
        else:
            result = {name: value for name, value in evaluate_model(model, images).items()
                      if name in ("reconstruction", "reconstruction_bits_per_dim",
                                  "num_images")}
        metrics.update({prefix + name: value for name, value in result.items()})
    if isinstance(model, VAE) and training.iwae_samples:
        start = time.perf_counter()
        iwae = iwae_log_likelihood(model, splits.x_test, num_samples=training.iwae_samples,
                                   seed=training.seed)
        metrics.update({f"test_iwae_{name}": value for name, value in iwae.items()
                        if name != "num_images"})
        metrics["test_iwae_seconds"] = time.perf_counter() - start
    metrics["test_active_units"] = active_units(model, splits.x_test)["active_units"]
    metrics["latent_dim"] = model.config.latent_dim
    metrics["epochs"] = len(history)
    metrics["train_seconds"] = float(sum(row.get("seconds", 0.0) for row in history))
    metrics["seconds_per_epoch"] = metrics["train_seconds"] / max(1, len(history))
    metrics = rounded(metrics)
    bad = sorted(name for name, value in metrics.items()
                 if isinstance(value, float) and not math.isfinite(value))
    if bad:
        raise NonFiniteLossError(f"Training finished but {', '.join(bad)} is not finite; the "
                                 "checkpoints are kept.")
    return metrics


def _with_data_folder(training: TrainingConfig) -> TrainingConfig:
    """`training` with `data_dir` made absolute, or set from `$TFP_VAE_DATA_DIR`: the run
    directory records where a built-in dataset was read from."""
    folder = data_folder(training.data, training.data_dir)
    return training if folder is None else training.replace(data_dir=folder)


def _prepare_splits(model_config: ModelConfig, training: TrainingConfig) -> DataSplits:
    splits = load_splits(training.data, training.data_dir, training.validation_size,
                         training.train_size, training.test_size, training.binarization,
                         training.seed, training.image_size)
    shape = tuple(splits.x_train.shape[1:])
    if shape != tuple(model_config.input_shape):
        raise ValueError(f"The {splits.name} images have shape {shape} but the model expects "
                         f"{tuple(model_config.input_shape)}; set ModelConfig.input_shape to "
                         f"{shape}.")
    if (model_config.likelihood != "bernoulli" and training.binarization != "none"
            and is_image_source(training.data)):
        # Your own grey-level or colour images would be turned into 0/1 pixels silently.
        raise ValueError(f"Binarizing {splits.name} ({training.binarization!r}) would train the "
                         f"{model_config.likelihood} likelihood on 0/1 pixels; set "
                         "TrainingConfig.binarization='none' (--binarization none) to model the "
                         "pixel values, or use tfp_vae.config.fitted_configs, which does.")
    if model_config.likelihood == "bernoulli" and training.binarization == "none":
        # Dynamic/fixed binarization makes 0/1 targets; grey levels would be trained on silently.
        check_images(splits.x_train, f"{splits.name} training images", binary=True)
    if len(splits.x_train) < 2:
        raise ValueError(f"train_size {len(splits.x_train)} is too small; train on at least 2 "
                         "images.")
    if training.test_size is not None and training.test_size < 2:
        raise ValueError(f"test_size {training.test_size} is too small for a mean and a "
                         "standard error; use at least 2 test images.")
    return splits


def train_run(run_dir: str | os.PathLike | RunDir | None,
              model_config: ModelConfig | None = None,
              training_config: TrainingConfig | None = None,
              callbacks: Sequence[keras.callbacks.Callback] = (), *,
              resume: bool = False, overwrite: bool = False,
              changes: Mapping[str, Any] | None = None, verbose: int = 0,
              initial_weights: Sequence[np.ndarray] | None = None,
              log: Callable[[str], None] | None = None) -> RunResult:
    """Trains a model end to end: the one place a tfp_vae training run happens.

    Loads the data splits (validation held out of the training set; the test set used only for
    the final metrics), builds the model and optimizer under the configured `tf.distribute`
    strategy, trains with `fit` (KL warm-up, per-epoch checkpoints, NaN stop, validation, model
    selection and early stopping), evaluates (test / validation / train negative ELBO,
    optional test IWAE, active units), and writes history, metrics, the model, plots and
    finally the `COMPLETE` marker.

    Args:
      run_dir: The run directory (created), a `RunDir`, or `None` for an in-memory run that
        writes nothing (no checkpoints, no resume).
      model_config: The model; `None` only when resuming. Default: `None`.
      training_config: How to train; `None` only when resuming. Default: `None`.
      callbacks: Extra Keras callbacks passed to `fit` (after the run's own). Default: `()`.
      resume: Continue the run in `run_dir` from its newest intact checkpoint, with its saved
        configs; a complete run with more `epochs` requested trains on. Default: `False`.
      overwrite: Replace an existing run in `run_dir` (the old run is kept until the new one
        has its first checkpoint). Default: `False`.
      changes: With `resume`, settings to change by field name, e.g. `{"epochs": 10}`; only
        `RESUMABLE_FIELDS` may differ from the saved run. Default: `None`.
      verbose: Keras progress output: 0 silent, 1 progress bar, 2 a line per epoch.
        Default: `0`.
      initial_weights: Start from these weights (`model.get_weights()` of the same
        architecture) instead of a fresh initialisation, e.g. to compare KL attachments from
        identical starting points. Default: `None`.
      log: Called with one sentence per event worth telling (start, resume point, fallbacks).
        Default: `None` (silent).

    Returns:
      A `RunResult` with the trained model, history, metrics, run directory and plot paths.

    Raises:
      ValueError: On bad settings, data or output paths (before anything is trained or any
        earlier run is touched), or a resume that contradicts the saved run.
      FileNotFoundError: If the data cannot be found.
      RunBusyError: If another process is using `run_dir`.
      NonFiniteLossError: If the loss became NaN/Inf (the last good checkpoint is kept).

    #### Examples

    ```python
    result = train_run("runs/demo", ModelConfig(latent_dim=2),
                       TrainingConfig(data="fashion_mnist", epochs=5, data_dir="../shared/data"))
    result.metrics["test_negative_elbo"], result.model.sample(16, seed=0)
    result = train_run("runs/demo", resume=True, changes={"epochs": 10})  # train on
    ```
    """
    say = log or (lambda message: None)
    run = run_dir if isinstance(run_dir, RunDir) or run_dir is None else RunDir(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite contradict each other; pass one.")
    if run is None and resume:
        raise ValueError("An in-memory run (run_dir=None) cannot be resumed.")
    if not resume and (model_config is None or training_config is None):
        raise ValueError("A new run needs both a ModelConfig and a TrainingConfig.")
    if run is None:
        return _train(None, model_config, training_config, callbacks, verbose,
                      initial_weights, say, resume=False, messages=[])
    run.check_writable()
    with run.lock():
        messages = run.recover()
        for message in messages:
            say(message)
        if resume:
            if not run.exists:
                raise ValueError(f"Nothing to resume: {run.path} holds no training run "
                                 f"({run.run_file} is missing).")
            model_config, training_config, applied = run.resume_configs(
                model_config, training_config, changes or {})
            training_config = _with_data_folder(training_config)
            return _train(run, model_config, training_config, callbacks, verbose,
                          initial_weights, say, resume=True, messages=messages,
                          applied=applied)
        run.check_new(overwrite)
        return _train(run, model_config, _with_data_folder(training_config), callbacks, verbose,
                      initial_weights, say, resume=False, messages=messages,
                      replace_existing=run.exists)


def _start_from_saved(source: str, model: VAE | Autoencoder) -> None:
    """Sets `model`'s layers (encoder, decoder, prior) to those of the saved model at `source`
    (a run or model directory); metric states and the KL weight are not model parameters."""
    path = Path(source)
    run = RunDir(path)
    if run.exists:
        run.require_complete()
        path = run.model_dir
    if not path.exists():
        raise ValueError(f"TrainingConfig.init_from={source!r} does not exist; pass a finished "
                         "run directory or its model/ folder.")
    try:
        saved = load_model(path)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"TrainingConfig.init_from={source!r} is not a saved model ({error}); "
                         "pass a finished run directory or its model/ folder.") from None

    def shapes(layers: Sequence[keras.layers.Layer]) -> list[tuple[str, list[tuple]]]:
        return [(layer.name, [w.shape for w in layer.get_weights()]) for layer in layers]

    if shapes(saved.layers) != shapes(model.layers):
        raise ValueError(f"TrainingConfig.init_from={source!r} holds a model whose layers' "
                         "weights do not match the shapes of this model's; start from a model "
                         "with the same network, latent size, posterior, prior and likelihood.")
    for layer, saved_layer in zip(model.layers, saved.layers, strict=True):
        layer.set_weights(saved_layer.get_weights())


def _train(run: RunDir | None, model_config: ModelConfig, training: TrainingConfig,
           callbacks: Sequence[keras.callbacks.Callback], verbose: int,
           initial_weights: Sequence[np.ndarray] | None, say: Callable[[str], None], *,
           resume: bool, messages: list[str], replace_existing: bool = False,
           applied: Sequence[str] = ()) -> RunResult:
    # Everything that can fail on the user's input is checked before an old run is touched.
    splits = _prepare_splits(model_config, training)
    steps_per_epoch = math.ceil(len(splits.x_train) / training.batch_size)
    optimizer_fn = _optimizer_fn(training, steps_per_epoch)
    keras.utils.set_random_seed(training.seed)
    history: list[dict[str, float]] = []
    initial_epoch = 0
    with _strategy(training.strategy).scope():
        if resume:
            model, optimizer, state, restored = run.restore_checkpoint(optimizer_fn)
            initial_epoch = int(state["epoch"])
            # Runs written by tfp_vae 0.1 named the held-out columns `val_*`.
            history = [{_honest_name(name): value for name, value in row.items()}
                       for row in state.get("history", [])]
            messages += restored
            for message in restored:
                say(message)
            say(f"Resuming {run.path} after epoch {initial_epoch} (optimizer step "
                f"{int(optimizer.iterations)}), training until epoch {training.epochs}.")
        else:
            model, optimizer = build_model(model_config), optimizer_fn()
            if initial_weights is not None:
                model.set_weights(list(initial_weights))
            elif training.init_from is not None:
                _start_from_saved(training.init_from, model)
                say(f"Starting from the weights of {training.init_from}.")
        jit = training.jit_compile
        if jit is None:
            # XLA cannot compile FillScaleTriL (tf2xla conversion fails), so a TriL posterior
            # trains without it whatever the network prefers.
            jit = get_network(model_config.network).jit_compile and (
                model_config.posterior != "tril")
        model.compile(optimizer=optimizer, jit_compile=jit)

    aside: Path | None = None
    if run is not None and not resume:
        if replace_existing:
            aside = run.set_aside()
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_configs(model_config, training)
        run.write_data_record(splits.name, splits.sha256)
    elif run is not None:
        # Only now that the data, checkpoint and model passed: records the applied changes
        # (and migrates a tfp_vae 0.1 run.json); a resume that failed leaves run.json as it was.
        run.write_configs(model_config, training)
        messages += applied
        for message in applied:
            say(message)
        changed = run.data_changed(splits.sha256)
        if changed:
            messages.append(changed)
            say(changed)
    if run is not None and run.is_complete:
        run.complete_file.unlink()

    def first_checkpoint_written() -> None:
        nonlocal aside
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
            aside = None

    progress = _RunCallback(run, history, training, first_checkpoint_written,
                            training.warmup_epochs if isinstance(model, VAE) else 0)
    if resume and run is not None:
        repaired = _reconcile_best(run, progress, model, initial_epoch, training)
        if repaired:
            messages.append(repaired)
            say(repaired)
    own: list[keras.callbacks.Callback] = []
    if isinstance(model, VAE):
        own.append(KLWeightScheduler(linear_kl_warmup(training.warmup_epochs,
                                                      model_config.beta)))
    own.append(progress)
    if training.tensorboard_dir:
        # Active units and image summaries on held-out images, never on the test set.
        shown = splits.x_validation[:_SUMMARY_IMAGES]
        if not len(shown):
            shown = splits.x_train[:_SUMMARY_IMAGES]
            if training.binarization != "none":
                shown = binarize(shown, training.seed, "summaries")
        own.extend(tensorboard_callbacks(training.tensorboard_dir, shown,
                                         training.tensorboard_image_every))
    train = make_dataset(splits.x_train, batch_size=training.batch_size,
                         binarization=training.binarization, seed=training.seed)
    validation = (make_dataset(splits.x_validation, batch_size=500, shuffle=False)
                  if len(splits.x_validation) else None)
    try:
        if initial_epoch < training.epochs:
            say(f"Training a {model_config.kind} ({model_config.network} network, latent "
                f"{model_config.latent_dim}, {model_config.posterior} posterior) on "
                f"{len(splits.x_train)} {splits.name} images"
                + (f" ({len(splits.x_validation)} held out for validation)"
                   if validation is not None else "")
                + f", epochs {initial_epoch + 1} to {training.epochs}"
                + (f"; run directory {run.path}." if run is not None else "."))
            model.fit(train, epochs=training.epochs, initial_epoch=initial_epoch,
                      validation_data=validation, callbacks=[*own, *callbacks],
                      verbose=verbose)
    except BaseException:
        if aside is not None:
            shutil.rmtree(run.path, ignore_errors=True)
            os.replace(aside, run.path)
        raise
    if aside is not None:
        # Training ended before its first checkpoint (e.g. a NaN in epoch 1): keep the old run.
        shutil.rmtree(run.path, ignore_errors=True)
        os.replace(aside, run.path)
    if progress.non_finite is not None:
        latest = run.latest_checkpoint() if run is not None else None
        kept = (f"the last good checkpoint ({latest}) is kept" if latest
                else "no epoch completed, so there is no checkpoint")
        hint = ("lower the learning rate" if model_config.likelihood == "bernoulli" else
                "lower the learning rate or use the bernoulli likelihood for binary images")
        raise NonFiniteLossError(f"Training stopped because {progress.non_finite}; {kept}. "
                                 f"Try to {hint}.")
    if progress.stopped_early:
        messages.append(f"Stopped early after epoch {len(history)}: no better validation loss "
                        f"for {training.early_stopping_patience} epochs.")
        say(messages[-1])
    if training.select_best and progress.best_epoch:
        if run is not None and (run.checkpoints_dir / BEST).is_dir():
            model.set_weights(load_model(run.checkpoints_dir / BEST).get_weights())
        elif progress.best_weights is not None:
            model.set_weights(progress.best_weights)
        messages.append(f"Selected the weights of epoch {progress.best_epoch}, the best "
                        f"validation loss ({progress.best_loss:.2f}).")
        say(messages[-1])
    return _finish(run, model, splits, training, history, progress.best_epoch, messages)


def _finish(run: RunDir | None, model: VAE | Autoencoder, splits: DataSplits,
            training: TrainingConfig, history: list[dict[str, float]], best_epoch: int,
            messages: list[str]) -> RunResult:
    if isinstance(model, VAE):
        model.kl_weight.assign(1.0)  # report the true negative ELBO, not the β-weighted loss
    metrics = _final_metrics(model, splits, training, history)
    if best_epoch and training.select_best:
        metrics["selected_epoch"] = best_epoch
    result = RunResult(model, history, metrics, run, [], messages)
    if run is None:
        return result
    run.write_history(history)
    run.write_metrics(metrics)
    save_model(model, run.model_dir, metrics=metrics,
               training={**training.to_dict(), "epochs": len(history)})
    if training.plots:
        result.plots = write_run_plots(model, run.plots_dir, splits.x_test, splits.y_test,
                                       splits.class_names, history)
    run.mark_complete({"epochs": len(history),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return result

