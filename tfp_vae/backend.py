"""The one place where tfp_vae chooses its Keras.

TensorFlow Probability >= 0.24 builds its probabilistic layers on Keras 2, which ships as the
separate package `tf_keras`. Since TensorFlow 2.16, `tf.keras` and `import keras` are Keras 3,
whose layers, models and symbolic tensors cannot be mixed with `tfp.layers` (TFP issues #1774,
#1779, #1780, #2006 show the obscure errors users hit). Every tfp_vae module imports Keras from
here, and every builder that accepts user objects calls `check_tf_keras` so that a Keras 3 object
fails at once with one clear `TypeError`.

We deliberately do not set `TF_USE_LEGACY_KERAS`: it only works before TensorFlow is first
imported and silently changes `tf.keras` for the whole user program.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

tfd = tfp.distributions
tfpl = tfp.layers
tfb = tfp.bijectors

__all__ = ["keras", "tf", "tfp", "tfd", "tfpl", "tfb", "check_tf_keras", "is_keras3_object"]


def is_keras3_object(obj: Any) -> bool:
    """Whether `obj` is a Keras 3 layer, model, optimizer, tensor or other Keras 3 object.

    The test looks at the module of every class in the object's type hierarchy: Keras 3 lives in
    the top-level package `keras`, Keras 2 in `tf_keras`, so no Keras 3 import is needed.

    Args:
      obj: Any Python object.

    Returns:
      `True` when some class of `obj` is defined in the `keras` (Keras 3) package.
    """
    for cls in type(obj).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module == "keras" or module.startswith("keras."):
            return True
    return False


def check_tf_keras(obj: Any, name: str) -> None:
    """Raises a clear `TypeError` if `obj` (or anything nested in it) is a Keras 3 object.

    Args:
      obj: A layer, model, tensor, or a list/tuple/dict of them.
      name: How the argument is called in the caller's signature, used in the message.

    Raises:
      TypeError: If `obj` or one of its nested items is a Keras 3 object.

    #### Examples

    ```python
    import keras  # Keras 3
    check_tf_keras(keras.layers.Dense(4), "encoder_body")  # raises TypeError
    ```
    """
    items = obj.values() if isinstance(obj, dict) else obj
    if isinstance(items, (list, tuple)) or isinstance(obj, dict):
        for item in items:
            check_tf_keras(item, name)
        return
    if is_keras3_object(obj):
        cls = type(obj)
        raise TypeError(
            f"`{name}` is a Keras 3 object ({cls.__module__}.{cls.__qualname__}), but TensorFlow "
            "Probability layers only work with Keras 2: build it with `tfp_vae.keras` (the "
            "`tf_keras` package) instead of `keras` or `tf.keras`."
        )
