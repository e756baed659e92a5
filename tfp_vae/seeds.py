"""Seeds: one way to turn user seeds into reproducible, independent random streams.

TensorFlow Probability samples reproducibly from *stateless* seeds, shape-`[2]` int tensors:
the same seed gives the same draw call after call. tfp_vae takes a Python `int` (or a pair)
from the user and derives every other seed from it by folding in integers or names, so
different purposes (batch 3 of an evaluation, the "far/diag/mc" cell of the KL study) get
independent streams that do not depend on the order in which they are used.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from tfp_vae.backend import tf

__all__ = ["Seed", "fold_in", "numpy_rng", "stateless_seed"]

Seed = int | Sequence[int] | tf.Tensor | None


def stateless_seed(seed: Seed) -> tf.Tensor | None:
    """Turns a Python int or an `(int, int)` pair into a stateless TFP seed.

    Args:
      seed: `None`, a Python `int`, a pair of ints, or a shape-`[2]` int tensor.

    Returns:
      `None` (stateful, unseeded sampling) or a shape-`[2]` `int32` tensor.

    #### Examples

    ```python
    posterior.sample(seed=stateless_seed(0))  # the same draw every call
    ```
    """
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], dtype=tf.int32)
    return tf.cast(tf.convert_to_tensor(seed), tf.int32)


def _key(part: int | str) -> int:
    if isinstance(part, str):
        # crc32 is stable across processes and Python versions (unlike `hash`).
        return zlib.crc32(part.encode()) % (2**31 - 1)
    return int(part)


def fold_in(seed: Seed, *parts: int | str) -> tf.Tensor:
    """A stateless seed derived from `seed` and any number of integers or names.

    Args:
      seed: The base seed (see `stateless_seed`); `None` is treated as `0`.
      *parts: Python `int`s or `str`s identifying the purpose, folded in one after another.

    Returns:
      A shape-`[2]` `int32` tensor, a pure function of `seed` and `parts`.

    #### Examples

    ```python
    fold_in(0, "evaluation", 3)  # the seed for batch 3 of an evaluation
    ```
    """
    tensor = stateless_seed(0 if seed is None else seed)
    for part in parts:
        tensor = tf.random.experimental.stateless_fold_in(tensor, _key(part))
    return tensor


def numpy_rng(seed: int, *parts: int | str) -> np.random.Generator:
    """A NumPy generator derived from `seed` and optional integers or names.

    Args:
      seed: Python `int`.
      *parts: Python `int`s or `str`s identifying the purpose.

    Returns:
      A `np.random.Generator`; the same arguments give the same stream.
    """
    return np.random.default_rng([int(seed), *(_key(part) for part in parts)])
