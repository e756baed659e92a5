"""Data: MNIST, Fashion-MNIST or your own images; binarization; checks; tf.data pipelines.

A data source is a built-in dataset name (`'mnist'`, `'fashion_mnist'`) or a path to your own
images: a folder of PNG/JPEG files or a `.npy` / `.npz` array file (see `tfp_vae.image_files`).

Where a built-in dataset comes from, in order: the `data_dir` argument (the CLI's
`--data-dir`), the `TFP_VAE_DATA_DIR` environment variable, and otherwise the normal Keras
download (cached in `~/.keras/datasets`). A data directory holds the official gzipped IDX
files, either directly or in a sub-folder named after the dataset (`mnist/`, `fashion-mnist/`).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfp_vae.backend import keras, tf
from tfp_vae.image_files import (
    ImageDataset,
    image_source_shape,
    is_image_source,
    load_image_source,
)
from tfp_vae.registry import Registry
from tfp_vae.seeds import numpy_rng

__all__ = [
    "BINARIZATIONS",
    "DATA_DIR_ENV",
    "DATASETS",
    "ImageDataset",
    "DataSplits",
    "binarize",
    "canonical_data_source",
    "canonical_dataset_name",
    "check_images",
    "data_folder",
    "image_shape",
    "load_dataset",
    "load_splits",
    "make_dataset",
    "source_defaults",
]

DATA_DIR_ENV = "TFP_VAE_DATA_DIR"
BINARIZATIONS = ("none", "dynamic", "fixed")

_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IDX_MAGIC = {3: 2051, 1: 2049}

DATASETS: Registry[dict] = Registry("dataset")
DATASETS.add("mnist", {
    "folders": ("mnist",),
    "keras": keras.datasets.mnist,
    "class_names": tuple(str(i) for i in range(10)),
})
DATASETS.add("fashion_mnist", {
    "folders": ("fashion-mnist", "fashion_mnist"),
    "keras": keras.datasets.fashion_mnist,
    "class_names": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                    "Shirt", "Sneaker", "Bag", "Ankle boot"),
})


def canonical_dataset_name(name: str) -> str:
    """The registry name of a built-in dataset: `'fashion-mnist'` -> `'fashion_mnist'`.

    This is the one place where the CLI's dashed spellings meet the Python names.

    Raises:
      ValueError: If `name` is not a registered dataset.
    """
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of "
                         f"{[n.replace('_', '-') for n in sorted(DATASETS)]}.")
    return key


def canonical_data_source(data: str | os.PathLike) -> str:
    """A data source as a run stores it: a built-in dataset's registry name, or a path.

    Args:
      data: `'mnist'`, `'fashion-mnist'` / `'fashion_mnist'`, or the path of a folder of images
        or of a `.npy` / `.npz` file.

    Returns:
      The registry name of a built-in dataset, else the path as a string.

    Raises:
      ValueError: If `data` is neither a built-in dataset nor path-like.
    """
    text = os.fspath(data) if isinstance(data, (str, os.PathLike)) else None
    if not text:
        raise ValueError(f"A data source must be a dataset name or a path, got {data!r}.")
    if text.lower().replace("-", "_") in DATASETS:
        return text.lower().replace("-", "_")
    if is_image_source(text):
        return text
    raise ValueError(f"Unknown dataset {text!r}; choose one of "
                     f"{[n.replace('_', '-') for n in sorted(DATASETS)]}, or give the path of a "
                     "folder of images or a .npy / .npz file.")


def check_images(images: np.ndarray, name: str = "images", binary: bool = False,
                 input_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Cheap checks of images before they are trained on or evaluated; returns float32 images.

    Args:
      images: `[n, height, width, channels]` array.
      name: What to call them in an error. Default: `'images'`.
      binary: Require 0/1 pixels (targets of a Bernoulli likelihood). Default: `False`.
      input_shape: The shape one image must have (a model's `input_shape`). Default: `None`.

    Returns:
      `images` as a float32 NumPy array.

    Raises:
      ValueError: One sentence on the first problem: shape, dtype, non-finite pixels, pixels
        outside [0, 1], or non-binary pixels where binary ones are needed.
    """
    array = np.asarray(images)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
            or array.dtype == bool):
        raise ValueError(f"The {name} have dtype {array.dtype}; pass numeric images.")
    array = array.astype(np.float32, copy=False)
    if array.ndim != 4 or len(array) == 0:
        raise ValueError(f"The {name} have shape {array.shape}; pass a non-empty "
                         "[n, height, width, channels] array.")
    if input_shape is not None and tuple(array.shape[1:]) != tuple(input_shape):
        raise ValueError(f"The {name} have shape {tuple(array.shape[1:])} per image but the "
                         f"model expects {tuple(input_shape)}; resize them or build the model "
                         f"with input_shape={tuple(array.shape[1:])}.")
    return _check_pixels(array, name, binary)


def _check_pixels(array: np.ndarray, name: str, binary: bool = False) -> np.ndarray:
    if array.size == 0:
        return array
    if not np.isfinite(array).all():
        raise ValueError(f"The {name} contain NaN or infinite pixels; clean the data first.")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        hint = "divide uint8 images by 255" if high > 1.0 else "rescale them"
        raise ValueError(f"The {name} have pixel values in [{low:g}, {high:g}], not [0, 1]; "
                         f"{hint}.")
    if binary and not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"The {name} are grey levels, not 0/1, but a Bernoulli likelihood "
                         "needs binary targets; binarize them (tfp_vae.data.binarize, "
                         "--binarization dynamic) or use the normal or continuous Bernoulli "
                         "likelihood.")
    return array


def binarize(images: np.ndarray, seed: int, stream: str = "binarize") -> np.ndarray:
    """Draws binary images with pixel `Bernoulli(intensity)`, reproducibly from `seed`.

    The one binarization of fixed images in tfp_vae (a test split, a fixed training set,
    evaluation images): the same `images` and `seed` always give the same binary images.

    Args:
      images: `[n, h, w, c]` float array in [0, 1].
      seed: Python `int`.
      stream: Name of the random stream derived from `seed`, so that splits binarized with the
        same run seed (e.g. `'test'`, `'validation'`) get independent noise.
        Default: `'binarize'`.

    Returns:
      A float32 array of 0s and 1s with the shape of `images`.

    Raises:
      ValueError: If `images` has values outside [0, 1] (or NaN).

    #### Examples

    ```python
    x_test = binarize(data.x_test, seed=1)
    ```
    """
    images = _check_pixels(np.asarray(images, dtype=np.float32), "images")
    uniform = numpy_rng(seed, stream).random(images.shape, dtype=np.float32)
    return (uniform < images).astype(np.float32)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    hint = (f"re-download it, or point --data-dir / {DATA_DIR_ENV} at a folder with the "
            "official gzipped IDX files")
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read {path}: not a valid gzip file ({error}); {hint}.") from None
    header_size = 4 * (1 + ndim)
    if len(raw) < header_size:
        raise ValueError(f"{path} is truncated (only {len(raw)} bytes); {hint}.")
    magic, *dims = struct.unpack(f">{1 + ndim}I", raw[:header_size])
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"{path} is not an IDX file with {ndim} dimension(s) (magic {magic}, "
                         f"expected {_IDX_MAGIC[ndim]}); {hint}.")
    expected = int(np.prod(dims))
    if len(raw) - header_size != expected:
        raise ValueError(f"{path} holds {len(raw) - header_size} values but its header promises "
                         f"{expected}; {hint}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def _find_folder(data_dir: Path, name: str) -> Path:
    for folder in DATASETS[name]["folders"]:
        if (data_dir / folder).is_dir():
            return data_dir / folder
    return data_dir


def _load_local(data_dir: Path, name: str):
    folder = _find_folder(data_dir, name)
    arrays = {}
    for key, filename in _FILES.items():
        path = folder / filename
        if not path.is_file():
            subfolders = " or ".join(f"{data_dir / f}" for f in DATASETS[name]["folders"])
            raise FileNotFoundError(
                f"Missing {path}: put the {name} IDX files in {subfolders} (or directly in "
                f"{data_dir}), or set --data-dir / {DATA_DIR_ENV} to the folder that has them.")
        arrays[key] = _read_idx(path, 3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise ValueError(f"{folder}: {split} images and labels differ in count; re-download "
                             "the files.")
    return ((arrays["train_images"], arrays["train_labels"]),
            (arrays["test_images"], arrays["test_labels"]))


def _given_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """`data_dir`, else `$TFP_VAE_DATA_DIR`, as a `Path` (`None`: the Keras download)."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    return None if data_dir is None else Path(data_dir).expanduser()


def data_folder(name: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """The absolute folder `load_dataset(name, data_dir)` reads a built-in dataset from.

    A run records it, so that resuming or re-evaluating it later finds the same files from
    any working directory and without `$TFP_VAE_DATA_DIR`.

    Args:
      name: A data source, as for `load_dataset`.
      data_dir: As for `load_dataset`. Default: `None`.

    Returns:
      The absolute path of `data_dir` (or of `$TFP_VAE_DATA_DIR`) as a `str`, or `None` for
      your own images and for the Keras download.
    """
    if canonical_data_source(name) not in DATASETS:
        return None
    data_dir = _given_data_dir(data_dir)
    return None if data_dir is None else str(data_dir.resolve())


def load_dataset(name: str = "fashion_mnist", data_dir: str | os.PathLike | None = None,
                 image_size: tuple[int, int] | None = None) -> ImageDataset:
    """Loads a dataset as float32 images in [0, 1] with labels and class names.

    Args:
      name: `'mnist'` or `'fashion_mnist'` (`'fashion-mnist'` also accepted), or the path of
        your own images (a folder of PNG/JPEG files or a `.npy` / `.npz` file; see
        `tfp_vae.image_files.load_image_source`). Default: `'fashion_mnist'`.
      data_dir: Folder with the gzipped IDX files of a built-in dataset (or with an `mnist/` /
        `fashion-mnist/` sub-folder). `None` uses `$TFP_VAE_DATA_DIR`, and without it the
        Keras download. Default: `None`.
      image_size: `(height, width)` to resize a folder's images to. Default: `None`.

    Returns:
      An `ImageDataset` with `x_*` of shape `[n, height, width, channels]` (`[n, 28, 28, 1]`
      for the built-in datasets).

    Raises:
      ValueError: If `name` is unknown or a file is corrupt (the message names the file).
      FileNotFoundError: If `data_dir` (or `$TFP_VAE_DATA_DIR`) lacks a file (named, with the
        flag and variable to set), or the Keras download fails.

    #### Examples

    ```python
    data = load_dataset("fashion_mnist", data_dir="../shared/data")
    data.x_train.shape, data.class_names[0]  # (60000, 28, 28, 1), 'T-shirt/top'
    ```
    """
    name = canonical_data_source(name)
    if name not in DATASETS:
        return load_image_source(name, image_size)
    data_dir = _given_data_dir(data_dir)
    if data_dir is not None:
        if not data_dir.is_dir():
            raise FileNotFoundError(f"Data folder {data_dir} does not exist; fix --data-dir or "
                                    f"{DATA_DIR_ENV}, or unset it to download with Keras.")
        (x_train, y_train), (x_test, y_test) = _load_local(data_dir, name)
    else:
        try:
            (x_train, y_train), (x_test, y_test) = DATASETS[name]["keras"].load_data()
        except Exception as error:  # Keras raises bare Exceptions for network failures.
            raise FileNotFoundError(
                f"Could not download {name} with Keras ({error}); pass --data-dir or set "
                f"{DATA_DIR_ENV} to a folder with the gzipped IDX files.") from None

    def images(x):
        return (x.astype(np.float32) / np.float32(255.0))[..., np.newaxis]

    return ImageDataset(name, images(x_train), y_train.astype(np.int64), images(x_test),
                        y_test.astype(np.int64), DATASETS[name]["class_names"])


@dataclass(frozen=True, kw_only=True)
class DataSplits(ImageDataset):
    """The three splits of a run: an `ImageDataset` plus its validation split.

    Held-out splits (validation and test) are already binarized once.

    Attributes:
      name: Dataset name.
      x_train, y_train: Training images in [0, 1] (binarized per batch, if at all, by
        `make_dataset`) and labels.
      x_validation, y_validation: Held-out part of the training set (possibly empty), binarized
        with the run's seed if the run binarizes.
      x_test, y_test: Test images, binarized once with the run's seed if the run binarizes; used
        only for final metrics.
      class_names: Name of each label.
      sha256: Content hash of your own images' files; `None` for a built-in dataset.
    """

    x_validation: np.ndarray
    y_validation: np.ndarray


def image_shape(data: str, data_dir: str | os.PathLike | None = None,
                image_size: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """The `(height, width, channels)` of one image of a data source, reading little of it.

    Args:
      data: A built-in dataset name or the path of your own images.
      data_dir: Unused for the built-in datasets (all 28x28 grey). Default: `None`.
      image_size: `(height, width)` a folder's images are resized to. Default: `None`.

    Raises:
      ValueError: If `data` is not a known dataset or a readable image source.
      FileNotFoundError: If a path does not exist.
    """
    data = canonical_data_source(data)
    if data in DATASETS:
        return (28, 28, 1)
    return image_source_shape(data, image_size)


def source_defaults(data: str, data_dir: str | os.PathLike | None = None,
                    image_size: tuple[int, int] | None = None) -> dict[str, object]:
    """Model and training settings that fit a data source, for settings the user left open.

    A built-in dataset keeps the defaults (Bernoulli likelihood on dynamically binarized
    images). Your own images are looked at: binary images (all pixels 0 or 1) keep the
    Bernoulli likelihood, without binarization; grey-level or colour images get the
    `'normal'` likelihood on the pixel values as they are (`binarization='none'`).

    Args:
      data: A built-in dataset name or the path of your own images.
      data_dir: See `load_dataset`. Default: `None`.
      image_size: See `load_dataset`. Default: `None`.

    Returns:
      A dict with `input_shape` and, for your own images, `likelihood` and `binarization`.

    Raises:
      ValueError, FileNotFoundError: As `load_dataset`.
    """
    data = canonical_data_source(data)
    if data in DATASETS:
        return {"input_shape": image_shape(data)}
    dataset = load_dataset(data, data_dir, image_size)
    binary = bool(np.isin(dataset.x_train, (0.0, 1.0)).all())
    return {"input_shape": tuple(int(d) for d in dataset.x_train.shape[1:]),
            "likelihood": "bernoulli" if binary else "normal", "binarization": "none"}


def load_splits(data: str = "fashion_mnist", data_dir: str | os.PathLike | None = None,
                validation_size: int = 0, train_size: int | None = None,
                test_size: int | None = None, binarization: str = "dynamic", seed: int = 0,
                image_size: tuple[int, int] | None = None) -> DataSplits:
    """Train / validation / test splits of a dataset, as a training run uses them.

    The validation split is the last `validation_size` images of the training set (never
    trained on); `train_size` then takes the first images of the rest. Validation and test
    images are binarized once, with streams `'validation'` and `'test'` of `seed`, unless
    `binarization='none'`, so every evaluation of a run sees the same binary images.

    Args:
      data: Dataset name. Default: `'fashion_mnist'`.
      data_dir: See `load_dataset`. Default: `None`.
      validation_size: Python `int` >= 0. Default: `0`.
      train_size: Python `int` or `None` (all). Default: `None`.
      test_size: Python `int` or `None` (all). Default: `None`.
      binarization: `'dynamic'`, `'fixed'` or `'none'`. Default: `'dynamic'`.
      seed: Python `int`. Default: `0`.
      image_size: `(height, width)` a folder's images are resized to. Default: `None`.

    Returns:
      A `DataSplits`.

    Raises:
      ValueError: If the sizes do not fit the dataset (one sentence with the numbers).
      FileNotFoundError: As `load_dataset`.

    #### Examples

    ```python
    splits = load_splits("mnist", "../shared/data", validation_size=10000)
    splits.x_train.shape, splits.x_validation.shape  # (50000, 28, 28, 1), (10000, 28, 28, 1)
    ```
    """
    dataset = load_dataset(data, data_dir, image_size)
    available = len(dataset.x_train)
    if validation_size >= available:
        raise ValueError(f"validation_size {validation_size} leaves no training images: "
                         f"{dataset.name} has {available}; use a smaller validation split.")
    cut = available - validation_size
    if train_size is not None and train_size > cut:
        raise ValueError(f"train_size {train_size} is more than the {cut} training images of "
                         f"{dataset.name} left after a validation split of {validation_size}.")
    stop = cut if train_size is None else train_size
    test_stop = len(dataset.x_test) if test_size is None else test_size
    if test_stop > len(dataset.x_test):
        raise ValueError(f"test_size {test_size} is more than the {len(dataset.x_test)} test "
                         f"images of {dataset.name}.")

    def held_out(images, stream):
        return images if binarization == "none" else binarize(images, seed, stream)

    return DataSplits(
        name=dataset.name, x_train=dataset.x_train[:stop], y_train=dataset.y_train[:stop],
        x_validation=held_out(dataset.x_train[cut:], "validation"),
        y_validation=dataset.y_train[cut:],
        x_test=held_out(dataset.x_test[:test_stop], "test"), y_test=dataset.y_test[:test_stop],
        class_names=dataset.class_names, sha256=dataset.sha256)


def make_dataset(images: np.ndarray, labels: np.ndarray | None = None, batch_size: int = 128,
                 shuffle: bool = True, binarization: str = "none", seed: int = 0,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """A `tf.data` pipeline over images in [0, 1], optionally binarized.

    Binarization draws each pixel from `Bernoulli(intensity)`:
    `'dynamic'` draws anew every epoch (a regulariser; Salakhutdinov & Murray, 2008),
    `'fixed'` draws once from `seed`, so every epoch (and every run) sees the same binary images.

    Args:
      images: `[n, h, w, c]` float array in [0, 1].
      labels: Optional `[n]` labels; the dataset then yields `(image, label)`. Default: `None`.
      batch_size: Python `int`. Default: `128`.
      shuffle: Reshuffle every epoch. Default: `True`.
      binarization: `'none'`, `'dynamic'` or `'fixed'`. Default: `'none'`.
      seed: Seed for shuffling and binarization. Default: `0`.
      drop_remainder: Drop the last partial batch. Default: `False`.

    Returns:
      A batched, prefetched `tf.data.Dataset`.

    Raises:
      ValueError: If `binarization` is unknown or `images` are not in [0, 1].

    #### Examples

    ```python
    train = make_dataset(data.x_train, batch_size=128, binarization="dynamic")
    vae.fit(train, epochs=10)
    ```
    """
    if binarization not in BINARIZATIONS:
        raise ValueError(f"Unknown binarization {binarization!r}; choose one of "
                         f"{list(BINARIZATIONS)}.")
    images = check_images(images)
    if binarization == "fixed":
        images = binarize(images, seed)
    tensors = images if labels is None else (images, np.asarray(labels))
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if binarization == "dynamic":
        noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, noise_seeds)).map(
            _binarize_batch, num_parallel_calls=2)
    # tf.data's autotuning thread sleeps between optimisation rounds (the period doubles up to
    # tens of seconds) and an iterator's destructor waits for it: with one fresh iterator per
    # epoch that idled up to ~15 s between epochs (benchmarks/bench_epoch_gap.py). The map and
    # prefetch here are light, so fixed sizes lose nothing.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def _binarize_batch(batch, noise_seed):
    x = batch[0] if isinstance(batch, tuple) else batch
    uniform = tf.random.stateless_uniform(tf.shape(x), seed=noise_seed, dtype=x.dtype)
    binary = tf.cast(uniform < x, x.dtype)
    return (binary, *batch[1:]) if isinstance(batch, tuple) else binary

