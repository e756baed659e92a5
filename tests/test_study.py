"""The KL-estimator study: runs `--quick` once and checks the numbers its report gives."""

import csv
import math

import numpy as np
import pytest

from tfp_vae import compare_kl
from tfp_vae.compare_kl import gaussian_estimator_variances, run_study

MC_ESTIMATORS = ("mc", "mc_entropy", "mc_ratio_cv", "mc_stl")
Z = 4.5  # standard errors allowed for a Monte Carlo check


def _read(path):
    with path.open() as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        for key, value in row.items():
            if value in ("True", "False"):
                row[key] = value == "True"
            else:
                try:
                    row[key] = float(value)
                except ValueError:
                    pass
    return rows


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("kl_study")
    result = run_study(out, quick=True, seed=0)
    return {"result": result, "out": out, "estimators": _read(out / "estimators.csv"),
            "theory": _read(out / "theory_1d.csv"), "training": _read(out / "training.csv"),
            "curves": _read(out / "training_curves.csv")}


def test_report_directory_has_report_csvs_and_plots(study):
    out = study["out"]
    report = (out / "report.md").read_text()
    for heading in ("## Findings", "1-D Gaussians", "relative std", "gradient quality",
                    "cost", "end-to-end training"):
        assert heading in report
    for name in ("relative_std.png", "gradient_snr.png", "training_curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert study["result"].findings and all(f"- {f}" in report for f in
                                            study["result"].findings)


def test_analytic_kl_equals_closed_form(study):
    rows = [r for r in study["estimators"] if r["estimator"] == "analytic"]
    assert rows
    for row in rows:
        assert row["std"] == 0.0
        np.testing.assert_allclose(row["estimate_mean"], row["true_kl"], rtol=1e-5, atol=1e-6)
        assert row["grad_loc_max_abs_error"] < 1e-4
        assert row["grad_scale_max_abs_error"] < 1e-3


def test_true_kl_is_the_textbook_closed_form(study):
    for row in (r for r in study["estimators"] if r["block"] == "grid"):
        kind, d = row["posterior"], int(row["latent_dim"])
        loc, tril = compare_kl._posterior_parameters(d, kind, row["distance"], 0)
        cov = tril @ tril.T
        expected = 0.5 * (np.trace(cov) + loc @ loc - d - np.linalg.slogdet(cov)[1])
        np.testing.assert_allclose(row["true_kl"], expected, rtol=1e-10)


def test_monte_carlo_means_are_within_their_standard_errors(study):
    checked = 0
    for row in study["estimators"]:
        if row["estimator"] == "analytic":
            continue
        if not row["variance_finite"]:
            # mc_ratio_cv with a posterior variance below half the prior's: infinite variance,
            # so the standard error is meaningless; the report flags these cells instead.
            assert row["estimator"] == "mc_ratio_cv" and row["min_eigenvalue"] <= 0.5
            continue
        assert abs(row["bias"]) <= Z * row["bias_se"], row
        checked += 1
    assert checked >= 150


def test_ratio_cv_infinite_variance_regime_is_flagged(study):
    far = [r for r in study["estimators"] if r["estimator"] == "mc_ratio_cv"
           and r["distance"] == "far"]
    assert far and not any(r["variance_finite"] for r in far)
    close = [r for r in study["estimators"] if r["estimator"] == "mc_ratio_cv"
             and r["distance"] == "close"]
    assert close and all(r["variance_finite"] for r in close)
    assert "infinite variance" in (study["out"] / "report.md").read_text()


@pytest.mark.parametrize("name", ["mc", "mc_stl", "mc_entropy", "mc_ratio_cv"])
def test_one_d_closed_form_bias_and_std_match(study, name):
    rows = [r for r in study["theory"] if r["estimator"] == name]
    assert len(rows) == len(compare_kl.ONE_D_CASES) * 4
    for row in rows:
        mu, sigma, s = row["mu"], row["sigma"], row["num_samples"]
        per_sample = {"mc": mu**2 * sigma**2 + (sigma**2 - 1) ** 2 / 2,
                      "mc_stl": mu**2 * sigma**2 + (sigma**2 - 1) ** 2 / 2,
                      "mc_entropy": mu**2 * sigma**2 + sigma**4 / 2}.get(name)
        if per_sample is not None:
            np.testing.assert_allclose(row["theory_std"], math.sqrt(per_sample / s), rtol=1e-9)
        assert row["theory_bias"] == 0.0
        if not row["se_reliable"]:
            continue  # mc_ratio_cv with σ² < ¾: the sample variance has no standard error
        assert abs(row["bias"]) <= Z * row["bias_se"], row
        assert abs(row["std"] - row["theory_std"]) <= Z * row["std_se"], row


def test_ratio_cv_theory_is_infinite_below_half_prior_variance(study):
    rows = [r for r in study["theory"] if r["estimator"] == "mc_ratio_cv"]
    for row in rows:
        assert math.isinf(row["theory_std"]) == (row["sigma"] ** 2 <= 0.5)


def test_relative_std_falls_as_one_over_sqrt_samples(study):
    groups = {}
    for row in study["estimators"]:
        if row["estimator"] != "analytic" and row["variance_finite"] and row["se_reliable"]:
            groups.setdefault((row["setting"], row["estimator"]), []).append(row)
    assert len(groups) >= 50
    for key, rows in groups.items():
        rows.sort(key=lambda r: r["num_samples"])
        s = np.log([r["num_samples"] for r in rows])
        slope = np.polyfit(s, np.log([r["rel_std"] for r in rows]), 1)[0]
        # mc_ratio_cv's heavier tails make its measured std noisier at 1000 repetitions.
        width = 0.2 if key[1] == "mc_ratio_cv" else 0.1
        assert abs(slope + 0.5) < width, (key, slope)


def test_measured_std_matches_theory_in_every_grid_cell(study):
    checked = 0
    for row in study["estimators"]:
        if row["estimator"] == "analytic" or not row["se_reliable"]:
            continue
        assert abs(row["std"] - row["theory_std"]) <= Z * row["std_se"], row
        checked += 1
    assert checked >= 200


def test_monte_carlo_gradients_are_unbiased(study):
    for row in study["estimators"]:
        if row["estimator"] in ("mc", "mc_entropy", "mc_stl"):
            assert row["grad_loc_max_bias_z"] < 5.5, row
            assert row["grad_scale_max_bias_z"] < 5.5, row
            assert row["grad_loc_snr"] > 0 and row["grad_scale_snr"] > 0


def test_costs_are_measured(study):
    for row in study["estimators"]:
        assert 0 < row["median_us_per_posterior"] < 1e6


def test_training_runs_cover_every_kl_choice(study):
    rows = study["training"]
    choices = {(r["posterior"], r["kl_attachment"], r["kl_estimator"], r["num_samples"])
               for r in rows}
    assert {("diag", "loss", "analytic", 1), ("diag", "loss", "mc", 1),
            ("diag", "loss", "mc", 4), ("diag", "add_loss", "analytic", 1),
            ("diag", "regularizer", "analytic", 1), ("tril", "loss", "analytic", 1),
            ("tril", "loss", "mc", 1)} <= choices
    for row in rows:
        for key in ("test_negative_elbo", "test_kl", "wall_seconds"):
            assert math.isfinite(row[key]) and row[key] > 0
        assert 0 <= row["active_units"] <= row["latent_dim"]
        np.testing.assert_allclose(row["test_negative_elbo"],
                                   row["test_reconstruction"] + row["test_kl"], rtol=1e-5)
        epochs = [c for c in study["curves"] if c["run"] == row["run"]]
        assert [c["epoch"] for c in epochs] == list(range(1, int(row["epochs"]) + 1))


def test_add_loss_layer_and_regularizer_train_identically(study):
    by = {(r["kl_attachment"], r["kl_estimator"], r["posterior"], r["num_samples"],
           r["seed_offset"]): r for r in study["training"]}
    add_loss = by[("add_loss", "analytic", "diag", 1, 0)]
    regularizer = by[("regularizer", "analytic", "diag", 1, 0)]
    np.testing.assert_allclose(add_loss["test_negative_elbo"],
                               regularizer["test_negative_elbo"], rtol=1e-4)


def test_seed_reproduces_part_one(tmp_path):
    options = {"quick": True, "latent_dims": (2,), "sample_counts": (1, 4),
               "repetitions": 200, "skip_training": True, "log": None}
    first = run_study(tmp_path / "a", seed=3, **options).estimator_rows
    second = run_study(tmp_path / "b", seed=3, **options).estimator_rows
    for key in ("estimate_mean", "std", "grad_loc_snr", "grad_scale_snr"):
        assert [r[key] for r in first] == [r[key] for r in second]


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
        np.testing.assert_allclose(values.mean(), theory["kl"], atol=0.02)
        np.testing.assert_allclose(values.var(), theory[name], rtol=0.05)


def test_main_runs_and_rejects_bad_options(tmp_path, capsys):
    argv = ["--quick", "--skip-training", "--latent-dims", "2", "--samples", "1", "4",
            "--repetitions", "100", "--out", str(tmp_path)]
    assert compare_kl.main(argv) == 0
    assert (tmp_path / "report.md").exists()
    assert compare_kl.main([*argv[:-2], "--samples", "0", "--out", str(tmp_path)]) == 2
    assert "sample_counts" in capsys.readouterr().err
