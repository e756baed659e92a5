"""The `tfp-vae` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]

_TRAIN_EXAMPLES = """examples:
  tfp-vae train                                  # default VAE, 2 epochs on Fashion-MNIST
  tfp-vae train --dataset mnist --latent-dim 16 --posterior tril --kl-attachment regularizer
  tfp-vae train --kl-estimator mc --kl-samples 4 --beta 2 --warmup-epochs 3 --epochs 10
  tfp-vae train --data-dir ../shared/data --train-size 5000 --epochs 1 --out runs/quick
"""


class _Parser(argparse.ArgumentParser):
    """argparse that prints one clear sentence and exits with status 2 on bad arguments."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`).\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    from tfp_vae.config import KL_ATTACHMENTS
    from tfp_vae.heads import LIKELIHOODS, POSTERIORS
    from tfp_vae.kl import KL_ESTIMATORS
    from tfp_vae.networks import NETWORKS

    parser = _Parser(prog="tfp-vae", description="Variational autoencoders with TFP layers.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    train = commands.add_parser(
        "train", help="train a VAE and report its test negative ELBO",
        description="Train a VAE (or autoencoder) on MNIST / Fashion-MNIST and print the test "
                    "negative ELBO in nats.",
        epilog=_TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    train.add_argument("--data-dir", default=None,
                       help="folder with the gzipped IDX files (default: $TFP_VAE_DATA_DIR, "
                            "else the Keras download)")
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
    train.add_argument("--warmup-epochs", type=int, default=0,
                       help="epochs of linear KL warm-up to --beta (default: 0)")
    train.add_argument("--epochs", type=_positive_int, default=2)
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--binarization", default="dynamic", choices=["dynamic", "fixed", "none"],
                       help="training images: dynamic (resampled each epoch), fixed (seeded) or "
                            "none (grey levels); the test set is binarized once, with the seed, "
                            "unless none")
    train.add_argument("--train-size", type=_positive_int, default=None,
                       help="use only the first N training images (quick runs)")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                       help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch")
    return parser


def _train(args: argparse.Namespace) -> int:
    from tfp_vae.backend import keras, tf
    from tfp_vae.config import ModelConfig
    from tfp_vae.data import load_dataset, make_dataset
    from tfp_vae.models import build_model
    from tfp_vae.training import KLWeightScheduler, linear_kl_warmup

    if args.warmup_epochs < 0:
        raise ValueError(f"--warmup-epochs must be 0 or more, got {args.warmup_epochs}.")
    keras.utils.set_random_seed(args.seed)
    data = load_dataset(args.dataset, args.data_dir)
    x_train, y_train = data.x_train, data.y_train
    if args.train_size is not None:
        x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    config = ModelConfig(
        kind=args.model, input_shape=x_train.shape[1:], latent_dim=args.latent_dim,
        network=args.network, posterior=args.posterior, likelihood=args.likelihood,
        kl_attachment="loss" if args.kl_attachment == "loss-fn"
        else args.kl_attachment.replace("-", "_"),
        kl_estimator=args.kl_estimator.replace("-", "_"), num_samples=args.kl_samples,
        beta=args.beta)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    train = make_dataset(x_train, batch_size=args.batch_size, binarization=args.binarization,
                         seed=args.seed)
    test = make_dataset(data.x_test, batch_size=500, shuffle=False,
                        binarization="none" if args.binarization == "none" else "fixed",
                        seed=args.seed + 1)
    callbacks = []
    if args.model == "vae" and args.warmup_epochs:
        callbacks.append(KLWeightScheduler(linear_kl_warmup(args.warmup_epochs, args.beta)))
    print(f"Training a {args.model} ({args.network} network, latent {args.latent_dim}, "
          f"{args.posterior} posterior) on {len(x_train)} {data.name} images for "
          f"{args.epochs} epoch(s).", flush=True)
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose)
    seconds = time.perf_counter() - start
    if args.model == "vae":
        model.kl_weight.assign(1.0)  # report the true negative ELBO, not the β-weighted loss
    test_metrics = model.evaluate(test, verbose=0, return_dict=True)
    result = {"test_" + k: round(float(v), 4) for k, v in test_metrics.items()}
    result["train_seconds"] = round(seconds, 1)
    result["seconds_per_epoch"] = round(seconds / args.epochs, 1)
    tf.debugging.assert_all_finite(tf.constant(list(result.values())), "non-finite metrics")
    label = "negative ELBO" if args.model == "vae" else "reconstruction NLL"
    print(f"Test {label}: {result['test_loss']:.2f} nats per image "
          f"({args.epochs} epoch(s), {result['seconds_per_epoch']} s/epoch)")
    print(json.dumps(result, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tfp-vae`; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return {"train": _train}[args.command](args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"tfp-vae {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
