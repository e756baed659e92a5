"""`run_study`: the KL study from settings to report folder, and its one argument parser.

`run_study` measures every estimator of `tfp_vae.kl.KL_ESTIMATORS` in three parts and writes a
report folder (`report.md`, one CSV per measurement, PNG plots):

1. **Estimator level** (`tfp_vae.study.estimators`, no training): bias, spread, gradient
   quality and cost on fixed Gaussian posteriors, next to the closed forms of
   `tfp_vae.study.theory`.
2. **End to end** (`tfp_vae.study.training`): the same VAE trained with every KL choice from the
   same initial weights and batches.
3. **Learnable priors** (`tfp_vae.study.learnable_priors`, no training): every Monte Carlo
   estimator against fixed mixture and flow priors, where no closed form exists, measured
   against a high-sample reference.

`configure_parser` / `run_from_args` serve both `tfp-vae compare-kl` and
`python -m tfp_vae.compare_kl` (also `python -m tfp_vae.study`) through `main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfp_vae.quiet import VERBOSE_FLAG, VERBOSE_HELP
from tfp_vae.study.rows import CurveRow, EstimatorRow, LearnablePriorRow, TrainingRow, write_rows

__all__ = ["KLStudyResult", "StudySettings", "configure_parser", "main", "run_from_args",
           "run_study"]


@dataclass(frozen=True)
class StudySettings:
    """The sizes of one KL study (`StudySettings.quick()` or `StudySettings.full()`).

    Attributes:
      latent_dims: Latent sizes of the estimator grid.
      sample_counts: Sample counts `S`, ascending.
      repetitions: Independent estimates per cell.
      batch_size: Repetitions evaluated per call (at most `repetitions`).
      epochs: Training epochs per run of part 2.
      train_size, validation_size, test_size: Images of part 2's splits (Fashion-MNIST by
        default; the validation split is held out of the training set).
      latent_dim_vae: Latent size of part 2's VAE.
      several_samples: The "several samples" `S` of part 2.
      iwae_samples: Importance samples of the test IWAE bound.
      network: Network preset of part 2's VAE.
      training_batch_size: Batch size of part 2.
      prior_latent_dims: Latent sizes of part 3 (learnable priors).
      prior_reference_samples: Samples of part 3's reference KL per posterior.
    """

    latent_dims: tuple[int, ...] = (2, 16, 64)
    sample_counts: tuple[int, ...] = (1, 4, 16, 64, 256)
    repetitions: int = 4000
    batch_size: int = 100
    epochs: int = 8
    train_size: int = 12000
    validation_size: int = 2000
    test_size: int = 2000
    latent_dim_vae: int = 8
    several_samples: int = 8
    iwae_samples: int = 200
    network: str = "tfp_course"
    training_batch_size: int = 64
    prior_latent_dims: tuple[int, ...] = (2, 16)
    prior_reference_samples: int = 1_000_000

    def __post_init__(self):
        for name in ("latent_dims", "sample_counts", "prior_latent_dims"):
            values = getattr(self, name)
            values = tuple(values) if isinstance(values, (list, tuple)) else values
            if not isinstance(values, tuple) or not values or any(
                    isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be positive integers, got {values!r}; use "
                                 "values of at least 1.")
            object.__setattr__(self, name, tuple(sorted(values)) if name == "sample_counts"
                               else values)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}.")
        object.__setattr__(self, "batch_size", min(self.batch_size, self.repetitions))

    @classmethod
    def quick(cls) -> StudySettings:
        """The small study: about 3 minutes on 2 CPU cores (176 s measured before part 3, which
        adds about 40 s)."""
        return cls(latent_dims=(2, 16), sample_counts=(1, 4, 16, 64), repetitions=1000,
                   epochs=2, train_size=1024, validation_size=256, test_size=256,
                   latent_dim_vae=2, several_samples=4, iwae_samples=16,
                   prior_latent_dims=(2,))

    @classmethod
    def full(cls) -> StudySettings:
        """The full study (17 minutes on 2 CPU cores when part 2 still trained with its own
        loop; not re-measured since it runs `train_run`, nor since part 3 was added, which
        per-call timings put at about 5 more minutes)."""
        return cls()


@dataclass
class KLStudyResult:
    """What `run_study` measured and where it wrote it.

    Attributes:
      output_dir: The report folder.
      report_path: `output_dir / 'report.md'`.
      settings: The `StudySettings` used.
      estimator_rows: Part 1, one `EstimatorRow` per (setting, estimator, sample count); the
        rows of `estimators.csv` (the 1-D block is also `theory_1d.csv`).
      training_rows: Part 2, one `TrainingRow` per run; `training.csv`.
      curve_rows: One `CurveRow` per (run, epoch); `training_curves.csv`.
      prior_rows: Part 3, one `LearnablePriorRow` per (prior, setting, estimator, sample
        count); `learnable_priors.csv`.
      findings: The plain-language findings printed in the report.
      seconds: Wall time of the whole study.
    """

    output_dir: Path
    report_path: Path
    settings: StudySettings
    estimator_rows: list[EstimatorRow] = field(default_factory=list)
    training_rows: list[TrainingRow] = field(default_factory=list)
    curve_rows: list[CurveRow] = field(default_factory=list)
    prior_rows: list[LearnablePriorRow] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_study(output_dir: str | Path = "kl_study", quick: bool = False, seed: int = 0,
              latent_dims: Sequence[int] | None = None,
              sample_counts: Sequence[int] | None = None, repetitions: int | None = None,
              epochs: int | None = None, train_size: int | None = None,
              skip_training: bool = False, skip_priors: bool = False,
              dataset: str = "fashion_mnist",
              data_dir: str | Path | None = None,
              log: Callable[[str], None] | None = print) -> KLStudyResult:
    """Runs the KL-estimator study and writes its report folder.

    Args:
      output_dir: Folder for `report.md`, the CSVs and the PNGs (created if missing).
        Default: `'kl_study'`.
      quick: Python `bool`, the small study (`StudySettings.quick()`: latent sizes 2 and 16, S up
        to 64, 1000 repetitions, 8 short training runs on 1024 images, learnable priors in 2-D).
        Default: `False`.
      seed: Python `int` seeding the posteriors, the samples, the data and the models; the same
        seed gives the same numbers (timings aside). Default: `0`.
      latent_dims: Latent sizes of the estimator grid. Default: `None` (mode's choice).
      sample_counts: Sample counts `S`. Default: `None` (mode's choice).
      repetitions: Independent repetitions per cell. Default: `None` (mode's choice).
      epochs: Training epochs per run in part 2. Default: `None` (mode's choice).
      train_size: Training images in part 2. Default: `None` (mode's choice).
      skip_training: Python `bool`, skip part 2 (training). Default: `False`.
      skip_priors: Python `bool`, skip part 3 (learnable priors). Default: `False`.
      dataset: `'fashion_mnist'` or `'mnist'` (dashes accepted). Default: `'fashion_mnist'`.
      data_dir: Folder with the IDX files; `None` uses `$TFP_VAE_DATA_DIR` or the Keras
        download. Default: `None`.
      log: Callable receiving progress lines, or `None` for silence. Default: `print`.

    Returns:
      A `KLStudyResult`.

    Raises:
      ValueError: If a size or count is not a positive integer, the dataset is unknown, or
        `output_dir` is (or lies inside) a file.
      FileNotFoundError: If the dataset files are missing from `data_dir` (or cannot be
        downloaded); checked before part 1 starts, unless `skip_training`.

    #### Examples

    ```python
    result = run_study("kl_study", quick=True)
    [r.rel_std for r in result.estimator_rows if r.estimator == "mc"][0]
    ```
    """
    overrides = {name: value for name, value in (
        ("latent_dims", latent_dims), ("sample_counts", sample_counts),
        ("repetitions", repetitions), ("epochs", epochs), ("train_size", train_size))
        if value is not None}
    settings = dataclasses.replace(StudySettings.quick() if quick else StudySettings.full(),
                                   **overrides)
    from tfp_vae.config import ModelConfig, TrainingConfig
    from tfp_vae.data import load_dataset
    from tfp_vae.study import plots, report
    from tfp_vae.study.estimators import estimator_study
    from tfp_vae.study.learnable_priors import learnable_prior_study
    from tfp_vae.study.training import training_specs, training_study

    training_config = None
    if not skip_training:  # checks the data settings before the long part 1
        training_config = TrainingConfig(
            data=dataset, data_dir=None if data_dir is None else str(data_dir),
            binarization="fixed", epochs=settings.epochs,
            batch_size=settings.training_batch_size, seed=seed,
            train_size=settings.train_size, validation_size=settings.validation_size,
            test_size=settings.test_size, select_best=False,
            iwae_samples=settings.iwae_samples, plots=False)
        # A missing dataset (or a failed download) stops the study now, not after part 1;
        # Keras caches a download, so part 2 reads the same files again.
        load_dataset(dataset, data_dir)
    log = log or (lambda _: None)
    start = time.perf_counter()

    def say(message: str) -> None:
        log(f"{time.perf_counter() - start:6.1f}s {message}")

    out = Path(output_dir)
    _make_output_dir(out)
    say(f"KL study ({'quick' if quick else 'full'}, seed {seed}) -> {out}")
    est = estimator_study(settings.latent_dims, settings.sample_counts, settings.repetitions,
                          settings.batch_size, seed, say)
    write_rows(out / "estimators.csv", est)
    write_rows(out / "theory_1d.csv", [r for r in est if r.block == "theory_1d"])
    plots.plot_relative_std(est, out / "relative_std.png")
    plots.plot_gradient_snr(est, out / "gradient_snr.png")
    training: list[TrainingRow] = []
    curves: list[CurveRow] = []
    if training_config is not None:
        model_config = ModelConfig(latent_dim=settings.latent_dim_vae, network=settings.network)
        training, curves = training_study(
            training_specs(settings.several_samples, quick), model_config, training_config, say)
        write_rows(out / "training.csv", training)
        write_rows(out / "training_curves.csv", curves)
        plots.plot_training_curves(curves, out / "training_curves.png")
    prior_rows: list[LearnablePriorRow] = []
    if not skip_priors:
        prior_rows = learnable_prior_study(
            settings.prior_latent_dims, settings.sample_counts, settings.repetitions,
            settings.batch_size, settings.prior_reference_samples, seed, say)
        write_rows(out / "learnable_priors.csv", prior_rows)
        plots.plot_learnable_priors(prior_rows, out / "learnable_priors.png")
    findings = report.findings(est, training, curves, prior_rows)
    seconds = time.perf_counter() - start
    path = report.write_report(out, settings, est, training, curves, findings, seconds, seed,
                               quick, prior_rows)
    say(f"report written to {path}")
    return KLStudyResult(out, path, settings, est, training, curves, prior_rows, findings,
                         seconds)


def _make_output_dir(out: Path) -> None:
    """Creates the report folder, refusing a path that is (or lies inside) a file."""
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == out else f"is inside the file {path}"
            raise ValueError(f"--out {out} {where}; choose a folder for the report.")
    out.mkdir(parents=True, exist_ok=True)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the study's options to `parser` (used by `tfp-vae compare-kl` and `main`).

    Args:
      parser: An `argparse.ArgumentParser` (or sub-parser).

    Returns:
      The same parser.
    """
    parser.add_argument("--out", default="kl_study", help="report folder (default: kl_study)")
    parser.add_argument("--quick", action="store_true",
                        help="small study, about 4 minutes on 2 CPU cores")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--latent-dims", type=int, nargs="+", default=None,
                        help="latent sizes of the estimator grid (default: 2 16 64; quick 2 16)")
    parser.add_argument("--samples", type=int, nargs="+", default=None,
                        help="sample counts (default: 1 4 16 64 256; quick 1 4 16 64)")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="repetitions per cell (default: 4000; quick 1000)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs per run (default: 8; quick 2)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (default: 12000; quick 1024)")
    parser.add_argument("--skip-training", action="store_true", help="skip part 2 (training)")
    parser.add_argument("--skip-priors", action="store_true",
                        help="skip part 3 (Monte Carlo KL against learnable priors)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--data-dir", default=None,
                        help="folder with the gzipped IDX files (default: $TFP_VAE_DATA_DIR, "
                             "else the Keras download)")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Runs the study from parsed arguments (see `configure_parser`); returns the exit status.

    Args:
      args: The parsed `argparse.Namespace`.

    Returns:
      `0` on success.

    Raises:
      ValueError: If an option is invalid.
      FileNotFoundError: If the dataset files are missing.
    """
    result = run_study(args.out, quick=args.quick, seed=args.seed, latent_dims=args.latent_dims,
                       sample_counts=args.samples, repetitions=args.repetitions,
                       epochs=args.epochs, train_size=args.train_size,
                       skip_training=args.skip_training, skip_priors=args.skip_priors,
                       dataset=args.dataset,
                       data_dir=args.data_dir)
    print(f"KL study finished in {result.seconds:.0f} s; report: {result.report_path}")
    return 0


class _OneSentenceParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (not the usage block), status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`).\n")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tfp_vae.compare_kl`: parse arguments, run the study, return the exit status.

    Args:
      argv: Command-line arguments without the program name; `None` uses `sys.argv[1:]`.
        Default: `None`.

    Returns:
      `0` on success, `2` on invalid options or missing data (one sentence on stderr), `1` on a
      runtime failure (one sentence on stderr).
    """
    parser = configure_parser(_OneSentenceParser(
        prog="python -m tfp_vae.compare_kl",
        description="Compare analytic and Monte Carlo KL estimators: estimator-level bias, "
                    "variance, gradient SNR and cost, and end-to-end VAE training."))
    # Read by the entry points before TensorFlow loads (`tfp_vae.quiet`); listed for --help.
    parser.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # the parser has printed its one sentence (or --help)
        return int(exit_.code or 0)
    try:
        return run_from_args(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"compare-kl: error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:
        print(f"compare-kl: error: {error}", file=sys.stderr)
        return 1
