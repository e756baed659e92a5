"""The `tfp-vae` command. Thin: it parses arguments and calls the library.

Subcommands: `train` (writes a run directory), `evaluate`, `sample`, `reconstruct` and `plot`
(read one). A run directory `DIR` written by `tfp-vae train --out DIR` holds:

    DIR/run.json           the training settings (used by --resume)
    DIR/checkpoints/       one atomic checkpoint per completed epoch, and `latest`
    DIR/model/             the saved model (config.json, weights.h5, metadata.json)
    DIR/metrics.json       final train/test negative ELBO, reconstruction, KL, active units, time
    DIR/history.csv        per-epoch train and test losses
    DIR/plots/*.png        latent grid, label clusters, reconstructions, samples, curves
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_FORMATTER = argparse.RawDescriptionHelpFormatter
_RUN_FILE = "run.json"
_TRAIN_EVAL_IMAGES = 10000
_CLUSTER_IMAGES = 5000
# Settings that `--resume` may change; every other one comes from the run's run.json.
_RESUMABLE = ("epochs", "verbose", "out", "resume", "overwrite", "data_dir", "command",
              "strategy")

_TRAIN_EXAMPLES = """examples:
  tfp-vae train                                  # default VAE, 2 epochs on Fashion-MNIST
  tfp-vae train --dataset mnist --latent-dim 16 --posterior tril --kl-attachment regularizer
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


class _CommandError(Exception):
    """A user-facing failure: printed as one sentence, exit status `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


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
                        help="folder with the gzipped IDX files (default: $TFP_VAE_DATA_DIR, "
                             "else the Keras download)")
    parser.add_argument("--test-size", type=_positive_int, default=None,
                        help="use only the first N test images (quick runs; default: all)")


def _add_run_command(commands, name: str, help_text: str, description: str, examples: str):
    command = commands.add_parser(name, help=help_text, description=description,
                                  epilog=examples, formatter_class=_FORMATTER)
    command.add_argument("dir", metavar="DIR",
                         help="a run directory from `tfp-vae train --out DIR`, or its model/ "
                              "folder")
    return command


def _build_parser() -> argparse.ArgumentParser:
    from tfp_vae.config import KL_ATTACHMENTS
    from tfp_vae.heads import LIKELIHOODS, POSTERIORS
    from tfp_vae.kl import KL_ESTIMATORS
    from tfp_vae.networks import NETWORKS

    parser = _Parser(prog="tfp-vae", description="Variational autoencoders with TFP layers.",
                     epilog="Run `tfp-vae COMMAND --help` for each command's options and "
                            "examples.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    train = commands.add_parser(
        "train", help="train a VAE; write the model, metrics, history and plots to --out",
        description="Train a VAE (or autoencoder) on MNIST / Fashion-MNIST, checkpointing every "
                    "epoch, then write the saved model, metrics.json (test and train negative "
                    "ELBO in nats, reconstruction, KL, active units, wall time), history.csv and "
                    "PNG plots to --out DIR.",
        epilog=_TRAIN_EXAMPLES, formatter_class=_FORMATTER)
    train.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    _add_data_arguments(train)
    train.add_argument("--model", default="vae", choices=["vae", "autoencoder"])
    train.add_argument("--latent-dim", type=_positive_int, default=2)
    train.add_argument("--network", default="conv", choices=sorted(NETWORKS))
    train.add_argument("--posterior", default="diag", choices=sorted(POSTERIORS))
    train.add_argument("--likelihood", default="bernoulli", choices=sorted(LIKELIHOODS))
    train.add_argument("--kl-attachment", default="loss-fn",
                       choices=[a.replace("_", "-") if a != "loss" else "loss-fn"
                                for a in KL_ATTACHMENTS])
    train.add_argument("--kl-estimator", default="analytic",
                       choices=[e.replace("_", "-") for e in KL_ESTIMATORS])
    train.add_argument("--kl-samples", type=_positive_int, default=1,
                       help="posterior samples per example (Monte Carlo KL and reconstruction)")
    train.add_argument("--beta", type=_non_negative_float, default=1.0)
    train.add_argument("--warmup-epochs", type=_non_negative_int, default=0,
                       help="epochs of linear KL warm-up to --beta (default: 0)")
    train.add_argument("--epochs", type=_positive_int, default=2,
                       help="total epochs (with --resume: train until this many are done)")
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--binarization", default="dynamic", choices=["dynamic", "fixed", "none"],
                       help="training images: dynamic (resampled each epoch), fixed (seeded) or "
                            "none (grey levels); the test set is binarized once, with the seed, "
                            "unless none")
    train.add_argument("--train-size", type=_positive_int, default=None,
                       help="use only the first N training images (quick runs)")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="run directory (default: runs/DATASET-MODEL)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last completed epoch, with its "
                            "saved settings and optimizer state")
    train.add_argument("--overwrite", action="store_true",
                       help="start over in an --out that already holds a run")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                       help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch")
    train.add_argument("--dtype-policy", default="float32",
                       choices=["float32", "mixed_bfloat16"],
                       help="network compute precision; distributions and losses stay float32 "
                            "(default: float32)")
    train.add_argument("--strategy", default="default",
                       choices=["default", "mirrored", "multi-worker"],
                       help="tf.distribute strategy: default (one device), mirrored (all local "
                            "devices), multi-worker (MultiWorkerMirroredStrategy, from TF_CONFIG)"
                            "; --batch-size is the global batch")

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
                             help="folder with the gzipped IDX files (default: "
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
        epilog="examples:\n  tfp-vae compare-kl --quick --out runs/kl-quick   # under 2 minutes\n"
               "  tfp-vae compare-kl --out runs/kl-study              # the full study\n"
               "  tfp-vae compare-kl --skip-training --latent-dims 2 16 --samples 1 16 256\n",
        formatter_class=_FORMATTER)
    from tfp_vae.compare_kl import configure_parser

    configure_parser(compare)
    return parser


def _print(*parts: Any) -> None:
    print(*parts, flush=True)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _rounded(metrics: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    def value(v):
        if isinstance(v, float):
            return round(v, digits)
        if isinstance(v, list):
            return [value(item) for item in v]
        return v
    return {name: value(v) for name, v in metrics.items()}


def _model_and_run_dir(path: str) -> tuple[Path, Path]:
    """(saved model directory, run directory) for a DIR argument."""
    from tfp_vae.io import CONFIG_FILE

    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        run = path.parent if (path.parent / _RUN_FILE).is_file() else path
        return path, run
    if (path / "model" / CONFIG_FILE).is_file():
        return path / "model", path
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    raise _CommandError(f"{path} holds no saved model (no {CONFIG_FILE} in it or in "
                        f"{path / 'model'}); pass a directory written by `tfp-vae train`.")


def _test_split(training: dict[str, Any], data_dir: str | None, test_size: int | None,
                offset: int = 0):
    """The test images (binarized as in training), labels and class names of a run."""
    import numpy as np

    from tfp_vae.data import load_dataset, make_dataset

    data = load_dataset(training.get("dataset", "fashion-mnist"), data_dir)
    stop = None if test_size is None else offset + test_size
    x, y = data.x_test, data.y_test
    binarization = training.get("binarization", "dynamic")
    if binarization != "none":
        # The whole test set is binarized once, with the run's seed + 1, exactly as in training.
        x = np.concatenate(list(make_dataset(
            x, batch_size=len(x), shuffle=False, binarization="fixed",
            seed=int(training.get("seed", 0)) + 1).as_numpy_iterator()))
    x, y = x[offset:stop], y[offset:stop]
    if len(x) == 0:
        raise _CommandError(f"No test images in the range starting at {offset}.")
    return x, y, data.class_names


def _write_plots(model, run_dir: Path, out_dir: Path, x_test, y_test, class_names) -> list[Path]:
    from tfp_vae.models import VAE
    from tfp_vae.plots import (
        plot_label_clusters,
        plot_latent_grid,
        plot_reconstructions,
        plot_samples,
        plot_training_curves,
        read_history,
    )

    written = [
        plot_label_clusters(model, x_test[:_CLUSTER_IMAGES], y_test[:_CLUSTER_IMAGES],
                            out_dir / "label_clusters.png", class_names),
        plot_reconstructions(model, x_test, out_dir / "reconstructions.png"),
    ]
    if isinstance(model, VAE):
        written.append(plot_latent_grid(model, out_dir / "latent_grid.png"))
        written.append(plot_samples(model, out_dir / "samples.png"))
    history = run_dir / "history.csv"
    if history.is_file():
        written.append(plot_training_curves(read_history(history),
                                            out_dir / "training_curves.png"))
    return written


def _train_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {name: value for name, value in vars(args).items() if name not in _RESUMABLE}


def _model_config(settings: dict[str, Any], input_shape):
    from tfp_vae.config import ModelConfig

    return ModelConfig(
        kind=settings["model"], input_shape=input_shape, latent_dim=settings["latent_dim"],
        network=settings["network"], posterior=settings["posterior"],
        likelihood=settings["likelihood"],
        kl_attachment="loss" if settings["kl_attachment"] == "loss-fn"
        else settings["kl_attachment"].replace("-", "_"),
        kl_estimator=settings["kl_estimator"].replace("-", "_"),
        num_samples=settings["kl_samples"], beta=settings["beta"],
        dtype_policy=settings.get("dtype_policy", "float32"))


def _strategy(name: str):
    from tfp_vae.backend import tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _prepare_run_dir(args: argparse.Namespace) -> Path:
    out = Path(args.out or f"runs/{args.dataset}-{args.model}")
    run_file = out / _RUN_FILE
    if args.resume and args.overwrite:
        raise _CommandError("--resume and --overwrite contradict each other; pass one.", 2)
    if args.resume:
        if not run_file.is_file():
            raise _CommandError(f"Nothing to resume: {out} holds no training run ({run_file} is "
                                "missing).")
        return out
    if out.exists() and any(out.iterdir()):
        if not run_file.is_file():
            raise _CommandError(f"{out} is a non-empty directory that is not a tfp-vae run; "
                                "choose another --out.")
        if not args.overwrite:
            raise _CommandError(f"{out} already holds a training run; pass --resume to continue "
                                "it or --overwrite to start over.")
        for name in ("checkpoints", "model", "plots"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (_RUN_FILE, "metrics.json", "history.csv"):
            (out / name).unlink(missing_ok=True)
    return out


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    first = ["epoch", "loss", "reconstruction_loss", "kl_loss"]
    first += ["val_" + name for name in first[1:]]
    found = list(dict.fromkeys(name for row in history for name in row))
    names = [name for name in first if name in found] + [n for n in found if n not in first]
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=names)
        writer.writeheader()
        for row in history:
            writer.writerow({name: row.get(name, "") for name in names})


def _train_callbacks(settings: dict[str, Any], checkpoint) -> list:
    """The callbacks of `train`, in order: KL schedule, then checkpoint + NaN stop."""
    from tfp_vae.training import KLWeightScheduler, linear_kl_warmup

    callbacks = []
    if settings["model"] == "vae":
        callbacks.append(KLWeightScheduler(linear_kl_warmup(settings["warmup_epochs"],
                                                            settings["beta"])))
    return [*callbacks, checkpoint]


def _train(args: argparse.Namespace) -> int:
    import numpy as np

    from tfp_vae.backend import keras
    from tfp_vae.data import load_dataset, make_dataset
    from tfp_vae.evaluation import active_units, evaluate_elbo, evaluate_model
    from tfp_vae.io import (
        EpochCheckpoint,
        latest_checkpoint,
        load_checkpoint,
        save_model,
    )
    from tfp_vae.models import VAE, build_model

    out = _prepare_run_dir(args)
    checkpoints = out / "checkpoints"
    if args.resume:
        settings = json.loads((out / _RUN_FILE).read_text())
    else:
        settings = _train_settings(args)
    keras.utils.set_random_seed(settings["seed"])
    data = load_dataset(settings["dataset"], args.data_dir)
    x_train, y_train = data.x_train, data.y_train
    if settings["train_size"] is not None:
        x_train, y_train = x_train[: settings["train_size"]], y_train[: settings["train_size"]]
    x_test, y_test, class_names = _test_split(settings, args.data_dir, settings["test_size"])

    def optimizer():
        return keras.optimizers.Adam(settings["learning_rate"])

    history: list[dict[str, float]] = []
    initial_epoch = 0
    # Variables (model and optimizer) must be created under the strategy's scope.
    with _strategy(args.strategy).scope():
        if args.resume:
            latest = latest_checkpoint(checkpoints)
            if latest is None:
                raise _CommandError(f"Nothing to resume: {checkpoints} has no completed epoch "
                                    "yet; start the run again with --overwrite.")
            model, opt, state = load_checkpoint(latest, optimizer)
            initial_epoch, history = int(state["epoch"]), list(state.get("history", []))
            _print(f"Resuming {out} after epoch {initial_epoch} (optimizer step "
                   f"{int(opt.iterations)}), training until epoch {args.epochs}.")
        else:
            model, opt = build_model(_model_config(settings, x_train.shape[1:])), optimizer()
            out.mkdir(parents=True, exist_ok=True)
            _write_json(out / _RUN_FILE, settings)
        model.compile(optimizer=opt)
    train = make_dataset(x_train, batch_size=settings["batch_size"],
                         binarization=settings["binarization"], seed=settings["seed"])
    test = make_dataset(x_test, batch_size=500, shuffle=False)
    checkpoint = EpochCheckpoint(checkpoints, initial_epoch, history)
    if initial_epoch < args.epochs:
        _print(f"Training a {settings['model']} ({settings['network']} network, latent "
               f"{settings['latent_dim']}, {settings['posterior']} posterior) on "
               f"{len(x_train)} {data.name} images, epochs {initial_epoch + 1} to "
               f"{args.epochs}; run directory {out}.")
        model.fit(train, epochs=args.epochs, initial_epoch=initial_epoch,
                  validation_data=test, callbacks=_train_callbacks(settings, checkpoint),
                  verbose=args.verbose)
    if checkpoint.non_finite is not None:
        latest = latest_checkpoint(checkpoints)
        kept = (f"the last good checkpoint ({latest}) is kept" if latest is not None
                else "no epoch completed, so there is no checkpoint")
        raise _CommandError(f"Training stopped because {checkpoint.non_finite}; {kept}. Try a "
                            "lower --learning-rate or --likelihood bernoulli.", 3)
    history = checkpoint.history

    if isinstance(model, VAE):
        model.kl_weight.assign(1.0)  # report the true negative ELBO, not the β-weighted loss
    train_eval = x_train[:_TRAIN_EVAL_IMAGES]
    if settings["binarization"] != "none":
        train_eval = (np.random.default_rng(settings["seed"]).random(
            train_eval.shape, dtype=np.float32) < train_eval).astype(np.float32)
    metrics: dict[str, Any] = {}
    if isinstance(model, VAE):
        for prefix, images in (("test_", x_test), ("train_", train_eval)):
            elbo = evaluate_elbo(model, images, seed=settings["seed"])
            metrics.update({prefix + name: value for name, value in elbo.items()})
        metrics["test_active_units"] = active_units(model, x_test)["active_units"]
    else:
        for prefix, images in (("test_", x_test), ("train_", train_eval)):
            result = evaluate_model(model, images)
            metrics.update({prefix + name: result[name] for name in (
                "reconstruction", "reconstruction_bits_per_dim", "num_images")})
        metrics["test_active_units"] = active_units(model, x_test)["active_units"]
    metrics["latent_dim"] = model.config.latent_dim
    metrics["epochs"] = len(history)
    metrics["train_seconds"] = float(sum(row.get("seconds", 0.0) for row in history))
    metrics["seconds_per_epoch"] = metrics["train_seconds"] / max(1, len(history))
    metrics = _rounded(metrics)
    if not all(np.isfinite(v) for v in metrics.values() if isinstance(v, float)):
        raise _CommandError(f"Training finished but some metrics are not finite: {metrics}.", 3)

    _write_history(out / "history.csv", history)
    _write_json(out / "metrics.json", metrics)
    training = {**{k: settings[k] for k in ("dataset", "binarization", "seed", "train_size",
                                            "test_size", "batch_size", "learning_rate",
                                            "warmup_epochs")}, "epochs": len(history)}
    save_model(model, out / "model", metrics=metrics, training=training)
    plots = _write_plots(model, out, out / "plots", x_test, y_test, class_names)
    if isinstance(model, VAE):
        _print(f"Test negative ELBO: {metrics['test_negative_elbo']:.2f} nats per image "
               f"({metrics['test_negative_elbo_bits_per_dim']:.4f} bits/dim; reconstruction "
               f"{metrics['test_reconstruction']:.2f} + KL {metrics['test_kl']:.2f}), "
               f"{metrics['test_active_units']} of {metrics['latent_dim']} latent units active.")
    else:
        _print(f"Test reconstruction NLL: {metrics['test_reconstruction']:.2f} nats per image.")
    _print(f"Wrote {out / 'metrics.json'}, {out / 'history.csv'}, the model in {out / 'model'} "
           f"and {len(plots)} plots in {out / 'plots'}: "
           + ", ".join(p.name for p in plots) + ".")
    _print(json.dumps(metrics, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tfp_vae.evaluation import evaluate_model
    from tfp_vae.io import load_model, read_metadata

    if args.samples > 5000:
        raise _CommandError(f"--samples must be at most 5000, got {args.samples}.", 2)
    model_dir, _ = _model_and_run_dir(args.dir)
    model = load_model(model_dir)
    training = read_metadata(model_dir).get("training", {})
    x_test, _, _ = _test_split(training, args.data_dir, args.test_size)
    start = time.perf_counter()
    result = evaluate_model(model, x_test, iwae_samples=args.samples if
                            model.config.kind == "vae" else 0, seed=args.seed)
    report = {"model": str(model_dir), "dataset": training.get("dataset"),
              **_rounded(result), "seconds": round(time.perf_counter() - start, 1)}
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    _print(text)
    return 0


def _sample(args: argparse.Namespace) -> int:
    from tfp_vae.io import load_model
    from tfp_vae.models import VAE
    from tfp_vae.plots import plot_samples

    model_dir, run_dir = _model_and_run_dir(args.dir)
    model = load_model(model_dir)
    if not isinstance(model, VAE):
        raise _CommandError(f"{model_dir} holds an autoencoder, which has no prior to sample "
                            "from; train a VAE.")
    path = plot_samples(model, args.output or run_dir / "plots" / "samples.png",
                        num_samples=args.num, seed=args.seed, columns=args.columns)
    _print(f"Wrote {args.num} prior samples (seed {args.seed}) to {path}.")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from tfp_vae.io import load_model, read_metadata
    from tfp_vae.plots import plot_reconstructions

    model_dir, run_dir = _model_and_run_dir(args.dir)
    model = load_model(model_dir)
    training = read_metadata(model_dir).get("training", {})
    x_test, _, _ = _test_split(training, args.data_dir, args.num, offset=args.offset)
    path = plot_reconstructions(model, x_test, args.output or run_dir / "plots" /
                                "reconstructions.png", num_images=args.num)
    _print(f"Wrote {len(x_test)} test images (from index {args.offset}) and their "
           f"reconstructions to {path}.")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from tfp_vae.io import load_model, read_metadata

    model_dir, run_dir = _model_and_run_dir(args.dir)
    model = load_model(model_dir)
    training = read_metadata(model_dir).get("training", {})
    x_test, y_test, class_names = _test_split(training, args.data_dir, args.test_size)
    out_dir = Path(args.output_dir) if args.output_dir else run_dir / "plots"
    plots = _write_plots(model, run_dir, out_dir, x_test, y_test, class_names)
    _print(f"Wrote {len(plots)} plots to {out_dir}: " + ", ".join(p.name for p in plots) + ".")
    return 0


def _compare_kl(args: argparse.Namespace) -> int:
    from tfp_vae.compare_kl import run_from_args

    return run_from_args(args)


_COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample,
             "reconstruct": _reconstruct, "plot": _plot, "compare-kl": _compare_kl}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tfp-vae`; returns the exit status.

    Args:
      argv: Command-line arguments without the program name. Default: `None` (`sys.argv[1:]`).

    Returns:
      `0` on success, `2` on bad arguments, `1` on a failure explained in one sentence on stderr,
      `3` when training stopped on a non-finite loss.

    #### Examples

    ```python
    main(["train", "--network", "course", "--train-size", "2000", "--out", "runs/quick"])
    main(["evaluate", "runs/quick", "--samples", "100"])
    ```
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except _CommandError as error:
        print(f"tfp-vae {args.command}: error: {error}", file=sys.stderr)
        return error.code
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as error:
        print(f"tfp-vae {args.command}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, (ValueError, TypeError)) else 1


if __name__ == "__main__":
    sys.exit(main())
