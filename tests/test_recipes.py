"""Every shipped recipe loads, matches the published protocol, and trains for a few steps."""

import json
from pathlib import Path

import numpy as np
import pytest

from tfp_vae import cli
from tfp_vae.config import DECAYING_SCHEDULES, ModelConfig
from tfp_vae.recipes import MODELS_DIR, REPOSITORY_DIR, RESULTS_DIR, load_recipe, recipe_names
from tfp_vae.runs import train_run

RECIPES = recipe_names()


def _few_steps(name):
    """A recipe's model and training config cut to a few steps on a few hundred images (a
    learning rate that decays over all epochs made constant, a KL warm-up cut to two epochs)."""
    recipe = load_recipe(name)
    training = recipe.training
    if training.learning_rate_schedule in DECAYING_SCHEDULES:  # they decay over all epochs
        training = training.replace(learning_rate_schedule="constant", final_learning_rate=None)
    return recipe.model, training.replace(
        epochs=2, train_size=400, validation_size=500, test_size=100, iwae_samples=10,
        plots=False, warmup_epochs=min(training.warmup_epochs, 2))


def _distinct_few_steps():
    """One recipe per distinct few-step run: a recipe that only trains longer than another
    (e.g. `wide_mlp_flow_iwae5_480`) runs the same few steps, so it is trained once."""
    distinct = {}
    for name in RECIPES:
        distinct.setdefault(repr(_few_steps(name)), name)
    return sorted(distinct.values())


def test_recipes_are_shipped():
    assert "burda_mlp_elbo" in RECIPES


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_follows_the_protocol(name):
    recipe = load_recipe(name)
    training = recipe.training
    # Dynamic binarization, 10 000 validation images for model selection, the test set only
    # for the final IWAE number with k = 5000 on all test images.
    assert training.binarization == "dynamic" and training.validation_size == 10000
    assert training.select_best and training.test_size is None
    assert training.iwae_samples == 5000
    assert recipe.description
    # MNIST recipes are compared with a published number; other datasets are results rows.
    assert (recipe.paper is not None) == (training.data == "mnist")
    assert recipe.paper is None or recipe.paper["test_nll"] > 0


def test_a_fine_tuning_recipe_starts_from_a_committed_recipe_model():
    tuned = [name for name in RECIPES if load_recipe(name).training.init_from]
    assert "wide_mlp_flow_iwae50_finetune" in tuned
    for name in tuned:
        start = Path(load_recipe(name).training.init_from)
        assert start.parent == MODELS_DIR, name
        base = load_recipe(start.name)  # the recipe whose committed model it is
        assert (start / "weights.h5").is_file(), f"{name}: commit {start}"
        # Same architecture; only the objective and its sampling may change.
        assert load_recipe(name).model.replace(
            num_samples=base.model.num_samples, objective=base.model.objective,
            gradient_estimator=base.model.gradient_estimator) == base.model


def test_recipes_that_share_a_few_steps_run_differ_only_in_their_length():
    tested = {repr(_few_steps(name)): name for name in _distinct_few_steps()}
    for name in RECIPES:
        twin = load_recipe(tested[repr(_few_steps(name))])
        recipe = load_recipe(name)
        assert recipe.model == twin.model
        assert recipe.training.replace(
            epochs=twin.training.epochs, final_learning_rate=twin.training.final_learning_rate,
            learning_rate_schedule=twin.training.learning_rate_schedule) == twin.training, name


@pytest.mark.parametrize("name", _distinct_few_steps())
def test_recipe_trains_a_few_steps(name):
    result = train_run(None, *_few_steps(name))
    losses = [row["loss"] for row in result.history]
    if load_recipe(name).training.init_from:
        # Fine-tuning starts from the committed trained model: its first epoch is already far
        # below an untrained model's (about 190 nats after a few steps from scratch), and a few
        # steps at a fine-tuning learning rate change it by noise only.
        assert losses[0] < 100 and abs(losses[1] - losses[0]) < 5
    else:
        assert losses[1] < losses[0]
    metrics = result.metrics
    # The IWAE bound (k = 10) is at least the ELBO, up to the noise of both estimates.
    assert metrics["test_iwae_log_likelihood"] > -metrics["test_negative_elbo"] - 3 * (
        metrics["test_negative_elbo_standard_error"])
    assert np.isfinite(metrics["test_iwae_log_likelihood"])


def test_unknown_recipe_is_one_sentence(capsys):
    assert cli.main(["train", "--recipe", "no-such-recipe"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tfp-vae train: error: Unknown recipe 'no-such-recipe'; choose one of "
                   f"{[n.replace('_', '-') for n in RECIPES]}.")


RESULTS = sorted(path.stem for path in RESULTS_DIR.glob("*.json"))


@pytest.mark.parametrize("name", RESULTS)
def test_a_committed_result_is_its_recipes_and_its_committed_models_and_the_readmes(name):
    result = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    recipe = load_recipe(name)
    # The fields the recipes issue asks for, measured under the protocol on all test images.
    assert result["complete"] and result["recipe"] == name
    assert result["dataset"] == recipe.training.data
    assert (result["num_samples"], result["num_images"]) == (5000, 10000)
    assert result["epochs"] == recipe.training.epochs and result["train_seconds"] > 0
    assert 0 < result["test_nll_standard_error"] < 1
    # The committed model is the recipe's architecture and carries the same number.
    model_dir = MODELS_DIR / name
    assert ModelConfig.from_json((model_dir / "config.json").read_text()) == recipe.model
    metrics = json.loads((model_dir / "metadata.json").read_text())["metrics"]
    assert -metrics["test_iwae_log_likelihood"] == result["test_nll"]
    assert metrics["test_iwae_num_samples"] == 5000
    # The README's recipes table shows this number, to two decimals, in this recipe's row.
    rows = [line for line in (REPOSITORY_DIR / "README.md").read_text().splitlines()
            if line.startswith(f"| `{name}` ")]
    assert len(rows) == 1, name
    shown = f"**{result['test_nll']:.2f} ± {result['test_nll_standard_error']:.2f}**"
    assert shown in rows[0], (name, shown)
