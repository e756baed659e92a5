"""Part 1 of the KL study: every KL estimator measured on fixed Gaussian posteriors.

Gaussian posteriors `q` against the prior `p = N(0, I)`, over latent sizes, distances from the
prior (`close`, `moderate`, `far`), posterior types (`diag`, `tril`) and sample counts: bias,
standard deviation, both relative to the true KL, RMSE, the variance and signal-to-noise ratio
of the gradient with respect to `loc` and `scale`, and the median time of one evaluation. Next
to the grid, a few 1-D posteriors (`ONE_D_CASES`) put measurement beside the closed forms of
`tfp_vae.study.theory`.

Repetitions are a batch dimension: `B` copies of the same posterior are evaluated at once, each
with its own samples. Every random number comes from `tfp_vae.seeds`: the posteriors from
`numpy_rng(seed, d, kind, distance)`, the samples of one evaluation from
`fold_in(seed, setting, estimator, S, chunk)`, so a cell's numbers do not depend on which other
cells are measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfp_vae.backend import tf, tfd
from tfp_vae.kl import KL_ESTIMATORS, get_kl_estimator
from tfp_vae.priors import isotropic_gaussian_prior
from tfp_vae.seeds import fold_in, numpy_rng
from tfp_vae.study.rows import EstimatorRow
from tfp_vae.study.theory import GaussianKLTheory, gaussian_estimator_variances, true_kl_gradients

__all__ = ["DISTANCES", "ONE_D_CASES", "POSTERIOR_KINDS", "estimator_study", "gradient_stats",
           "make_evaluator", "measure_cell", "measure_posterior", "posterior_parameters",
           "run_chunks", "value_stats"]

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

POSTERIOR_KINDS = ("diag", "tril")


def posterior_parameters(latent_dim: int, kind: str, distance: str, seed: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The fixed posterior of one grid setting, drawn reproducibly from `seed`.

    Args:
      latent_dim: Python `int`, the dimension `d`.
      kind: `'diag'` or `'tril'` (adds off-diagonal Cholesky entries).
      distance: A key of `DISTANCES`.
      seed: Python `int`.

    Returns:
      `(loc [d], scale_tril [d, d])` as float64 arrays.

    Raises:
      ValueError: If `kind` or `distance` is unknown.
    """
    if kind not in POSTERIOR_KINDS or distance not in DISTANCES:
        raise ValueError(f"kind must be one of {POSTERIOR_KINDS} and distance one of "
                         f"{list(DISTANCES)}, got {kind!r} and {distance!r}.")
    spec = DISTANCES[distance]
    rng = numpy_rng(seed, "posterior", latent_dim, kind, distance)
    loc = rng.normal(0.0, spec["loc_std"], latent_dim)
    tril = np.diag(rng.uniform(*spec["scale_range"], latent_dim))
    if kind == "tril":
        tril += np.tril(rng.normal(0.0, spec["offdiag_std"] / math.sqrt(latent_dim),
                                   (latent_dim, latent_dim)), -1)
    return loc, tril


def make_evaluator(estimator_name: str, kind: str, latent_dim: int,
                   prior_fn: Callable[[], tfd.Distribution] | None = None):
    """A `tf.function` returning per-repetition KL estimates and their gradients.

    Inputs are `B` identical copies of the posterior parameters, so the gradient of the summed
    estimate with respect to copy `b` is the gradient of repetition `b` alone. The sample count
    is a tensor, so one trace serves every sample count and every `B`.

    Args:
      estimator_name: A name in `tfp_vae.kl.KL_ESTIMATORS`.
      kind: `'diag'` (`MultivariateNormalDiag`, scale `[B, d]`) or `'tril'`
        (`MultivariateNormalTriL`, scale `[B, d, d]`).
      latent_dim: Python `int`, the dimension `d`.
      prior_fn: Zero-argument callable building the prior inside the trace (e.g. a
        `tfp_vae.priors.Prior`'s `distribution`). Default: `None`, the prior `N(0, I)`.

    Returns:
      `evaluate(loc [B, d], scale, num_samples [], seed [2]) -> (kl [B], grad_loc, grad_scale)`.
    """
    estimator = get_kl_estimator(estimator_name)
    prior_fn = prior_fn or (lambda: isotropic_gaussian_prior(latent_dim))
    scale_shape = [None, latent_dim] if kind == "diag" else [None, latent_dim, latent_dim]

    @tf.function(input_signature=[
        tf.TensorSpec([None, latent_dim], tf.float32), tf.TensorSpec(scale_shape, tf.float32),
        tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int32)])
    def evaluate(loc, scale, num_samples, seed):
        with tf.GradientTape() as tape:
            tape.watch([loc, scale])
            posterior = (tfd.MultivariateNormalDiag(loc, scale) if kind == "diag"
                         else tfd.MultivariateNormalTriL(loc, scale))
            prior = prior_fn()
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


def gradient_stats(samples: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Variance, SNR and worst standardised bias of per-repetition gradients.

    Args:
      samples: `[R, d]` (loc or diagonal scale) or `[R, d, d]` (Cholesky factor: only its lower
        triangle counts) gradients of `R` independent estimates.
      truth: The true gradient, `samples.shape[1:]`.

    Returns:
      `var` (mean per-parameter variance), `snr` (`‖truth‖ / √(Σ var)`), `max_bias_z` (largest
      `|mean - truth|` in standard errors) and `max_abs_error` (largest `|mean - truth|`).
    """
    flat = samples.reshape(len(samples), -1)
    truth = truth.reshape(-1)
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


def value_stats(values: np.ndarray, truth: float, theory_std: float) -> dict[str, float]:
    """Bias, spread and RMSE of `R` independent estimates against the true value.

    Args:
      values: `[R]` estimates.
      truth: The true value (or a high-sample reference).
      theory_std: The standard deviation theory predicts (`nan` where there is none).

    Returns:
      A dict with the value columns of `tfp_vae.study.rows.EstimatorRow` (`estimate_mean`,
      `bias`, `bias_se`, `bias_z`, `std`, `std_se`, `theory_bias`, `theory_std`, `rel_bias`,
      `rel_std`, `rmse`, `rel_rmse`, `non_finite`).
    """
    r = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1))
    m4 = float(np.mean((values - mean) ** 4))
    var_se = math.sqrt(max(m4 - std**4, 0.0) / r)
    bias = mean - truth
    se = std / math.sqrt(r)
    scale = abs(truth) if truth != 0 else math.nan
    rmse = float(np.sqrt(np.mean((values - truth) ** 2)))
    return {
        "estimate_mean": mean, "bias": bias, "bias_se": se,
        "bias_z": bias / se if se > 0 else (0.0 if abs(bias) < 1e-9 else math.inf),
        "std": std, "std_se": var_se / (2.0 * std) if std > 0 else 0.0,
        "theory_bias": 0.0, "theory_std": theory_std,
        "rel_bias": bias / scale, "rel_std": std / scale, "rmse": rmse, "rel_rmse": rmse / scale,
        "non_finite": int(np.sum(~np.isfinite(values))),
    }


def run_chunks(evaluate, loc_b: tf.Tensor, scale_b: tf.Tensor, num_samples: int,
               seeds: Sequence[tf.Tensor]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Calls `evaluate` (from `make_evaluator`) once per seed, timing each call.

    Args:
      evaluate: An evaluator from `make_evaluator`.
      loc_b: `[B, d]` copies of the posterior mean.
      scale_b: `[B, d]` or `[B, d, d]` copies of its scale.
      num_samples: Python `int`, samples `S` per estimate.
      seeds: One stateless seed per call.

    Returns:
      `(values [B·calls], grads_loc, grads_scale, seconds per call)`, as float64 arrays.
    """
    values, grads_loc, grads_scale, seconds = [], [], [], []
    for seed in seeds:
        start = time.perf_counter()
        kl, g_loc, g_scale = evaluate(loc_b, scale_b, tf.constant(num_samples), seed)
        kl = kl.numpy()
        seconds.append(time.perf_counter() - start)
        values.append(kl.astype(np.float64))
        grads_loc.append(g_loc.numpy().astype(np.float64))
        grads_scale.append(g_scale.numpy().astype(np.float64))
    return (np.concatenate(values), np.concatenate(grads_loc), np.concatenate(grads_scale),
            seconds)


def measure_cell(evaluate, loc_b: tf.Tensor, scale_b: tf.Tensor, num_samples: int,
                 seeds: Sequence[tf.Tensor], repetitions: int, truth: float, theory_std: float,
                 grad_truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """One cell: `repetitions` estimates at `num_samples` samples, their statistics and cost.

    Args:
      evaluate: An evaluator from `make_evaluator`.
      loc_b, scale_b: `[B, ...]` copies of the posterior parameters.
      num_samples: Python `int`, samples `S` per estimate.
      seeds: One stateless seed per call of `B` repetitions.
      repetitions: Estimates kept (the first `repetitions` of `B · len(seeds)`).
      truth: The true KL (or a high-sample reference).
      theory_std: The std theory predicts (`nan` where there is none).
      grad_truth: `{'loc': ..., 'scale': ...}`, the true gradients.

    Returns:
      The columns of `value_stats`, `grad_{loc,scale}_{var,snr,max_bias_z,max_abs_error}`,
      `repetitions`, `batch_size`, `median_ms_per_batch` and `median_us_per_posterior` (the
      median over calls but the first, which may include tracing).
    """
    values, grads_loc, grads_scale, seconds = run_chunks(evaluate, loc_b, scale_b, num_samples,
                                                         seeds)
    cell: dict[str, Any] = value_stats(values[:repetitions], truth, theory_std)
    for param, samples in (("loc", grads_loc), ("scale", grads_scale)):
        stats = gradient_stats(samples[:repetitions], grad_truth[param])
        cell.update({f"grad_{param}_{k}": v for k, v in stats.items()})
    median = float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
    batch_size = int(loc_b.shape[0])
    cell.update(repetitions=min(len(values), repetitions), batch_size=batch_size,
                median_ms_per_batch=1e3 * median,
                median_us_per_posterior=1e6 * median / batch_size)
    return cell


def measure_posterior(block: str, label: str, loc: np.ndarray, scale_tril: np.ndarray,
                      kind: str, estimators: Sequence[str], sample_counts: Sequence[int],
                      repetitions: int, batch_size: int, seed: int,
                      evaluators: dict | None = None, distance: str | None = None,
                      one_d: tuple[float, float] | None = None) -> list[EstimatorRow]:
    """Measures every estimator at every sample count on one fixed posterior.

    Args:
      block: `'grid'` or `'theory_1d'` (copied into the rows).
      label: The setting's name; also folded into the sampling seeds.
      loc: `[d]` posterior mean.
      scale_tril: `[d, d]` Cholesky factor of the posterior covariance (diagonal for `'diag'`).
      kind: `'diag'` or `'tril'`.
      estimators: Names of KL estimators.
      sample_counts: Sample counts `S` (the analytic KL is measured once, at the first).
      repetitions: Independent estimates per cell.
      batch_size: Repetitions evaluated per call.
      seed: Python `int`.
      evaluators: A cache of traced evaluators shared between calls. Default: `None`.
      distance: The grid distance name, `None` in the 1-D block. Default: `None`.
      one_d: `(μ, σ)` of a 1-D posterior, `None` in the grid. Default: `None`.

    Returns:
      One `EstimatorRow` per (estimator, sample count).
    """
    evaluators = {} if evaluators is None else evaluators
    d = loc.shape[0]
    theory: GaussianKLTheory = gaussian_estimator_variances(loc, scale_tril)
    true_grad_loc, true_grad_scale = true_kl_gradients(loc, scale_tril, kind)
    scale = np.diag(scale_tril) if kind == "diag" else scale_tril
    loc_b = tf.constant(np.broadcast_to(loc, (batch_size, d)), tf.float32)
    scale_b = tf.constant(np.broadcast_to(scale, (batch_size, *scale.shape)), tf.float32)
    chunks = -(-repetitions // batch_size)
    rows = []
    grad_truth = {"loc": true_grad_loc, "scale": true_grad_scale}
    for name in estimators:
        if (name, kind, d) not in evaluators:
            evaluators[name, kind, d] = make_evaluator(name, kind, d)
        for num_samples in (sample_counts if name != "analytic" else sample_counts[:1]):
            seeds = [fold_in(seed, label, name, num_samples, chunk) for chunk in range(chunks)]
            cell = measure_cell(evaluators[name, kind, d], loc_b, scale_b, num_samples, seeds,
                                repetitions, theory.kl, theory.theory_std(name, num_samples),
                                grad_truth)
            rows.append(EstimatorRow(
                block=block, setting=label, posterior=kind, latent_dim=d, distance=distance,
                mu=None if one_d is None else one_d[0],
                sigma=None if one_d is None else one_d[1], estimator=name,
                num_samples=num_samples, true_kl=theory.kl,
                min_eigenvalue=theory.min_eigenvalue,
                variance_finite=theory.variance_finite(name),
                se_reliable=theory.se_reliable(name), **cell))
    return rows


def estimator_study(latent_dims: Sequence[int], sample_counts: Sequence[int], repetitions: int,
                    batch_size: int, seed: int, log: Callable[[str], None] = lambda _: None
                    ) -> list[EstimatorRow]:
    """Part 1: the 1-D block, then the grid of latent sizes × posterior types × distances.

    Args:
      latent_dims: Latent sizes of the grid.
      sample_counts: Sample counts `S`, ascending.
      repetitions: Independent estimates per cell.
      batch_size: Repetitions evaluated per call.
      seed: Python `int`.
      log: Called with one progress line per setting. Default: silent.

    Returns:
      The `EstimatorRow`s, 1-D block first.
    """
    estimators = list(KL_ESTIMATORS)
    evaluators: dict = {}
    rows: list[EstimatorRow] = []
    settings = [("theory_1d", f"1d mu={mu:g} sigma={sigma:g}", np.array([mu]),
                 np.array([[sigma]]), "diag", None, (mu, sigma)) for mu, sigma in ONE_D_CASES]
    for kind in POSTERIOR_KINDS:
        for d in latent_dims:
            for distance in DISTANCES:
                loc, tril = posterior_parameters(d, kind, distance, seed)
                settings.append(("grid", f"{kind} d={d} {distance}", loc, tril, kind, distance,
                                 None))
    for block, label, loc, tril, kind, distance, one_d in settings:
        start = time.perf_counter()
        rows += measure_posterior(block, label, loc, tril, kind, estimators, sample_counts,
                                  repetitions, batch_size, seed, evaluators, distance, one_d)
        log(f"[part 1] {label}: KL={rows[-1].true_kl:.3f}, "
            f"{time.perf_counter() - start:.1f}s")
    return rows
