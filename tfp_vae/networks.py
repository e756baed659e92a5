"""Encoder and decoder bodies: the deterministic networks around the distribution heads.

Each body is registered in `NETWORKS` under a name and is a pair of functions:
`encoder(input_shape, dtype=None, **options) -> [layers]` ending in a feature vector, and
`decoder(latent_dim, output_shape, params_per_pixel, dtype=None, **options) -> [layers]` ending
in either
per-pixel parameters as channels (conv bodies) or a feature vector (`dense_head = True`, the
likelihood head then adds the `Dense`). `dtype` is the Keras dtype policy of the hidden layers
(e.g. `'mixed_bfloat16'`); layers that emit distribution parameters stay float32. Adding an
architecture is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tfp_vae.backend import keras

__all__ = ["NETWORKS", "Network", "get_network"]

layers = keras.layers


def _check_image_shape(shape: Sequence[int], network: str) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"The {network!r} network needs an image shape (height, width, "
                         f"channels) with positive sizes, got {shape}.")
    return shape


def _seed_conv_encoder(input_shape, filters=(32, 64), hidden_units=16, dtype=None):
    height, width, _ = _check_image_shape(input_shape, "conv")
    if height % 4 or width % 4:
        raise ValueError(f"The 'conv' network halves the image twice, so height and width must be "
                         f"multiples of 4, got {height}x{width}; pad or crop the images, or use "
                         "network='mlp'.")
    f1, f2 = filters
    return [
        layers.InputLayer(input_shape=tuple(input_shape)),
        layers.Conv2D(f1, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        layers.Conv2D(f2, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(hidden_units, activation="relu", dtype=dtype),
    ]


def _seed_conv_decoder(latent_dim, output_shape, params_per_pixel, filters=(32, 64),
                       hidden_units=16, dtype=None):
    del hidden_units
    height, width, channels = _check_image_shape(output_shape, "conv")
    f1, f2 = filters
    # The classic Keras VAE decoder uses 64 channels at 7x7 for (32, 64) filters.
    return [
        layers.InputLayer(input_shape=(latent_dim,)),
        layers.Dense((height // 4) * (width // 4) * f2, activation="relu", dtype=dtype),
        layers.Reshape((height // 4, width // 4, f2), dtype=dtype),
        layers.Conv2DTranspose(f2, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        layers.Conv2DTranspose(f1, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        # Distribution parameters are computed in float32 even under mixed precision.
        layers.Conv2DTranspose(channels * params_per_pixel, 3, padding="same", dtype="float32"),
    ]


def _valid_conv_size(size: int, kernel: int = 5, stride: int = 2) -> int:
    return (size - kernel) // stride + 1


def _course_output_padding(target: int, size: int, kernel: int = 5, stride: int = 2) -> int:
    return target - ((size - 1) * stride + kernel)


def _course_sizes(input_shape):
    height, width, channels = _check_image_shape(input_shape, "course")
    sizes = []
    for extent in (height, width):
        first = _valid_conv_size(extent)
        second = _valid_conv_size(first)
        paddings = (_course_output_padding(first, second), _course_output_padding(extent, first))
        if second < 1 or not all(0 <= p < 2 for p in paddings):
            raise ValueError(
                f"The 'course' network (two valid 5x5 stride-2 convolutions) cannot rebuild a "
                f"{height}x{width} image exactly; use sizes such as 28 or 29 (>= 13), or "
                "network='conv' / 'mlp'.")
        sizes.append((second, paddings))
    (h2, (hp1, hp2)), (w2, (wp1, wp2)) = sizes
    return h2, w2, (hp1, wp1), (hp2, wp2), channels


def _course_encoder(input_shape, hidden_units=64, dtype=None):
    _course_sizes(input_shape)
    return [
        layers.InputLayer(input_shape=tuple(input_shape)),
        layers.Conv2D(8, 5, strides=2, activation="tanh", dtype=dtype),
        layers.Conv2D(8, 5, strides=2, activation="tanh", dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(hidden_units, activation="tanh", dtype=dtype),
    ]


def _course_decoder(latent_dim, output_shape, params_per_pixel, hidden_units=64,
                    dtype=None):
    h2, w2, padding1, padding2, channels = _course_sizes(output_shape)
    return [
        layers.InputLayer(input_shape=(latent_dim,)),
        layers.Dense(hidden_units, activation="tanh", dtype=dtype),
        layers.Dense(h2 * w2 * 8, activation="tanh", dtype=dtype),
        layers.Reshape((h2, w2, 8), dtype=dtype),
        layers.Conv2DTranspose(8, 5, strides=2, output_padding=padding1, activation="tanh",
                               dtype=dtype),
        layers.Conv2DTranspose(8, 5, strides=2, output_padding=padding2, activation="tanh",
                               dtype=dtype),
        layers.Conv2D(channels * params_per_pixel, 3, padding="same", dtype="float32"),
    ]


def _mlp_encoder(input_shape, hidden_units=(512, 256), dtype=None):
    return [layers.InputLayer(input_shape=tuple(input_shape)), layers.Flatten(dtype=dtype)] + [
        layers.Dense(units, activation="relu", dtype=dtype) for units in hidden_units]


def _mlp_decoder(latent_dim, output_shape, params_per_pixel, hidden_units=(512, 256),
                 dtype=None):
    del output_shape, params_per_pixel
    return [layers.InputLayer(input_shape=(latent_dim,))] + [
        layers.Dense(units, activation="relu", dtype=dtype) for units in reversed(hidden_units)]


@dataclass(frozen=True)
class Network:
    """An encoder/decoder body pair.

    Attributes:
      encoder: `encoder(input_shape, **options)` returning a list of layers.
      decoder: `decoder(latent_dim, output_shape, params_per_pixel, **options)` returning layers.
      dense_head: Whether the decoder ends in features that need a `Dense` likelihood head
        (`True`) or already emits per-pixel parameters as channels (`False`).
      description: One line for help texts.
    """

    encoder: Callable[..., list]
    decoder: Callable[..., list]
    dense_head: bool
    description: str


NETWORKS: dict[str, Network] = {
    "conv": Network(_seed_conv_encoder, _seed_conv_decoder, False,
                    "Conv2D 32/64 (or `filters`) stride 2 -> Dense 16; mirrored Conv2DTranspose"),
    "course": Network(_course_encoder, _course_decoder, False,
                      "TFP-course net: Conv2D 8 5x5 stride 2 tanh x2 -> Dense 64; "
                      "Dense 64 -> Dense -> Conv2DTranspose x2 -> Conv2D 3x3"),
    "mlp": Network(_mlp_encoder, _mlp_decoder, True, "Dense 512 -> 256, mirrored"),
}


def get_network(name: str) -> Network:
    """Looks up a network body by name.

    Args:
      name: One of `NETWORKS`: `'conv'`, `'course'`, `'mlp'`.

    Returns:
      The `Network`.

    Raises:
      ValueError: If `name` is unknown.
    """
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown network {name!r}; choose one of {sorted(NETWORKS)}.") from None
