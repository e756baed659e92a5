"""Part 2 of the KL study: the same VAE trained end to end with every KL choice.

Every run is a `tfp_vae.runs.train_run` in memory. Runs of one posterior type start from
**the same initial weights** (drawn once from the study seed) and, with the same
`TrainingConfig.seed`, see the same batches in the same order and the same random stream, so the
KL estimator and its attachment (loss function, add-loss layer, activity regularizer) are the
only differences. Where an add-loss or regularizer run has a loss-function twin (same
estimator, sample count and seed), the largest absolute difference of their final weights is
recorded: attachments that compute the same loss give the same model up to float round-off.

One more run, the baseline with `seed + 1` (other initial weights, other batches), shows how far
a different random start moves the result, the scale against which differences between
estimators can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tfp_vae.backend import keras
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.models import build_model
from tfp_vae.runs import train_run
from tfp_vae.study.rows import CurveRow, TrainingRow

__all__ = ["TrainingSpec", "training_specs", "training_study"]


@dataclass(frozen=True)
class TrainingSpec:
    """One KL choice trained in part 2.

    Attributes:
      posterior: `'diag'` or `'tril'`.
      kl_attachment: `'loss'`, `'add_loss'` or `'regularizer'`.
      kl_estimator: A KL estimator's name.
      num_samples: Posterior samples per example (reconstruction and a Monte Carlo KL).
      seed_offset: Added to the study seed. Default: `0`.
    """

    posterior: str
    kl_attachment: str
    kl_estimator: str
    num_samples: int
    seed_offset: int = 0

    @property
    def run(self) -> str:
        """The run's name, e.g. `'diag/loss/mc/S=1'` (plus `'/seed+1'`)."""
        name = f"{self.posterior}/{self.kl_attachment}/{self.kl_estimator}/S={self.num_samples}"
        return name + (f"/seed+{self.seed_offset}" if self.seed_offset else "")


def training_specs(several_samples: int, quick: bool) -> list[TrainingSpec]:
    """The KL choices of part 2, the seed reference run last.

    Args:
      several_samples: The "several samples" count `S`.
      quick: Python `bool`, the 7 core choices only (else 14).

    Returns:
      A list of `TrainingSpec`; the first is the baseline (diag, loss, analytic, S=1) and the
      last the baseline with `seed_offset=1`.
    """
    choices = [
        ("diag", "loss", "analytic", 1), ("diag", "loss", "mc", 1),
        ("diag", "loss", "mc", several_samples), ("diag", "add_loss", "analytic", 1),
        ("diag", "regularizer", "analytic", 1), ("tril", "loss", "analytic", 1),
        ("tril", "loss", "mc", 1),
    ]
    if not quick:
        choices += [
            ("diag", "loss", "analytic", several_samples), ("diag", "loss", "mc_entropy", 1),
            ("diag", "loss", "mc_stl", 1), ("diag", "add_loss", "mc", 1),
            ("diag", "regularizer", "mc", 1), ("tril", "regularizer", "analytic", 1),
            ("tril", "loss", "mc", several_samples),
        ]
    specs = [TrainingSpec(*choice) for choice in choices]
    return [*specs, TrainingSpec(*choices[0], seed_offset=1)]


def _initial_weights(model_config: ModelConfig, seed: int) -> list[np.ndarray]:
    keras.utils.set_random_seed(seed)
    return build_model(model_config).get_weights()


def _max_abs_difference(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> float:
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second, strict=True))


def training_study(specs: Sequence[TrainingSpec], model_config: ModelConfig,
                   training_config: TrainingConfig,
                   log: Callable[[str], None] = lambda _: None
                   ) -> tuple[list[TrainingRow], list[CurveRow]]:
    """Trains one in-memory run per spec and collects its metrics and per-epoch curves.

    Args:
      specs: The KL choices (see `training_specs`).
      model_config: The model shared by every run; each spec sets its posterior, KL attachment,
        KL estimator and sample count.
      training_config: How every run trains; each spec adds its `seed_offset` to the seed.
        `iwae_samples` must be positive (the rows report a test IWAE bound).
      log: Called with one line per finished run. Default: silent.

    Returns:
      `(training rows, curve rows)`, in the order of `specs`.

    Raises:
      ValueError: If `training_config.iwae_samples` is 0, or as `train_run`.
      FileNotFoundError: If the dataset files are missing.
    """
    if training_config.iwae_samples < 1:
        raise ValueError("The KL study reports a test IWAE bound; set "
                         "TrainingConfig.iwae_samples to a positive count.")
    rows: list[TrainingRow] = []
    curves: list[CurveRow] = []
    starts: dict[tuple[str, int], list[np.ndarray]] = {}
    finals: dict[tuple, list[np.ndarray]] = {}
    for spec in specs:
        config = model_config.replace(posterior=spec.posterior,
                                      kl_attachment=spec.kl_attachment,
                                      kl_estimator=spec.kl_estimator,
                                      num_samples=spec.num_samples)
        training = training_config.replace(seed=training_config.seed + spec.seed_offset)
        key = (spec.posterior, spec.seed_offset)
        if key not in starts:
            starts[key] = _initial_weights(config.replace(kl_attachment="loss"), training.seed)
        result = train_run(None, config, training, initial_weights=starts[key])
        # Trainable weights only: the model's weights also hold its loss trackers' running sums.
        weights = [w.numpy() for w in result.model.trainable_weights]
        twin = (spec.posterior, spec.kl_estimator, spec.num_samples, spec.seed_offset)
        difference = None
        if spec.kl_attachment == "loss":
            finals[twin] = weights
        elif twin in finals:
            difference = _max_abs_difference(weights, finals[twin])
        m = result.metrics
        rows.append(TrainingRow(
            run=spec.run, posterior=spec.posterior, kl_attachment=spec.kl_attachment,
            kl_estimator=spec.kl_estimator, num_samples=spec.num_samples,
            seed_offset=spec.seed_offset, latent_dim=config.latent_dim,
            epochs=len(result.history), test_negative_elbo=m["test_negative_elbo"],
            test_negative_elbo_se=m["test_negative_elbo_standard_error"],
            test_reconstruction=m["test_reconstruction"], test_kl=m["test_kl"],
            test_iwae_nll=-m["test_iwae_log_likelihood"],
            test_iwae_nll_se=m["test_iwae_log_likelihood_standard_error"],
            active_units=m["test_active_units"], final_train_loss=result.history[-1]["loss"],
            wall_seconds=m["train_seconds"], seconds_per_epoch=m["seconds_per_epoch"],
            weights_max_abs_difference=difference))
        curves += [CurveRow(run=spec.run, epoch=int(h["epoch"]), loss=h["loss"],
                            reconstruction_loss=h["reconstruction_loss"], kl_loss=h["kl_loss"],
                            validation_loss=h.get("validation_loss"),
                            validation_reconstruction_loss=h.get(
                                "validation_reconstruction_loss"),
                            validation_kl_loss=h.get("validation_kl_loss"),
                            seconds=h.get("seconds")) for h in result.history]
        log(f"[part 2] {spec.run}: test -ELBO {rows[-1].test_negative_elbo:.2f}, "
            f"IWAE NLL {rows[-1].test_iwae_nll:.2f}, KL {rows[-1].test_kl:.2f}, "
            f"active {rows[-1].active_units}, {rows[-1].wall_seconds:.1f}s"
            + ("" if difference is None else f", max |Δw| vs loss fn {difference:.2g}"))
    return rows, curves
