"""Recipes: model and training configs that reproduce (and beat) published likelihoods.

Each recipe is one JSON file in this folder: a `description`, the `paper` number it is compared
with, and the `model` / `training` configs in the format of a run's `run.json`. `tfp-vae train
--recipe NAME` (or `train_run(run_dir, *load_recipe(NAME)[:2])`) runs it; its final metrics
and saved model are committed under the repository's `recipes/results/` and `recipes/models/`.
The protocol is the same for every recipe: dynamic binarization for training, the last 10 000
training images held out for validation and model selection, and the final number an IWAE
log-likelihood with k = 5000 on all 10 000 test images (binarized once with the run's seed).
A fine-tuning recipe names, in `training.init_from`, the committed model it starts from
(`recipes/models/NAME`, relative to the repository).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfp_vae.config import ModelConfig, TrainingConfig

__all__ = ["MODELS_DIR", "RECIPES_DIR", "RESULTS_DIR", "Recipe", "load_recipe",
           "recipe_names"]

RECIPES_DIR = Path(__file__).resolve().parent
# The source checkout's root, which holds the committed `recipes/models/` (a fine-tuning
# recipe's `init_from` is relative to it).
REPOSITORY_DIR = RECIPES_DIR.parent.parent
# Where a source checkout keeps each recipe's committed result (`NAME.json`) and saved model
# (`NAME/`).
RESULTS_DIR = REPOSITORY_DIR / "recipes" / "results"
MODELS_DIR = REPOSITORY_DIR / "recipes" / "models"


@dataclass(frozen=True)
class Recipe:
    """A recipe: configs plus what it is compared with.

    Attributes:
      name: File name without `.json`.
      model: The `ModelConfig`.
      training: The `TrainingConfig`.
      description: One paragraph on what is trained and how.
      paper: The published number it is compared with (`name`, `test_nll`, `epochs`), or
        `None` for a results row with no published number under the same protocol.
    """

    name: str
    model: ModelConfig
    training: TrainingConfig
    description: str
    paper: dict[str, Any] | None


def recipe_names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def load_recipe(name: str) -> Recipe:
    """Loads a shipped recipe by name (dashes or underscores).

    Raises:
      ValueError: If there is no such recipe (the message lists them).

    #### Examples

    ```python
    recipe = load_recipe("burda-mlp-elbo")
    train_run("runs/burda", recipe.model, recipe.training.replace(data_dir="../shared/data"))
    ```
    """
    key = str(name).replace("-", "_")
    path = RECIPES_DIR / f"{key}.json"
    if not path.is_file():
        raise ValueError(f"Unknown recipe {name!r}; choose one of "
                         f"{[n.replace('_', '-') for n in recipe_names()]}.")
    data = json.loads(path.read_text())
    training = data["training"]
    if training.get("init_from") and not Path(training["init_from"]).is_absolute():
        # A fine-tuning recipe starts from a committed model, named relative to the repository.
        training = {**training, "init_from": str(REPOSITORY_DIR / training["init_from"])}
    return Recipe(key, ModelConfig.from_dict(data["model"]),
                  TrainingConfig.from_dict(training), data["description"],
                  data.get("paper"))
