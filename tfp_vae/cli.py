"""The `tfp-vae` command. Thin: it parses arguments, calls the library and prints.

Subcommands: `train` (`tfp_vae.runs.train_run`; its flags are made from the fields of
`ModelConfig` and `TrainingConfig`, see `tfp_vae.config`), `evaluate`, `sample`, `reconstruct`
and `plot` (`tfp_vae.finished_runs`), and `compare-kl` (the KL-estimator study, `tfp_vae.study`).

Exit statuses: 0 success, 2 bad arguments or input the user must fix, 1 a runtime failure,
3 training stopped on a non-finite loss.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfp_vae.flags import add_config_flags, given_fields, int_at_least
from tfp_vae.quiet import VERBOSE_FLAG, VERBOSE_HELP, import_tensorflow_quietly

__all__ = ["main"]

_EXAMPLES = {
    "train": """
  tfp-vae train                                  # default VAE, 2 epochs on Fashion-MNIST
  tfp-vae train --dataset mnist --latent-dim 16 --posterior tril --kl-attachment regularizer
  tfp-vae train --dataset mnist --network mlp --latent-dim 50 --validation-size 10000
  tfp-vae train --kl-estimator mc --kl-samples 4 --beta 2 --warmup-epochs 3 --epochs 10
  tfp-vae train --data-dir ../shared/data --train-size 5000 --epochs 1 --out runs/quick
  tfp-vae train --out runs/quick --resume --epochs 3   # continue a run (killed or finished)""",
    "evaluate": """
  tfp-vae evaluate runs/fashion-mnist-vae                   # ELBO and active units
  tfp-vae evaluate runs/fashion-mnist-vae --samples 1000 --test-size 1000
  tfp-vae evaluate runs/quick/model --samples 100 --output runs/quick/evaluation.json
  tfp-vae evaluate runs/quick --split validation --samples 1000  # select without the test set""",
    "sample": """
  tfp-vae sample runs/fashion-mnist-vae                     # DIR/plots/samples.png
  tfp-vae sample runs/fashion-mnist-vae --num 100 --columns 10 --seed 3 --output samples.png""",
    "reconstruct": """
  tfp-vae reconstruct runs/fashion-mnist-vae                # DIR/plots/reconstructions.png
  tfp-vae reconstruct runs/fashion-mnist-vae --num 16 --offset 100 --output recon.png""",
    "plot": """
  tfp-vae plot runs/fashion-mnist-vae                       # all plots into DIR/plots/
  tfp-vae plot runs/fashion-mnist-vae --output-dir figures --test-size 2000""",
    "compare-kl": """
  tfp-vae compare-kl --quick --out runs/kl-quick   # about 4 minutes
  tfp-vae compare-kl --out runs/kl-study              # the full study
  tfp-vae compare-kl --skip-training --skip-priors --latent-dims 2 16 --samples 1 16   # part 1""",
}


class _Parser(argparse.ArgumentParser):
    """argparse that prints one clear sentence and exits with status 2 on bad arguments."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`).\n")


_RUN_DIR = ("dir", {"metavar": "DIR", "help": "a run directory from `tfp-vae train --out DIR`, "
                    "or its model/ folder"})
_DATA_DIR = ("--data-dir", {"help": "folder with the gzipped IDX files (default: the run's, else "
                            "$TFP_VAE_DATA_DIR, else the Keras download)"})
_TEST_SIZE = ("--test-size", {"type": int_at_least(1), "help": "use only the first N test "
                              "images (quick runs; default: the run's)"})
_SEED = ("--seed", {"type": int, "default": 0})
# Each command: (help, description, arguments as (flag, argparse options)); examples above.
_COMMANDS_TEXT: dict[str, tuple[str, str, list[tuple[str, dict[str, Any]]]]] = {
    "train": (
        "train a VAE; write the model, metrics, history and plots to --out",
        "Train a VAE (or autoencoder) on MNIST / Fashion-MNIST, checkpointing every epoch, then "
        "write the saved model, metrics.json (test and train negative ELBO in nats, "
        "reconstruction, KL, active units, wall time), history.csv and PNG plots to --out DIR.", [
            ("--recipe", {"metavar": "NAME", "help": "start from a shipped recipe (tfp_vae/"
                          "recipes/NAME.json, e.g. burda-mlp-elbo); other flags override its "
                          "settings"}),
            ("--out", {"metavar": "DIR", "help": "run directory (default: runs/DATASET-MODEL)"}),
            ("--resume", {"action": "store_true", "help": "continue the run in --out from its "
                          "last intact checkpoint, with its saved settings and optimizer state"}),
            ("--overwrite", {"action": "store_true", "help": "start over in an --out that "
                             "already holds a run (the old run is kept until the new one has "
                             "its first checkpoint)"}),
            ("--verbose", {"type": int, "default": 1, "choices": [0, 1, 2], "help": "Keras "
                           "progress: 0 silent, 1 progress bar, 2 one line per epoch"})]),
    "evaluate": (
        "test negative ELBO, IWAE log-likelihood and active units (JSON)",
        "Evaluate a saved model on the test set of the dataset it was trained on: negative ELBO "
        "in nats and bits/dim split into reconstruction and KL, the importance-weighted (IWAE) "
        "log-likelihood bound with --samples K, and active units. Prints JSON.", [
            _RUN_DIR, _DATA_DIR, _TEST_SIZE,
            ("--samples", {"type": int_at_least(0), "default": 100, "help": "importance "
                           "samples per image for the IWAE bound, up to 5000 (0 skips it; "
                           "default: 100)"}), _SEED,
            ("--split", {"choices": ["test", "validation"], "default": "test",
                         "help": "the run's test images, or its validation images (to compare "
                         "runs without the test set; default: test)"}),
            ("--output", {"metavar": "FILE", "help": "also write the JSON to FILE"})]),
    "sample": (
        "write a PNG grid of images generated from the prior",
        "Decode latent samples from the prior of a saved VAE into a PNG grid of pixel means.", [
            _RUN_DIR, ("--num", {"type": int_at_least(1), "default": 64,
                                 "help": "number of images"}),
            ("--columns", {"type": int_at_least(1), "default": 8}), _SEED,
            ("--output", {"metavar": "PNG", "help": "output file (default: "
                          "DIR/plots/samples.png)"})]),
    "reconstruct": (
        "write a PNG of test images above their reconstructions",
        "Reconstruct test images with a saved model: inputs in the top row, reconstructions "
        "(pixel means of p(x|z) at the posterior mean) below.", [
            _RUN_DIR, _DATA_DIR,
            ("--num", {"type": int_at_least(1), "default": 10, "help": "number of images"}),
            ("--offset", {"type": int_at_least(0), "default": 0,
                          "help": "index of the first test image"}),
            ("--output", {"metavar": "PNG", "help": "output file (default: "
                          "DIR/plots/reconstructions.png)"})]),
    "plot": (
        "regenerate every plot of a run from its saved model",
        "Write the latent grid, label clusters, reconstructions, prior samples and (if the run "
        "has history.csv) training curves as PNG files.", [
            _RUN_DIR, _DATA_DIR, _TEST_SIZE,
            ("--output-dir", {"metavar": "DIR", "help": "where to write the PNGs (default: "
                              "DIR/plots)"})]),
    "compare-kl": (
        "compare analytic and Monte Carlo KL estimators (report + plots)",
        "The KL-estimator study: estimator-level bias, standard deviation, gradient SNR and cost "
        "against closed forms, then end-to-end VAE training with each KL choice; writes "
        "report.md, CSV files and PNG plots to --out.", []),
}


def _build_parser() -> argparse.ArgumentParser:
    from tfp_vae.study import configure_parser, run_from_args

    parser = _Parser(prog="tfp-vae", description="Variational autoencoders with TFP layers.",
                     epilog="Run `tfp-vae COMMAND --help` for each command's options and "
                            "examples.")
    parser.add_argument(VERBOSE_FLAG, action="store_true", dest="tensorflow_logs",
                        help=VERBOSE_HELP + "; give it before COMMAND")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name, (help_text, description, arguments) in _COMMANDS_TEXT.items():
        command = commands.add_parser(name, help=help_text, description=description,
                                      epilog="examples:" + _EXAMPLES[name],
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        for flag, options in arguments:
            command.add_argument(flag, **options)
        command.set_defaults(handler=_COMMANDS.get(name, run_from_args))
    add_config_flags(commands.choices["train"])
    configure_parser(commands.choices["compare-kl"])
    return parser


_print = functools.partial(print, flush=True)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # sys.stderr of the call, not of the import


def _train(args: argparse.Namespace) -> int:
    from tfp_vae.config import ModelConfig, TrainingConfig, fitted_configs
    from tfp_vae.finished_runs import default_run_path, summary
    from tfp_vae.recipes import load_recipe
    from tfp_vae.runs import train_run

    given = given_fields(args)
    options = {"overwrite": args.overwrite, "verbose": args.verbose, "log": _print}
    recipe = load_recipe(args.recipe) if args.recipe and not args.resume else None
    if recipe is not None:
        _print(f"Recipe {recipe.name}: {recipe.description}")
        model, training = (recipe.model.replace(**given["model"]),
                           recipe.training.replace(**given["training"]))
    elif args.resume:
        model, training = ModelConfig(), TrainingConfig()  # they name the default --out
    else:
        model, training = fitted_configs(given["model"], given["training"])
    out = (Path(args.out) if args.out else
           default_run_path(model, training, recipe.name if recipe else None))
    result = (train_run(out, resume=True, changes={**given["model"], **given["training"]},
                        **options) if args.resume else train_run(out, model, training, **options))
    _print(summary(result.metrics, result.run_dir, result.plots))
    _print(json.dumps(result.metrics, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tfp_vae.finished_runs import evaluate_saved

    if args.samples > 5000:
        raise ValueError(f"--samples must be at most 5000, got {args.samples}.")
    text = json.dumps(evaluate_saved(args.dir, args.samples, args.seed, args.data_dir,
                                     args.test_size, log=_warn, split=args.split), indent=2)
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
    from tfp_vae.finished_runs import sample_saved

    path = sample_saved(args.dir, args.output, args.num, args.columns, args.seed)
    _print(f"Wrote {args.num} prior samples (seed {args.seed}) to {path}.")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from tfp_vae.finished_runs import reconstruct_saved

    path, shown = reconstruct_saved(args.dir, args.output, args.num, args.offset, args.data_dir,
                                    log=_warn)
    _print(f"Wrote {shown} test images (from index {args.offset}) and their reconstructions to "
           f"{path}.")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from tfp_vae.finished_runs import plot_saved

    plots = plot_saved(args.dir, args.output_dir, args.data_dir, args.test_size, log=_warn)
    _print(f"Wrote {len(plots)} plots to {plots[0].parent}: "
           + ", ".join(p.name for p in plots) + ".")
    return 0


# `compare-kl` runs the study's own `run_from_args`.
_COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample,
             "reconstruct": _reconstruct, "plot": _plot}


def exit_status(error: BaseException) -> int:
    """The documented exit status for an exception that ends a command.

    3 for a non-finite loss, 2 for input the user must fix (bad values, missing or corrupt
    files, an output path checked before the work, such as `train --out`), 1 for everything
    else (runtime failures, a busy run directory, an output file that could not be written
    after the work, whose result was already printed).
    """
    from tfp_vae.io import NonFiniteLossError

    if isinstance(error, NonFiniteLossError):
        return 3
    if isinstance(error, (ValueError, TypeError, FileNotFoundError)):
        return 2
    return 1


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
    # Only a leading --verbose is the top-level flag (a subcommand has its own --verbose).
    if argv[:1] == [VERBOSE_FLAG]:
        argv = argv[1:]
    else:
        import_tensorflow_quietly()
    args = _build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"tfp-vae {args.command}: error: {message}", file=sys.stderr)
        return exit_status(error)


if __name__ == "__main__":
    sys.exit(main())
