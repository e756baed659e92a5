"""The KL study's `report.md`: findings computed from the measurements, and markdown tables.

Nothing in the report is a fixed claim: every finding is a sentence built from the rows of
`tfp_vae.study.rows`, so a study with other settings or another seed reports what it measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfp_vae.study.estimators import DISTANCES, POSTERIOR_KINDS
from tfp_vae.study.rows import CurveRow, EstimatorRow, LearnablePriorRow, TrainingRow

__all__ = ["attachment_differences", "findings", "markdown_table", "write_report"]

_BASELINE = ("diag", "loss", "analytic", 1)
_WHERE = {"close": "close to the prior", "moderate": "at a moderate distance from the prior",
          "far": "far from the prior"}


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "n/a"
    if not np.isfinite(value):
        return "∞" if value > 0 else ("−∞" if value < 0 else "n/a")
    if value != 0 and (abs(value) < 10 ** -(digits) or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    if abs(value) < 1:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def markdown_table(headers: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    """A markdown table; numbers get 3 significant digits (`∞` for infinity).

    Args:
      headers: Column titles.
      body: Rows of cells (strings, numbers, booleans or `None`).

    Returns:
      The table as one string.
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def _by_sample_count(grid: Sequence[EstimatorRow], first_count: int
                     ) -> Iterator[tuple[EstimatorRow, dict[int, EstimatorRow]]]:
    """Yields `(row at first_count, {num_samples: row})` per (setting, Monte Carlo estimator)."""
    for r0 in (r for r in grid if r.num_samples == first_count and r.estimator != "analytic"):
        yield r0, {r.num_samples: r for r in grid if r.setting == r0.setting
                   and r.estimator == r0.estimator}


def _slope(rows: Sequence[EstimatorRow]) -> float:
    rows = sorted(rows, key=lambda r: r.num_samples)
    s = np.log([r.num_samples for r in rows])
    y = np.log([max(r.rel_std, 1e-300) for r in rows])
    return float(np.polyfit(s, y, 1)[0])


def attachment_differences(training: Sequence[TrainingRow], curves: Sequence[CurveRow]
                           ) -> list[dict[str, Any]]:
    """Each add-loss / regularizer run against its loss-function twin (same start and batches).

    Args:
      training: Part 2's rows.
      curves: Part 2's per-epoch rows.

    Returns:
      One dict per run with a twin: `run`, `twin`, `weights` (max |Δ final weight|), `elbo`
      (|Δ test negative ELBO|, nats) and `loss` (max |Δ training loss| over the epochs, nats).
    """
    by_choice = {r.choice: r for r in training}
    losses: dict[str, dict[int, float]] = {}
    for c in curves:
        losses.setdefault(c.run, {})[c.epoch] = c.loss
    out = []
    for row in training:
        twin = by_choice.get((row.posterior, "loss", *row.choice[2:]))
        if row.weights_max_abs_difference is None or twin is None:
            continue
        mine, theirs = losses.get(row.run, {}), losses.get(twin.run, {})
        out.append({"run": row.run, "twin": twin.run, "weights": row.weights_max_abs_difference,
                    "elbo": abs(row.test_negative_elbo - twin.test_negative_elbo),
                    "loss": max((abs(mine[e] - theirs[e]) for e in mine if e in theirs),
                                default=math.nan)})
    return out


def _estimator_findings(grid: Sequence[EstimatorRow]) -> list[str]:
    out = []
    mc_names = sorted({r.estimator for r in grid} - {"analytic"})
    s_min = min(r.num_samples for r in grid)
    s_max = max(r.num_samples for r in grid)
    analytic = [r for r in grid if r.estimator == "analytic"]
    if analytic:
        worst = max(abs(r.bias) / max(abs(r.true_kl), 1.0) for r in analytic)
        out.append(f"The analytic KL matches the closed form to a relative error of at most "
                   f"{worst:.1e} in every setting, with zero variance.")
    unbiased = [r for r in grid if r.estimator != "analytic" and r.variance_finite]
    if unbiased:
        z = np.array([abs(r.bias_z) for r in unbiased])
        out.append(f"No Monte Carlo estimator shows a bias: over {len(z)} (setting, estimator, "
                   f"S) cells with finite variance the largest |bias| is {z.max():.1f} standard "
                   f"errors (median {np.median(z):.2f}); {int(np.sum(z > 3))} cells exceed 3 SE.")
    slopes: dict[str, list[float]] = {name: [] for name in mc_names}
    for name in mc_names:
        for setting in sorted({r.setting for r in grid}):
            sel = [r for r in grid if r.estimator == name and r.setting == setting]
            if len(sel) > 2 and all(r.variance_finite for r in sel):
                slopes[name].append(_slope(sel))
    parts = [f"{n} {np.median(v):+.2f} (range {min(v):+.2f} to {max(v):+.2f})"
             for n, v in slopes.items() if v]
    if parts:
        out.append("Relative std falls with the sample count as the 1/√S theory says (log-log "
                   "slope −0.5); median fitted slopes: " + "; ".join(parts) + ".")
    # mc_stl has the value of mc (it differs only in its gradient), so values compare the others.
    value_names = [n for n in mc_names if n != "mc_stl"]
    for distance in DISTANCES:
        sel = [r for r in grid if r.distance == distance and r.num_samples == s_min
               and r.estimator in value_names]
        if sel:
            out.append(_value_finding(grid, sel, distance, value_names, s_min))
    d_max = max(r.latent_dim for r in grid)
    for param in ("loc", "scale"):
        for distance in DISTANCES:
            sel = [r for r in grid if r.distance == distance and r.latent_dim == d_max
                   and r.num_samples == s_min and r.estimator in mc_names]
            # Estimators with infinite variance here have no meaningful SNR to rank.
            snr = {n: float(np.median([r.grad_snr(param) for r in sel if r.estimator == n]))
                   for n in mc_names if all(r.variance_finite for r in sel if r.estimator == n)}
            if not sel or not snr:
                continue
            ranked = sorted(snr, key=snr.get)
            out.append(f"Gradient w.r.t. {param}, {_WHERE[distance]} (d={d_max}, S={s_min}, "
                       f"median over posterior types): highest SNR {ranked[-1]} "
                       f"({snr[ranked[-1]]:.3g}), lowest {ranked[0]} ({snr[ranked[0]]:.3g})"
                       + (f"; mc {snr['mc']:.3g}." if "mc" in snr else "."))
    for kind in POSTERIOR_KINDS:
        timings: dict[tuple[str, int], list[float]] = {}
        for r in grid:
            if r.posterior == kind and r.latent_dim == d_max:
                timings.setdefault((r.estimator, r.num_samples), []).append(
                    r.median_us_per_posterior)
        cost = {key: float(np.median(values)) for key, values in timings.items()}
        if ("analytic", s_min) in cost and ("mc", s_max) in cost:
            out.append(f"Cost ({kind}, d={d_max}, value + gradient, median over distances): "
                       f"analytic {cost[('analytic', s_min)]:.2f} µs per posterior, mc "
                       f"{cost[('mc', s_min)]:.2f} µs at S={s_min} and "
                       f"{cost[('mc', s_max)]:.2f} µs at S={s_max} "
                       f"({cost[('mc', s_max)] / cost[('analytic', s_min)]:.2g}× analytic).")
    return out


def _value_finding(grid: Sequence[EstimatorRow], sel: Sequence[EstimatorRow], distance: str,
                   value_names: Sequence[str], s_min: int) -> str:
    by_name = {n: float(np.median([r.rel_std for r in sel if r.estimator == n]))
               for n in value_names}
    finite = {n: all(r.variance_finite for r in sel if r.estimator == n) for n in value_names}
    ranked = sorted((n for n in by_name if finite[n]), key=by_name.get)
    best, worst = ranked[0], ranked[-1]
    text = (f"{_WHERE[distance].capitalize()} (S={s_min}, median over latent sizes and "
            f"posterior types), the lowest relative std of the value is {best}'s "
            f"({by_name[best]:.3g}) and the highest {worst}'s ({by_name[worst]:.3g}, "
            f"{by_name[worst] / by_name[best]:.1f}×)")
    infinite = [n for n in value_names if not finite[n]]
    if infinite:
        cells = [r for r in grid if r.distance == distance and r.estimator in infinite]
        z = float(np.median([r.bias_z for r in cells]))
        text += (f"; {', '.join(infinite)} has infinite variance here (a posterior variance "
                 f"below half the prior's): its measured std ({by_name[infinite[0]]:.3g}) "
                 f"estimates nothing, and its median bias is {z:+.1f} standard errors, "
                 "because E[p/q] = 1 is carried by rare, huge ratios that a finite run "
                 "almost never draws")
    return text + "."


def _training_findings(training: Sequence[TrainingRow], curves: Sequence[CurveRow]
                       ) -> list[str]:
    out = []
    same_seed = [r for r in training if r.seed_offset == 0]
    best = min(same_seed, key=lambda r: r.test_negative_elbo)
    worst = max(same_seed, key=lambda r: r.test_negative_elbo)
    out.append(f"End to end, the best test negative ELBO is {best.run} "
               f"({best.test_negative_elbo:.2f} nats) and the worst {worst.run} "
               f"({worst.test_negative_elbo:.2f}); the spread is "
               f"{worst.test_negative_elbo - best.test_negative_elbo:.2f} nats.")
    pairs = attachment_differences(training, curves)
    if pairs:
        weights = max(p["weights"] for p in pairs)
        elbo = max(p["elbo"] for p in pairs)
        loss = max(p["loss"] for p in pairs)
        measured = (f"the largest difference in any final weight is {weights:.2g}, in the "
                    f"per-epoch training loss {loss:.2g} nats and in the test negative ELBO "
                    f"{elbo:.2g} nats")
        out.append(f"From the same initial weights and the same batches, the add-loss layer and "
                   f"the activity regularizer train "
                   f"{'a bit-identical model to' if weights == elbo == loss == 0 else 'the'} "
                   f"model the loss function trains ({len(pairs)} runs against their "
                   f"loss-function twins: {', '.join(p['run'] for p in pairs)}): {measured}.")
    ref = {r.choice: r for r in training}
    base, other = ref.get((*_BASELINE, 0)), ref.get((*_BASELINE, 1))
    seed_shift = math.nan
    if base and other:
        seed_shift = abs(other.test_negative_elbo - base.test_negative_elbo)
        out.append(f"Another random start: the baseline ({base.run}) trained with seed+1 "
                   f"(other initial weights and batch order) ends {seed_shift:.2f} nats away, "
                   "the scale of what a different start changes.")
    mc1 = ref.get(("diag", "loss", "mc", 1, 0))
    if base and mc1:
        delta = mc1.test_negative_elbo - base.test_negative_elbo
        versus = ("" if math.isnan(seed_shift) else
                  f"; {'less' if abs(delta) <= seed_shift else 'more'} than the seed+1 shift")
        out.append(f"Monte Carlo KL with one sample ends {delta:+.2f} nats of test negative "
                   f"ELBO from the analytic KL (diag, loss function, same start{versus}) and "
                   f"takes {mc1.wall_seconds / base.wall_seconds:.2f}× the wall time.")
    return out


def _median(rows: Sequence[LearnablePriorRow], estimator: str, key: str) -> float:
    return float(np.median([getattr(r, key) for r in rows if r.estimator == estimator]))


def _prior_findings(rows: Sequence[LearnablePriorRow]) -> list[str]:
    """Which Monte Carlo estimator has the lowest spread against a learnable prior, its cost,
    and the best loc gradient, per distance from the prior."""
    names = list(dict.fromkeys(r.estimator for r in rows))
    # mc_stl has mc's value (it differs in the gradient only), so it is not ranked on spread;
    # an estimator whose variance is infinite or unknown somewhere is not ranked at all.
    ranked = [n for n in names if all(r.variance_finite for r in rows if r.estimator == n)]
    distances = [d for d in DISTANCES if any(r.distance == d for r in rows)]
    value, gradient = [], []
    for distance in distances:
        sel = [r for r in rows if r.distance == distance]
        spread = {n: _median(sel, n, "std_sqrt_s") for n in ranked if n != "mc_stl"}
        best, second = sorted(spread, key=spread.get)[:2]
        if best == "mc":
            value.append(f"mc's {_WHERE[distance]} ({spread[best]:.3g}; next {second}, "
                         f"{spread[second] / spread[best]:.2g}× higher)")
        else:
            mc_us = {(r.setting, r.num_samples): r.median_us_per_posterior for r in sel
                     if r.estimator == "mc"}
            cost = float(np.median([r.median_us_per_posterior / mc_us[r.setting, r.num_samples]
                                    for r in sel if r.estimator == best]))
            value.append(f"{best}'s {_WHERE[distance]} ({spread[best]:.3g}, "
                         f"{spread['mc'] / spread[best]:.2g}× below mc's, at {cost:.2g}× mc's "
                         "time per call)")
        snr = {n: _median(sel, n, "grad_loc_snr") for n in ranked}
        top = max(snr, key=snr.get)
        gradient.append(f"{top}'s {_WHERE[distance]} ({snr[top]:.3g}"
                        + (")" if top == "mc" else f"; mc {snr['mc']:.3g})"))
    priors = sorted({r.prior for r in rows})
    dims = sorted({r.latent_dim for r in rows})
    counts = sorted({r.num_samples for r in rows})
    left_out = [n for n in names if n not in ranked]
    moments = [r.ratio_second_moment for r in rows if r.ratio_second_moment is not None
               and math.isfinite(r.ratio_second_moment)]
    unranked = ""
    if left_out:
        doubtful = {r.setting for r in rows if r.estimator in left_out and not r.variance_finite}
        unranked = (f" {', '.join(left_out)} is not ranked: its variance is infinite or unknown "
                    f"in {len(doubtful)} of {len({r.setting for r in rows})} settings"
                    + (f", and where finite E_q[(p/q)²] reaches {max(moments):.2g}, so its "
                       "measured std misses the rare draws that carry its variance." if moments
                       else "."))
    return [f"Against learnable priors ({' and '.join(priors)}, d = "
            f"{', '.join(map(str, dims))}, S = {counts[0]}…{counts[-1]}), where only Monte Carlo "
            f"KL exists, the lowest value spread (median std·√S) is {', '.join(value[:-1])}"
            f"{' and ' if len(value) > 1 else ''}{value[-1]}." + unranked,
            "Against learnable priors, the highest median SNR of the gradient w.r.t. the "
            f"posterior loc is {', '.join(gradient[:-1])}{' and ' if len(gradient) > 1 else ''}"
            f"{gradient[-1]}."]


def findings(estimators: Sequence[EstimatorRow], training: Sequence[TrainingRow] = (),
             curves: Sequence[CurveRow] = (), priors: Sequence[LearnablePriorRow] = ()
             ) -> list[str]:
    """Plain-language findings computed from the measurements.

    Args:
      estimators: Part 1's rows (only the `'grid'` block is used).
      training: Part 2's rows; empty when training was skipped. Default: `()`.
      curves: Part 2's per-epoch rows. Default: `()`.
      priors: Part 3's rows; empty when it was skipped. Default: `()`.

    Returns:
      A list of sentences.
    """
    grid = [r for r in estimators if r.block == "grid"]
    return [*(_estimator_findings(grid) if grid else []),
            *(_prior_findings(priors) if priors else []),
            *(_training_findings(training, curves) if training else [])]


def _estimator_sections(grid: Sequence[EstimatorRow], one_d: Sequence[EstimatorRow],
                        settings) -> list[str]:
    counts = sorted({r.num_samples for r in grid})
    lines = [
        "## Part 1 — 1-D Gaussians: theory next to measurement", "",
        "q = N(μ, σ²) against N(0, 1). Theoretical bias is 0 for every estimator; theoretical std "
        "is √(per-sample variance / S). ± is one Monte Carlo standard error. `mc_ratio_cv` has "
        "infinite variance when σ² < ½ (theory std ∞) and an unreliable standard error when "
        "σ² < ¾.", "",
        markdown_table(["μ", "σ", "estimator", "S", "KL", "bias (measured)", "std (theory)",
                        "std (measured)", "SE reliable"],
                       [[r.mu, r.sigma, r.estimator, r.num_samples, r.true_kl,
                         f"{_fmt(r.bias)} ± {_fmt(r.bias_se)}", r.theory_std,
                         f"{_fmt(r.std)} ± {_fmt(r.std_se)}", r.se_reliable]
                        for r in one_d if r.num_samples in (counts[0], counts[-1])
                        or r.estimator == "analytic"]), "",
        "## Part 1 — relative std (std / KL) by sample count", "",
        "Hollow markers in the plot and `∞var` here: `mc_ratio_cv` with a posterior eigenvalue "
        "below ½ (infinite variance; the measured std is not an estimate of anything).", "",
        markdown_table(["posterior", "d", "distance", "KL", "estimator",
                        *[f"S={s}" for s in counts], f"rel. bias S={counts[-1]}",
                        f"bias/SE S={counts[-1]}"],
                       [[r0.posterior, r0.latent_dim, r0.distance, r0.true_kl,
                         r0.estimator + ("" if r0.variance_finite else " ∞var"),
                         *[sel[s].rel_std for s in counts], sel[counts[-1]].rel_bias,
                         sel[counts[-1]].bias_z] for r0, sel in _by_sample_count(grid, counts[0])]),
        "",
        "## Part 1 — gradient quality", "",
        "SNR = ‖true gradient‖ / √(Σ per-parameter variance) over the repetitions, for the "
        "gradient w.r.t. `loc` and the scale parameters (`scale_diag`, or the lower triangle of "
        "`scale_tril`). Analytic gradients are exact (SNR ∞).", "",
        markdown_table(["posterior", "d", "distance", "estimator", f"SNR loc S={counts[0]}",
                        f"SNR loc S={counts[-1]}", f"SNR scale S={counts[0]}",
                        f"SNR scale S={counts[-1]}", f"Var scale S={counts[0]}"],
                       [[r0.posterior, r0.latent_dim, r0.distance, r0.estimator,
                         sel[counts[0]].grad_loc_snr, sel[counts[-1]].grad_loc_snr,
                         sel[counts[0]].grad_scale_snr, sel[counts[-1]].grad_scale_snr,
                         sel[counts[0]].grad_scale_var]
                        for r0, sel in _by_sample_count(grid, counts[0])]), "",
        "## Part 1 — cost", "",
        f"Median wall time of one evaluation (estimate and gradient, compiled `tf.function`) per "
        f"posterior, in µs, measured in this run on batches of {settings.batch_size} posteriors "
        f"at the `moderate` distance.", ""]
    body = []
    for kind in POSTERIOR_KINDS:
        for d in settings.latent_dims:
            for name in dict.fromkeys(r.estimator for r in grid):
                sel = {r.num_samples: r.median_us_per_posterior for r in grid
                       if r.posterior == kind and r.latent_dim == d and r.estimator == name
                       and r.distance == "moderate"}
                if sel:
                    body.append([kind, d, name, *[sel.get(s, sel[min(sel)]) for s in counts]])
    return lines + [markdown_table(["posterior", "d", "estimator", *[f"S={s}" for s in counts]],
                                   body), "",
                    "(The analytic KL does not sample; its single cost is repeated across S.)",
                    ""]


def _training_sections(training: Sequence[TrainingRow], curves: Sequence[CurveRow],
                       settings) -> list[str]:
    lines = [
        "## Part 2 — end-to-end training", "",
        f"`{settings.network}` network, latent size {settings.latent_dim_vae}, "
        f"{settings.train_size} fixed-binarized training images, {settings.validation_size} "
        f"validation images (held out of the training set), {settings.test_size} test images, "
        f"{settings.epochs} epochs, batch {settings.training_batch_size}, Adam 1e-3, each run a "
        "`tfp_vae.runs.train_run`. Every run of a posterior type starts from the same initial "
        "weights and sees the same batches; only the seed+1 run starts elsewhere. `S` is the "
        "number of posterior samples per example (for both the reconstruction and a Monte "
        "Carlo KL). The test negative ELBO uses the analytic KL and one posterior sample for "
        f"every run, so runs are compared on one yardstick; IWAE NLL is −L_k with k = "
        f"{settings.iwae_samples}. Active units: latent dimensions whose posterior mean varies "
        "across test images with variance > 0.01.", "",
        markdown_table(["run (posterior/attachment/estimator/S)", "test −ELBO", "IWAE NLL",
                        "test recon.", "test KL", "active units", "wall s", "s/epoch"],
                       [[r.run, f"{_fmt(r.test_negative_elbo)} ± {_fmt(r.test_negative_elbo_se)}",
                         r.test_iwae_nll, r.test_reconstruction, r.test_kl, r.active_units,
                         r.wall_seconds, r.seconds_per_epoch] for r in training]), ""]
    pairs = attachment_differences(training, curves)
    if pairs:
        lines += ["Attachments from the same start (each run against the loss-function run with "
                  "the same estimator, S and seed): largest absolute differences.", "",
                  markdown_table(["run", "against", "final weights", "training loss per epoch",
                                  "test −ELBO"],
                                 [[p["run"], p["twin"], p["weights"], p["loss"], p["elbo"]]
                                  for p in pairs]), ""]
    if curves:
        runs = list(dict.fromkeys(c.run for c in curves))
        epochs = sorted({c.epoch for c in curves})
        value = {(c.run, c.epoch): c.validation_loss for c in curves}
        lines += ["Validation −ELBO per epoch (each run's own KL estimator):", "",
                  markdown_table(["run", *[f"epoch {e}" for e in epochs]],
                                 [[run, *[value.get((run, e)) for e in epochs]]
                                  for run in runs]), ""]
    return lines


def _prior_sections(rows: Sequence[LearnablePriorRow], settings) -> list[str]:
    counts = sorted({r.num_samples for r in rows})
    lo, hi = counts[0], counts[-1]
    settings_rows = list({r.setting: r for r in rows}.values())
    by_cell = {(r.setting, r.estimator, r.num_samples): r for r in rows}
    body = []
    for r0 in (r for r in rows if r.num_samples == lo):
        cell = {s: by_cell[r0.setting, r0.estimator, s] for s in counts}
        mc = {s: by_cell[r0.setting, "mc", s] for s in counts}
        body.append([r0.prior, r0.latent_dim, r0.distance,
                     r0.estimator + {True: "", False: " ∞var", None: " ?var"}[r0.variance_finite],
                     cell[lo].std_sqrt_s, cell[hi].std_sqrt_s,
                     max(abs(c.bias_z) for c in cell.values()), cell[lo].grad_loc_snr,
                     cell[hi].grad_loc_snr, cell[lo].median_us_per_posterior,
                     cell[hi].median_us_per_posterior,
                     cell[hi].median_us_per_posterior / mc[hi].median_us_per_posterior])
    return [
        "## Part 3 — learnable priors: Monte Carlo KL only", "",
        "The diagonal posteriors of part 1 against two fixed, seeded priors of `tfp_vae.priors` "
        "that have no closed-form KL (the analytic estimator refuses them): `mixture`, 10 "
        "diagonal Gaussians with means drawn from N(0, 1.5² I), scales in [0.3, 0.7] and unequal "
        "weights; `flow`, a randomly initialised two-layer MAF (Glorot-uniform MADE kernels, zero "
        f"biases). The truth is a reference: the mean of log q(z) − log p(z) over "
        f"{settings_rows[0].reference_samples:,} draws z ~ q, with its own standard error, and "
        "the mean of those draws' gradients. Bias/SE combines the cell's and the reference's "
        "standard errors. `E_q[(p/q)²]` is exact for the mixture (`mc_ratio_cv`'s variance is "
        "finite iff it is) and unknown for the flow.", "",
        markdown_table(["prior", "d", "distance", "reference KL", "E_q[(p/q)²]"],
                       [[r.prior, r.latent_dim, r.distance,
                         f"{_fmt(r.reference_kl)} ± {_fmt(r.reference_se)}",
                         r.ratio_second_moment] for r in settings_rows]), "",
        f"Per estimator: std·√S (the per-sample spread), the largest |bias|/SE over S, the SNR "
        f"of the gradient w.r.t. the posterior loc, and the median time per posterior of one "
        f"call (value and gradient, batches of {settings.batch_size}) in µs, timed in this run. "
        "`∞var`: infinite variance; `?var`: unknown (measured std and bias/SE mean nothing "
        "there).", "",
        markdown_table(["prior", "d", "distance", "estimator", f"std·√S S={lo}",
                        f"std·√S S={hi}", "max |bias|/SE", f"SNR loc S={lo}", f"SNR loc S={hi}",
                        f"µs S={lo}", f"µs S={hi}", f"cost / mc S={hi}"], body), ""]


def write_report(out: str | Path, settings, estimators: Sequence[EstimatorRow],
                 training: Sequence[TrainingRow], curves: Sequence[CurveRow],
                 findings: Sequence[str], seconds: float, seed: int, quick: bool,
                 priors: Sequence[LearnablePriorRow] = ()) -> Path:
    """Writes `report.md`: header, findings, the tables of parts 1, 3 and 2, the list of files.

    Args:
      out: The report folder.
      settings: The `tfp_vae.study.runner.StudySettings` of the study.
      estimators: Part 1's rows.
      training: Part 2's rows (empty if skipped).
      curves: Part 2's per-epoch rows.
      findings: Sentences for the findings list.
      seconds: Wall time of the study.
      seed: The study seed.
      quick: Whether this was the quick study.
      priors: Part 3's rows (empty if skipped). Default: `()`.

    Returns:
      The path of `report.md`.
    """
    grid = [r for r in estimators if r.block == "grid"]
    one_d = [r for r in estimators if r.block == "theory_1d"]
    counts = sorted({r.num_samples for r in grid})
    lines = [
        "# KL-estimator study", "",
        f"Mode: {'quick' if quick else 'full'} · seed {seed} · total wall time {seconds:.0f} s. "
        f"Latent sizes {list(settings.latent_dims)}, sample counts {counts}, "
        f"{settings.repetitions} repetitions per cell (evaluated as batches of "
        f"{settings.batch_size}), prior N(0, I), float32 (as in training).", "",
        "## Findings", "", *[f"- {f}" for f in findings], "",
        *_estimator_sections(grid, one_d, settings),
        *(_prior_sections(priors, settings) if priors else []),
        *(_training_sections(training, curves, settings) if training else []),
        "## Files", "",
        "- `estimators.csv`: every part-1 cell (grid and 1-D), all columns.",
        "- `theory_1d.csv`: the 1-D cells with theoretical values.",
        "- `training.csv`, `training_curves.csv`: part 2 runs and per-epoch metrics.",
        "- `learnable_priors.csv`: every part-3 cell (learnable priors), all columns.",
        "- `relative_std.png`, `gradient_snr.png`, `training_curves.png`, "
        "`learnable_priors.png`.",
        "", "Read the CSV files back as typed rows with `tfp_vae.study.read_rows`.", ""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines))
    return path
