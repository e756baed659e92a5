"""Writes a recipe's result file from its run: the test IWAE log-likelihood (k = 5000, all test
images) of the run's selected model, under the recipes' protocol.

For a finished run the number is read from its metrics.json; for an unfinished one (a long run
cut off by a session's end) the best-validation checkpoint is evaluated here, and the result
says how many epochs it had.

    python benchmarks/recipe_result.py RUN_DIR NAME [--copy-model]

A fine-tuning recipe (`training.init_from`) also records the committed run it started from and
the total epochs and training time.

writes recipes/results/NAME.json (and, with --copy-model, the evaluated model to
recipes/models/NAME/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tfp_vae.evaluation import iwae_log_likelihood
from tfp_vae.finished_runs import load_test_split
from tfp_vae.io import load_model, read_metadata
from tfp_vae.recipes import MODELS_DIR, RESULTS_DIR, load_recipe
from tfp_vae.rundir import RunDir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("name")
    parser.add_argument("--copy-model", action="store_true")
    args = parser.parse_args(argv)
    run, recipe = RunDir(args.run_dir), load_recipe(args.name)
    _, training = run.read_configs()
    history = run.history() or json.loads(
        (run.checkpoints_dir / (run.checkpoints_dir / "latest").read_text().strip()
         / "state.json").read_text())["history"]
    result = {"recipe": recipe.name, "dataset": training.data,
              "paper": recipe.paper, "epochs_planned": training.epochs,
              "epochs": len(history),
              "train_seconds": round(sum(row.get("seconds", 0.0) for row in history), 1)}
    if training.init_from:
        # A fine-tuning recipe: its cost includes the committed run it started from.
        base = Path(training.init_from).name
        start = json.loads((RESULTS_DIR / f"{base}.json").read_text())
        result["started_from"] = {"recipe": base, "epochs": start["epochs"],
                                  "train_seconds": start["train_seconds"]}
        result["total_epochs"] = result["epochs"] + start["epochs"]
        result["total_train_seconds"] = round(result["train_seconds"] + start["train_seconds"], 1)
    if run.is_complete:
        metrics = run.metrics()
        model_dir = run.model_dir
        result.update(complete=True, selected_epoch=metrics.get("selected_epoch"),
                      test_nll=-metrics["test_iwae_log_likelihood"],
                      test_nll_standard_error=metrics["test_iwae_log_likelihood_standard_error"],
                      num_samples=metrics["test_iwae_num_samples"],
                      num_images=metrics["test_num_images"],
                      iwae_seconds=metrics.get("test_iwae_seconds"),
                      test_negative_elbo=metrics["test_negative_elbo"])
    else:
        model_dir = run.checkpoints_dir / "best"
        model = load_model(model_dir)
        x_test, _, _ = load_test_split(training)
        start = time.perf_counter()
        iwae = iwae_log_likelihood(model, x_test, num_samples=training.iwae_samples,
                                   seed=training.seed)
        # The epoch whose weights were evaluated, as the best checkpoint records it.
        selected = read_metadata(model_dir)["metrics"]["epoch"]
        result.update(complete=False, selected_epoch=int(selected),
                      test_nll=-iwae["log_likelihood"],
                      test_nll_standard_error=iwae["log_likelihood_standard_error"],
                      num_samples=iwae["num_samples"], num_images=iwae["num_images"],
                      iwae_seconds=round(time.perf_counter() - start, 1))
    out = RESULTS_DIR / f"{recipe.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.copy_model:
        target = MODELS_DIR / recipe.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target)
        # A best-validation checkpoint written before its training config was recorded: add it,
        # so `tfp-vae evaluate recipes/models/NAME` finds the right test split.
        metadata_file = target / "metadata.json"
        metadata = json.loads(metadata_file.read_text())
        if not metadata.get("training"):
            # The data folder of the machine that trained it is not part of the model.
            metadata["training"] = {**training.to_dict(), "data_dir": None}
        if metadata["training"].get("init_from"):
            # Named as the recipe names it (relative to the repository), not by this machine.
            metadata["training"]["init_from"] = f"recipes/models/{result['started_from']['recipe']}"
        metadata_file.write_text(json.dumps(metadata, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
