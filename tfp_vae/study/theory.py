"""Closed forms of the KL study: the true KL, its gradient, and every estimator's variance.

#### Mathematical details

For `q = N(μ, Σ)`, `Σ = LLᵀ`, against `p = N(0, I)` in `d` dimensions and one sample
`z = μ + Lε`:

- `KL(q‖p) = ½ (tr Σ + μᵀμ - d - log|Σ|)`, with gradients `∂KL/∂μ = μ`,
  `∂KL/∂σ = σ - 1/σ` (diagonal scale) and `∂KL/∂L = L - diag(1/L_ii)` (Cholesky factor).
- `mc` (and `mc_stl`, same value): `log q(z) - log p(z) = c + μᵀLε + ½ εᵀ(LᵀL - I)ε`, so its
  per-sample variance is `μᵀΣμ + ½‖Σ - I‖²_F`; in 1-D `μ²σ² + (σ² - 1)²/2`.
- `mc_entropy`: `-H[q] - log p(z) = c + μᵀLε + ½ εᵀLᵀLε`, variance `μᵀΣμ + ½ tr Σ²`; in 1-D
  `μ²σ² + σ⁴/2`.
- `mc_ratio_cv`: `(r - 1) - log r` with `r = p(z)/q(z)`. With `K = KL(q‖p)`,
  `Var = E_q[r²] - 1 - 2 KL(p‖q) - 2K + Var_mc`, where
  `E_q[r²] = √(|Σ|/|A|) exp(½ μᵀΣ⁻¹A⁻¹Σ⁻¹μ + ½ μᵀΣ⁻¹μ)`, `A = 2I - Σ⁻¹`; in 1-D
  `E_q[r²] = σ²/√(2σ² - 1) · exp(μ²/(2σ² - 1))`. It is finite only when every eigenvalue of Σ
  exceeds ½, and the standard error of its sample variance needs the fourth moment, finite
  only above ¾.

All Monte Carlo estimators are unbiased, so the theoretical bias is 0 and the standard deviation
of the mean of `S` samples is `√(Var / S)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianKLTheory", "gaussian_estimator_variances", "true_kl_gradients"]

#: Below this smallest eigenvalue of Σ, `mc_ratio_cv` has infinite variance.
FINITE_VARIANCE_EIGENVALUE = 0.5
#: Below this smallest eigenvalue of Σ, `mc_ratio_cv` has an infinite fourth moment, so the
#: standard error of its sample variance is meaningless.
FINITE_KURTOSIS_EIGENVALUE = 0.75


@dataclass(frozen=True)
class GaussianKLTheory:
    """The exact KL of a Gaussian posterior against `N(0, I)` and its estimators' variances.

    Attributes:
      kl: The true `KL(q‖p)` in nats.
      min_eigenvalue: The smallest eigenvalue of the posterior covariance `Σ`.
      variances: One-sample variance of every estimator, by name: `analytic` (0), `mc`,
        `mc_stl` (equal to `mc`), `mc_entropy`, `mc_ratio_cv` (`inf` unless every eigenvalue
        of `Σ` exceeds ½).
    """

    kl: float
    min_eigenvalue: float
    variances: Mapping[str, float]

    def variance_finite(self, estimator: str) -> bool:
        """Whether `estimator` has a finite variance for this posterior (only `mc_ratio_cv` can
        fail)."""
        return estimator != "mc_ratio_cv" or self.min_eigenvalue > FINITE_VARIANCE_EIGENVALUE

    def se_reliable(self, estimator: str) -> bool:
        """Whether the standard error of `estimator`'s sample variance is meaningful (a finite
        fourth moment; only `mc_ratio_cv` can fail)."""
        return estimator != "mc_ratio_cv" or self.min_eigenvalue > FINITE_KURTOSIS_EIGENVALUE

    def theory_std(self, estimator: str, num_samples: int) -> float:
        """Standard deviation of the mean of `num_samples` one-sample estimates."""
        return math.sqrt(self.variances[estimator] / num_samples)


def gaussian_estimator_variances(loc: np.ndarray, scale_tril: np.ndarray) -> GaussianKLTheory:
    """Exact KL and per-sample variances of the Monte Carlo KL estimators for Gaussians.

    For `q = N(loc, LLᵀ)` against `p = N(0, I)` (see the module docstring for the formulas).

    Args:
      loc: `[d]` mean of `q`.
      scale_tril: `[d, d]` lower-triangular Cholesky factor `L` of `q`'s covariance.

    Returns:
      A `GaussianKLTheory`.

    Raises:
      ValueError: If the shapes of `loc` and `scale_tril` do not match.

    #### Examples

    ```python
    theory = gaussian_estimator_variances(np.array([1.0]), np.array([[0.8]]))
    theory.variances["mc"]  # 0.64 + 0.0648
    ```
    """
    loc = np.asarray(loc, np.float64)
    tril = np.asarray(scale_tril, np.float64)
    d = loc.shape[-1]
    if loc.ndim != 1 or tril.shape != (d, d):
        raise ValueError(f"scale_tril must be [d, d] for a [d] loc, got loc {loc.shape} and "
                         f"scale_tril {tril.shape}.")
    cov = tril @ tril.T
    eig = np.linalg.eigvalsh(cov)
    logdet = float(np.sum(np.log(eig)))
    kl = 0.5 * (np.trace(cov) + loc @ loc - d - logdet)
    shift = float(loc @ cov @ loc)
    var_mc = shift + 0.5 * float(np.sum((eig - 1.0) ** 2))
    var_entropy = shift + 0.5 * float(np.sum(eig**2))
    if eig.min() > FINITE_VARIANCE_EIGENVALUE:
        precision = np.linalg.inv(cov)
        a = 2.0 * np.eye(d) - precision
        h = precision @ loc
        log_r2 = 0.5 * (logdet - np.linalg.slogdet(a)[1]) + 0.5 * h @ np.linalg.solve(a, h) \
            + 0.5 * loc @ precision @ loc
        kl_pq = 0.5 * (np.trace(precision) + loc @ precision @ loc - d + logdet)
        var_ratio = math.exp(log_r2) - 1.0 - 2.0 * kl_pq - 2.0 * kl + var_mc
    else:
        var_ratio = math.inf
    return GaussianKLTheory(float(kl), float(eig.min()), {
        "analytic": 0.0, "mc": var_mc, "mc_stl": var_mc, "mc_entropy": var_entropy,
        "mc_ratio_cv": float(var_ratio)})


def true_kl_gradients(loc: np.ndarray, scale_tril: np.ndarray, kind: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The exact gradient of `KL(q‖N(0, I))` with respect to `loc` and the scale parameters.

    Args:
      loc: `[d]` mean of `q`.
      scale_tril: `[d, d]` lower-triangular Cholesky factor of `q`'s covariance.
      kind: `'diag'` (the parameters are the diagonal scales `σ`) or `'tril'` (the Cholesky
        factor `L`).

    Returns:
      `(∂KL/∂μ, ∂KL/∂σ)` with shapes `[d]` and `[d]` (diag) or `[d, d]` (tril).

    Raises:
      ValueError: If `kind` is neither `'diag'` nor `'tril'`.
    """
    if kind == "diag":
        scale = np.diag(scale_tril)
        return loc, scale - 1.0 / scale
    if kind == "tril":
        return loc, scale_tril - np.diag(1.0 / np.diag(scale_tril))
    raise ValueError(f"kind must be 'diag' or 'tril', got {kind!r}.")
