"""Your own images: a folder of PNG/JPEG files, or a `.npy` / `.npz` array file.

`load_image_source(path)` turns any of them into train and test arrays of float32 images in
[0, 1] with shape `[n, height, width, channels]` (1 channel for grey images, 3 for colour):

- **A folder.** Images are read with Keras's own directory loader
  (`keras.utils.image_dataset_from_directory`). Class sub-folders become integer labels
  (sorted folder names); images directly in the folder have no labels. A folder with `train/`
  and `test/` sub-folders gives those splits. All images must have one size, unless
  `image_size` is given, in which case every image is resized to it.
- **A `.npy` file**: one array `[n, h, w]` or `[n, h, w, c]`, uint8 in 0-255 or float in [0, 1].
- **A `.npz` file**: arrays `x_train` (and optionally `x_test`, `y_train`, `y_test`), or a single
  array `x` / `images` (and optionally `y` / `labels`).

Without a test split of its own, a fixed 10 % of the images (a permutation with seed 0, so the
split depends only on the data, never on a run's seed) becomes the test split.

Every source also gets a content hash (SHA-256 of the files read), which a run records so that
later commands can say when the data changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfp_vae.backend import keras

__all__ = ["IMAGE_SUFFIXES", "ImageDataset", "is_image_source", "load_image_source",
           "image_source_shape"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
TEST_FRACTION = 0.1
_SPLIT_SEED = 0


@dataclass(frozen=True)
class ImageDataset:
    """Images as float32 in [0, 1] with shape `[n, height, width, channels]`, and labels.

    What `tfp_vae.data.load_dataset` returns for a built-in dataset and `load_image_source` for
    your own images.

    Attributes:
      name: Dataset name, or the path of your own images.
      x_train, y_train, x_test, y_test: NumPy arrays (labels int64, `-1` where a source has
        none).
      class_names: Name of each label (class folders), or `()`.
      sha256: Content hash of your own images' files; `None` for a built-in dataset.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    sha256: str | None = None


def is_image_source(data: str | os.PathLike) -> bool:
    """Whether `data` names a user's image source (a folder or an array file), not a dataset."""
    text = os.fspath(data)
    return (os.sep in text or "/" in text or text.lower().endswith(ARRAY_SUFFIXES)
            or Path(text).expanduser().exists())


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and p.is_file())


def _scan(folder: Path, image_size: tuple[int, int] | None) -> tuple[tuple[int, int], str]:
    """The common `(height, width)` and colour mode of a folder's images, or one clear error."""
    from PIL import Image, UnidentifiedImageError

    files = _images_in(folder)
    if not files:
        raise ValueError(f"{folder} holds no PNG or JPEG images (looked in it and its "
                         "sub-folders); point --data at a folder of images.")
    sizes: dict[tuple[int, int], Path] = {}
    colour = False
    for path in files:
        try:
            with Image.open(path) as image:
                width, height = image.size
                colour = colour or image.mode not in ("1", "L", "I", "I;16", "F")
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path} is not a readable image ({type(error).__name__}); remove "
                             "or replace it.") from None
        sizes.setdefault((height, width), path)
    if image_size is None and len(sizes) > 1:
        (first, a), (second, b) = list(sizes.items())[:2]
        raise ValueError(f"The images in {folder} differ in size ({first[0]}x{first[1]} in "
                         f"{a.name}, {second[0]}x{second[1]} in {b.name}); resize them or pass "
                         "image_size (--image-size HEIGHT WIDTH).")
    return (image_size or next(iter(sizes))), ("rgb" if colour else "grayscale")


def _hash_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_folder(folder: Path, size: tuple[int, int], mode: str
                 ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and _images_in(p))
    labelled = bool(subfolders) and not any(p.parent == folder for p in _images_in(folder))
    # Keras prints "Found N files ..." itself; a library call should not.
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = keras.utils.image_dataset_from_directory(
            folder, labels="inferred" if labelled else None, color_mode=mode, image_size=size,
            batch_size=None, shuffle=False, interpolation="bilinear")
    if labelled:
        images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    else:
        images = list(dataset.as_numpy_iterator())
        labels = [-1] * len(images)
    x = np.stack(images).astype(np.float32) / np.float32(255.0)
    return x, np.asarray(labels, np.int64), tuple(subfolders) if labelled else ()


def _as_images(array: np.ndarray, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or len(array) == 0:
        raise ValueError(f"{where} has shape {array.shape}; expected images [n, height, width] "
                         "or [n, height, width, channels] with 1 or 3 channels.")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{where} has dtype {array.dtype}; expected uint8 or float images.")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{where} contains NaN or infinite pixels; clean the data first.")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"{where} has pixel values in [{array.min():g}, {array.max():g}]; "
                         "scale float images to [0, 1] (or store uint8 0-255).")
    return array


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix.lower() == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"Cannot read {path} as a NumPy array file ({error}); save it with "
                         "numpy.save / numpy.savez (no pickled objects).") from None


def _split_off_test(x: np.ndarray, y: np.ndarray):
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
    test = max(1, round(TEST_FRACTION * len(x)))
    if len(x) - test < 2:
        raise ValueError(f"Only {len(x)} images: too few to split off a test set and train; "
                         "provide at least 3.")
    return x[order[test:]], y[order[test:]], x[order[:test]], y[order[:test]]


def _labels(arrays: dict[str, np.ndarray], keys: tuple[str, ...], count: int, where: str
            ) -> np.ndarray:
    for key in keys:
        if key in arrays:
            labels = np.asarray(arrays[key]).astype(np.int64).reshape(-1)
            if len(labels) != count:
                raise ValueError(f"{where}: {key} has {len(labels)} labels for {count} images.")
            return labels
    return np.full(count, -1, np.int64)


def load_image_source(path: str | os.PathLike, image_size: tuple[int, int] | None = None
                      ) -> ImageDataset:
    """Reads a folder of images or a `.npy` / `.npz` file into train and test arrays.

    Args:
      path: A folder of PNG/JPEG images (class sub-folders become labels; `train/` and `test/`
        sub-folders become the splits), or a `.npy` / `.npz` file (see the module docstring).
      image_size: `(height, width)` to resize folder images to; `None` keeps their common size
        (and refuses mixed sizes). Default: `None`.

    Returns:
      An `ImageDataset`.

    Raises:
      FileNotFoundError: If `path` does not exist.
      ValueError: If the source is empty, corrupt, of mixed image sizes, or not images (one
        sentence naming the file and the fix).

    #### Examples

    ```python
    source = load_image_source("my_faces/")       # my_faces/smiling/*.png, my_faces/other/*.png
    source.x_train.shape, source.class_names      # (900, 64, 64, 3), ('other', 'smiling')
    ```
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist; point --data at a folder of images, a "
                                ".npy / .npz file, or a built-in dataset name (mnist, "
                                "fashion-mnist).")
    if root.is_dir():
        size, mode = _scan(root, None if image_size is None else tuple(image_size))
        digest = _hash_files(_images_in(root), root)
        if (root / "train").is_dir() and (root / "test").is_dir():
            x_train, y_train, names = _read_folder(root / "train", size, mode)
            x_test, y_test, _ = _read_folder(root / "test", size, mode)
        else:
            x, y, names = _read_folder(root, size, mode)
            x_train, y_train, x_test, y_test = _split_off_test(x, y)
        return ImageDataset(os.fspath(path), x_train, y_train, x_test, y_test, names, digest)
    if root.suffix.lower() not in ARRAY_SUFFIXES:
        raise ValueError(f"{root} is neither a folder of images nor a .npy / .npz file.")
    arrays = _read_arrays(root)
    digest = _hash_files([root], root.parent)
    where = root.name
    if "x_train" in arrays:
        x_train = _as_images(arrays["x_train"], f"{where}: x_train")
        y_train = _labels(arrays, ("y_train",), len(x_train), where)
        if "x_test" in arrays:
            x_test = _as_images(arrays["x_test"], f"{where}: x_test")
            y_test = _labels(arrays, ("y_test",), len(x_test), where)
            if x_test.shape[1:] != x_train.shape[1:]:
                raise ValueError(f"{where}: x_train images are {x_train.shape[1:]} but x_test "
                                 f"images are {x_test.shape[1:]}; use one shape.")
        else:
            x_train, y_train, x_test, y_test = _split_off_test(x_train, y_train)
    else:
        key = next((k for k in ("x", "images", "arr_0") if k in arrays), None)
        if key is None:
            raise ValueError(f"{where} has arrays {sorted(arrays)}; name the images x_train "
                             "(and x_test), x or images.")
        x = _as_images(arrays[key], f"{where}: {key}")
        y = _labels(arrays, ("y", "labels"), len(x), where)
        x_train, y_train, x_test, y_test = _split_off_test(x, y)
    return ImageDataset(os.fspath(path), x_train, y_train, x_test, y_test, (), digest)


def image_source_shape(path: str | os.PathLike, image_size: tuple[int, int] | None = None
                       ) -> tuple[int, int, int]:
    """`(height, width, channels)` of a source's images, reading as little as possible.

    Raises:
      FileNotFoundError, ValueError: As `load_image_source`.
    """
    root = Path(path).expanduser()
    if root.is_dir():
        size, mode = _scan(root, None if image_size is None else tuple(image_size))
        return (int(size[0]), int(size[1]), 3 if mode == "rgb" else 1)
    source = load_image_source(path, image_size)
    return tuple(int(d) for d in source.x_train.shape[1:])
