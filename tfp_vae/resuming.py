"""What a resumed training run may change, and the configs it then trains with.

A resumed run must train the model that a run started with the final settings would have
trained. Settings that do not touch what was already trained (`RESUMABLE_FIELDS`: how long, where
the data lives, evaluation sizes, logging) may change; everything else may not. A decaying
learning-rate schedule fixes its length, with one exception: an exponential schedule may be
extended (or shortened) when `final_learning_rate` changes with `epochs` so that the decay per
epoch stays the same, because its learning rate at every step is then unchanged. A constant or
`'burda'` schedule sets each epoch's rate without looking at `epochs`, so those runs may always
be extended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tfp_vae.config import DECAYING_SCHEDULES, ModelConfig, TrainingConfig, flag_name

__all__ = ["RESUMABLE_FIELDS", "resume_configs"]

# TrainingConfig fields a resumed run may change: they do not alter what was trained so far.
RESUMABLE_FIELDS = ("epochs", "data_dir", "test_size", "strategy", "iwae_samples", "plots",
                    "tensorboard_dir", "tensorboard_image_every", "early_stopping_patience",
                    "select_best")
# Relative tolerance on the per-epoch decay factor of an extended exponential schedule: loose
# enough for a final rate typed to a dozen digits, far below any deliberate change.
_DECAY_RTOL = 1e-6


def _same_exponential_decay(saved: TrainingConfig, candidate: TrainingConfig) -> bool:
    if saved.learning_rate_schedule != "exponential" or candidate.learning_rate_schedule != \
            "exponential" or candidate.learning_rate != saved.learning_rate:
        return False
    per_epoch = [math.log(t.final_learning_rate / t.learning_rate) / t.epochs
                 for t in (saved, candidate)]
    return math.isclose(per_epoch[0], per_epoch[1], rel_tol=_DECAY_RTOL)


def resume_configs(path: Any, saved_model: ModelConfig, saved_training: TrainingConfig,
                   trained_epochs: int, model_config: ModelConfig | None = None,
                   training_config: TrainingConfig | None = None,
                   changes: Mapping[str, Any] | None = None
                   ) -> tuple[ModelConfig, TrainingConfig, list[str]]:
    """The configs a resumed run trains with: the saved ones plus the allowed changes.

    Example (extend a 240-epoch exponential decay 1e-3 -> 1e-4 to 480 epochs, 1e-3 -> 1e-5):

    ```python
    model, training, messages = resume_configs(
        "runs/wide", saved_model, saved_training, trained_epochs=240,
        changes={"epochs": 480, "final_learning_rate": 1e-5})
    ```

    Args:
      path: The run directory, named in error messages.
      saved_model: The run's saved `ModelConfig`.
      saved_training: The run's saved `TrainingConfig`.
      trained_epochs: Epochs already trained (the newest checkpoint's epoch).
      model_config: A config to compare with the saved one (its differences are changes).
        Default: `None`.
      training_config: Likewise for training. Default: `None`.
      changes: Field changes by name, e.g. `{"epochs": 10}`. Default: `None`.

    Returns:
      `(model_config, training_config, messages)`.

    Raises:
      ValueError: If a change touches a field outside `RESUMABLE_FIELDS` (one sentence naming
        the command-line flags), changes `epochs` under a decaying learning-rate schedule other
        than an exponential one extended at the same decay per epoch, or asks for fewer epochs
        than were already trained.
    """
    training_fields, model_fields = saved_training.to_dict(), saved_model.to_dict()
    requested = dict(changes or {})
    for given, saved in ((training_config, training_fields), (model_config, model_fields)):
        if given is not None:
            requested.update({name: value for name, value in given.to_dict().items()
                              if value != saved[name]})
    unknown = sorted(set(requested) - set(training_fields) - set(model_fields))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown} for a resumed run.")
    candidate = saved_training.replace(**{k: v for k, v in requested.items()
                                          if k in training_fields})
    candidate_model = saved_model.replace(**{k: v for k, v in requested.items()
                                             if k in model_fields and k not in training_fields})
    extended = (candidate.epochs != saved_training.epochs
                and _same_exponential_decay(saved_training, candidate))
    resumable = RESUMABLE_FIELDS + (("final_learning_rate",) if extended else ())
    conflicts = sorted(
        [name for name in training_fields
         if name not in resumable and getattr(candidate, name) != training_fields[name]]
        + [name for name in model_fields
           if candidate_model.to_dict()[name] != model_fields[name]])
    if conflicts:
        flags = ", ".join(flag_name(name) or name for name in conflicts)
        raise ValueError(f"{flags} cannot change when resuming {path}, which was trained "
                         "with other values; drop them, or start a new run with --overwrite "
                         "or another --out.")
    if (candidate.epochs != saved_training.epochs and not extended
            and saved_training.learning_rate_schedule in DECAYING_SCHEDULES):
        hint = (" unless --final-learning-rate changes with it to keep the same decay per epoch"
                if saved_training.learning_rate_schedule == "exponential" else "")
        raise ValueError(f"--epochs cannot change when resuming {path}: its "
                         f"{saved_training.learning_rate_schedule} learning-rate schedule "
                         f"decays over exactly {saved_training.epochs} epochs{hint}.")
    if candidate.epochs < trained_epochs:
        raise ValueError(f"--epochs {candidate.epochs} is fewer than the {trained_epochs} "
                         f"epochs {path} has already trained; pass --epochs {trained_epochs} "
                         "or more.")
    applied = sorted(name for name in training_fields
                     if getattr(candidate, name) != training_fields[name])
    messages = ([f"Applied the changed setting(s) {', '.join(applied)} to the resumed run."]
                if applied else [])
    return saved_model, candidate, messages
