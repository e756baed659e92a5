"""Closed forms of the KL study against simulation and finite differences."""

import numpy as np
import pytest

from tfp_vae.study.theory import gaussian_estimator_variances, true_kl_gradients


def _kl(loc, tril):
    cov = tril @ tril.T
    return 0.5 * (np.trace(cov) + loc @ loc - len(loc) - np.linalg.slogdet(cov)[1])


def test_gaussian_estimator_variances_match_simulation():
    rng = np.random.default_rng(0)
    loc = np.array([0.3, -0.2])
    tril = np.array([[1.1, 0.0], [0.2, 1.0]])  # eigenvalues of Σ > ¾: finite kurtosis
    theory = gaussian_estimator_variances(loc, tril)
    eps = rng.normal(size=(400_000, 2))
    z = loc + eps @ tril.T
    log_q = -0.5 * np.sum(eps**2, -1) - np.log(np.diag(tril)).sum() - np.log(2 * np.pi)
    log_p = -0.5 * np.sum(z**2, -1) - np.log(2 * np.pi)
    entropy = np.log(np.diag(tril)).sum() + np.log(2 * np.pi) + 1.0
    log_r = log_p - log_q
    samples = {"mc": log_q - log_p, "mc_entropy": -entropy - log_p,
               "mc_ratio_cv": np.expm1(log_r) - log_r}
    for name, values in samples.items():
        np.testing.assert_allclose(values.mean(), theory.kl, atol=0.02)
        np.testing.assert_allclose(values.var(), theory.variances[name], rtol=0.05)
    assert theory.variances["mc_stl"] == theory.variances["mc"]
    assert theory.variance_finite("mc_ratio_cv") and theory.se_reliable("mc_ratio_cv")


def test_one_d_closed_forms_and_the_ratio_cv_regimes():
    theory = gaussian_estimator_variances(np.array([1.0]), np.array([[0.8]]))
    np.testing.assert_allclose(theory.variances["mc"], 0.64 + (0.64 - 1) ** 2 / 2, rtol=1e-12)
    np.testing.assert_allclose(theory.variances["mc_entropy"], 0.64 + 0.64**2 / 2, rtol=1e-12)
    # 1-D: E_q[r²] = σ²/√(2σ² − 1) exp(μ²/(2σ² − 1)); KL(p‖q) = ½(1/σ² + μ²/σ² − 1 + log σ²).
    s2 = 0.64
    expected = (s2 / np.sqrt(2 * s2 - 1) * np.exp(1 / (2 * s2 - 1)) - 1
                - (1 / s2 + 1 / s2 - 1 + np.log(s2)) - 2 * theory.kl + theory.variances["mc"])
    np.testing.assert_allclose(theory.variances["mc_ratio_cv"], expected, rtol=1e-10)
    assert theory.variance_finite("mc_ratio_cv") and not theory.se_reliable("mc_ratio_cv")
    narrow = gaussian_estimator_variances(np.array([2.0]), np.array([[0.3]]))
    assert np.isinf(narrow.variances["mc_ratio_cv"])
    assert not narrow.variance_finite("mc_ratio_cv") and narrow.variance_finite("mc")
    assert np.isinf(narrow.theory_std("mc_ratio_cv", 64))


@pytest.mark.parametrize("kind", ["diag", "tril"])
def test_true_gradients_match_finite_differences(kind):
    loc = np.array([0.4, -1.0, 0.2])
    tril = np.diag([0.5, 1.3, 0.9])
    if kind == "tril":
        tril += np.tril(np.full((3, 3), 0.1), -1)
    grad_loc, grad_scale = true_kl_gradients(loc, tril, kind)
    h = 1e-6
    for i in range(3):
        step = np.eye(3)[i] * h
        np.testing.assert_allclose(grad_loc[i], (_kl(loc + step, tril) - _kl(loc - step, tril))
                                   / (2 * h), atol=1e-6)
    rows, columns = np.diag_indices(3) if kind == "diag" else np.tril_indices(3)
    entries = list(zip(rows, columns, strict=True))
    for i, j in entries:
        step = np.zeros((3, 3))
        step[i, j] = h
        numeric = (_kl(loc, tril + step) - _kl(loc, tril - step)) / (2 * h)
        analytic = grad_scale[i] if kind == "diag" else grad_scale[i, j]
        np.testing.assert_allclose(analytic, numeric, atol=1e-6)


def test_bad_shapes_and_kinds_are_rejected():
    with pytest.raises(ValueError, match=r"scale_tril must be \[d, d\] for a \[d\] loc"):
        gaussian_estimator_variances(np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="kind must be 'diag' or 'tril', got 'full'"):
        true_kl_gradients(np.zeros(2), np.eye(2), "full")
