"""Plots of the KL study: relative std, gradient SNR, training curves and the learnable-prior
part, one PNG each.

Each function takes the study's typed rows (`tfp_vae.study.rows`) and draws on its own
`matplotlib.figure.Figure` (rendered by the Agg canvas), so nothing here touches pyplot's global
state or needs a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from tfp_vae.study.rows import CurveRow, EstimatorRow, LearnablePriorRow

__all__ = ["plot_gradient_snr", "plot_learnable_priors", "plot_relative_std",
           "plot_training_curves"]

_DISTANCE_COLORS = {"close": "tab:green", "moderate": "tab:orange", "far": "tab:red"}
_DIM_STYLES = ("-", "--", ":", "-.")
_PRIOR_STYLES = {"mixture": "-", "flow": "--"}
_ESTIMATOR_COLORS = {"analytic": "black", "mc": "tab:blue", "mc_entropy": "tab:orange",
                     "mc_ratio_cv": "tab:green", "mc_stl": "tab:purple"}
# Distinct markers and widths keep coinciding lines (mc and mc_entropy often overlap) visible.
_ESTIMATOR_MARKERS = {"mc": ("o", 3.0, 7), "mc_entropy": ("s", 1.5, 4),
                      "mc_ratio_cv": ("^", 1.5, 4), "mc_stl": ("D", 1.5, 4)}


def _grid_rows(rows: Sequence[EstimatorRow]) -> list[EstimatorRow]:
    return [r for r in rows if r.block == "grid"]


def _series(rows: Sequence[EstimatorRow], **match) -> list[EstimatorRow]:
    """The rows whose attributes equal `match`, by ascending sample count."""
    return sorted((r for r in rows if all(getattr(r, k) == v for k, v in match.items())),
                  key=lambda r: r.num_samples)


def _log_log_panel(ax, title: str, last_row: bool, first_column: bool, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=9)
    if last_row:
        ax.set_xlabel("samples S")
    if first_column:
        ax.set_ylabel(ylabel)


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    figure.savefig(path, dpi=110)
    return path


def plot_relative_std(rows: Sequence[EstimatorRow], path: str | os.PathLike) -> Path:
    """Relative standard deviation `std / KL` against the sample count, log-log, per estimator.

    One panel per (posterior type, Monte Carlo estimator); colour is the distance from the prior,
    line style the latent size; the grey line is the `1/sqrt(S)` slope through the first point of
    the first setting. Settings where `mc_ratio_cv` has infinite variance are drawn hollow.

    Args:
      rows: Estimator-level rows of the study (`estimators.csv`).
      path: Output PNG path.

    Returns:
      The path written.
    """
    rows = _grid_rows(rows)
    kinds = sorted({r.posterior for r in rows})
    estimators = [e for e in _ESTIMATOR_COLORS if e != "analytic"
                  and any(r.estimator == e for r in rows)]
    dims = sorted({r.latent_dim for r in rows})
    fig = Figure(figsize=(3.2 * len(estimators), 2.9 * len(kinds)))
    axes = fig.subplots(len(kinds), len(estimators), sharex=True, sharey=True, squeeze=False)
    for i, kind in enumerate(kinds):
        for j, name in enumerate(estimators):
            ax = axes[i][j]
            for distance, color in _DISTANCE_COLORS.items():
                for dim, style in zip(dims, _DIM_STYLES, strict=False):
                    sel = _series(rows, posterior=kind, estimator=name, distance=distance,
                                  latent_dim=dim)
                    if not sel:
                        continue
                    s = np.array([r.num_samples for r in sel], float)
                    y = np.array([r.rel_std for r in sel], float)
                    finite = all(r.variance_finite for r in sel)
                    ax.plot(s, y, style, color=color, marker="o", ms=3,
                            mfc=color if finite else "white",
                            label=f"{distance}, d={dim}" if (i, j) == (0, 0) else None)
            sel = _series(rows, posterior=kind, estimator=name)
            if sel:
                s = np.array(sorted({r.num_samples for r in sel}), float)
                top = max(r.rel_std for r in sel if r.num_samples == s[0])
                ax.plot(s, top * np.sqrt(s[0] / s), color="0.6", lw=3, alpha=0.5, zorder=0)
            _log_log_panel(ax, f"{name} · {kind}", i == len(kinds) - 1, j == 0, "std / KL")
    fig.legend(loc="lower center", ncol=len(_DISTANCE_COLORS) * len(dims), fontsize=7,
               frameon=False)
    fig.suptitle("Relative std of KL estimators (grey: 1/√S slope; hollow: infinite variance)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, path)


def plot_gradient_snr(rows: Sequence[EstimatorRow], path: str | os.PathLike) -> Path:
    """Gradient signal-to-noise ratio against the sample count, per estimator.

    Panels: rows are the parameter (loc, scale) × posterior type, columns the distance from the
    prior; each line is an estimator at the largest latent size. The analytic KL has an exact
    gradient (infinite SNR) and is not drawn.

    Args:
      rows: Part-1 `EstimatorRow`s (only the grid block is drawn).
      path: Where to write the PNG.

    Returns:
      `path`, as a `Path`.
    """
    rows = _grid_rows(rows)
    kinds = sorted({r.posterior for r in rows})
    dim = max(r.latent_dim for r in rows)
    distances = [d for d in _DISTANCE_COLORS if any(r.distance == d for r in rows)]
    panels = [(param, kind) for kind in kinds for param in ("loc", "scale")]
    fig = Figure(figsize=(3.4 * len(distances), 2.5 * len(panels)))
    axes = fig.subplots(len(panels), len(distances), sharex=True, squeeze=False)
    for i, (param, kind) in enumerate(panels):
        for j, distance in enumerate(distances):
            ax = axes[i][j]
            for name, color in _ESTIMATOR_COLORS.items():
                if name == "analytic":
                    continue
                sel = _series(rows, posterior=kind, estimator=name, distance=distance,
                              latent_dim=dim)
                if not sel:
                    continue
                s = np.array([r.num_samples for r in sel], float)
                y = np.array([r.grad_snr(param) for r in sel], float)
                marker, width, size = _ESTIMATOR_MARKERS[name]
                ax.plot(s, y, "-", marker=marker, lw=width, ms=size, color=color, alpha=0.85,
                        label=name if (i, j) == (0, 0) else None)
            _log_log_panel(ax, f"{param} · {kind} · {distance}", i == len(panels) - 1, j == 0,
                           "gradient SNR")
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"Gradient SNR ‖E g‖ / √(Σ Var g), latent size {dim}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return _save(fig, path)


def plot_learnable_priors(rows: Sequence[LearnablePriorRow], path: str | os.PathLike) -> Path:
    """Part 3: per-sample spread and loc-gradient SNR against `S`, against learnable priors.

    Columns are the distances from the prior; the top row is `std · √S` (flat for an average of
    `S` independent terms), the bottom row the SNR of the gradient w.r.t. the posterior `loc`.
    Colour and marker are the estimator, line style the prior (solid mixture, dashed flow), at
    the largest latent size. Hollow markers: infinite or unknown variance (`mc_ratio_cv`).

    Args:
      rows: Part-3 `LearnablePriorRow`s (`learnable_priors.csv`).
      path: Where to write the PNG.

    Returns:
      `path`, as a `Path`.
    """
    dim = max(r.latent_dim for r in rows)
    distances = [d for d in _DISTANCE_COLORS if any(r.distance == d for r in rows)]
    metrics = [("std_sqrt_s", "std · √S"), ("grad_loc_snr", "loc-gradient SNR")]
    fig = Figure(figsize=(3.6 * len(distances), 5.6))
    axes = fig.subplots(len(metrics), len(distances), sharex=True, squeeze=False)
    for i, (metric, label) in enumerate(metrics):
        for j, distance in enumerate(distances):
            ax = axes[i][j]
            for prior, style in _PRIOR_STYLES.items():
                for name, (marker, width, size) in _ESTIMATOR_MARKERS.items():
                    sel = _series(rows, prior=prior, estimator=name, distance=distance,
                                  latent_dim=dim)
                    if not sel:
                        continue
                    color = _ESTIMATOR_COLORS[name]
                    ax.plot([r.num_samples for r in sel], [getattr(r, metric) for r in sel],
                            style, marker=marker, lw=width, ms=size, color=color, alpha=0.85,
                            mfc=color if all(r.variance_finite for r in sel) else "white",
                            label=f"{name} · {prior}" if (i, j) == (0, 0) else None)
            _log_log_panel(ax, f"{label} · {distance}", i == len(metrics) - 1, j == 0, label)
    fig.legend(loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"Monte Carlo KL against learnable priors (solid: mixture, dashed: flow; "
                 f"latent size {dim}; hollow: variance infinite or unknown)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return _save(fig, path)


def plot_training_curves(curves: Sequence[CurveRow], path: str | os.PathLike) -> Path:
    """Per-epoch training curves for every KL choice of the end-to-end study.

    Three panels: validation negative ELBO (as the run's own loss estimates it), training KL
    term, and validation reconstruction loss, each against the epoch.

    Args:
      curves: Per-epoch rows (`training_curves.csv`).
      path: Output PNG path.

    Returns:
      The path written.
    """
    runs = list(dict.fromkeys(r.run for r in curves))
    metrics = [("validation_loss", "validation −ELBO (nats)"), ("kl_loss", "training KL (nats)"),
               ("validation_reconstruction_loss", "validation reconstruction (nats)")]
    fig = Figure(figsize=(14, 4.2))
    axes = fig.subplots(1, len(metrics))
    cmap = matplotlib.colormaps["tab20"]
    for k, run in enumerate(runs):
        sel = sorted((r for r in curves if r.run == run), key=lambda r: r.epoch)
        epochs = [r.epoch for r in sel]
        style = "--" if "tril" in run else "-"
        for ax, (metric, _) in zip(axes, metrics, strict=True):
            values = [np.nan if getattr(r, metric) is None else getattr(r, metric) for r in sel]
            ax.plot(epochs, values, style, marker="o", ms=3,
                    color=cmap(k % 20), label=run if ax is axes[0] else None)
    for ax, (_, label) in zip(axes, metrics, strict=True):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.legend(loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    return _save(fig, path)
