"""Your own images: folders (with and without class folders), .npy, .npz, colour, bad sources.

Every source is made on the fly from real MNIST digits (no download): grey PNGs, colourised
PNGs (each digit tinted with a per-class colour), and arrays.
"""

import json

import numpy as np
import pytest
from PIL import Image

from tfp_vae import cli
from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.data import load_dataset, load_splits, source_defaults
from tfp_vae.image_files import load_image_source
from tfp_vae.runs import train_run

_TINTS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.3, 0.3, 1.0]], np.float32)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist")
    keep = np.isin(data.y_train, (0, 1, 2))
    return data.x_train[keep][:90], data.y_train[keep][:90]


def _write_pngs(folder, images, labels=None, colour=False, size=None):
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        pixels = image[..., 0]
        if colour:
            pixels = pixels[..., None] * _TINTS[labels[index]]
        array = np.round(pixels * 255).astype(np.uint8)
        target = folder / str(labels[index]) if labels is not None else folder
        target.mkdir(exist_ok=True)
        picture = Image.fromarray(array)
        if size is not None and index == 0:
            picture = picture.resize(size)
        picture.save(target / f"{index:04d}.png")
    return folder


def test_class_folders_become_labels_and_pixels_round_trip(tmp_path, digits):
    x, y = digits
    folder = _write_pngs(tmp_path / "digits", x, y)
    source = load_image_source(folder)
    assert source.class_names == ("0", "1", "2")
    assert source.x_train.shape[1:] == (28, 28, 1) and len(source.x_train) + len(
        source.x_test) == 90 and len(source.x_test) == 9
    # PNG stores 8 bits: every pixel comes back within half a grey level of the original.
    by_label = {label: np.sort(x[y == label].reshape(np.sum(y == label), -1).sum(1))
                for label in (0, 1, 2)}
    found = np.concatenate([source.x_train, source.x_test]).reshape(90, -1).sum(1)
    labels = np.concatenate([source.y_train, source.y_test])
    for label in (0, 1, 2):
        np.testing.assert_allclose(np.sort(found[labels == label]), by_label[label], atol=784 / 510)
    assert len(source.sha256) == 64


def test_a_flat_folder_has_no_labels_and_a_fixed_test_split(tmp_path, digits):
    x, _ = digits
    folder = _write_pngs(tmp_path / "flat", x[:40])
    first, second = load_image_source(folder), load_image_source(folder)
    assert first.class_names == () and set(first.y_train) == {-1}
    np.testing.assert_array_equal(first.x_test, second.x_test)  # the split depends on data only
    assert len(first.x_test) == 4


def test_colour_folder_with_train_and_test_folders_and_resizing(tmp_path, digits):
    x, y = digits
    _write_pngs(tmp_path / "c" / "train", x[:60], y[:60], colour=True)
    _write_pngs(tmp_path / "c" / "test", x[60:], y[60:], colour=True)
    source = load_image_source(tmp_path / "c")
    assert source.x_train.shape == (60, 28, 28, 3) and source.x_test.shape == (30, 28, 28, 3)
    # A tinted digit keeps the tint's channel ratios (red-tinted class 0: red >> green).
    zero = source.x_train[source.y_train == 0]
    assert zero[..., 0].sum() > 4 * zero[..., 1].sum()
    resized = load_image_source(tmp_path / "c", image_size=(32, 32))
    assert resized.x_train.shape == (60, 32, 32, 3)


def test_npy_and_npz_sources(tmp_path, digits):
    x, y = digits
    np.save(tmp_path / "digits.npy", np.round(x[..., 0] * 255).astype(np.uint8))
    from_npy = load_image_source(tmp_path / "digits.npy")
    assert from_npy.x_train.shape == (81, 28, 28, 1) and from_npy.x_test.shape == (9, 28, 28, 1)
    np.savez(tmp_path / "digits.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:],
             y_test=y[60:])
    from_npz = load_image_source(tmp_path / "digits.npz")
    np.testing.assert_array_equal(from_npz.x_test, x[60:])
    np.testing.assert_array_equal(from_npz.y_train, y[:60])
    # The same loader behind every data entry point, with the test split kept for testing.
    splits = load_splits(str(tmp_path / "digits.npz"), validation_size=10, binarization="none")
    assert len(splits.x_train) == 50 and len(splits.x_test) == 30 and splits.sha256


@pytest.mark.parametrize("make, message", [
    (lambda d, x: d.mkdir(), "holds no PNG or JPEG images"),
    (lambda d, x: _write_pngs(d, x[:3], size=(32, 32)), "differ in size"),
    (lambda d, x: (_write_pngs(d, x[:3]), (d / "broken.png").write_bytes(b"not a png")),
     "broken.png is not a readable image"),
], ids=["empty", "mixed-sizes", "corrupt-file"])
def test_bad_folders_give_one_clear_sentence(tmp_path, digits, make, message):
    folder = tmp_path / "bad"
    make(folder, digits[0])
    with pytest.raises(ValueError, match=message) as error:
        load_image_source(folder)
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 28, 28, 2)), "1 or 3 channels"),
    (np.full((4, 28, 28), 2.0), r"pixel values in \[2, 2\]"),
    (np.full((4, 28, 28), np.nan), "NaN or infinite"),
    (np.array(["a", "b"]), "expected images"),
], ids=["channels", "range", "nan", "strings"])
def test_bad_arrays_give_one_clear_sentence(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=message):
        load_image_source(tmp_path / "bad.npy")


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; point --data at a folder"):
        load_image_source(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
        TrainingConfig(data="cifar")


def test_grey_level_images_get_a_normal_likelihood_binary_ones_keep_bernoulli(tmp_path, digits):
    x, _ = digits
    np.save(tmp_path / "grey.npy", x)
    np.save(tmp_path / "binary.npy", (x > 0.5).astype(np.float32))
    assert source_defaults(str(tmp_path / "grey.npy")) == {
        "input_shape": (28, 28, 1), "likelihood": "normal", "binarization": "none"}
    assert source_defaults(str(tmp_path / "binary.npy"))["likelihood"] == "bernoulli"
    # Grey levels under a Bernoulli likelihood without binarization are refused up front.
    with pytest.raises(ValueError, match="grey levels, not 0/1, but a Bernoulli likelihood"):
        train_run(None, ModelConfig(network="mlp", network_options={"hidden_units": [16]}),
                  TrainingConfig(data=str(tmp_path / "grey.npy"), binarization="none"))
    # ... and so is the default dynamic binarization under the normal likelihood.
    with pytest.raises(ValueError, match=r"Binarizing .*grey\.npy \('dynamic'\) would train "
                                         r"the normal likelihood on 0/1 pixels"):
        train_run(None, ModelConfig(network="mlp", network_options={"hidden_units": [16]},
                                    likelihood="normal"),
                  TrainingConfig(data=str(tmp_path / "grey.npy")))


def test_cli_trains_on_a_colour_folder_and_later_commands_find_it(tmp_path, digits, capsys):
    x, y = digits
    folder = _write_pngs(tmp_path / "tinted", x, y, colour=True)
    out = tmp_path / "run"
    code = cli.main(["train", "--data", str(folder), "--network", "conv", "--latent-dim", "2",
                     "--epochs", "2", "--batch-size", "16", "--verbose", "0", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "run.json").read_text())
    assert config["model"]["input_shape"] == [28, 28, 3]
    assert config["model"]["likelihood"] == "normal"
    assert config["training"]["binarization"] == "none"
    history = [float(line.split(",")[1]) for line in
               (out / "history.csv").read_text().splitlines()[1:]]
    assert history[1] < history[0]
    recorded = json.loads((out / "data.json").read_text())
    assert recorded["source"] == str(folder) and len(recorded["sha256"]) == 64
    capsys.readouterr()
    assert cli.main(["evaluate", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_images"] == 9 and np.isfinite(report["negative_elbo"])
    # Change the data: later commands still work but warn.
    next(folder.glob("0/*.png")).unlink()
    assert cli.main(["reconstruct", str(out), "--num", "4"]) == 0
    err = capsys.readouterr().err
    assert "changed since" in err and "its results describe the old data" in err
