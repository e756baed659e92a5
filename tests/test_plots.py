"""Plots: each function writes a readable, non-blank PNG of the expected layout."""

import numpy as np
import pytest
from matplotlib.image import imread

from tfp_vae import ModelConfig, build_model
from tfp_vae.plots import (
    plot_label_clusters,
    plot_latent_grid,
    plot_reconstructions,
    plot_samples,
    plot_training_curves,
    read_history,
)


def _check_png(path, min_width=300):
    with open(path, "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[1] >= min_width and image.shape[0] >= 100
    assert image[..., :3].std() > 0.05  # not blank
    return image


@pytest.fixture(scope="module")
def models():
    small = {"hidden_units": [32]}
    return {d: build_model(ModelConfig(latent_dim=d, network="mlp", network_options=small))
            for d in (2, 5)}


@pytest.fixture(scope="module")
def labelled(fashion):
    return fashion.x_test[:300], fashion.y_test[:300], fashion.class_names


@pytest.mark.parametrize("latent_dim", [2, 5])
def test_latent_grid(models, tmp_path, latent_dim):
    path = plot_latent_grid(models[latent_dim], tmp_path / "grid.png", grid_size=10)
    image = _check_png(path, min_width=600)
    assert abs(image.shape[0] - image.shape[1]) < 0.15 * image.shape[1]  # a square grid
    with pytest.raises(ValueError, match="two different latent dimensions"):
        plot_latent_grid(models[latent_dim], tmp_path / "bad.png", dims=(0, 0))


@pytest.mark.parametrize("latent_dim", [2, 5])
def test_label_clusters(models, labelled, tmp_path, latent_dim):
    x, y, names = labelled
    path = plot_label_clusters(models[latent_dim], x, y, tmp_path / "clusters.png", names)
    _check_png(path, min_width=600)
    with pytest.raises(ValueError, match="differ in length"):
        plot_label_clusters(models[latent_dim], x, y[:10], tmp_path / "bad.png")


def test_reconstructions_and_samples(models, labelled, tmp_path):
    x, _, _ = labelled
    image = _check_png(plot_reconstructions(models[2], x, tmp_path / "r.png", num_images=8))
    assert image.shape[1] > 2.5 * image.shape[0]  # two rows of eight
    image = _check_png(plot_samples(models[2], tmp_path / "s.png", num_samples=12, columns=4))
    assert image.shape[0] < image.shape[1]  # three rows of four
    autoencoder = build_model(ModelConfig(kind="autoencoder", network="mlp",
                                          network_options={"hidden_units": [8]}))
    with pytest.raises(TypeError, match="no"):
        plot_samples(autoencoder, tmp_path / "ae.png")


def test_training_curves_round_trip_through_csv(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss,reconstruction_loss,kl_loss,val_loss,val_reconstruction_loss,"
                   "val_kl_loss\n1,300,290,10,280,272,8\n2,260,249,11,255,245,10\n"
                   "3,250,238,12,251,240,11\n")
    history = read_history(csv)
    assert history["epoch"] == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(history["val_kl_loss"], [8, 10, 11])
    image = _check_png(plot_training_curves(history, tmp_path / "curves.png"), min_width=900)
    assert image.shape[1] > 2.5 * image.shape[0]  # three panels side by side
    with pytest.raises(ValueError, match="no 'loss'"):
        plot_training_curves({"kl_loss": [1.0]}, tmp_path / "bad.png")
    (tmp_path / "empty.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="no epochs"):
        read_history(tmp_path / "empty.csv")
