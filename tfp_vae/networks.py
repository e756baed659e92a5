"""Encoder and decoder bodies: the deterministic networks around the distribution heads.

Each body is registered in `NETWORKS` (a `tfp_vae.registry.Registry`) under a name and is a pair
of functions:
`encoder(input_shape, dtype=None, **options) -> [layers]` ending in a feature vector, and
`decoder(latent_dim, output_shape, params_per_pixel, dtype=None, **options) -> [layers]` ending
in either
per-pixel parameters as channels (conv bodies) or a feature vector (`dense_head = True`, the
likelihood head then adds the `Dense`). `dtype` is the Keras dtype policy of the hidden layers
(e.g. `'mixed_bfloat16'`); layers that emit distribution parameters stay float32.

Presets and the published nets they reproduce:

- `conv`: the keras-io VAE (`examples/generative/vae.py`): Conv2D 32/64 3x3 stride 2 -> Dense 16;
  Dense 7*7*64 -> Conv2DTranspose 64/32 stride 2 -> Conv2DTranspose 3x3. `filters` scales both
  sides together.
- `conv_64_128`: the first reference net of this project (Conv2D 64/128 -> Dense 16; decoder
  Dense 7*7*64 -> Conv2DTranspose 128/64 stride 2 -> Conv2DTranspose 3x3).
- `tfp_course`: the TFP course's net (Conv2D 8 5x5 stride 2 tanh x2 -> Dense 64, mirrored);
  `course` is its deprecated name.
- `mlp`: Dense layers, mirrored (ReLU 512/256 by default; Burda et al.'s 200/200 tanh with
  `hidden_units=[200, 200], activation='tanh'`).

Add an architecture from your own code with `register_network`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tfp_vae.backend import keras
from tfp_vae.registry import Registry

__all__ = ["NETWORKS", "Network", "get_network", "network_options", "register_network"]

layers = keras.layers


def _check_image_shape(shape: Sequence[int], network: str) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"The {network!r} network needs an image shape (height, width, "
                         f"channels) with positive sizes, got {shape}.")
    return shape


def _keras_io_conv_encoder(input_shape, filters=(32, 64), hidden_units=16, dtype=None):
    return _conv_encoder_layers(input_shape, filters, hidden_units, dtype, "conv")


def _conv_encoder_layers(input_shape, filters, hidden_units, dtype, network):
    height, width, _ = _check_image_shape(input_shape, network)
    if height % 4 or width % 4:
        raise ValueError(f"The {network!r} network halves the image twice, so height and "
                         f"width must be multiples of 4, got {height}x{width}; pad or crop the "
                         "images, or use network='mlp'.")
    f1, f2 = filters
    return [
        layers.InputLayer(input_shape=tuple(input_shape)),
        layers.Conv2D(f1, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        layers.Conv2D(f2, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(hidden_units, activation="relu", dtype=dtype),
    ]


def _keras_io_conv_decoder(latent_dim, output_shape, params_per_pixel, filters=(32, 64),
                           hidden_units=16, dtype=None):
    del hidden_units
    # The keras-io decoder reshapes to f2 = 64 channels at 7x7 for (32, 64) filters.
    return _conv_decoder_layers(latent_dim, output_shape, params_per_pixel, filters, dtype,
                                filters[1], "conv")


def _conv_decoder_layers(latent_dim, output_shape, params_per_pixel, filters, dtype,
                         dense_channels, network):
    height, width, channels = _check_image_shape(output_shape, network)
    f1, f2 = filters
    return [
        layers.InputLayer(input_shape=(latent_dim,)),
        layers.Dense((height // 4) * (width // 4) * dense_channels, activation="relu",
                     dtype=dtype),
        layers.Reshape((height // 4, width // 4, dense_channels), dtype=dtype),
        layers.Conv2DTranspose(f2, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        layers.Conv2DTranspose(f1, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        # Distribution parameters are computed in float32 even under mixed precision.
        layers.Conv2DTranspose(channels * params_per_pixel, 3, padding="same", dtype="float32"),
    ]


def _valid_conv_size(size: int, kernel: int = 5, stride: int = 2) -> int:
    return (size - kernel) // stride + 1


def _tfp_course_output_padding(target: int, size: int, kernel: int = 5, stride: int = 2) -> int:
    return target - ((size - 1) * stride + kernel)


def _tfp_course_sizes(input_shape):
    height, width, channels = _check_image_shape(input_shape, "tfp_course")
    sizes = []
    for extent in (height, width):
        first = _valid_conv_size(extent)
        second = _valid_conv_size(first)
        paddings = (_tfp_course_output_padding(first, second),
                    _tfp_course_output_padding(extent, first))
        if second < 1 or not all(0 <= p < 2 for p in paddings):
            raise ValueError(
                f"The 'tfp_course' network (two valid 5x5 stride-2 convolutions) cannot rebuild a "
                f"{height}x{width} image exactly; use sizes such as 28 or 29 (>= 13), or "
                "network='conv' / 'mlp'.")
        sizes.append((second, paddings))
    (h2, (hp1, hp2)), (w2, (wp1, wp2)) = sizes
    return h2, w2, (hp1, wp1), (hp2, wp2), channels


def _tfp_course_encoder(input_shape, hidden_units=64, dtype=None):
    _tfp_course_sizes(input_shape)
    return [
        layers.InputLayer(input_shape=tuple(input_shape)),
        layers.Conv2D(8, 5, strides=2, activation="tanh", dtype=dtype),
        layers.Conv2D(8, 5, strides=2, activation="tanh", dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(hidden_units, activation="tanh", dtype=dtype),
    ]


def _tfp_course_decoder(latent_dim, output_shape, params_per_pixel, hidden_units=64,
                    dtype=None):
    h2, w2, padding1, padding2, channels = _tfp_course_sizes(output_shape)
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


def _mlp_encoder(input_shape, hidden_units=(512, 256), activation="relu", dtype=None):
    return [layers.InputLayer(input_shape=tuple(input_shape)), layers.Flatten(dtype=dtype)] + [
        layers.Dense(units, activation=activation, dtype=dtype) for units in hidden_units]


def _mlp_decoder(latent_dim, output_shape, params_per_pixel, hidden_units=(512, 256),
                 activation="relu", dtype=None):
    del output_shape, params_per_pixel
    return [layers.InputLayer(input_shape=(latent_dim,))] + [
        layers.Dense(units, activation=activation, dtype=dtype)
        for units in reversed(hidden_units)]


_BUILDER_ARGUMENTS = {"input_shape", "latent_dim", "output_shape", "params_per_pixel", "dtype"}


def network_options(name: str) -> tuple[str, ...]:
    """The `ModelConfig.network_options` keys a registered network accepts.

    Raises:
      ValueError: If `name` is not a registered network.
    """
    network = NETWORKS.get(name)
    names = set()
    for builder in (network.encoder, network.decoder):
        names |= set(inspect.signature(builder).parameters) - _BUILDER_ARGUMENTS
    return tuple(sorted(names))


@dataclass(frozen=True)
class Network:
    """An encoder/decoder body pair.

    Attributes:
      encoder: `encoder(input_shape, **options)` returning a list of layers.
      decoder: `decoder(latent_dim, output_shape, params_per_pixel, **options)` returning layers.
      dense_head: Whether the decoder ends in features that need a `Dense` likelihood head
        (`True`) or already emits per-pixel parameters as channels (`False`).
      description: One line for help texts.
      jit_compile: Whether training compiles with XLA by default (what measured faster on
        CPU: the small MLPs are bound by per-step overhead that XLA removes; the conv nets
        were slower with it). Default: `False`.
    """

    encoder: Callable[..., list]
    decoder: Callable[..., list]
    dense_head: bool
    description: str
    jit_compile: bool = False


NETWORKS: Registry[Network] = Registry("network")


def register_network(name: str, encoder: Callable[..., list], decoder: Callable[..., list],
                     dense_head: bool, description: str, *, jit_compile: bool = False,
                     replace: bool = False) -> Network:
    """Adds a network body under `name`, so `ModelConfig(network=name)` builds it.

    Args:
      name: The name used in `ModelConfig.network` and the CLI's `--network`.
      encoder: `encoder(input_shape, dtype=None, **options) -> [layers]` ending in features.
      decoder: `decoder(latent_dim, output_shape, params_per_pixel, dtype=None, **options)
        -> [layers]`.
      dense_head: Whether the decoder ends in features (a `Dense` likelihood head is added)
        rather than per-pixel parameters as channels.
      description: One line for help texts, naming the published net it reproduces if any.
      jit_compile: Compile training with XLA by default. Default: `False`.
      replace: Allow replacing an existing entry. Default: `False`.

    Returns:
      The registered `Network`.

    Raises:
      ValueError: If `name` is taken and `replace` is `False`.

    #### Examples

    ```python
    register_network("tiny_mlp", lambda shape, dtype=None: [...], lambda *a, dtype=None: [...],
                     dense_head=True, description="Dense 32, mirrored")
    ```
    """
    return NETWORKS.add(name, Network(encoder, decoder, dense_head, description, jit_compile),
                        replace=replace)


def _conv_64_128_encoder(input_shape, hidden_units=16, dtype=None):
    return _conv_encoder_layers(input_shape, (64, 128), hidden_units, dtype, "conv_64_128")


def _conv_64_128_decoder(latent_dim, output_shape, params_per_pixel, hidden_units=16,
                         dtype=None):
    del hidden_units
    return _conv_decoder_layers(latent_dim, output_shape, params_per_pixel, (64, 128), dtype,
                                64, "conv_64_128")


register_network("conv", _keras_io_conv_encoder, _keras_io_conv_decoder, False,
                 "keras-io VAE: Conv2D 32/64 (or `filters`) stride 2 -> Dense 16; mirrored "
                 "Conv2DTranspose")
register_network("conv_64_128", _conv_64_128_encoder, _conv_64_128_decoder, False,
                 "Conv2D 64/128 stride 2 -> Dense 16; Dense 7*7*64 -> Conv2DTranspose "
                 "128/64 -> Conv2DTranspose 3x3")
register_network("tfp_course", _tfp_course_encoder, _tfp_course_decoder, False,
                 "TFP course net: Conv2D 8 5x5 stride 2 tanh x2 -> Dense 64; Dense 64 -> Dense "
                 "-> Conv2DTranspose x2 -> Conv2D 3x3")
register_network("mlp", _mlp_encoder, _mlp_decoder, True,
                 "Dense 512 -> 256 ReLU (or `hidden_units`, `activation`), mirrored",
                 jit_compile=True)
NETWORKS.alias("course", "tfp_course")


def get_network(name: str) -> Network:
    """Looks up a network body by name.

    Args:
      name: One of `NETWORKS`: `'conv'`, `'conv_64_128'`, `'tfp_course'`, `'mlp'` (or one you
        registered).

    Returns:
      The `Network`.

    Raises:
      ValueError: If `name` is unknown.
    """
    return NETWORKS.get(name)
