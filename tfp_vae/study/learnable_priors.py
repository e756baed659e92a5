"""Part 3 of the KL study: Monte Carlo KL estimators against learnable priors.

A mixture-of-Gaussians or flow prior has no closed-form KL against a Gaussian posterior (the
`analytic` estimator refuses it), so a VAE with one must pick a Monte Carlo estimator. This part
measures every Monte Carlo estimator of `tfp_vae.kl.KL_ESTIMATORS` on the diagonal posteriors of
part 1's grid (`close`, `moderate`, `far`) against two fixed, seeded priors built by
`tfp_vae.priors.make_prior`:

- `mixture`: `K = 10` diagonal Gaussians, means drawn from `N(0, 1.5² I)` (spread over the
  latent space, as after training), scales uniform in `[0.3, 0.7]`, unequal weights;
- `flow`: a randomly initialised two-layer MAF (`FlowPrior` defaults; Glorot-uniform MADE
  kernels, zero biases, drawn from the seed).

With no closed form, the truth is a high-sample reference: the mean of `log q(z) - log p(z)`
over `reference_samples` draws (10⁶ by default), with its own standard error, and the mean of
the same draws' reparameterised gradients. Each cell reports the bias against the reference
(the standard error combines the cell's and the reference's), the std and `std · √S`, the
gradient SNR with respect to the posterior `loc` and `scale_diag`, and the median time per call,
all through the helpers of `tfp_vae.study.estimators`.

#### Mathematical details

`mc_ratio_cv` averages `(r - 1) - log r` with `r = p(z)/q(z)`; its variance is finite iff
`E_q[r²] = ∫ p²/q` is. For a mixture `p = Σ_k π_k N(m_k, diag s_k²)` and `q = N(μ, diag σ²)`,
`∫ N_k²/q` is finite iff `σ_i² > s_ki²/2` in every dimension, and the cross terms are bounded by
`(N_k² + N_j²)/2`, so `∫ p²/q < ∞` iff `σ_i² > max_k s_ki²/2` for every `i`; the integral
has a closed form (`mixture_ratio_second_moment`), which shows that even where it is finite it
can be huge (hundreds in 2-D, astronomically large in 16-D): the measured std of `mc_ratio_cv`
then misses the rare draws that carry its variance. For the flow prior no such condition is
known (`variance_finite` and `ratio_second_moment` are `None`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tfp_vae.backend import tf
from tfp_vae.kl import KL_ESTIMATORS
from tfp_vae.priors import Prior, make_prior
from tfp_vae.seeds import fold_in, numpy_rng
from tfp_vae.study.estimators import (
    DISTANCES,
    make_evaluator,
    measure_cell,
    posterior_parameters,
    run_chunks,
)
from tfp_vae.study.rows import LearnablePriorRow

__all__ = ["LEARNABLE_PRIORS", "KLReference", "learnable_prior_study", "measure_against_prior",
           "mixture_ratio_second_moment", "reference_kl", "seeded_prior"]

#: The priors of this part (names in `tfp_vae.priors.PRIORS`).
LEARNABLE_PRIORS = ("mixture", "flow")
_MIXTURE = {"num_components": 10, "mean_std": 1.5, "scale_range": (0.3, 0.7), "logit_std": 0.5}
_REFERENCE_CHUNK = 100_000


def seeded_prior(name: str, latent_dim: int, seed: int) -> Prior:
    """A `mixture` or `flow` prior with fixed parameters drawn reproducibly from `seed`.

    Args:
      name: `'mixture'` (10 components spread over the latent space) or `'flow'` (a randomly
        initialised two-layer MAF); see the module docstring.
      latent_dim: Python `int`, the dimension `d`.
      seed: Python `int`.

    Returns:
      A `tfp_vae.priors.Prior` whose `distribution()` is the prior.

    Raises:
      ValueError: If `name` is not one of `LEARNABLE_PRIORS`.

    #### Examples

    ```python
    prior = seeded_prior("mixture", 2, seed=0)
    prior.distribution().log_prob([[0.0, 0.0]])
    ```
    """
    if name not in LEARNABLE_PRIORS:
        raise ValueError(f"The learnable-prior study knows the priors {list(LEARNABLE_PRIORS)}, "
                         f"got {name!r}; pick one of those.")
    rng = numpy_rng(seed, "learnable prior", name, latent_dim)
    if name == "mixture":
        k = _MIXTURE["num_components"]
        prior = make_prior("mixture", latent_dim, {"num_components": k})
        scales = rng.uniform(*_MIXTURE["scale_range"], (k, latent_dim))
        # MixturePrior's scales are softplus(raw) + 1e-5.
        prior.set_weights([rng.normal(0.0, _MIXTURE["logit_std"], k),
                           rng.normal(0.0, _MIXTURE["mean_std"], (k, latent_dim)),
                           np.log(np.expm1(scales - 1e-5))])
        return prior
    prior = make_prior("flow", latent_dim)
    weights = []
    for value in prior.get_weights():
        if value.ndim == 1:
            weights.append(np.zeros_like(value))
            continue
        # Keras's Glorot-uniform, times the MADE mask (the zeros of the built kernel), which
        # keeps each layer autoregressive.
        limit = math.sqrt(6.0 / sum(value.shape))
        weights.append(rng.uniform(-limit, limit, value.shape) * (value != 0))
    prior.set_weights(weights)
    return prior


def mixture_ratio_second_moment(prior: Prior, loc: np.ndarray, scale_diag: np.ndarray
                                ) -> float:
    """`E_q[(p/q)²]` in closed form for `q = N(μ, diag σ²)` and a mixture prior `p`.

    `mc_ratio_cv` has a finite variance iff this is finite; even then a large value (the
    variance of `r = p/q` is this minus 1) means the estimate is carried by rare draws.

    #### Mathematical details

    `∫ p²/q = Σ_jk π_j π_k Π_i ∫ N(z; a, s²) N(z; b, t²) / N(z; μ, σ²) dz` (per dimension `i`,
    `a, s` from component `j` and `b, t` from `k`), and with `λ = 1/s² + 1/t² - 1/σ²`,
    `η = a/s² + b/t² - μ/σ²`, `c = ½ (a²/s² + b²/t² - μ²/σ²)`, each factor is
    `σ / (s t √λ) · exp(η²/(2λ) - c)` when `λ > 0` and infinite otherwise.

    Args:
      prior: A `tfp_vae.priors.MixturePrior`.
      loc: `[d]` posterior mean `μ`.
      scale_diag: `[d]` posterior scales `σ`.

    Returns:
      Python `float`, `inf` when some `σ_i² ≤ max_k s_ki² / 2`.
    """
    p = prior.distribution()
    means = p.components_distribution.mean().numpy().astype(np.float64)
    scales = p.components_distribution.stddev().numpy().astype(np.float64)
    log_w = np.log(p.mixture_distribution.probs_parameter().numpy().astype(np.float64))
    mu, sigma = np.asarray(loc, np.float64), np.asarray(scale_diag, np.float64)
    a, s, b, t = means[:, None], scales[:, None], means[None], scales[None]
    lam = 1.0 / s**2 + 1.0 / t**2 - 1.0 / sigma**2
    if np.any(lam <= 0):
        return math.inf
    eta = a / s**2 + b / t**2 - mu / sigma**2
    c = 0.5 * (a**2 / s**2 + b**2 / t**2 - mu**2 / sigma**2)
    log_terms = (np.log(sigma / (s * t)) - 0.5 * np.log(lam) + eta**2 / (2.0 * lam) - c).sum(-1)
    return float(np.exp(np.logaddexp.reduce((log_w[:, None] + log_w[None] + log_terms).ravel())))


@dataclass(frozen=True)
class KLReference:
    """A high-sample Monte Carlo reference for `KL(q‖p)` and its gradients.

    Attributes:
      kl: The mean of `log q(z) - log p(z)` over the samples.
      se: Its standard error.
      grad_loc, grad_scale: The mean reparameterised gradients with respect to `loc` and
        `scale_diag`, `[d]` each.
      num_samples: The samples averaged.
    """

    kl: float
    se: float
    grad_loc: np.ndarray
    grad_scale: np.ndarray
    num_samples: int


def reference_kl(evaluate, loc: np.ndarray, scale_diag: np.ndarray, num_samples: int,
                 seed: tf.Tensor, chunk: int = _REFERENCE_CHUNK) -> KLReference:
    """Averages `num_samples` one-sample `mc` estimates, `chunk` at a time.

    Args:
      evaluate: The `mc` evaluator of `tfp_vae.study.estimators.make_evaluator` for the prior.
      loc: `[d]` posterior mean.
      scale_diag: `[d]` posterior scales.
      num_samples: Python `int`, the samples (rounded up to a multiple of `chunk`).
      seed: A stateless seed; chunk `i` uses `fold_in(seed, i)`.
      chunk: Samples per call. Default: `100_000`.

    Returns:
      A `KLReference`.
    """
    chunk = min(chunk, num_samples)
    d = loc.shape[0]
    loc_b = tf.constant(np.broadcast_to(loc, (chunk, d)), tf.float32)
    scale_b = tf.constant(np.broadcast_to(scale_diag, (chunk, d)), tf.float32)
    total = total_sq = 0.0
    grad_loc, grad_scale = np.zeros(d), np.zeros(d)
    calls = -(-num_samples // chunk)
    for index in range(calls):
        values, g_loc, g_scale, _ = run_chunks(evaluate, loc_b, scale_b, 1,
                                               [fold_in(seed, index)])
        total += float(values.sum())
        total_sq += float(np.square(values).sum())
        grad_loc += g_loc.sum(axis=0)
        grad_scale += g_scale.sum(axis=0)
    n = calls * chunk
    mean = total / n
    variance = max(total_sq / n - mean**2, 0.0) * n / (n - 1)
    return KLReference(mean, math.sqrt(variance / n), grad_loc / n, grad_scale / n, n)


def measure_against_prior(prior_name: str, prior: Prior, label: str, distance: str,
                          loc: np.ndarray, scale_diag: np.ndarray, estimators: Sequence[str],
                          sample_counts: Sequence[int], repetitions: int, batch_size: int,
                          reference_samples: int, seed: int, evaluators: dict | None = None
                          ) -> list[LearnablePriorRow]:
    """Measures every estimator at every sample count on one posterior against one prior.

    Args:
      prior_name: `'mixture'` or `'flow'` (copied into the rows).
      prior: The `Prior` (see `seeded_prior`).
      label: The cell's name; also folded into the sampling seeds.
      distance: The posterior's distance name (copied into the rows).
      loc: `[d]` posterior mean.
      scale_diag: `[d]` posterior scales.
      estimators: Names of Monte Carlo KL estimators.
      sample_counts: Sample counts `S`.
      repetitions: Independent estimates per cell.
      batch_size: Repetitions evaluated per call.
      reference_samples: Samples of the reference KL.
      seed: Python `int`.
      evaluators: A cache of traced evaluators, keyed `(prior_name, estimator, d)`, shared
        between calls with the same prior object. Default: `None`.

    Returns:
      One `LearnablePriorRow` per (estimator, sample count).
    """
    evaluators = {} if evaluators is None else evaluators
    d = loc.shape[0]

    def evaluator(name: str):
        if (prior_name, name, d) not in evaluators:
            evaluators[prior_name, name, d] = make_evaluator(name, "diag", d, prior.distribution)
        return evaluators[prior_name, name, d]

    reference = reference_kl(evaluator("mc"), loc, scale_diag, reference_samples,
                             fold_in(seed, label, "reference"))
    second_moment = (mixture_ratio_second_moment(prior, loc, scale_diag)
                     if prior_name == "mixture" else None)
    ratio_finite = None if second_moment is None else math.isfinite(second_moment)
    loc_b = tf.constant(np.broadcast_to(loc, (batch_size, d)), tf.float32)
    scale_b = tf.constant(np.broadcast_to(scale_diag, (batch_size, d)), tf.float32)
    chunks = -(-repetitions // batch_size)
    rows = []
    for name in estimators:
        for num_samples in sample_counts:
            seeds = [fold_in(seed, label, name, num_samples, chunk) for chunk in range(chunks)]
            cell = measure_cell(evaluator(name), loc_b, scale_b, num_samples, seeds, repetitions,
                                reference.kl, math.nan,
                                {"loc": reference.grad_loc, "scale": reference.grad_scale})
            bias_se = math.hypot(cell["bias_se"], reference.se)
            rows.append(LearnablePriorRow(
                prior=prior_name, setting=label, latent_dim=d, distance=distance,
                estimator=name, num_samples=num_samples, reference_kl=reference.kl,
                reference_se=reference.se, reference_samples=reference.num_samples,
                variance_finite=ratio_finite if name == "mc_ratio_cv" else True,
                ratio_second_moment=second_moment,
                bias_se=bias_se, bias_z=cell["bias"] / bias_se,
                std_sqrt_s=cell["std"] * math.sqrt(num_samples),
                **{k: v for k, v in cell.items() if k in _CELL_COLUMNS}))
    return rows


_CELL_COLUMNS = {"repetitions", "estimate_mean", "bias", "std", "std_se", "rel_std", "rmse",
                 "non_finite", "batch_size", "median_ms_per_batch", "median_us_per_posterior",
                 *(f"grad_{p}_{k}" for p in ("loc", "scale")
                   for k in ("var", "snr", "max_bias_z", "max_abs_error"))}


def learnable_prior_study(latent_dims: Sequence[int], sample_counts: Sequence[int],
                          repetitions: int, batch_size: int, reference_samples: int, seed: int,
                          log: Callable[[str], None] = lambda _: None,
                          priors: Sequence[str] = LEARNABLE_PRIORS,
                          distances: Sequence[str] = tuple(DISTANCES)
                          ) -> list[LearnablePriorRow]:
    """Part 3: every Monte Carlo estimator against each learnable prior, over latent sizes and
    distances.

    Args:
      latent_dims: Latent sizes.
      sample_counts: Sample counts `S`, ascending.
      repetitions: Independent estimates per cell.
      batch_size: Repetitions evaluated per call.
      reference_samples: Samples of each posterior's reference KL.
      seed: Python `int` (seeds the priors, the posteriors and every sample).
      log: Called with one progress line per (prior, latent size, distance). Default: silent.
      priors: Names from `LEARNABLE_PRIORS`. Default: both.
      distances: Keys of `tfp_vae.study.estimators.DISTANCES`. Default: all three.

    Returns:
      The `LearnablePriorRow`s, by prior, latent size, distance, estimator and `S`.

    Raises:
      ValueError: If a prior or distance is unknown.

    #### Examples

    ```python
    rows = learnable_prior_study([2], [1, 16], repetitions=500, batch_size=100,
                                 reference_samples=10**6, seed=0)
    ```
    """
    estimators = [name for name in KL_ESTIMATORS if name != "analytic"]
    rows: list[LearnablePriorRow] = []
    for prior_name in priors:
        for d in latent_dims:
            prior = seeded_prior(prior_name, d, seed)
            evaluators: dict = {}
            for distance in distances:
                start = time.perf_counter()
                loc, tril = posterior_parameters(d, "diag", distance, seed)
                label = f"{prior_name} d={d} {distance}"
                rows += measure_against_prior(prior_name, prior, label, distance, loc,
                                              np.diag(tril), estimators, sample_counts,
                                              repetitions, batch_size, reference_samples, seed,
                                              evaluators)
                log(f"[part 3] {label}: reference KL={rows[-1].reference_kl:.3f} "
                    f"± {rows[-1].reference_se:.1g}, {time.perf_counter() - start:.1f}s")
    return rows
