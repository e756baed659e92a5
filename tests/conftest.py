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

_MAX_WORKERS = 4  # each test process holds TensorFlow (1-3 GB) and its thread pools


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one test process per CPU core this process may use, at most 4."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, min(cores, _MAX_WORKERS))


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


class LatentGrid:
    """A 2-D grid over [-9, 9]² for numerical integrals of smooth latent densities."""

    def __init__(self, half_width=9.0, step=0.1):
        axis = np.arange(-half_width, half_width + step / 2, step, dtype=np.float32)
        self.points = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
        self.area = step * step

    def integral(self, distribution):
        """∫ p(z) dz of a distribution with batch shape [] or [1]."""
        log_p = np.asarray(distribution.log_prob(self.points), np.float64)
        return float(np.exp(log_p).sum() * self.area)

    def kl(self, posterior, prior):
        """∫ q log(q/p) dz for a posterior with batch shape [b]: a [b] array."""
        log_q = np.asarray(posterior.log_prob(self.points[:, None, :]), np.float64)
        log_p = np.asarray(prior.log_prob(self.points), np.float64)[:, None]
        return (np.exp(log_q) * (log_q - log_p)).sum(0) * self.area


@pytest.fixture(scope="session")
def latent_grid():
    return LatentGrid()


def _grouped_kl_estimate(estimator, loc, scale, prior, seed, transform=None, groups=64,
                         per_group=64):
    """Mean and standard error of a KL estimator over `groups` independent sample groups.

    The posterior `transform(MultivariateNormalDiag(loc, scale))` (batch `[b]`) is repeated
    `groups` times along a new batch axis, so one call gives `groups` independent estimates.
    """
    import tensorflow_probability as tfp

    loc = np.broadcast_to(np.asarray(loc, np.float32), (groups, *np.shape(loc)))
    scale = np.broadcast_to(np.asarray(scale, np.float32), loc.shape)
    posterior = tfp.distributions.MultivariateNormalDiag(loc, scale)
    if transform is not None:
        posterior = transform(posterior)
    values = np.asarray(estimator(posterior, prior, num_samples=per_group, seed=(seed, 0)),
                        np.float64)
    return values.mean(0), values.std(0, ddof=1) / np.sqrt(groups)


@pytest.fixture(scope="session")
def grouped_kl_estimate():
    return _grouped_kl_estimate
