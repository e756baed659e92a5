"""The `tfp-vae` command. Thin: it parses arguments, calls the library and prints.

Subcommands: `train` (`tfp_vae.runs.train_run`, which writes a run directory; see
`tfp_vae.runs` for its layout), `evaluate`, `sample`, `reconstruct` and `plot` (read one), and
`compare-kl` (the KL-estimator study).

Exit statuses: 0 success, 2 bad arguments or input the user must fix, 1 a runtime failure,
3 training stopped on a non-finite loss.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_FORMATTER = argparse.RawDescriptionHelpFormatter

_TRAIN_EXAMPLES = """examples:
  tfp-vae train                                  # default VAE, 2 epochs on Fashion-MNIST
  tfp-vae train --dataset mnist --latent-dim 16 --posterior tril --kl-attachment regularizer
  tfp-vae train --dataset mnist --network mlp --latent-dim 50 --validation-size 10000
  tfp-vae train --kl-estimator mc --kl-samples 4 --beta 2 --warmup-epochs 3 --epochs 10
  tfp-vae train --data-dir ../shared/data --train-size 5000 --epochs 1 --out runs/quick
  tfp-vae train --out runs/quick --resume --epochs 3   # continue a run (killed or finished)
"""
_EVALUATE_EXAMPLES = """examples:
  tfp-vae evaluate runs/fashion-mnist-vae                   # ELBO and active units
  tfp-vae evaluate runs/fashion-mnist-vae --samples 1000 --test-size 1000
  tfp-vae evaluate runs/quick/model --samples 100 --output runs/quick/evaluation.json
"""
_SAMPLE_EXAMPLES = """examples:
  tfp-vae sample runs/fashion-mnist-vae                     # DIR/plots/samples.png
  tfp-vae sample runs/fashion-mnist-vae --num 100 --columns 10 --seed 3 --output samples.png
"""
_RECONSTRUCT_EXAMPLES = """examples:
  tfp-vae reconstruct runs/fashion-mnist-vae                # DIR/plots/reconstructions.png
  tfp-vae reconstruct runs/fashion-mnist-vae --num 16 --offset 100 --output recon.png
"""
_PLOT_EXAMPLES = """examples:
  tfp-vae plot runs/fashion-mnist-vae                       # all plots into DIR/plots/
  tfp-vae plot runs/fashion-mnist-vae --output-dir figures --test-size 2000
"""


class _Parser(argparse.ArgumentParser):
    """argparse that prints one clear sentence and exits with status 2 on bad arguments."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`).\n")


def _int_at_least(minimum: int, description: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite non-negative number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="folder with the gzipped IDX files (default: the run's, else "
                             "$TFP_VAE_DATA_DIR, else the Keras download)")
    parser.add_argument("--test-size", type=_positive_int, default=None,
                        help="use only the first N test images (quick runs; default: the run's)")


def _add_run_command(commands, name: str, help_text: str, description: str, examples: str):
    command = commands.add_parser(name, help=help_text, description=description,
                                  epilog=examples, formatter_class=_FORMATTER)
    command.add_argument("dir", metavar="DIR",
                         help="a run directory from `tfp-vae train --out DIR`, or its model/ "
                              "folder")
    return command


# Flags of `train` that set a config field: flag -> (config, field, argparse options).
# Defaults are the configs' own (shown in --help); a flag not given keeps the saved value when
# resuming.
def _train_flags() -> dict[str, tuple[str, str, dict[str, Any]]]:
    from tfp_vae.config import (
        DTYPE_POLICIES,
        KL_ATTACHMENTS,
        LEARNING_RATE_SCHEDULES,
        OPTIMIZERS,
        STRATEGIES,
        cli_name,
    )
    from tfp_vae.data import BINARIZATIONS, DATASETS
    from tfp_vae.heads import LIKELIHOODS, POSTERIORS
    from tfp_vae.kl import KL_ESTIMATORS
    from tfp_vae.losses import GRADIENT_ESTIMATORS, OBJECTIVES
    from tfp_vae.networks import NETWORKS
    from tfp_vae.priors import PRIORS

    def choices(names):
        # Either spelling is accepted (`mixed_bfloat16`, `mixed-bfloat16`); help shows dashes.
        return {"choices": [cli_name(n) for n in names], "type": cli_name}

    positive, non_negative = {"type": _positive_int}, {"type": _non_negative_int}
    return {
        "data": ("training", "data", {"metavar": "SOURCE", "aliases": ["--dataset"], "help":
                 f"a built-in dataset ({', '.join(cli_name(n) for n in DATASETS)}) or your own "
                 "images: a folder of PNG/JPEG files (class sub-folders become labels) or a "
                 ".npy / .npz file; own images get a fitting likelihood unless --likelihood "
                 "is given"}),
        "image-size": ("training", "image_size", {"type": _positive_int, "nargs": 2,
                       "metavar": ("HEIGHT", "WIDTH"), "help": "resize a folder's images"}),
        "data-dir": ("training", "data_dir", {"metavar": "DIR", "help": "folder with the "
                     "gzipped IDX files (default: $TFP_VAE_DATA_DIR, else the Keras download)"}),
        "model": ("model", "kind", {"choices": ["vae", "autoencoder"]}),
        "latent-dim": ("model", "latent_dim", positive),
        "network": ("model", "network", choices(NETWORKS)),
        "posterior": ("model", "posterior", choices(POSTERIORS)),
        "posterior-flow": ("model", "posterior_flow", {**non_negative, "help": "layers of an "
                           "inverse autoregressive flow after the posterior (0: none; needs "
                           "--kl-estimator mc or mc-ratio-cv)"}),
        "prior": ("model", "prior", {**choices(PRIORS), "help": "gaussian is N(0, I); the "
                  "learnable mixture, vamp and flow priors need a Monte Carlo --kl-estimator"}),
        "likelihood": ("model", "likelihood", choices(LIKELIHOODS)),
        "kl-attachment": ("model", "kl_attachment", choices(KL_ATTACHMENTS)),
        "kl-estimator": ("model", "kl_estimator", choices(KL_ESTIMATORS)),
        "kl-samples": ("model", "num_samples", {**positive, "help": "posterior samples per "
                       "example (Monte Carlo KL and reconstruction; the k of --objective iwae)"}),
        "objective": ("model", "objective", {**choices(OBJECTIVES), "help": "what training "
                      "minimises: the negative ELBO or the negative IWAE bound with k = "
                      "--kl-samples (the ELBO is still reported)"}),
        "gradient-estimator": ("model", "gradient_estimator", {
            **choices(GRADIENT_ESTIMATORS), "help": "the IWAE bound's encoder gradient "
            "(doubly-reparameterized: DReG)"}),
        "beta": ("model", "beta", {"type": _non_negative_float}),
        "dtype-policy": ("model", "dtype_policy", {**choices(DTYPE_POLICIES), "help":
                         "network compute precision; distributions and losses stay float32"}),
        "epochs": ("training", "epochs", {**positive, "help": "total epochs (with --resume: "
                   "train until this many are done)"}),
        "batch-size": ("training", "batch_size", {**positive, "help": "the global batch"}),
        "optimizer": ("training", "optimizer", choices(OPTIMIZERS)),
        "learning-rate": ("training", "learning_rate", {"type": _positive_float}),
        "learning-rate-schedule": ("training", "learning_rate_schedule",
                                   choices(LEARNING_RATE_SCHEDULES)),
        "final-learning-rate": ("training", "final_learning_rate", {
            "type": _positive_float, "help": "where a cosine/exponential schedule ends"}),
        "seed": ("training", "seed", {"type": int}),
        "binarization": ("training", "binarization", {**choices(BINARIZATIONS), "help":
                         "training images: dynamic (resampled each epoch), fixed (seeded) or "
                         "none (grey levels); validation and test images are binarized once, "
                         "with the seed, unless none"}),
        "train-size": ("training", "train_size", {**positive, "help": "use only the first N "
                       "training images (quick runs)"}),
        "validation-size": ("training", "validation_size", {**non_negative, "help": "hold out "
                            "the last N training images for validation, early stopping and "
                            "model selection"}),
        "test-size": ("training", "test_size", {**positive, "help": "evaluate on the first N "
                      "test images only (quick runs)"}),
        "warmup-epochs": ("training", "warmup_epochs", {**non_negative, "help": "epochs of "
                          "linear KL warm-up to --beta"}),
        "strategy": ("training", "strategy", {**choices(STRATEGIES), "help": "tf.distribute "
                     "strategy: default (one device), mirrored (all local devices), "
                     "multi-worker (MultiWorkerMirroredStrategy, from TF_CONFIG)"}),
        "early-stopping-patience": ("training", "early_stopping_patience", {
            **positive, "help": "stop after N epochs without a better validation loss"}),
        "tensorboard": ("training", "tensorboard_dir", {"metavar": "DIR", "help": "write "
                        "TensorBoard logs to DIR (view: tensorboard --logdir DIR)"}),
        "tensorboard-image-every": ("training", "tensorboard_image_every", {
            **positive, "metavar": "N", "help": "TensorBoard image summaries every N epochs"}),
        "iwae-samples": ("training", "iwae_samples", {**non_negative, "help": "importance "
                         "samples for the final test IWAE log-likelihood (0 skips it)"}),
    }


def _add_train_command(commands) -> None:
    from tfp_vae.config import ModelConfig, TrainingConfig, cli_name

    train = commands.add_parser(
        "train", help="train a VAE; write the model, metrics, history and plots to --out",
        description="Train a VAE (or autoencoder) on MNIST / Fashion-MNIST, checkpointing every "
                    "epoch, then write the saved model, metrics.json (test and train negative "
                    "ELBO in nats, reconstruction, KL, active units, wall time), history.csv and "
                    "PNG plots to --out DIR.",
        epilog=_TRAIN_EXAMPLES, formatter_class=_FORMATTER)
    defaults = {"model": ModelConfig(), "training": TrainingConfig()}
    for flag, (config, name, options) in _train_flags().items():
        default = getattr(defaults[config], name)
        shown = cli_name(default) if isinstance(default, str) else default
        help_text = options.pop("help", None)
        options["help"] = (f"{help_text} " if help_text else "") + f"(default: {shown})"
        train.add_argument(f"--{flag}", *options.pop("aliases", ()), dest=f"{config}.{name}",
                           default=argparse.SUPPRESS, **options)
    train.add_argument("--no-plots", dest="training.plots", action="store_false",
                       default=argparse.SUPPRESS, help="skip the PNG plots")
    train.add_argument("--recipe", default=None, metavar="NAME",
                       help="start from a shipped recipe (tfp_vae/recipes/NAME.json, e.g. "
                            "burda-mlp-elbo); other flags override its settings")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="run directory (default: runs/DATASET-MODEL)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last intact checkpoint, with "
                            "its saved settings and optimizer state")
    train.add_argument("--overwrite", action="store_true",
                       help="start over in an --out that already holds a run (the old run is "
                            "kept until the new one has its first checkpoint)")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                       help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfp-vae", description="Variational autoencoders with TFP layers.",
                     epilog="Run `tfp-vae COMMAND --help` for each command's options and "
                            "examples.")
    parser.add_argument("--verbose", action="store_true", dest="tensorflow_logs",
                        help="show TensorFlow's own start-up and C++ log lines (hidden by "
                             "default); give it before COMMAND")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_train_command(commands)

    evaluate = _add_run_command(
        commands, "evaluate", "test negative ELBO, IWAE log-likelihood and active units (JSON)",
        "Evaluate a saved model on the test set of the dataset it was trained on: negative ELBO "
        "in nats and bits/dim split into reconstruction and KL, the importance-weighted (IWAE) "
        "log-likelihood bound with --samples K, and active units. Prints JSON.",
        _EVALUATE_EXAMPLES)
    _add_data_arguments(evaluate)
    evaluate.add_argument("--samples", type=_non_negative_int, default=100,
                          help="importance samples per image for the IWAE bound, up to 5000 "
                               "(0 skips it; default: 100)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--output", default=None, metavar="FILE",
                          help="also write the JSON to FILE")

    sample = _add_run_command(
        commands, "sample", "write a PNG grid of images generated from the prior",
        "Decode latent samples from the prior of a saved VAE into a PNG grid of pixel means.",
        _SAMPLE_EXAMPLES)
    sample.add_argument("--num", type=_positive_int, default=64, help="number of images")
    sample.add_argument("--columns", type=_positive_int, default=8)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--output", default=None, metavar="PNG",
                        help="output file (default: DIR/plots/samples.png)")

    reconstruct = _add_run_command(
        commands, "reconstruct", "write a PNG of test images above their reconstructions",
        "Reconstruct test images with a saved model: inputs in the top row, reconstructions "
        "(pixel means of p(x|z) at the posterior mean) below.", _RECONSTRUCT_EXAMPLES)
    reconstruct.add_argument("--data-dir", default=None,
                             help="folder with the gzipped IDX files (default: the run's, else "
                                  "$TFP_VAE_DATA_DIR, else the Keras download)")
    reconstruct.add_argument("--num", type=_positive_int, default=10, help="number of images")
    reconstruct.add_argument("--offset", type=_non_negative_int, default=0,
                             help="index of the first test image")
    reconstruct.add_argument("--output", default=None, metavar="PNG",
                             help="output file (default: DIR/plots/reconstructions.png)")

    plot = _add_run_command(
        commands, "plot", "regenerate every plot of a run from its saved model",
        "Write the latent grid, label clusters, reconstructions, prior samples and (if the run "
        "has history.csv) training curves as PNG files.", _PLOT_EXAMPLES)
    _add_data_arguments(plot)
    plot.add_argument("--output-dir", default=None, metavar="DIR",
                      help="where to write the PNGs (default: DIR/plots)")
    compare = commands.add_parser(
        "compare-kl", help="compare analytic and Monte Carlo KL estimators (report + plots)",
        description="The KL-estimator study: estimator-level bias, standard deviation, gradient "
                    "SNR and cost against closed forms, then end-to-end VAE training with each "
                    "KL choice; writes report.md, CSV files and PNG plots to --out.",
        epilog="examples:\n  tfp-vae compare-kl --quick --out runs/kl-quick   # about 4 minutes\n"
               "  tfp-vae compare-kl --out runs/kl-study              # the full study\n"
               "  tfp-vae compare-kl --skip-training --skip-priors --latent-dims 2 16 "
               "--samples 1 16   # part 1 only\n",
        formatter_class=_FORMATTER)
    from tfp_vae.compare_kl import configure_parser

    configure_parser(compare)
    return parser


def _print(*parts: Any) -> None:
    print(*parts, flush=True)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    from tfp_vae.config import ModelConfig, TrainingConfig
    from tfp_vae.data import source_defaults
    from tfp_vae.finished_runs import default_run_path
    from tfp_vae.models import VAE
    from tfp_vae.recipes import load_recipe
    from tfp_vae.runs import train_run

    given: dict[str, dict[str, Any]] = {"model": {}, "training": {}}
    for key, value in vars(args).items():
        if "." in key:
            config, name = key.split(".")
            given[config][name] = value
    training_given = given["training"]
    if args.resume:
        out = Path(args.out or "runs/fashion-mnist-vae")
        result = train_run(out, resume=True, overwrite=args.overwrite,
                           changes={**given["model"], **training_given},
                           verbose=args.verbose, log=_print)
    elif args.recipe:
        recipe = load_recipe(args.recipe)
        training = recipe.training.replace(**training_given)
        model = recipe.model.replace(**given["model"])
        out = Path(args.out) if args.out else Path("runs") / recipe.name
        _print(f"Recipe {recipe.name}: {recipe.description}")
        result = train_run(out, model, training, overwrite=args.overwrite, verbose=args.verbose,
                           log=_print)
    else:
        training = TrainingConfig(**training_given)
        fitting = source_defaults(training.data, training.data_dir, training.image_size)
        if "binarization" in fitting and "binarization" not in training_given:
            training = training.replace(binarization=fitting.pop("binarization"))
        fitting.pop("binarization", None)
        model = ModelConfig(**{**fitting, **given["model"]})
        out = Path(args.out) if args.out else default_run_path(model, training)
        result = train_run(out, model, training, overwrite=args.overwrite, verbose=args.verbose,
                           log=_print)
    metrics, run = result.metrics, result.run_dir
    if isinstance(result.model, VAE):
        _print(f"Test negative ELBO: {metrics['test_negative_elbo']:.2f} nats per image "
               f"({metrics['test_negative_elbo_bits_per_dim']:.4f} bits/dim; reconstruction "
               f"{metrics['test_reconstruction']:.2f} + KL {metrics['test_kl']:.2f}), "
               f"{metrics['test_active_units']} of {metrics['latent_dim']} latent units active.")
        if "test_iwae_log_likelihood" in metrics:
            _print(f"Test IWAE log-likelihood (k = {metrics['test_iwae_num_samples']}): "
                   f"{metrics['test_iwae_log_likelihood']:.2f} ± "
                   f"{metrics['test_iwae_log_likelihood_standard_error']:.2f} nats.")
    else:
        _print(f"Test reconstruction NLL: {metrics['test_reconstruction']:.2f} nats per image.")
    _print(f"Wrote {run.metrics_file}, {run.history_file}, the model in {run.model_dir} "
           f"and {len(result.plots)} plots in {run.plots_dir}"
           + (": " + ", ".join(p.name for p in result.plots) if result.plots else "") + ".")
    _print(json.dumps(metrics, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tfp_vae.evaluation import evaluate_model
    from tfp_vae.finished_runs import load_test_split, rounded, saved_run
    from tfp_vae.io import load_model

    if args.samples > 5000:
        raise ValueError(f"--samples must be at most 5000, got {args.samples}.")
    model_dir, run, training = saved_run(args.dir)
    model = load_model(model_dir)
    x_test, _, _ = load_test_split(training, args.data_dir, args.test_size or training.test_size,
                                   run=run, log=_warn)
    start = time.perf_counter()
    result = evaluate_model(model, x_test, iwae_samples=args.samples if
                            model.config.kind == "vae" else 0, seed=args.seed)
    report = {"model": str(model_dir), "dataset": training.data,
              **rounded(result), "seconds": round(time.perf_counter() - start, 1)}
    text = json.dumps(report, indent=2)
    _print(text)
    if args.output:
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(text + "\n")
        except OSError as error:
            raise OSError(f"Cannot write {args.output} ({error.strerror}); the report above is "
                          "complete, rerun with a writable --output to save it.") from None
    return 0


def _sample(args: argparse.Namespace) -> int:
    from tfp_vae.finished_runs import saved_run
    from tfp_vae.io import load_model
    from tfp_vae.models import VAE
    from tfp_vae.plots import plot_samples

    model_dir, run, _ = saved_run(args.dir)
    model = load_model(model_dir)
    if not isinstance(model, VAE):
        raise ValueError(f"{model_dir} holds an autoencoder, which has no prior to sample "
                         "from; train a VAE.")
    default = (run.plots_dir if run else model_dir.parent / "plots") / "samples.png"
    path = plot_samples(model, args.output or default, num_samples=args.num, seed=args.seed,
                        columns=args.columns)
    _print(f"Wrote {args.num} prior samples (seed {args.seed}) to {path}.")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from tfp_vae.finished_runs import load_test_split, saved_run
    from tfp_vae.io import load_model
    from tfp_vae.plots import plot_reconstructions

    model_dir, run, training = saved_run(args.dir)
    model = load_model(model_dir)
    x_test, _, _ = load_test_split(training, args.data_dir, args.num, offset=args.offset,
                                   run=run, log=_warn)
    default = (run.plots_dir if run else model_dir.parent / "plots") / "reconstructions.png"
    path = plot_reconstructions(model, x_test, args.output or default, num_images=args.num)
    _print(f"Wrote {len(x_test)} test images (from index {args.offset}) and their "
           f"reconstructions to {path}.")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from tfp_vae.finished_runs import load_test_split, saved_run
    from tfp_vae.io import load_model
    from tfp_vae.plots import write_run_plots

    model_dir, run, training = saved_run(args.dir)
    model = load_model(model_dir)
    x_test, y_test, class_names = load_test_split(training, args.data_dir,
                                                  args.test_size or training.test_size,
                                                  run=run, log=_warn)
    out_dir = Path(args.output_dir) if args.output_dir else (
        run.plots_dir if run else model_dir.parent / "plots")
    plots = write_run_plots(model, out_dir, x_test, y_test, class_names,
                            run.history() if run else None)
    _print(f"Wrote {len(plots)} plots to {out_dir}: " + ", ".join(p.name for p in plots) + ".")
    return 0


def _compare_kl(args: argparse.Namespace) -> int:
    from tfp_vae.compare_kl import run_from_args

    return run_from_args(args)


_COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample,
             "reconstruct": _reconstruct, "plot": _plot, "compare-kl": _compare_kl}


def exit_status(error: BaseException) -> int:
    """The documented exit status for an exception that ends a command.

    3 for a non-finite loss, 2 for input the user must fix (bad values, missing or corrupt
    files, an output path that is checked before the work, such as `train --out`), 1 for
    everything else (runtime failures, a busy run directory, an output file that could not be
    written after the work, whose result was already printed).
    """
    from tfp_vae.io import NonFiniteLossError

    if isinstance(error, NonFiniteLossError):
        return 3
    if isinstance(error, (ValueError, TypeError, FileNotFoundError)):
        return 2
    return 1


def _import_tensorflow_quietly() -> None:
    """Loads TensorFlow without its C++ start-up lines (oneDNN, CUDA probing, absl).

    `TF_CPP_MIN_LOG_LEVEL` alone does not silence them in TF 2.16+ (they are written before
    absl's logging is initialised), so standard error is pointed at /dev/null while TensorFlow
    loads and probes its devices. A user who set `TF_CPP_MIN_LOG_LEVEL` gets TensorFlow as is.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tfp-vae`; returns the exit status.

    Args:
      argv: Command-line arguments without the program name. Default: `None` (`sys.argv[1:]`).

    Returns:
      `0` on success, `2` on bad arguments or input the user must fix, `1` on a runtime
      failure explained in one sentence on stderr, `3` when training stopped on a non-finite
      loss.

    #### Examples

    ```python
    main(["train", "--network", "tfp-course", "--train-size", "2000", "--out", "runs/quick"])
    main(["evaluate", "runs/quick", "--samples", "100"])
    ```
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--verbose"]:
        argv = argv[1:]
    else:
        _import_tensorflow_quietly()
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"tfp-vae {args.command}: error: {message}", file=sys.stderr)
        return exit_status(error)


if __name__ == "__main__":
    sys.exit(main())
