"""Tests for tfp_vae.resuming: what a resumed run may change."""

import numpy as np
import pytest

from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.resuming import RESUMABLE_FIELDS, resume_configs
from tfp_vae.runs import _optimizer_fn

MODEL = ModelConfig(network="mlp", latent_dim=2)


def _training(**fields) -> TrainingConfig:
    base = dict(epochs=240, learning_rate=1e-3, learning_rate_schedule="exponential",
                final_learning_rate=1e-4)
    return TrainingConfig(**{**base, **fields})


def _rates(training: TrainingConfig, steps_per_epoch: int, steps) -> np.ndarray:
    # `learning_rate` reads back the current value; the schedule itself is `_learning_rate`.
    schedule = _optimizer_fn(training, steps_per_epoch)()._learning_rate
    return np.array([float(schedule(step)) for step in steps])


def test_extending_an_exponential_schedule_keeps_every_step_s_learning_rate():
    saved = _training()
    _, extended, messages = resume_configs(
        "run", MODEL, saved, trained_epochs=240,
        changes={"epochs": 480, "final_learning_rate": 1e-5})
    assert (extended.epochs, extended.final_learning_rate) == (480, 1e-5)
    assert messages == ["Applied the changed setting(s) epochs, final_learning_rate to the "
                        "resumed run."]
    steps = [0, 1, 999, 60_000, 119_999]  # 500 steps per epoch: all inside the first 240 epochs
    np.testing.assert_allclose(_rates(extended, 500, steps), _rates(saved, 500, steps),
                               rtol=1e-6)
    # ... and the extension carries on decaying: a tenth of the rate another 240 epochs on.
    np.testing.assert_allclose(_rates(extended, 500, [240_000]), [1e-5], rtol=1e-5)


def test_a_final_rate_typed_to_twelve_digits_still_extends():
    final = 1e-3 * 0.1 ** (400 / 240)
    _, extended, _ = resume_configs("run", MODEL, _training(), 240,
                                    changes={"epochs": 400,
                                             "final_learning_rate": float(f"{final:.12g}")})
    assert extended.epochs == 400


@pytest.mark.parametrize("changes", [{"epochs": 480},
                                     {"epochs": 480, "final_learning_rate": 2e-5},
                                     {"epochs": 480, "final_learning_rate": 1e-5,
                                      "learning_rate": 2e-3}])
def test_an_exponential_schedule_with_another_decay_per_epoch_is_refused(changes):
    with pytest.raises(ValueError, match="cannot change when resuming run") as error:
        resume_configs("run", MODEL, _training(), 240, changes=changes)
    if set(changes) == {"epochs"}:
        assert "unless --final-learning-rate changes with it" in str(error.value)


def test_cosine_schedule_length_is_fixed_and_the_hint_is_not_given():
    saved = _training(learning_rate_schedule="cosine")
    with pytest.raises(ValueError, match=r"cosine learning-rate schedule decays over exactly "
                                         r"240 epochs\.$"):
        resume_configs("run", MODEL, saved, 240, changes={"epochs": 480})
    with pytest.raises(ValueError, match="--final-learning-rate cannot change"):
        resume_configs("run", MODEL, saved, 240,
                       changes={"epochs": 480, "final_learning_rate": 1e-5})


def test_the_burda_schedule_steps_down_after_3_to_the_i_epochs_and_extends_on_resume():
    # Burda et al. (2016): 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7; 10 steps per epoch here.
    saved = TrainingConfig(epochs=13, learning_rate=1e-3, learning_rate_schedule="burda")
    epochs_at_each_rate = [3 ** i for i in range(8)]
    first_steps = 10 * np.cumsum([0, *epochs_at_each_rate])  # first step at each rate
    expected = [1e-3 * 10 ** (-i / 7) for i in range(8)]
    np.testing.assert_allclose(_rates(saved, 10, first_steps[:8]), expected, rtol=1e-6)
    np.testing.assert_allclose(_rates(saved, 10, first_steps[1:9] - 1), expected, rtol=1e-6)
    assert sum(epochs_at_each_rate) == 3280
    # After 3280 epochs the rate stays a tenth of the first one.
    np.testing.assert_allclose(_rates(saved, 10, [10 * 5000]), [1e-4], rtol=1e-6)
    # Each epoch's rate does not depend on the run's length, so a resume may extend it.
    _, extended, _ = resume_configs("run", MODEL, saved, 13, changes={"epochs": 3280})
    assert extended.epochs == 3280
    steps = [0, 39, 40, 129, 130]
    np.testing.assert_array_equal(_rates(extended, 10, steps), _rates(saved, 10, steps))
    with pytest.raises(ValueError, match="final_learning_rate must be set exactly when"):
        TrainingConfig(learning_rate_schedule="burda", final_learning_rate=1e-4)


def test_fewer_epochs_than_already_trained_is_refused_and_equal_is_allowed():
    saved = TrainingConfig(epochs=29)
    with pytest.raises(ValueError, match=r"--epochs 6 is fewer than the 29 epochs run has "
                                         r"already trained; pass --epochs 29 or more\."):
        resume_configs("run", MODEL, saved, 29, changes={"epochs": 6})
    assert resume_configs("run", MODEL, saved, 29, changes={"epochs": 29})[1].epochs == 29
    assert resume_configs("run", MODEL, saved, 12, changes={"epochs": 20})[1].epochs == 20


def test_model_changes_and_non_resumable_training_changes_name_their_flags():
    with pytest.raises(ValueError, match=r"^--latent-dim, --seed cannot change"):
        resume_configs("run", MODEL, TrainingConfig(), 1,
                       model_config=MODEL.replace(latent_dim=3),
                       training_config=TrainingConfig(seed=7))
    assert "final_learning_rate" not in RESUMABLE_FIELDS
