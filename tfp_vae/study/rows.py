"""The typed rows of the KL study and their CSV files.

Every measurement of `tfp_vae.study` is a frozen dataclass whose attributes are the columns of
one CSV file, in the same order:

- `EstimatorRow` — `estimators.csv` (every part-1 cell) and `theory_1d.csv` (its 1-D block).
- `TrainingRow` — `training.csv` (one end-to-end training run per row).
- `CurveRow` — `training_curves.csv` (one row per run and epoch).
- `LearnablePriorRow` — `learnable_priors.csv` (every Monte Carlo estimator against a mixture or
  flow prior, where no closed form exists).

#### CSV format

A header row with the attribute names, then one line per row. Floats are written with
`repr` (`inf` and `nan` as such), booleans as `True` / `False`, and `None` (an attribute that
does not apply, e.g. the distance of a 1-D cell) as an empty field. `read_rows` reads these
files back into rows; it also reads study folders written by tfp_vae 0.1 (`compare_kl`), whose
curve columns were named `val_*` instead of `validation_*` and which lack the columns added
since (they read as `None`).

#### Examples

```python
rows = read_rows("benchmarks/results/kl_study/estimators.csv", EstimatorRow)
[r.rel_std for r in rows if r.estimator == "mc" and r.num_samples == 1][:3]
```
"""

from __future__ import annotations

import csv
import dataclasses
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["CurveRow", "EstimatorRow", "LearnablePriorRow", "TrainingRow", "read_rows",
           "write_rows"]


@dataclass(frozen=True)
class _GradientAndCost:
    """The last columns of every estimator cell (`EstimatorRow`, `LearnablePriorRow`): gradient
    quality and cost, as `tfp_vae.study.estimators.measure_cell` measures them (documented on
    each row class). A base class placed first among the bases, so these columns come last."""

    grad_loc_var: float
    grad_loc_snr: float
    grad_loc_max_bias_z: float
    grad_loc_max_abs_error: float
    grad_scale_var: float
    grad_scale_snr: float
    grad_scale_max_bias_z: float
    grad_scale_max_abs_error: float
    batch_size: int
    median_ms_per_batch: float
    median_us_per_posterior: float

    def grad_snr(self, parameter: str) -> float:
        """The gradient SNR for `parameter` (`'loc'` or `'scale'`)."""
        return getattr(self, f"grad_{parameter}_snr")


@dataclass(frozen=True)
class _EstimatorColumns:
    """The leading columns of `EstimatorRow` (documented there)."""

    block: str
    setting: str
    posterior: str
    latent_dim: int
    distance: str | None
    mu: float | None
    sigma: float | None
    estimator: str
    num_samples: int
    repetitions: int
    true_kl: float
    min_eigenvalue: float
    variance_finite: bool
    se_reliable: bool
    estimate_mean: float
    bias: float
    bias_se: float
    bias_z: float
    std: float
    std_se: float
    theory_bias: float
    theory_std: float
    rel_bias: float
    rel_std: float
    rmse: float
    rel_rmse: float
    non_finite: int


@dataclass(frozen=True)
class EstimatorRow(_GradientAndCost, _EstimatorColumns):
    """One part-1 cell: an estimator at one sample count on one fixed Gaussian posterior.

    Attributes:
      block: `'grid'` (the latent size × distance × posterior grid) or `'theory_1d'`.
      setting: The posterior's label, e.g. `'diag d=16 far'` or `'1d mu=1 sigma=0.8'`.
      posterior: `'diag'` or `'tril'`.
      latent_dim: Its dimension `d`.
      distance: `'close'`, `'moderate'` or `'far'` (grid), `None` (1-D block).
      mu, sigma: The 1-D posterior's mean and scale; `None` in the grid.
      estimator: The KL estimator's name.
      num_samples: Samples `S` per estimate.
      repetitions: Independent estimates measured.
      true_kl: The closed-form KL.
      min_eigenvalue: The smallest eigenvalue of the posterior covariance.
      variance_finite: Whether the estimator has a finite variance here.
      se_reliable: Whether the standard error of its measured std is meaningful.
      estimate_mean, bias, bias_se, bias_z: The mean estimate, its bias, the bias's standard
        error and the bias in standard errors.
      std, std_se: The measured standard deviation of an estimate and its standard error.
      theory_bias, theory_std: The same from theory (`0` and `√(Var / S)`).
      rel_bias, rel_std, rmse, rel_rmse: Bias, std and RMSE (relative: divided by the KL).
      non_finite: Estimates that were NaN or infinite.
      grad_loc_var, grad_loc_snr, grad_loc_max_bias_z, grad_loc_max_abs_error: The gradient
        with respect to `loc`: mean per-parameter variance, signal-to-noise ratio, largest
        |bias| in standard errors and largest |bias|.
      grad_scale_var, grad_scale_snr, grad_scale_max_bias_z, grad_scale_max_abs_error: The same
        for the scale parameters.
      batch_size: Posteriors evaluated per call.
      median_ms_per_batch, median_us_per_posterior: Median wall time of one call (estimate and
        gradient), per batch and per posterior.
    """


@dataclass(frozen=True)
class TrainingRow:
    """One end-to-end training run of part 2 and its final test metrics.

    Attributes:
      run: The run's name, `posterior/attachment/estimator/S=n` (plus `/seed+k`).
      posterior, kl_attachment, kl_estimator, num_samples: The KL choice trained.
      seed_offset: Added to the study seed for this run (0 for every run but the seed
        reference).
      latent_dim, epochs: The model's latent size and the epochs trained.
      test_negative_elbo, test_negative_elbo_se: Test negative ELBO (analytic KL, one posterior
        sample per image, for every run) and its standard error.
      test_reconstruction, test_kl: Its two parts.
      test_iwae_nll, test_iwae_nll_se: Test IWAE negative log-likelihood and standard error.
      active_units: Latent dimensions whose posterior mean varies across test images.
      final_train_loss: The training loss of the last epoch.
      wall_seconds, seconds_per_epoch: Training time (validation included).
      weights_max_abs_difference: For an add-loss or regularizer run, the largest absolute
        difference between its final weights and those of the loss-function run with the same
        KL estimator, sample count and seed; `None` otherwise.
    """

    run: str
    posterior: str
    kl_attachment: str
    kl_estimator: str
    num_samples: int
    seed_offset: int
    latent_dim: int
    epochs: int
    test_negative_elbo: float
    test_negative_elbo_se: float
    test_reconstruction: float
    test_kl: float
    test_iwae_nll: float
    test_iwae_nll_se: float
    active_units: int
    final_train_loss: float
    wall_seconds: float
    seconds_per_epoch: float
    weights_max_abs_difference: float | None = None

    @property
    def choice(self) -> tuple[str, str, str, int, int]:
        """`(posterior, kl_attachment, kl_estimator, num_samples, seed_offset)`."""
        return (self.posterior, self.kl_attachment, self.kl_estimator, self.num_samples,
                self.seed_offset)


@dataclass(frozen=True)
class CurveRow:
    """One epoch of one training run of part 2 (mean losses in nats per image).

    Attributes:
      run: The run's name (as in `TrainingRow.run`).
      epoch: The epoch, from 1.
      loss, reconstruction_loss, kl_loss: Training negative ELBO (the run's own KL estimator)
        and its two parts.
      validation_loss, validation_reconstruction_loss, validation_kl_loss: The same on the
        validation split; `None` without one.
      seconds: Wall time of the epoch; `None` in studies written by tfp_vae 0.1.
    """

    run: str
    epoch: int
    loss: float
    reconstruction_loss: float
    kl_loss: float
    validation_loss: float | None = None
    validation_reconstruction_loss: float | None = None
    validation_kl_loss: float | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class _LearnablePriorColumns:
    """The leading columns of `LearnablePriorRow` (documented there)."""

    prior: str
    setting: str
    latent_dim: int
    distance: str
    estimator: str
    num_samples: int
    repetitions: int
    reference_kl: float
    reference_se: float
    reference_samples: int
    variance_finite: bool | None
    ratio_second_moment: float | None
    estimate_mean: float
    bias: float
    bias_se: float
    bias_z: float
    std: float
    std_sqrt_s: float
    std_se: float
    rel_std: float
    rmse: float
    non_finite: int


@dataclass(frozen=True)
class LearnablePriorRow(_GradientAndCost, _LearnablePriorColumns):
    """One cell of the learnable-prior part: a Monte Carlo estimator at one sample count, on one
    fixed diagonal Gaussian posterior, against a fixed mixture or flow prior.

    There is no closed-form KL here, so bias and gradients are measured against a high-sample
    reference (the mean of `log q(z) - log p(z)` over `reference_samples` draws `z ~ q`).

    Attributes:
      prior: `'mixture'` or `'flow'` (a `tfp_vae.priors` name).
      setting: The cell's label, e.g. `'mixture d=2 far'`.
      latent_dim: The dimension `d`.
      distance: `'close'`, `'moderate'` or `'far'` (the posterior of part 1's grid).
      estimator: The KL estimator's name.
      num_samples: Samples `S` per estimate.
      repetitions: Independent estimates measured.
      reference_kl, reference_se, reference_samples: The reference KL, its own standard error
        and the samples it averages.
      variance_finite: Whether the estimator has a finite variance here: `False` only for
        `mc_ratio_cv` when some posterior variance is at most half a mixture component's
        variance; `None` (unknown) for `mc_ratio_cv` against the flow prior.
      ratio_second_moment: `E_q[(p/q)²]` in closed form (mixture prior; `inf` where
        infinite), `None` for the flow prior; the same in every row of a setting. Large values
        mean `mc_ratio_cv`'s measured std and bias are carried by rare draws and unreliable.
      estimate_mean, bias, bias_se, bias_z: The mean estimate, its bias against the reference,
        the standard error of that bias (the estimate's and the reference's combined) and the
        bias in standard errors.
      std: The measured std of one estimate.
      std_sqrt_s: `std · √S`, the per-sample spread (constant in `S` for an average of `S`
        independent terms).
      std_se: The standard error of `std`.
      rel_std, rmse: `std / reference_kl` and the RMSE against the reference.
      non_finite: Estimates that were NaN or infinite.
      grad_loc_var, grad_loc_snr, grad_loc_max_bias_z, grad_loc_max_abs_error: The gradient
        with respect to the posterior `loc`: mean per-parameter variance, signal-to-noise ratio
        `‖reference gradient‖ / √(Σ var)`, largest |bias| against the reference gradient in
        standard errors, and largest |bias|.
      grad_scale_var, grad_scale_snr, grad_scale_max_bias_z, grad_scale_max_abs_error: The same
        for the posterior `scale_diag`.
      batch_size: Posteriors evaluated per call.
      median_ms_per_batch, median_us_per_posterior: Median wall time of one call (estimate and
        gradient), per batch and per posterior, timed in the same run.
    """


Row = TypeVar("Row", EstimatorRow, TrainingRow, CurveRow, LearnablePriorRow)
# Column names of study folders written by tfp_vae 0.1.
_OLD_COLUMNS = {"val_loss": "validation_loss",
                "val_reconstruction_loss": "validation_reconstruction_loss",
                "val_kl_loss": "validation_kl_loss"}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_rows(path: str | os.PathLike, rows: Sequence[Any]) -> Path:
    """Writes study rows (instances of one row dataclass) to a CSV file.

    Args:
      path: The CSV file to write (replaced if it exists).
      rows: Instances of `EstimatorRow`, `TrainingRow`, `CurveRow` or `LearnablePriorRow`,
        all of one type.

    Returns:
      The path written.

    Raises:
      ValueError: If `rows` is empty or mixes row types.
    """
    if not rows:
        raise ValueError(f"No rows to write to {path}; skip the file instead.")
    kind = type(rows[0])
    if any(type(row) is not kind for row in rows):
        raise ValueError(f"All rows written to {path} must be {kind.__name__}s.")
    columns = [f.name for f in dataclasses.fields(kind)]
    path = Path(path)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows([_text(getattr(row, name)) for name in columns] for row in rows)
    return path


def _parser(hint: Any):
    optional = type(None) in typing.get_args(hint)
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)

    def parse(text: str) -> Any:
        if text == "" and optional:
            return None
        if base is bool:
            if text not in ("True", "False"):
                raise ValueError(f"expected True or False, got {text!r}")
            return text == "True"
        if base is int:
            return int(float(text))
        return float(text) if base is float else text

    return parse


def read_rows(path: str | os.PathLike, row_type: type[Row]) -> list[Row]:
    """Reads a study CSV file (see the module docstring) back into typed rows.

    Args:
      path: A CSV file written by `write_rows` (or by tfp_vae 0.1's `compare_kl`).
      row_type: `EstimatorRow`, `TrainingRow`, `CurveRow` or `LearnablePriorRow`.

    Returns:
      A list of `row_type` instances, in file order.

    Raises:
      FileNotFoundError: If `path` does not exist.
      ValueError: If a required column is missing or a value does not parse.

    #### Examples

    ```python
    curves = read_rows("kl_study/training_curves.csv", CurveRow)
    ```
    """
    hints = typing.get_type_hints(row_type)
    fields = {f.name: f for f in dataclasses.fields(row_type)}
    parsers = {name: _parser(hints[name]) for name in fields}
    with Path(path).open(newline="") as stream:
        reader = csv.DictReader(stream)
        columns = {_OLD_COLUMNS.get(c, c): c for c in reader.fieldnames or ()}
        missing = [name for name, f in fields.items() if name not in columns
                   and f.default is dataclasses.MISSING]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing} of a {row_type.__name__}; "
                             "is it the right file?")
        rows = []
        for line, record in enumerate(reader, start=2):
            values = {}
            for name in fields:
                if name in columns:
                    try:
                        values[name] = parsers[name](record[columns[name]])
                    except ValueError as error:
                        raise ValueError(f"{path}, line {line}, column {name}: {error}; the "
                                         "file is not a KL-study CSV.") from None
            rows.append(row_type(**values))
    return rows

