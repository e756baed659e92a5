"""The KL-estimator study: what analytic versus Monte Carlo KL costs and buys, with numbers.

`run_study` measures every estimator of `tfp_vae.kl.KL_ESTIMATORS` at two levels and writes a
report directory (`report.md`, one CSV per measurement, PNG plots):

1. **Estimator level** (no training). Gaussian posteriors `q` against the prior `p = N(0, I)`,
   over latent sizes, distances from the prior (`close`, `moderate`, `far`), posterior types
   (`diag`, `tril`) and sample counts: bias, standard deviation, both relative to the true KL,
   RMSE, the variance and signal-to-noise ratio of the gradient with respect to `loc` and
   `scale`, and the median time of one evaluation. Repetitions are a batch dimension: `B`
   copies of the same posterior are evaluated at once, each with its own samples.
2. **End to end** (training). The same VAE, seed, data and epochs with the KL in the loss
   function (analytic, Monte Carlo with 1 and several samples), in an add-loss layer and in an
   activity regularizer, for diagonal and full-covariance posteriors.

#### Mathematical details

For `q = N(μ, Σ)`, `p = N(0, I)` in `d` dimensions and one sample `z = μ + Lε`:

- `mc` (and `mc_stl`, same value): `log q(z) - log p(z) = c + μᵀLε + ½ εᵀ(LᵀL - I)ε`, so its
  per-sample variance is `μᵀΣμ + ½‖Σ - I‖²_F`; in 1-D `μ²σ² + (σ² - 1)²/2`.
- `mc_entropy`: `-H[q] - log p(z) = c + μᵀLε + ½ εᵀLᵀLε`, variance `μᵀΣμ + ½ tr Σ²`; in 1-D
  `μ²σ² + σ⁴/2`.
- `mc_ratio_cv`: `(r - 1) - log r` with `r = p(z)/q(z)`. With `K = KL(q‖p)`,
  `Var = E_q[r²] - 1 - 2 KL(p‖q) - 2K + Var_mc`, where
  `E_q[r²] = √(|Σ|/|A|) exp(½ μᵀΣ⁻¹A⁻¹Σ⁻¹μ + ½ μᵀΣ⁻¹μ)`, `A = 2I - Σ⁻¹`; in 1-D
  `E_q[r²] = σ²/√(2σ² - 1) · exp(μ²/(2σ² - 1))`. It is finite only when every eigenvalue of Σ
  exceeds ½, and the standard error of its sample variance needs the fourth moment, finite
  only above ¾. The report flags both.

All Monte Carlo estimators are unbiased, so the theoretical bias is 0 and the standard deviation
of the mean of `S` samples is `√(Var / S)`.

#### Examples

```python
from tfp_vae.compare_kl import run_study
result = run_study("kl_study", quick=True, seed=0)
print(result.report_path.read_text()[:500])
```

From the shell: `python -m tfp_vae.compare_kl --quick --out kl_study`.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DISTANCES",
    "KLStudyResult",
    "configure_parser",
    "gaussian_estimator_variances",
    "main",
    "run_from_args",
    "run_study",
]

#: How far the studied posteriors are from the prior: the spread of the means, the range of the
#: marginal scales, and the spread of the off-diagonal Cholesky entries (divided by `√d`).
DISTANCES: dict[str, dict[str, Any]] = {
    "close": {"loc_std": 0.1, "scale_range": (0.9, 1.1), "offdiag_std": 0.05},
    "moderate": {"loc_std": 0.5, "scale_range": (0.6, 0.95), "offdiag_std": 0.1},
    "far": {"loc_std": 1.5, "scale_range": (0.1, 0.4), "offdiag_std": 0.05},
}

#: The 1-D Gaussians `(μ, σ)` whose estimator bias and std are printed next to theory: near the
#: prior, moderately away (`σ² > ½`: `mc_ratio_cv` has finite variance, infinite kurtosis), a
#: typical narrow VAE posterior (`σ² < ½`: infinite variance), and a posterior wider than the
#: prior (where `mc_entropy` loses to `mc`).
ONE_D_CASES: tuple[tuple[float, float], ...] = ((0.1, 0.95), (1.0, 0.8), (2.0, 0.3), (0.5, 1.5))

_QUICK = {"latent_dims": (2, 16), "sample_counts": (1, 4, 16, 64), "repetitions": 1000,
          "batch_size": 100, "epochs": 2, "train_size": 1024, "test_size": 256,
          "latent_dim_vae": 2, "several_samples": 4, "iwae_samples": 16, "iwae_images": 128}
_FULL = {"latent_dims": (2, 16, 64), "sample_counts": (1, 4, 16, 64, 256), "repetitions": 4000,
         "batch_size": 100, "epochs": 8, "train_size": 12000, "test_size": 2000,
         "latent_dim_vae": 8, "several_samples": 8, "iwae_samples": 200,
         "iwae_images": 1000}


@dataclass
class KLStudyResult:
    """What `run_study` measured and where it wrote it.

    Attributes:
      output_dir: The report directory.
      report_path: `output_dir / 'report.md'`.
      estimator_rows: One dict per (setting, estimator, sample count) of part 1; the rows of
        `estimators.csv` (and, for the 1-D block, `theory_1d.csv`).
      training_rows: One dict per end-to-end run; the rows of `training.csv`.
      curve_rows: One dict per (run, epoch); the rows of `training_curves.csv`.
      findings: The plain-language findings printed in the report.
      seconds: Wall time of the whole study.
    """

    output_dir: Path
    report_path: Path
    estimator_rows: list[dict] = field(default_factory=list)
    training_rows: list[dict] = field(default_factory=list)
    curve_rows: list[dict] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# Theory.


def gaussian_estimator_variances(loc: np.ndarray, scale_tril: np.ndarray) -> dict[str, float]:
    """Exact KL and per-sample variances of the Monte Carlo KL estimators for Gaussians.

    For `q = N(loc, LLᵀ)` against `p = N(0, I)` (see the module docstring for the formulas).

    Args:
      loc: `[d]` mean of `q`.
      scale_tril: `[d, d]` lower-triangular Cholesky factor `L` of `q`'s covariance.

    Returns:
      A dict with `kl` (the true `KL(q‖p)`), `min_eigenvalue` of `Σ`, and the one-sample
      variance of every estimator: `analytic` (0), `mc`, `mc_stl` (equal to `mc`),
      `mc_entropy`, and `mc_ratio_cv` (`inf` unless every eigenvalue of `Σ` exceeds ½).

    #### Examples

    ```python
    gaussian_estimator_variances(np.array([1.0]), np.array([[0.8]]))["mc"]  # 0.64 + 0.0648
    ```
    """
    loc = np.asarray(loc, np.float64)
    tril = np.asarray(scale_tril, np.float64)
    d = loc.shape[-1]
    cov = tril @ tril.T
    eig = np.linalg.eigvalsh(cov)
    logdet = float(np.sum(np.log(eig)))
    kl = 0.5 * (np.trace(cov) + loc @ loc - d - logdet)
    shift = float(loc @ cov @ loc)
    var_mc = shift + 0.5 * float(np.sum((eig - 1.0) ** 2))
    var_entropy = shift + 0.5 * float(np.sum(eig**2))
    if eig.min() > 0.5:
        precision = np.linalg.inv(cov)
        a = 2.0 * np.eye(d) - precision
        h = precision @ loc
        log_r2 = 0.5 * (logdet - np.linalg.slogdet(a)[1]) + 0.5 * h @ np.linalg.solve(a, h) \
            + 0.5 * loc @ precision @ loc
        kl_pq = 0.5 * (np.trace(precision) + loc @ precision @ loc - d + logdet)
        var_ratio = math.exp(log_r2) - 1.0 - 2.0 * kl_pq - 2.0 * kl + var_mc
    else:
        var_ratio = math.inf
    return {"kl": float(kl), "min_eigenvalue": float(eig.min()), "analytic": 0.0, "mc": var_mc,
            "mc_stl": var_mc, "mc_entropy": var_entropy, "mc_ratio_cv": float(var_ratio)}


# ------------------------------------------------------------------------------------------------
# Part 1: estimator level.


def _posterior_parameters(latent_dim: int, kind: str, distance: str, seed: int):
    """A fixed posterior `(loc [d], scale_tril [d, d])` for one setting, from `seed`."""
    spec = DISTANCES[distance]
    rng = np.random.default_rng([seed, latent_dim, ("diag", "tril").index(kind),
                                 list(DISTANCES).index(distance)])
    loc = rng.normal(0.0, spec["loc_std"], latent_dim)
    tril = np.diag(rng.uniform(*spec["scale_range"], latent_dim))
    if kind == "tril":
        tril += np.tril(rng.normal(0.0, spec["offdiag_std"] / math.sqrt(latent_dim),
                                   (latent_dim, latent_dim)), -1)
    return loc, tril


def _make_evaluator(estimator_name: str, kind: str, latent_dim: int):
    """A `tf.function` returning per-repetition KL estimates and their gradients.

    Inputs are `B` identical copies of the posterior parameters, so the gradient of the summed
    estimate with respect to copy `b` is the gradient of repetition `b` alone. The sample count
    is a tensor, so one trace serves every sample count.
    """
    from tfp_vae.backend import tf, tfd
    from tfp_vae.kl import get_kl_estimator
    from tfp_vae.priors import isotropic_gaussian_prior

    estimator = get_kl_estimator(estimator_name)
    prior = isotropic_gaussian_prior(latent_dim)
    scale_shape = [None, latent_dim] if kind == "diag" else [None, latent_dim, latent_dim]

    @tf.function(input_signature=[
        tf.TensorSpec([None, latent_dim], tf.float32), tf.TensorSpec(scale_shape, tf.float32),
        tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int32)])
    def evaluate(loc, scale, num_samples, seed):
        with tf.GradientTape() as tape:
            tape.watch([loc, scale])
            posterior = (tfd.MultivariateNormalDiag(loc, scale) if kind == "diag"
                         else tfd.MultivariateNormalTriL(loc, scale))
            if estimator_name == "analytic":
                kl = estimator(posterior, prior)
            else:
                # The estimators draw `posterior.sample(num_samples)` themselves; drawing here
                # with a tensor sample count (as `negative_elbo` does) keeps one trace.
                z = posterior.sample(num_samples, seed=seed)
                kl = estimator(posterior, prior, test_points=z)
        grad_loc, grad_scale = tape.gradient(kl, [loc, scale])
        return kl, grad_loc, grad_scale

    return evaluate


def _true_gradients(loc: np.ndarray, tril: np.ndarray, kind: str):
    """`∂KL/∂μ = μ`; `∂KL/∂σ = σ - 1/σ` (diag) or `∂KL/∂L = L - diag(1/L_ii)` (tril)."""
    if kind == "diag":
        scale = np.diag(tril)
        return loc, scale - 1.0 / scale
    return loc, tril - np.diag(1.0 / np.diag(tril))


def _gradient_stats(samples: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Variance, SNR and worst standardised bias of per-repetition gradients `[R, ...]`."""
    flat = samples.reshape(len(samples), -1)
    truth = truth.reshape(-1)
    if flat.shape[1] != truth.shape[0]:
        raise ValueError("gradient and truth shapes differ")
    var = flat.var(axis=0, ddof=1)
    keep = np.ones_like(truth, bool)
    if samples.ndim == 3:  # only the lower triangle of scale_tril is a parameter
        d = samples.shape[-1]
        keep = np.tril(np.ones((d, d), bool)).reshape(-1)
    var, truth_k, mean = var[keep], truth[keep], flat.mean(axis=0)[keep]
    total = float(var.sum())
    se = np.sqrt(var / len(flat))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, np.abs(mean - truth_k) / se, 0.0)
        snr = float(np.linalg.norm(truth_k) / math.sqrt(total)) if total > 0 else math.inf
    return {"var": float(var.mean()), "snr": snr, "max_bias_z": float(z.max()),
            "max_abs_error": float(np.abs(mean - truth_k).max())}


def _value_stats(values: np.ndarray, truth: float, variance_1: float, num_samples: int
                 ) -> dict[str, float]:
    r = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1))
    centred = values - mean
    m4 = float(np.mean(centred**4))
    var_se = math.sqrt(max(m4 - std**4, 0.0) / r)
    bias = mean - truth
    se = std / math.sqrt(r)
    theory_std = math.sqrt(variance_1 / num_samples)
    scale = abs(truth) if truth != 0 else math.nan
    return {
        "estimate_mean": mean, "bias": bias, "bias_se": se,
        "bias_z": bias / se if se > 0 else (0.0 if abs(bias) < 1e-9 else math.inf),
        "std": std, "std_se": var_se / (2.0 * std) if std > 0 else 0.0,
        "theory_bias": 0.0, "theory_std": theory_std,
        "rel_bias": bias / scale, "rel_std": std / scale,
        "rmse": float(np.sqrt(np.mean((values - truth) ** 2))),
        "rel_rmse": float(np.sqrt(np.mean((values - truth) ** 2))) / scale,
        "non_finite": int(np.sum(~np.isfinite(values))),
    }


def _measure_setting(block: str, label: str, loc: np.ndarray, tril: np.ndarray, kind: str,
                     estimators: Sequence[str], sample_counts: Sequence[int], repetitions: int,
                     batch_size: int, seed: int, evaluators: dict, extra: dict
                     ) -> list[dict]:
    from tfp_vae.backend import tf

    d = loc.shape[0]
    theory = gaussian_estimator_variances(loc, tril)
    truth = theory["kl"]
    true_grad_loc, true_grad_scale = _true_gradients(loc, tril, kind)
    scale = np.diag(tril) if kind == "diag" else tril
    loc_b = tf.constant(np.broadcast_to(loc, (batch_size, d)), tf.float32)
    scale_b = tf.constant(np.broadcast_to(scale, (batch_size, *scale.shape)), tf.float32)
    chunks = -(-repetitions // batch_size)
    rows = []
    for name in estimators:
        key = (name, kind, d)
        if key not in evaluators:
            evaluators[key] = _make_evaluator(name, kind, d)
        evaluate = evaluators[key]
        for num_samples in (sample_counts if name != "analytic" else sample_counts[:1]):
            values, grads_loc, grads_scale, seconds = [], [], [], []
            for chunk in range(chunks):
                tag = f"{label}|{name}|{num_samples}|{chunk}".encode()
                seed_pair = tf.constant([seed, zlib.crc32(tag) % (2**31 - 1)], tf.int32)
                start = time.perf_counter()
                kl, g_loc, g_scale = evaluate(loc_b, scale_b, tf.constant(num_samples), seed_pair)
                kl = kl.numpy()
                seconds.append(time.perf_counter() - start)
                values.append(kl.astype(np.float64))
                grads_loc.append(g_loc.numpy().astype(np.float64))
                grads_scale.append(g_scale.numpy().astype(np.float64))
            values = np.concatenate(values)[:repetitions]
            row = {"block": block, "setting": label, "posterior": kind, "latent_dim": d,
                   **extra, "estimator": name, "num_samples": num_samples,
                   "repetitions": len(values), "true_kl": truth,
                   "min_eigenvalue": theory["min_eigenvalue"]}
            finite_var = name != "mc_ratio_cv" or theory["min_eigenvalue"] > 0.5
            row["variance_finite"] = finite_var
            row["se_reliable"] = name != "mc_ratio_cv" or theory["min_eigenvalue"] > 0.75
            row.update(_value_stats(values, truth, theory[name], num_samples))
            for param, grads, true_grad in (("loc", grads_loc, true_grad_loc),
                                            ("scale", grads_scale, true_grad_scale)):
                stats = _gradient_stats(np.concatenate(grads)[:repetitions], true_grad)
                row.update({f"grad_{param}_{k}": v for k, v in stats.items()})
            # The first call of a trace includes tracing; the median of the rest is the cost.
            timed = seconds[1:] if len(seconds) > 1 else seconds
            row["batch_size"] = batch_size
            row["median_ms_per_batch"] = 1e3 * float(np.median(timed))
            row["median_us_per_posterior"] = 1e6 * float(np.median(timed)) / batch_size
            rows.append(row)
    return rows


def _estimator_study(latent_dims, sample_counts, repetitions, batch_size, seed, log
                     ) -> list[dict]:
    from tfp_vae.kl import KL_ESTIMATORS

    estimators = list(KL_ESTIMATORS)
    evaluators: dict = {}
    rows: list[dict] = []
    for mu, sigma in ONE_D_CASES:
        label = f"1d mu={mu:g} sigma={sigma:g}"
        start = time.perf_counter()
        rows += _measure_setting("theory_1d", label, np.array([mu]), np.array([[sigma]]), "diag",
                                 estimators, sample_counts, repetitions, batch_size, seed,
                                 evaluators, {"distance": "", "mu": mu, "sigma": sigma})
        log(f"[part 1] {label}: {time.perf_counter() - start:.1f}s")
    for kind in ("diag", "tril"):
        for d in latent_dims:
            for distance in DISTANCES:
                loc, tril = _posterior_parameters(d, kind, distance, seed)
                label = f"{kind} d={d} {distance}"
                start = time.perf_counter()
                rows += _measure_setting("grid", label, loc, tril, kind, estimators,
                                         sample_counts, repetitions, batch_size, seed, evaluators,
                                         {"distance": distance, "mu": "", "sigma": ""})
                log(f"[part 1] {label}: KL={rows[-1]['true_kl']:.3f}, "
                    f"{time.perf_counter() - start:.1f}s")
    return rows


# ------------------------------------------------------------------------------------------------
# Part 2: end to end.


def _training_runs(several: int, quick: bool) -> list[dict]:
    runs = [
        ("diag", "loss", "analytic", 1), ("diag", "loss", "mc", 1),
        ("diag", "loss", "mc", several), ("diag", "add_loss", "analytic", 1),
        ("diag", "regularizer", "analytic", 1), ("tril", "loss", "analytic", 1),
        ("tril", "loss", "mc", 1),
    ]
    if not quick:
        runs += [
            ("diag", "loss", "analytic", several), ("diag", "loss", "mc_entropy", 1),
            ("diag", "loss", "mc_stl", 1), ("diag", "add_loss", "mc", 1),
            ("diag", "regularizer", "mc", 1), ("tril", "regularizer", "analytic", 1),
            ("tril", "loss", "mc", several),
        ]
    specs = [{"run": f"{p}/{a}/{e}/S={s}", "posterior": p, "kl_attachment": a,
              "kl_estimator": e, "num_samples": s, "seed_offset": 0} for p, a, e, s in runs]
    # The baseline again with another seed: the noise floor that other differences are read
    # against.
    return specs + [{**specs[0], "run": specs[0]["run"] + "/seed+1", "seed_offset": 1}]


def _evaluate_vae(vae, x_test: np.ndarray, seed: int, iwae_samples: int,
                  iwae_images: int) -> dict[str, float]:
    """Test negative ELBO with the analytic KL (one yardstick for every run), IWAE, active units."""
    from tfp_vae.evaluation import active_units, evaluate_elbo, iwae_log_likelihood

    elbo = evaluate_elbo(vae, x_test, batch_size=256, num_samples=4, seed=seed)
    iwae = iwae_log_likelihood(vae, x_test[:iwae_images], num_samples=iwae_samples, seed=seed)
    return {"test_negative_elbo": elbo["negative_elbo"],
            "test_negative_elbo_se": elbo["negative_elbo_standard_error"],
            "test_reconstruction": elbo["reconstruction"], "test_kl": elbo["kl"],
            "test_iwae_nll": -iwae["log_likelihood"],
            "test_iwae_nll_se": iwae["log_likelihood_standard_error"],
            "active_units": active_units(vae, x_test)["active_units"]}


def _training_study(settings: dict, seed: int, dataset: str, data_dir, quick: bool, log
                    ) -> tuple[list[dict], list[dict]]:
    from tfp_vae.backend import keras
    from tfp_vae.config import ModelConfig
    from tfp_vae.data import load_dataset, make_dataset
    from tfp_vae.models import build_model
    from tfp_vae.training import train_loop

    data = load_dataset(dataset, data_dir)
    rng = np.random.default_rng(seed)
    x_train = data.x_train[: settings["train_size"]]
    x_test = data.x_test[: settings["test_size"]]
    x_train = (rng.random(x_train.shape, dtype=np.float32) < x_train).astype(np.float32)
    x_test = (rng.random(x_test.shape, dtype=np.float32) < x_test).astype(np.float32)
    rows, curves = [], []
    for spec in _training_runs(settings["several_samples"], quick):
        keras.utils.set_random_seed(seed + spec["seed_offset"])
        config = ModelConfig(latent_dim=settings["latent_dim_vae"], network="course",
                             posterior=spec["posterior"], kl_attachment=spec["kl_attachment"],
                             kl_estimator=spec["kl_estimator"], num_samples=spec["num_samples"])
        vae = build_model(config)
        train = make_dataset(x_train, batch_size=64, seed=seed + spec["seed_offset"])
        test = make_dataset(x_test, batch_size=256, shuffle=False)
        start = time.perf_counter()
        history = train_loop(vae, train, epochs=settings["epochs"],
                             optimizer=keras.optimizers.Adam(1e-3), validation_data=test)
        seconds = time.perf_counter() - start
        metrics = _evaluate_vae(vae, x_test, seed, settings["iwae_samples"],
                                settings["iwae_images"])
        row = {**spec, "latent_dim": config.latent_dim, "epochs": settings["epochs"],
               **metrics, "final_train_loss": history["loss"][-1],
               "wall_seconds": seconds, "seconds_per_epoch": seconds / settings["epochs"]}
        rows.append(row)
        for epoch in range(settings["epochs"]):
            curves.append({"run": spec["run"], "epoch": epoch + 1,
                           **{k: v[epoch] for k, v in history.items()}})
        log(f"[part 2] {spec['run']}: test -ELBO {metrics['test_negative_elbo']:.2f}, "
            f"IWAE NLL {metrics['test_iwae_nll']:.2f}, "
            f"KL {metrics['test_kl']:.2f}, active {metrics['active_units']}, {seconds:.1f}s")
    return rows, curves


# ------------------------------------------------------------------------------------------------
# Report.


def _by_sample_count(grid: Sequence[dict], first_count: int):
    """Yields `(row at first_count, {num_samples: row})` per (setting, Monte Carlo estimator)."""
    for r0 in (r for r in grid if r["num_samples"] == first_count
               and r["estimator"] != "analytic"):
        yield r0, {r["num_samples"]: r for r in grid if r["setting"] == r0["setting"]
                   and r["estimator"] == r0["estimator"]}


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if value is None or not np.isfinite(value):
        return "∞" if value is not None and value > 0 else ("−∞" if value is not None
                                                             and value < 0 else "n/a")
    if value != 0 and (abs(value) < 10 ** -(digits) or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0") \
        .rstrip(".")


def _table(headers: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def _slope(rows: Sequence[dict]) -> float:
    rows = sorted(rows, key=lambda r: r["num_samples"])
    s = np.log([r["num_samples"] for r in rows])
    y = np.log([max(r["rel_std"], 1e-300) for r in rows])
    return float(np.polyfit(s, y, 1)[0])


def _findings(est: list[dict], training: list[dict]) -> list[str]:
    """Plain-language findings computed from the measurements (no fixed claims)."""
    out = []
    grid = [r for r in est if r["block"] == "grid"]
    mc_names = sorted({r["estimator"] for r in grid} - {"analytic"})
    s_min = min(r["num_samples"] for r in grid)
    s_max = max(r["num_samples"] for r in grid)
    analytic = [r for r in grid if r["estimator"] == "analytic"]
    if analytic:
        worst = max(abs(r["bias"]) / max(abs(r["true_kl"]), 1.0) for r in analytic)
        out.append(f"The analytic KL matches the closed form to a relative error of at most "
                   f"{worst:.1e} in every setting, with zero variance.")
    unbiased = [r for r in grid if r["estimator"] != "analytic" and r["variance_finite"]]
    if unbiased:
        z = np.array([abs(r["bias_z"]) for r in unbiased])
        out.append(f"No Monte Carlo estimator shows a bias: over {len(z)} (setting, estimator, "
                   f"S) cells with finite variance the largest |bias| is {z.max():.1f} standard "
                   f"errors (median {np.median(z):.2f}); "
                   f"{int(np.sum(z > 3))} cells exceed 3 SE.")
    slopes = {name: [] for name in mc_names}
    for name in mc_names:
        for setting in sorted({r["setting"] for r in grid}):
            sel = [r for r in grid if r["estimator"] == name and r["setting"] == setting]
            if len(sel) > 2 and all(r["variance_finite"] for r in sel):
                slopes[name].append(_slope(sel))
    parts = [f"{n} {np.median(v):+.2f} (range {min(v):+.2f} to {max(v):+.2f})"
             for n, v in slopes.items() if v]
    if parts:
        out.append("Relative std falls with the sample count as the 1/√S theory says (log-log "
                   "slope −0.5); median fitted slopes: " + "; ".join(parts) + ".")
    # mc_stl has the value of mc (it differs only in its gradient), so values compare the others.
    value_names = [n for n in mc_names if n != "mc_stl"]
    for distance in DISTANCES:
        sel = [r for r in grid if r["distance"] == distance and r["num_samples"] == s_min
               and r["estimator"] in value_names]
        if not sel:
            continue
        by_name = {n: float(np.median([r["rel_std"] for r in sel if r["estimator"] == n]))
                   for n in value_names}
        finite = {n: all(r["variance_finite"] for r in sel if r["estimator"] == n)
                  for n in value_names}
        ranked = sorted((n for n in by_name if finite[n]), key=by_name.get)
        best, worst = ranked[0], ranked[-1]
        text = (f"{distance.capitalize()} to the prior (S={s_min}, median over latent sizes and "
                f"posterior types), the lowest relative std of the value is {best}'s "
                f"({by_name[best]:.3g}) and the highest {worst}'s ({by_name[worst]:.3g}, "
                f"{by_name[worst] / by_name[best]:.1f}×)")
        infinite = [n for n in value_names if not finite[n]]
        if infinite:
            cells = [r for r in grid if r["distance"] == distance and r["estimator"] in infinite]
            z = float(np.median([r["bias_z"] for r in cells]))
            text += (f"; {', '.join(infinite)} has infinite variance here (a posterior variance "
                     f"below half the prior's): its measured std ({by_name[infinite[0]]:.3g}) "
                     f"estimates nothing, and its median bias is {z:+.1f} standard errors, "
                     "because E[p/q] = 1 is carried by rare, huge ratios that a finite run "
                     "almost never draws")
        out.append(text + ".")
    d_max = max(r["latent_dim"] for r in grid)
    for param in ("loc", "scale"):
        for distance in DISTANCES:
            sel = [r for r in grid if r["distance"] == distance and r["latent_dim"] == d_max
                   and r["num_samples"] == s_min and r["estimator"] in mc_names]
            if not sel:
                continue
            # Estimators with infinite variance here have no meaningful SNR to rank.
            snr = {n: float(np.median([r[f"grad_{param}_snr"] for r in sel
                                       if r["estimator"] == n])) for n in mc_names
                   if all(r["variance_finite"] for r in sel if r["estimator"] == n)}
            ranked = sorted(snr, key=snr.get)
            out.append(f"Gradient w.r.t. {param}, {distance} to the prior (d={d_max}, S={s_min}, "
                       f"median over posterior types): highest SNR {ranked[-1]} "
                       f"({snr[ranked[-1]]:.3g}), lowest {ranked[0]} ({snr[ranked[0]]:.3g}); "
                       f"mc {snr['mc']:.3g}.")
    for kind in ("diag", "tril"):
        sel = [r for r in grid if r["posterior"] == kind and r["latent_dim"] == d_max]
        timings: dict[tuple[str, int], list[float]] = {}
        for r in sel:
            timings.setdefault((r["estimator"], r["num_samples"]), []).append(
                r["median_us_per_posterior"])
        cost = {key: float(np.median(values)) for key, values in timings.items()}
        if ("analytic", s_min) in cost and ("mc", s_max) in cost:
            out.append(f"Cost ({kind}, d={d_max}, value + gradient, median over distances): "
                       "analytic "
                       f"{cost[('analytic', s_min)]:.2f} µs per posterior, mc "
                       f"{cost[('mc', s_min)]:.2f} µs at S={s_min} and "
                       f"{cost[('mc', s_max)]:.2f} µs at S={s_max} "
                       f"({cost[('mc', s_max)] / cost[('analytic', s_min)]:.2g}× analytic).")
    if training:
        same_seed = [r for r in training if r["seed_offset"] == 0]
        best = min(same_seed, key=lambda r: r["test_negative_elbo"])
        worst = max(same_seed, key=lambda r: r["test_negative_elbo"])
        out.append(f"End to end, the best test negative ELBO is {best['run']} "
                   f"({best['test_negative_elbo']:.2f} nats) and the worst {worst['run']} "
                   f"({worst['test_negative_elbo']:.2f}); the spread is "
                   f"{worst['test_negative_elbo'] - best['test_negative_elbo']:.2f} nats.")
        ref = {(r["posterior"], r["kl_attachment"], r["kl_estimator"], r["num_samples"],
                r["seed_offset"]): r for r in training}
        base = ref.get(("diag", "loss", "analytic", 1, 0))
        other_seed = ref.get(("diag", "loss", "analytic", 1, 1))
        noise = abs(other_seed["test_negative_elbo"] - base["test_negative_elbo"]) \
            if base and other_seed else math.nan
        if base and other_seed:
            out.append(f"Noise floor: the baseline (diag/loss/analytic/S=1) trained again with "
                       f"seed+1 ends {noise:.2f} nats away; differences between runs smaller "
                       "than this are not evidence of anything.")
        attachments = [ref[("diag", a, "analytic", 1, 0)] for a in ("loss", "add_loss",
                                                                    "regularizer")
                       if ("diag", a, "analytic", 1, 0) in ref]
        if len(attachments) == 3:
            values = [r["test_negative_elbo"] for r in attachments]
            spread = max(values) - min(values)
            verdict = "within" if spread <= noise else "beyond"
            out.append(f"The three attachments of the analytic KL (loss function, add-loss "
                       f"layer, regularizer; diag) end {spread:.2f} nats apart, {verdict} the "
                       f"seed noise floor; add-loss layer and regularizer differ by "
                       f"{abs(values[1] - values[2]):.2g} nats.")
        mc1 = ref.get(("diag", "loss", "mc", 1, 0))
        if base and mc1:
            delta = mc1["test_negative_elbo"] - base["test_negative_elbo"]
            out.append(f"Monte Carlo KL with one sample ends {delta:+.2f} nats of test negative "
                       f"ELBO from the analytic KL (diag, loss function; "
                       f"{'within' if abs(delta) <= noise else 'beyond'} the noise floor) and "
                       f"takes {mc1['wall_seconds'] / base['wall_seconds']:.2f}× the wall time.")
    return out


def _write_report(out: Path, settings: dict, est: list[dict], training: list[dict],
                  curves: list[dict], findings: list[str], seconds: float, seed: int,
                  quick: bool) -> Path:
    grid = [r for r in est if r["block"] == "grid"]
    one_d = [r for r in est if r["block"] == "theory_1d"]
    counts = sorted({r["num_samples"] for r in grid})
    lines = [
        "# KL-estimator study", "",
        f"Mode: {'quick' if quick else 'full'} · seed {seed} · total wall time {seconds:.0f} s. "
        f"Latent sizes {list(settings['latent_dims'])}, sample counts {counts}, "
        f"{settings['repetitions']} repetitions per cell (evaluated as batches of "
        f"{settings['batch_size']}), prior N(0, I), float32 (as in training).", "",
        "## Findings", "", *[f"- {f}" for f in findings], "",
        "## Part 1 — 1-D Gaussians: theory next to measurement", "",
        "q = N(μ, σ²) against N(0, 1). Theoretical bias is 0 for every estimator; theoretical std "
        "is √(per-sample variance / S). ± is one Monte Carlo standard error. `mc_ratio_cv` has "
        "infinite variance when σ² < ½ (theory std ∞) and an unreliable standard error when "
        "σ² < ¾.", "",
    ]
    body = [[r["mu"], r["sigma"], r["estimator"], r["num_samples"], r["true_kl"],
             f"{_fmt(r['bias'])} ± {_fmt(r['bias_se'])}", r["theory_std"],
             f"{_fmt(r['std'])} ± {_fmt(r['std_se'])}", r["se_reliable"]]
            for r in one_d if r["num_samples"] in (counts[0], counts[-1])
            or r["estimator"] == "analytic"]
    lines += [_table(["μ", "σ", "estimator", "S", "KL", "bias (measured)", "std (theory)",
                      "std (measured)", "SE reliable"], body), ""]
    lines += ["## Part 1 — relative std (std / KL) by sample count", "",
              "Hollow markers in the plot and `∞var` here: `mc_ratio_cv` with a posterior "
              "eigenvalue below ½ (infinite variance; the measured std is not an estimate of "
              "anything).", ""]
    body = []
    for r0, sel in _by_sample_count(grid, counts[0]):
        body.append([r0["posterior"], r0["latent_dim"], r0["distance"], r0["true_kl"],
                     r0["estimator"] + ("" if r0["variance_finite"] else " ∞var"),
                     *[sel[s]["rel_std"] for s in counts], sel[counts[-1]]["rel_bias"],
                     sel[counts[-1]]["bias_z"]])
    lines += [_table(["posterior", "d", "distance", "KL", "estimator",
                      *[f"S={s}" for s in counts], f"rel. bias S={counts[-1]}",
                      f"bias/SE S={counts[-1]}"], body), ""]
    lines += ["## Part 1 — gradient quality", "",
              "SNR = ‖true gradient‖ / √(Σ per-parameter variance) over the repetitions, for the "
              "gradient w.r.t. `loc` and the scale parameters (`scale_diag`, or the lower "
              "triangle of `scale_tril`). Analytic gradients are exact (SNR ∞).", ""]
    body = []
    for r0, sel in _by_sample_count(grid, counts[0]):
        body.append([r0["posterior"], r0["latent_dim"], r0["distance"], r0["estimator"],
                     sel[counts[0]]["grad_loc_snr"], sel[counts[-1]]["grad_loc_snr"],
                     sel[counts[0]]["grad_scale_snr"], sel[counts[-1]]["grad_scale_snr"],
                     sel[counts[0]]["grad_scale_var"]])
    lines += [_table(["posterior", "d", "distance", "estimator", f"SNR loc S={counts[0]}",
                      f"SNR loc S={counts[-1]}", f"SNR scale S={counts[0]}",
                      f"SNR scale S={counts[-1]}", f"Var scale S={counts[0]}"], body), ""]
    lines += ["## Part 1 — cost", "",
              f"Median wall time of one evaluation (estimate and gradient, compiled "
              f"`tf.function`) per posterior, in µs, measured in this run on batches of "
              f"{settings['batch_size']} posteriors at the `moderate` distance.", ""]
    body = []
    for kind in ("diag", "tril"):
        for d in settings["latent_dims"]:
            for name in dict.fromkeys(r["estimator"] for r in grid):
                sel = {r["num_samples"]: r["median_us_per_posterior"] for r in grid
                       if r["posterior"] == kind and r["latent_dim"] == d
                       and r["estimator"] == name and r["distance"] == "moderate"}
                if sel:
                    body.append([kind, d, name, *[sel.get(s, sel[min(sel)]) for s in counts]])
    lines += [_table(["posterior", "d", "estimator", *[f"S={s}" for s in counts]], body),
              "", "(The analytic KL does not sample; its single cost is repeated across S.)", ""]
    if training:
        lines += ["## Part 2 — end-to-end training", "",
                  f"`course` network, latent size {settings['latent_dim_vae']}, "
                  f"{settings['train_size']} fixed-binarized Fashion-MNIST training images, "
                  f"{settings['test_size']} test images, {settings['epochs']} epochs, batch 64, "
                  "Adam 1e-3, the same seed for every run. `S` is the number of posterior "
                  "samples per example (for both the reconstruction and a Monte Carlo KL). "
                  "Test negative ELBO (`tfp_vae.evaluation.evaluate_elbo`) uses the analytic KL "
                  "and 4 posterior samples for every run, so runs are compared on one "
                  f"yardstick; IWAE NLL is −L_k with k = {settings['iwae_samples']} on the "
                  f"first {settings['iwae_images']} test images. Active units: latent "
                  "dimensions whose posterior mean varies across test images with variance "
                  "> 0.01.", ""]
        body = [[r["run"], f"{_fmt(r['test_negative_elbo'])} ± "
                 f"{_fmt(r['test_negative_elbo_se'])}", r["test_iwae_nll"],
                 r["test_reconstruction"], r["test_kl"], r["active_units"], r["wall_seconds"],
                 r["seconds_per_epoch"]] for r in training]
        lines += [_table(["run (posterior/attachment/estimator/S)", "test −ELBO", "IWAE NLL",
                          "test recon.", "test KL", "active units", "wall s", "s/epoch"], body),
                  ""]
        if curves:
            runs = list(dict.fromkeys(r["run"] for r in curves))
            epochs = sorted({r["epoch"] for r in curves})
            body = [[run, *[next(r["val_loss"] for r in curves if r["run"] == run
                                 and r["epoch"] == e) for e in epochs]] for run in runs]
            lines += ["Validation −ELBO per epoch (each run's own KL estimator):", "",
                      _table(["run", *[f"epoch {e}" for e in epochs]], body), ""]
    lines += ["## Files", "",
              "- `estimators.csv`: every part-1 cell (grid and 1-D), all columns.",
              "- `theory_1d.csv`: the 1-D cells with theoretical values.",
              "- `training.csv`, `training_curves.csv`: part 2 runs and per-epoch metrics.",
              "- `relative_std.png`, `gradient_snr.png`, `training_curves.png`.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------------------------------------
# Entry points.


def run_study(output_dir: str | Path = "kl_study", quick: bool = False, seed: int = 0,
              latent_dims: Sequence[int] | None = None,
              sample_counts: Sequence[int] | None = None, repetitions: int | None = None,
              epochs: int | None = None, train_size: int | None = None,
              skip_training: bool = False, dataset: str = "fashion_mnist",
              data_dir: str | Path | None = None,
              log: Callable[[str], None] | None = print) -> KLStudyResult:
    """Runs the KL-estimator study and writes its report directory.

    Args:
      output_dir: Folder for `report.md`, the CSVs and the PNGs (created if missing).
        Default: `'kl_study'`.
      quick: Python `bool`, the small study (latent sizes 2 and 16, S up to 64, 1000 repetitions,
        8 short training runs on 1024 images; under 2 minutes on 2 CPU cores). Default: `False`.
      seed: Python `int` seeding the posteriors, the samples, the data subset and the models;
        the same seed gives the same numbers (timings aside). Default: `0`.
      latent_dims: Latent sizes of the estimator grid. Default: `None` (mode's choice).
      sample_counts: Sample counts `S`, ascending. Default: `None` (mode's choice).
      repetitions: Independent repetitions per cell. Default: `None` (mode's choice).
      epochs: Training epochs per run in part 2. Default: `None` (mode's choice).
      train_size: Training images in part 2. Default: `None` (mode's choice).
      skip_training: Python `bool`, run part 1 only. Default: `False`.
      dataset: `'fashion_mnist'` or `'mnist'`. Default: `'fashion_mnist'`.
      data_dir: Folder with the IDX files; `None` uses `$TFP_VAE_DATA_DIR` or the Keras
        download. Default: `None`.
      log: Callable receiving progress lines, or `None` for silence. Default: `print`.

    Returns:
      A `KLStudyResult`.

    Raises:
      ValueError: If a size or count is not a positive integer.
      FileNotFoundError: If the dataset files are missing from `data_dir`.

    #### Examples

    ```python
    result = run_study("kl_study", quick=True)
    [r for r in result.estimator_rows if r["estimator"] == "mc"][0]["rel_std"]
    ```
    """
    settings = dict(_QUICK if quick else _FULL)
    for key, value in (("latent_dims", latent_dims), ("sample_counts", sample_counts),
                       ("repetitions", repetitions), ("epochs", epochs),
                       ("train_size", train_size)):
        if value is not None:
            settings[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    for key in ("latent_dims", "sample_counts"):
        values = settings[key]
        if not values or any(not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(f"{key} must be positive integers, got {values!r}.")
    settings["sample_counts"] = tuple(sorted(settings["sample_counts"]))
    for key in ("repetitions", "epochs", "train_size"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {settings[key]!r}.")
    settings["batch_size"] = min(settings["batch_size"], settings["repetitions"])
    log = log or (lambda _: None)

    def say(message: str) -> None:
        log(f"{time.perf_counter() - start:6.1f}s {message}")

    from tfp_vae import _kl_study_plots as plots

    start = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"KL study ({'quick' if quick else 'full'}, seed {seed}) -> {out}")
    est = _estimator_study(settings["latent_dims"], settings["sample_counts"],
                           settings["repetitions"], settings["batch_size"], seed, say)
    _write_csv(out / "estimators.csv", est)
    _write_csv(out / "theory_1d.csv", [r for r in est if r["block"] == "theory_1d"])
    plots.plot_relative_std(est, out / "relative_std.png")
    plots.plot_gradient_snr(est, out / "gradient_snr.png")
    training, curves = [], []
    if not skip_training:
        training, curves = _training_study(settings, seed, dataset, data_dir, quick, say)
        _write_csv(out / "training.csv", training)
        _write_csv(out / "training_curves.csv", curves)
        plots.plot_training_curves(curves, out / "training_curves.png")
    findings = _findings(est, training)
    seconds = time.perf_counter() - start
    report = _write_report(out, settings, est, training, curves, findings, seconds, seed, quick)
    say(f"report written to {report}")
    return KLStudyResult(out, report, est, training, curves, findings, seconds)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the study's options to `parser` (used by `tfp-vae compare-kl` and `__main__`).

    Args:
      parser: An `argparse.ArgumentParser` (or sub-parser).

    Returns:
      The same parser.
    """
    parser.add_argument("--out", default="kl_study", help="report folder (default: kl_study)")
    parser.add_argument("--quick", action="store_true",
                        help="small study, under 2 minutes on 2 CPU cores")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--latent-dims", type=int, nargs="+", default=None,
                        help="latent sizes of the estimator grid (default: 2 16 64; quick 2 16)")
    parser.add_argument("--samples", type=int, nargs="+", default=None,
                        help="sample counts (default: 1 4 16 64 256; quick 1 4 16 64)")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="repetitions per cell (default: 4000; quick 1000)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs per run (default: 8; quick 2)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (default: 12000; quick 1024)")
    parser.add_argument("--skip-training", action="store_true", help="part 1 only")
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--data-dir", default=None,
                        help="folder with the gzipped IDX files (default: $TFP_VAE_DATA_DIR, "
                             "else the Keras download)")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Runs the study from parsed arguments (see `configure_parser`); returns the exit status.

    Args:
      args: The parsed `argparse.Namespace`.

    Returns:
      `0` on success.

    Raises:
      ValueError: If an option is invalid.
      FileNotFoundError: If the dataset files are missing.
    """
    result = run_study(args.out, quick=args.quick, seed=args.seed, latent_dims=args.latent_dims,
                       sample_counts=args.samples, repetitions=args.repetitions,
                       epochs=args.epochs, train_size=args.train_size,
                       skip_training=args.skip_training,
                       dataset=args.dataset.replace("-", "_"), data_dir=args.data_dir)
    print(f"KL study finished in {result.seconds:.0f} s; report: {result.report_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tfp_vae.compare_kl`: parse arguments, run the study, return the exit status.

    Args:
      argv: Command-line arguments without the program name; `None` uses `sys.argv[1:]`.
        Default: `None`.

    Returns:
      `0` on success, `2` on invalid options or missing data.
    """
    parser = configure_parser(argparse.ArgumentParser(
        prog="python -m tfp_vae.compare_kl",
        description="Compare analytic and Monte Carlo KL estimators: estimator-level bias, "
                    "variance, gradient SNR and cost, and end-to-end VAE training."))
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"compare-kl: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
