"""Every shipped recipe loads, matches the published protocol, and trains for a few steps."""

import numpy as np
import pytest

from tfp_vae import cli
from tfp_vae.recipes import load_recipe, recipe_names
from tfp_vae.runs import train_run

RECIPES = recipe_names()


def _few_steps(name):
    """A recipe's model and training config cut to a few steps on a few hundred images."""
    recipe = load_recipe(name)
    return recipe.model, recipe.training.replace(
        epochs=2, train_size=400, validation_size=10000, test_size=100, iwae_samples=10,
        plots=False, learning_rate_schedule="constant", final_learning_rate=None)


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
