"""Test configuration: offline data, no downloads, quiet TensorFlow."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "TFP_VAE_DATA_DIR" not in os.environ and _SHARED_DATA.is_dir():
    os.environ["TFP_VAE_DATA_DIR"] = str(_SHARED_DATA)

from tfp_vae.backend import keras  # noqa: E402


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests run offline: any Keras download attempt fails loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download data; set TFP_VAE_DATA_DIR")

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    # The dataset modules imported get_file by name, so patch their references too.
    for module in (keras.datasets.mnist, keras.datasets.fashion_mnist):
        monkeypatch.setattr(sys.modules[module.load_data.__module__], "get_file", refuse)


@pytest.fixture(scope="session")
def fashion():
    from tfp_vae.data import load_dataset

    if "TFP_VAE_DATA_DIR" not in os.environ:
        pytest.fail("TFP_VAE_DATA_DIR is not set and ../shared/data is missing: tests need the "
                    "offline MNIST / Fashion-MNIST files.")
    return load_dataset("fashion_mnist")


@pytest.fixture(scope="session")
def binary_fashion(fashion):
    """A small, fixed-binarized Fashion-MNIST subset: 2048 train and 512 test images."""
    rng = np.random.default_rng(0)
    x_train = (rng.random((2048, 28, 28, 1), dtype=np.float32) < fashion.x_train[:2048])
    x_test = (rng.random((512, 28, 28, 1), dtype=np.float32) < fashion.x_test[:512])
    return x_train.astype(np.float32), x_test.astype(np.float32)


@pytest.fixture(scope="session")
def binary_mnist():
    """A small, fixed-binarized MNIST subset: 1024 train and 256 test images."""
    from tfp_vae.data import binarize, load_dataset

    mnist = load_dataset("mnist")
    return (binarize(mnist.x_train[:1024], 0, "train"),
            binarize(mnist.x_test[:256], 0, "test"))
