"""benchmarks/colour_demo.py: the colourised PNG folder it writes (layout, colours, labels)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tfp_vae

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "colour_demo.py"
_spec = importlib.util.spec_from_file_location("colour_demo", _SCRIPT)
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def _grey_images(n):
    rng = np.random.default_rng(3)
    images = np.zeros((n, 8, 8, 1), dtype=np.float32)
    images[:, 2:6, 2:6, 0] = rng.uniform(0.5, 1.0, size=(n, 4, 4))
    return images


def test_writes_one_png_per_image_in_its_colour_folder(tmp_path):
    images = _grey_images(30)
    colours = demo.write_colour_folder(images, tmp_path, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == list(demo.PALETTE_NAMES)
    assert len(set(colours.tolist())) > 1
    for index, colour in enumerate(colours):
        path = tmp_path / demo.PALETTE_NAMES[colour] / f"{index:05d}.png"
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
        expected = np.rint(images[index] * demo.PALETTE_RGB[colour] * 255)
        np.testing.assert_array_equal(pixels, expected)
    assert sum(1 for _ in tmp_path.rglob("*.png")) == 30


def test_folder_labels_are_the_palette_colours(tmp_path):
    colours = demo.write_colour_folder(_grey_images(20), tmp_path, seed=2)
    data = tfp_vae.load_dataset(str(tmp_path))
    images = np.concatenate([data.x_train, data.x_test])
    labels = np.concatenate([data.y_train, data.y_test])
    assert images.shape == (20, 8, 8, 3)
    # Every image's colour (its brightest channels) is its label's palette colour.
    found = demo.nearest_palette(demo.digit_colours(images, images))
    np.testing.assert_array_equal(found, labels)
    np.testing.assert_array_equal(np.bincount(labels, minlength=6),
                                  np.bincount(colours, minlength=6))


def test_nearest_palette_ignores_brightness():
    dim = np.array([[0.3, 0.3, 0.0], [0.0, 0.0, 0.2], [0.4, 0.05, 0.38]])
    names = [demo.PALETTE_NAMES[i] for i in demo.nearest_palette(dim)]
    assert names == ["yellow", "blue", "magenta"]


def test_refuses_colour_images(tmp_path):
    with pytest.raises(ValueError, match="grey levels"):
        demo.write_colour_folder(np.zeros((2, 8, 8, 3)), tmp_path)
