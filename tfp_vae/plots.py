"""Plots as PNG files: latent manifold, label clusters, reconstructions, prior samples, curves.

Every function draws on its own `matplotlib.figure.Figure` (rendered by the Agg canvas), so
nothing here touches pyplot's global state or needs a display, and writes one PNG.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tfp_vae.backend import tf
from tfp_vae.evaluation import posterior_means
from tfp_vae.models import VAE, Autoencoder

__all__ = [
    "plot_label_clusters",
    "plot_latent_grid",
    "plot_reconstructions",
    "plot_samples",
    "plot_training_curves",
    "read_history",
    "write_run_plots",
]

_DPI = 100


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Cannot write the figure to {path}: it is a directory; pass a "
                                f"file path such as {path / 'figure.png'}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    # An explicit format: matplotlib would otherwise write `PATH.png` for a PATH without one.
    figure.savefig(path, dpi=_DPI, bbox_inches="tight", format=path.suffix[1:].lower() or "png")
    return path


def _image_rows(images: np.ndarray) -> np.ndarray:
    """`[n, h, w, c]` -> `[n, h, w]` grey or `[n, h, w, 3]` colour, for `imshow`."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    return images[..., 0] if images.shape[-1] == 1 else images


def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    images = _image_rows(images)
    n, height, width = images.shape[:3]
    rows = math.ceil(n / columns)
    canvas = np.ones((rows * height, columns * width, *images.shape[3:]), dtype=np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return canvas


def plot_latent_grid(model: VAE | Autoencoder, path: str | os.PathLike, grid_size: int = 15,
                     extent: float = 2.0, dims: tuple[int, int] = (0, 1)) -> Path:
    """Decodes a regular grid of latent points into one image (the classic VAE manifold plot).

    The grid spans `[-extent, extent]` in latent dimensions `dims`; other dimensions are 0 (the
    prior mean), which the title says when the latent space has more than two dimensions. The
    axes are ticked in z units, so the image can be read against the label-cluster plot.

    Args:
      model: A tfp_vae `VAE` (or `Autoencoder`).
      path: Output PNG path.
      grid_size: Python `int`, points per axis. Default: `15`.
      extent: Python `float`, half-width of the grid in z units (2.0 covers ~95% of the N(0, 1)
        prior per axis). Default: `2.0`.
      dims: The two latent dimensions to vary. Default: `(0, 1)`.

    Returns:
      The `Path` of the PNG.

    Raises:
      ValueError: If `dims` are not two different dimensions of the latent space.

    #### Examples

    ```python
    plot_latent_grid(vae, "plots/latent_grid.png")
    ```
    """
    latent_dim = model.config.latent_dim
    if latent_dim < 2:
        dims = (0, 0)
    elif len(set(dims)) != 2 or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be two different latent dimensions below {latent_dim}, "
                         f"got {dims}.")
    values = np.linspace(-extent, extent, grid_size, dtype=np.float32)
    z = np.zeros((grid_size, grid_size, latent_dim), dtype=np.float32)
    # Row 0 is the top of the image, so z_y decreases down the rows (y axis points up).
    z[..., dims[0]] = values[np.newaxis, :]
    z[..., dims[1]] = values[::-1, np.newaxis]
    images = model.decode(tf.constant(z.reshape(-1, latent_dim))).mean().numpy()
    height, width = images.shape[1:3]
    canvas = _tile(images, grid_size)
    figure = Figure(figsize=(9, 9))
    axes = figure.add_subplot()
    axes.imshow(canvas, cmap="Greys_r", vmin=0, vmax=1)
    ticks = np.arange(grid_size)
    step = max(1, grid_size // 7)
    shown = ticks[::step]
    axes.set_xticks(shown * width + width / 2, [f"{values[i]:.1f}" for i in shown])
    axes.set_yticks(shown * height + height / 2, [f"{values[::-1][i]:.1f}" for i in shown])
    axes.set_xlabel(f"z[{dims[0]}]")
    axes.set_ylabel(f"z[{dims[1]}]")
    title = "Decoded latent grid (pixel means of p(x|z))"
    if latent_dim > 2:
        title += f"\nother {latent_dim - 2} latent dimensions fixed at 0"
    axes.set_title(title)
    return _save(figure, path)


def plot_label_clusters(model: VAE | Autoencoder, images: np.ndarray, labels: np.ndarray,
                        path: str | os.PathLike, class_names: Sequence[str] | None = None
                        ) -> Path:
    """Scatter of posterior means (codes, for an autoencoder) coloured by class.

    With a 2-D latent space the axes are `z[0]`, `z[1]`; with more dimensions the means are
    projected on their first two principal components and the plot says so, with the share of
    variance each component explains.

    Args:
      model: A tfp_vae `VAE` or `Autoencoder`.
      images: `[n] + input_shape` array.
      labels: `[n]` integer labels.
      path: Output PNG path.
      class_names: Name of each label for the legend. Default: `None` (the label numbers).

    Returns:
      The `Path` of the PNG.

    Raises:
      ValueError: If `images` and `labels` differ in length.

    #### Examples

    ```python
    plot_label_clusters(vae, x_test, y_test, "plots/clusters.png", data.class_names)
    ```
    """
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"images and labels differ in length ({len(images)} vs {len(labels)}).")
    means = posterior_means(model, images)
    figure = Figure(figsize=(9, 7.5))
    axes = figure.add_subplot()
    what = "posterior means E[z|x]" if isinstance(model, VAE) else "codes z"
    if means.shape[1] == 1:
        points = np.stack([means[:, 0], np.zeros(len(means))], axis=1)
        axes.set_xlabel("z[0]")
        axes.set_yticks([])
        title = f"{what} by class"
    elif means.shape[1] == 2:
        points = means
        axes.set_xlabel("z[0]")
        axes.set_ylabel("z[1]")
        title = f"{what} by class"
    else:
        centred = means - means.mean(axis=0)
        _, singular, components = np.linalg.svd(centred, full_matrices=False)
        share = singular ** 2 / np.sum(singular ** 2)
        points = centred @ components[:2].T
        axes.set_xlabel(f"principal component 1 ({share[0]:.0%} of variance)")
        axes.set_ylabel(f"principal component 2 ({share[1]:.0%} of variance)")
        title = f"PCA projection of {means.shape[1]}-D {what} by class"
    names = list(class_names) if class_names is not None else None
    palette = _palette(int(labels.max()) + 1 if len(labels) else 1)
    for label in np.unique(labels):
        chosen = labels == label
        name = names[label] if names is not None and label < len(names) else str(label)
        axes.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7,
                     color=palette[int(label)], label=name)
    axes.legend(title="class", markerscale=3, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes.set_title(f"{title} ({len(labels)} images)")
    return _save(figure, path)


def _palette(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def plot_reconstructions(model: VAE | Autoencoder, images: np.ndarray,
                         path: str | os.PathLike, num_images: int = 10) -> Path:
    """Input images (top row) above their reconstructions (bottom row).

    A `VAE` decodes the posterior mean; the bottom row shows the pixel means of `p(x|z)`.

    Args:
      model: A tfp_vae `VAE` or `Autoencoder`.
      images: `[n] + input_shape` array; the first `num_images` are shown.
      path: Output PNG path.
      num_images: Python `int`. Default: `10`.

    Returns:
      The `Path` of the PNG.

    #### Examples

    ```python
    plot_reconstructions(vae, x_test, "plots/reconstructions.png")
    ```
    """
    inputs = np.asarray(images[:num_images], dtype=np.float32)
    outputs = model.reconstruct(tf.constant(inputs)).numpy()
    count = len(inputs)
    figure = Figure(figsize=(1.1 * count + 1.2, 2.6))
    for row, (row_images, label) in enumerate(((inputs, "input"), (outputs, "reconstruction"))):
        for column, image in enumerate(_image_rows(row_images)):
            axes = figure.add_subplot(2, count, row * count + column + 1)
            axes.imshow(image, cmap="Greys_r", vmin=0, vmax=1)
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(label, rotation=0, ha="right", va="center")
    figure.suptitle("Test images and their reconstructions (mean of p(x|z) at the posterior "
                    "mean)" if isinstance(model, VAE) else "Test images and their "
                    "reconstructions")
    return _save(figure, path)


def plot_samples(model: VAE, path: str | os.PathLike, num_samples: int = 64, seed: int = 0,
                 columns: int = 8) -> Path:
    """A grid of images generated from the prior: pixel means of `p(x|z)`, `z ~ p(z)`.

    Args:
      model: A tfp_vae `VAE`.
      path: Output PNG path.
      num_samples: Python `int`. Default: `64`.
      seed: Python `int`, stateless seed (same seed, same grid). Default: `0`.
      columns: Python `int`, images per row. Default: `8`.

    Returns:
      The `Path` of the PNG.

    Raises:
      TypeError: If `model` has no prior (an `Autoencoder`).

    #### Examples

    ```python
    plot_samples(vae, "plots/samples.png", num_samples=64, seed=1)
    ```
    """
    if not isinstance(model, VAE):
        raise TypeError("Only a VAE has a prior to sample from; an autoencoder does not.")
    images = model.sample(num_samples, seed=seed).numpy()
    columns = min(columns, num_samples)
    rows = math.ceil(num_samples / columns)
    figure = Figure(figsize=(columns * 0.9 + 0.4, rows * 0.9 + 0.8))
    axes = figure.add_subplot()
    axes.imshow(_tile(images, columns), cmap="Greys_r", vmin=0, vmax=1)
    axes.set_axis_off()
    axes.set_title(f"{num_samples} samples from the prior (pixel means, seed {seed})")
    return _save(figure, path)


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """Reads a per-epoch history CSV (as `tfp-vae train` writes it) into columns.

    Args:
      path: The CSV path.

    Returns:
      A dict from column name to a list of floats.

    Raises:
      ValueError: If the file has no rows or a non-numeric value.
    """
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        raise ValueError(f"{path} has no epochs.")
    try:
        return {name: [float(row[name]) for row in rows] for name in rows[0]}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} has a non-numeric value: {error}.") from None


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike
                         ) -> Path:
    """Loss, reconstruction and KL per epoch, for training and (if present) test data.

    Args:
      history: Columns by name: `loss`, `reconstruction_loss`, `kl_loss` and their
        `validation_` versions (missing ones are skipped; `val_` is read as `validation_`),
        optionally `epoch`.
      path: Output PNG path.

    Returns:
      The `Path` of the PNG.

    Raises:
      ValueError: If `history` has no `loss` column.

    #### Examples

    ```python
    plot_training_curves(read_history("runs/demo/history.csv"), "plots/curves.png")
    ```
    """
    if not history.get("loss"):
        raise ValueError("The training history has no 'loss' column to plot.")
    epochs = history.get("epoch") or list(range(1, len(history["loss"]) + 1))
    panels = [(name, title) for name, title in (
        ("loss", "loss (negative ELBO with β, nats)"),
        ("reconstruction_loss", "reconstruction −E log p(x|z) (nats)"),
        ("kl_loss", "KL term β·KL (nats)")) if history.get(name)]
    figure = Figure(figsize=(4.2 * len(panels), 3.6))
    for index, (name, title) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        axes.plot(epochs, history[name], marker="o", label="train")
        held_out = history.get("validation_" + name) or history.get("val_" + name)
        if held_out:
            axes.plot(epochs, held_out, marker="s", label="validation")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("Training curves")
    figure.tight_layout()
    return _save(figure, path)


def write_run_plots(model: VAE | Autoencoder, out_dir: str | os.PathLike, images: np.ndarray,
                    labels: np.ndarray, class_names: Sequence[str],
                    history: Sequence[Mapping[str, float]] | None = None,
                    cluster_images: int = 5000) -> list[Path]:
    """Every plot of a training run: clusters, reconstructions, latent grid, samples, curves.

    Args:
      model: A tfp_vae `VAE` or `Autoencoder`.
      out_dir: Folder for the PNG files (created).
      images: Held-out images (e.g. the test split) for clusters and reconstructions.
      labels: Their labels.
      class_names: Name of each label.
      history: Optional per-epoch rows (as `RunResult.history`); adds the training curves.
        Default: `None`.
      cluster_images: How many images the label-cluster scatter uses. Default: `5000`.

    Returns:
      The paths written: `label_clusters.png`, `reconstructions.png`, and for a `VAE`
      `latent_grid.png` and `samples.png`, then `training_curves.png` if `history` is given.

    #### Examples

    ```python
    write_run_plots(vae, "runs/demo/plots", x_test, y_test, data.class_names, result.history)
    ```
    """
    out_dir = Path(out_dir)
    written = [
        plot_label_clusters(model, images[:cluster_images], labels[:cluster_images],
                            out_dir / "label_clusters.png", class_names),
        plot_reconstructions(model, images, out_dir / "reconstructions.png"),
    ]
    if isinstance(model, VAE):
        written.append(plot_latent_grid(model, out_dir / "latent_grid.png"))
        written.append(plot_samples(model, out_dir / "samples.png"))
    if history:
        columns = {name: [row[name] for row in history if name in row]
                   for name in dict.fromkeys(name for row in history for name in row)}
        written.append(plot_training_curves(columns, out_dir / "training_curves.png"))
    return written
