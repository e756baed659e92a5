import gzip
import shutil

import numpy as np
import pytest

from tfp_vae.data import DATA_DIR_ENV, load_dataset, make_dataset


def test_mnist_matches_the_published_checks():
    data = load_dataset("mnist")
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_train.dtype == np.float32
    assert data.x_test.shape == (10000, 28, 28, 1)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    np.testing.assert_allclose(data.x_train.mean(), 0.13066, atol=5e-5)
    np.testing.assert_array_equal(data.y_train[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(np.bincount(data.y_train)[:3], [5923, 6742, 5958])


def test_fashion_mnist_has_class_names(fashion):
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    np.testing.assert_allclose(fashion.x_train.mean(), 0.28602, atol=5e-5)
    assert set(np.bincount(fashion.y_test)) == {1000}
    assert load_dataset("fashion-mnist").name == "fashion_mnist"


@pytest.fixture
def copy_of_mnist(tmp_path):
    from os import environ

    source = f"{environ[DATA_DIR_ENV]}/mnist"
    target = tmp_path / "mnist"
    shutil.copytree(source, target)
    return tmp_path


def test_missing_file_names_the_file_and_the_setting(copy_of_mnist):
    (copy_of_mnist / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz.*TFP_VAE_DATA_DIR"):
        load_dataset("mnist", copy_of_mnist)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; fix --data-dir or"):
        load_dataset("mnist", tmp_path / "nowhere")


def test_corrupt_gzip_names_the_file(copy_of_mnist):
    (copy_of_mnist / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: not a valid gzip"):
        load_dataset("mnist", copy_of_mnist)


def test_truncated_idx_names_the_file(copy_of_mnist):
    path = copy_of_mnist / "mnist" / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path) as stream:
        raw = stream.read()
    with gzip.open(path, "wb") as stream:
        stream.write(raw[:-100])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz holds .* header promises"):
        load_dataset("mnist", copy_of_mnist)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar10'"):
        load_dataset("cifar10")


def epochs(dataset, n=2):
    return [np.concatenate([b.numpy() for b in dataset]) for _ in range(n)]


def test_dynamic_binarization_resamples_every_epoch(fashion):
    images = fashion.x_train[:256]
    first, second = epochs(make_dataset(images, batch_size=64, shuffle=False,
                                        binarization="dynamic", seed=3))
    assert set(np.unique(first)) <= {0.0, 1.0}
    assert not np.array_equal(first, second)
    # Each pixel is Bernoulli(intensity): the mean matches within 5 standard errors.
    se = np.sqrt(np.mean(images * (1 - images)) / images.size)
    assert abs(first.mean() - images.mean()) < 5 * se
    again = epochs(make_dataset(images, batch_size=64, shuffle=False,
                                binarization="dynamic", seed=3))[0]
    np.testing.assert_array_equal(first, again)


def test_fixed_binarization_is_the_same_every_epoch(fashion):
    images = fashion.x_train[:256]
    first, second = epochs(make_dataset(images, batch_size=64, shuffle=False,
                                        binarization="fixed", seed=3))
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) <= {0.0, 1.0}


def test_labels_and_shuffling(fashion):
    dataset = make_dataset(fashion.x_train[:100], fashion.y_train[:100], batch_size=100, seed=1)
    (x, y), = list(dataset)
    assert x.shape == (100, 28, 28, 1) and not np.array_equal(y, fashion.y_train[:100])
    assert sorted(y.numpy()) == sorted(fashion.y_train[:100])


def test_unscaled_images_are_rejected():
    with pytest.raises(ValueError, match="not \\[0, 1\\]; divide uint8 images by 255"):
        make_dataset(np.full((4, 28, 28, 1), 255.0))
    with pytest.raises(ValueError, match="Unknown binarization 'otsu'"):
        make_dataset(np.zeros((4, 28, 28, 1)), binarization="otsu")


def test_failed_download_says_how_to_work_offline(monkeypatch):
    # conftest makes every Keras download fail, as on a machine without internet.
    monkeypatch.delenv(DATA_DIR_ENV)
    with pytest.raises(FileNotFoundError, match="Could not download mnist with Keras .a test "
                                                "tried to download.*"
                                                "TFP_VAE_DATA_DIR"):
        load_dataset("mnist")


def test_binarize_is_seeded_per_stream_and_unbiased():
    from tfp_vae.data import binarize

    images = np.full((200, 28, 28, 1), 0.3, np.float32)
    a = binarize(images, 0)
    np.testing.assert_array_equal(a, binarize(images, 0))
    assert set(np.unique(a)) == {0.0, 1.0} and a.dtype == np.float32
    assert not np.array_equal(a, binarize(images, 1))
    assert not np.array_equal(a, binarize(images, 0, "test"))
    # Mean of 156 800 Bernoulli(0.3) draws: standard error 0.0012.
    assert abs(a.mean() - 0.3) < 4.5 * np.sqrt(0.3 * 0.7 / a.size)
    # Zero and one intensities stay exactly zero and one.
    edges = binarize(np.array([[0.0, 1.0]] * 50, np.float32), 0)
    np.testing.assert_array_equal(edges, [[0.0, 1.0]] * 50)
    with pytest.raises(ValueError, match=r"not \[0, 1\]; divide uint8 images by 255"):
        binarize(np.array([0.5, 255.0]), 0)
    with pytest.raises(ValueError, match="contain NaN or infinite pixels"):
        binarize(np.array([0.5, np.nan]), 0)


def test_load_splits_holds_out_validation_and_binarizes_held_out_splits_once():
    from tfp_vae.data import load_dataset, load_splits

    splits = load_splits("mnist", validation_size=1000, train_size=500, test_size=300, seed=4)
    full = load_dataset("mnist")
    assert splits.x_train.shape == (500, 28, 28, 1) and splits.x_validation.shape[0] == 1000
    np.testing.assert_array_equal(splits.x_train, full.x_train[:500])  # grey, binarized per batch
    np.testing.assert_array_equal(splits.y_validation, full.y_train[-1000:])
    assert set(np.unique(splits.x_validation)) == {0.0, 1.0}
    assert set(np.unique(splits.x_test)) == {0.0, 1.0} and len(splits.x_test) == 300
    again = load_splits("mnist", validation_size=1000, test_size=None, seed=4)
    np.testing.assert_array_equal(again.x_test[:300], splits.x_test)  # prefix-consistent
    grey = load_splits("mnist", test_size=10, binarization="none")
    np.testing.assert_array_equal(grey.x_test, full.x_test[:10])
    with pytest.raises(ValueError, match="validation_size 60000 leaves no training images"):
        load_splits("mnist", validation_size=60000)
    with pytest.raises(ValueError, match="train_size 59001 is more than the 59000"):
        load_splits("mnist", validation_size=1000, train_size=59001)
    with pytest.raises(ValueError, match="test_size 10001 is more than the 10000 test images"):
        load_splits("mnist", test_size=10001)


def test_make_dataset_turns_tf_data_autotuning_off():
    # Autotuning's model thread made every epoch's iterator deletion wait up to ~15 s, idle
    # (benchmarks/bench_epoch_gap.py: 12.2 s per epoch on vs 0.00 s off); keep it off.
    images = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    for binarization in ("none", "dynamic", "fixed"):
        dataset = make_dataset(images, batch_size=4, binarization=binarization)
        assert dataset.options().autotune.enabled is False, binarization
        assert sum(len(batch) for batch in dataset) == 8
