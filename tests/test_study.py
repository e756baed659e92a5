"""The KL study: runs `--quick` once and checks the numbers its report gives (typed rows)."""

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from tfp_vae import compare_kl
from tfp_vae.study import (
    CurveRow,
    EstimatorRow,
    LearnablePriorRow,
    TrainingRow,
    main,
    read_rows,
    run_study,
)
from tfp_vae.study.estimators import ONE_D_CASES, posterior_parameters

Z = 4.5  # standard errors allowed for a Monte Carlo check


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("kl_study")
    start = time.perf_counter()
    result = run_study(out, quick=True, seed=0, log=None)
    print(f"quick KL study: {time.perf_counter() - start:.0f} s")
    return result


def test_report_directory_has_report_csvs_and_plots(study):
    out = study.output_dir
    report = study.report_path.read_text()
    for heading in ("## Findings", "1-D Gaussians", "relative std", "gradient quality",
                    "cost", "end-to-end training", "Attachments from the same start",
                    "## Part 3 — learnable priors: Monte Carlo KL only"):
        assert heading in report
    for name in ("relative_std.png", "gradient_snr.png", "training_curves.png",
                 "learnable_priors.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert study.findings and all(f"- {f}" in report for f in study.findings)


def test_csv_files_read_back_as_the_same_rows(study):
    out = study.output_dir
    assert read_rows(out / "estimators.csv", EstimatorRow) == study.estimator_rows
    assert read_rows(out / "theory_1d.csv", EstimatorRow) == [
        r for r in study.estimator_rows if r.block == "theory_1d"]
    assert read_rows(out / "training.csv", TrainingRow) == study.training_rows
    assert read_rows(out / "training_curves.csv", CurveRow) == study.curve_rows
    assert read_rows(out / "learnable_priors.csv", LearnablePriorRow) == study.prior_rows


def test_learnable_prior_part_runs_in_quick_mode_and_is_reported(study):
    rows = study.prior_rows
    assert {(r.prior, r.latent_dim, r.distance) for r in rows} == {
        (prior, 2, distance) for prior in ("mixture", "flow")
        for distance in ("close", "moderate", "far")}
    assert {r.num_samples for r in rows} == {1, 4, 16, 64}
    assert "analytic" not in {r.estimator for r in rows}
    for row in rows:
        assert row.repetitions == 1000 and row.reference_samples == 10**6
        if row.estimator != "mc_ratio_cv":  # finite variance against both priors
            assert abs(row.bias) <= Z * row.bias_se, row
    far = {r.estimator: r.std_sqrt_s for r in rows
           if r.prior == "mixture" and r.distance == "far" and r.num_samples == 64}
    assert far["mc_entropy"] < far["mc"]  # narrow posteriors: the entropy in closed form wins
    sentences = [f for f in study.findings if f.startswith("Against learnable priors")]
    assert len(sentences) == 2 and "far from the prior" in sentences[0], sentences


def test_analytic_kl_equals_closed_form(study):
    rows = [r for r in study.estimator_rows if r.estimator == "analytic"]
    assert rows
    for row in rows:
        assert row.std == 0.0
        np.testing.assert_allclose(row.estimate_mean, row.true_kl, rtol=1e-5, atol=1e-6)
        assert row.grad_loc_max_abs_error < 1e-4
        assert row.grad_scale_max_abs_error < 1e-3


def test_true_kl_is_the_textbook_closed_form(study):
    for row in (r for r in study.estimator_rows if r.block == "grid"):
        d = row.latent_dim
        loc, tril = posterior_parameters(d, row.posterior, row.distance, 0)
        cov = tril @ tril.T
        expected = 0.5 * (np.trace(cov) + loc @ loc - d - np.linalg.slogdet(cov)[1])
        np.testing.assert_allclose(row.true_kl, expected, rtol=1e-10)


def test_monte_carlo_means_are_within_their_standard_errors(study):
    checked = 0
    for row in study.estimator_rows:
        if row.estimator == "analytic":
            continue
        if not row.variance_finite:
            # mc_ratio_cv with a posterior variance below half the prior's: infinite variance,
            # so the standard error is meaningless; the report flags these cells instead.
            assert row.estimator == "mc_ratio_cv" and row.min_eigenvalue <= 0.5
            continue
        assert abs(row.bias) <= Z * row.bias_se, row
        checked += 1
    assert checked >= 150


def test_ratio_cv_infinite_variance_regime_is_flagged(study):
    far = [r for r in study.estimator_rows if r.estimator == "mc_ratio_cv"
           and r.distance == "far"]
    assert far and not any(r.variance_finite for r in far)
    close = [r for r in study.estimator_rows if r.estimator == "mc_ratio_cv"
             and r.distance == "close"]
    assert close and all(r.variance_finite for r in close)
    assert "infinite variance" in study.report_path.read_text()


@pytest.mark.parametrize("name", ["mc", "mc_stl", "mc_entropy", "mc_ratio_cv"])
def test_one_d_closed_form_bias_and_std_match(study, name):
    rows = [r for r in study.estimator_rows if r.block == "theory_1d" and r.estimator == name]
    assert len(rows) == len(ONE_D_CASES) * 4
    for row in rows:
        mu, sigma, s = row.mu, row.sigma, row.num_samples
        per_sample = {"mc": mu**2 * sigma**2 + (sigma**2 - 1) ** 2 / 2,
                      "mc_stl": mu**2 * sigma**2 + (sigma**2 - 1) ** 2 / 2,
                      "mc_entropy": mu**2 * sigma**2 + sigma**4 / 2}.get(name)
        if per_sample is not None:
            np.testing.assert_allclose(row.theory_std, math.sqrt(per_sample / s), rtol=1e-9)
        assert row.theory_bias == 0.0
        if not row.se_reliable:
            continue  # mc_ratio_cv with σ² < ¾: the sample variance has no standard error
        assert abs(row.bias) <= Z * row.bias_se, row
        assert abs(row.std - row.theory_std) <= Z * row.std_se, row


def test_ratio_cv_theory_is_infinite_below_half_prior_variance(study):
    rows = [r for r in study.estimator_rows if r.block == "theory_1d"
            and r.estimator == "mc_ratio_cv"]
    assert rows
    for row in rows:
        assert math.isinf(row.theory_std) == (row.sigma**2 <= 0.5)


def test_relative_std_falls_as_one_over_sqrt_samples(study):
    groups = {}
    for row in study.estimator_rows:
        if row.estimator != "analytic" and row.variance_finite and row.se_reliable:
            groups.setdefault((row.setting, row.estimator), []).append(row)
    assert len(groups) >= 50
    for key, rows in groups.items():
        rows.sort(key=lambda r: r.num_samples)
        s = np.log([r.num_samples for r in rows])
        slope = np.polyfit(s, np.log([r.rel_std for r in rows]), 1)[0]
        # mc_ratio_cv's heavier tails make its measured std noisier at 1000 repetitions.
        width = 0.2 if key[1] == "mc_ratio_cv" else 0.1
        assert abs(slope + 0.5) < width, (key, slope)


def test_measured_std_matches_theory_in_every_grid_cell(study):
    checked = 0
    for row in study.estimator_rows:
        if row.estimator == "analytic" or not row.se_reliable:
            continue
        assert abs(row.std - row.theory_std) <= Z * row.std_se, row
        checked += 1
    assert checked >= 200


def test_monte_carlo_gradients_are_unbiased(study):
    for row in study.estimator_rows:
        if row.estimator in ("mc", "mc_entropy", "mc_stl"):
            assert row.grad_loc_max_bias_z < 5.5, row
            assert row.grad_scale_max_bias_z < 5.5, row
            assert row.grad_loc_snr > 0 and row.grad_scale_snr > 0


def test_costs_are_measured(study):
    for row in study.estimator_rows:
        assert 0 < row.median_us_per_posterior < 1e6


def test_training_runs_cover_every_kl_choice(study):
    rows = study.training_rows
    choices = {(r.posterior, r.kl_attachment, r.kl_estimator, r.num_samples) for r in rows}
    assert {("diag", "loss", "analytic", 1), ("diag", "loss", "mc", 1),
            ("diag", "loss", "mc", 4), ("diag", "add_loss", "analytic", 1),
            ("diag", "regularizer", "analytic", 1), ("tril", "loss", "analytic", 1),
            ("tril", "loss", "mc", 1)} <= choices
    for row in rows:
        for value in (row.test_negative_elbo, row.test_kl, row.wall_seconds):
            assert math.isfinite(value) and value > 0
        assert 0 <= row.active_units <= row.latent_dim
        np.testing.assert_allclose(row.test_negative_elbo,
                                   row.test_reconstruction + row.test_kl, rtol=1e-5)
        epochs = [c for c in study.curve_rows if c.run == row.run]
        assert [c.epoch for c in epochs] == list(range(1, row.epochs + 1))
        assert all(c.validation_loss is not None for c in epochs)
    # Two epochs on real data: the training loss must fall.
    for run in {c.run for c in study.curve_rows}:
        losses = [c.loss for c in study.curve_rows if c.run == run]
        assert losses[-1] < losses[0] - 5, (run, losses)


def test_add_loss_layer_and_regularizer_train_identically(study):
    by = {r.choice: r for r in study.training_rows}
    loss = by[("diag", "loss", "analytic", 1, 0)]
    add_loss = by[("diag", "add_loss", "analytic", 1, 0)]
    regularizer = by[("diag", "regularizer", "analytic", 1, 0)]
    np.testing.assert_allclose(add_loss.test_negative_elbo,
                               regularizer.test_negative_elbo, rtol=1e-4)
    # Same initial weights and batches: every attachment trains the same model, up to float32
    # round-off (trained weights are O(0.1); drawing other posterior samples moves them by
    # O(0.01), as the loss function did when it drew its own sample).
    assert loss.weights_max_abs_difference is None
    for row in (add_loss, regularizer):
        assert row.weights_max_abs_difference < 1e-5, row
        assert abs(row.test_negative_elbo - loss.test_negative_elbo) < 1e-3, row
    other_seed = by[("diag", "loss", "analytic", 1, 1)]
    assert abs(other_seed.test_negative_elbo - loss.test_negative_elbo) > 1e-3
    assert "the largest difference in any final weight is" in study.report_path.read_text()


def test_seed_reproduces_part_one(tmp_path):
    options = {"quick": True, "latent_dims": (2,), "sample_counts": (1, 4),
               "repetitions": 100, "skip_training": True, "skip_priors": True, "log": None}
    first = run_study(tmp_path / "a", seed=3, **options).estimator_rows
    second = run_study(tmp_path / "b", seed=3, **options).estimator_rows
    for key in ("estimate_mean", "std", "grad_loc_snr", "grad_scale_snr"):
        assert [getattr(r, key) for r in first] == [getattr(r, key) for r in second]
    third = run_study(tmp_path / "c", seed=4, **options).estimator_rows
    assert [r.estimate_mean for r in third if r.estimator == "mc"] != [
        r.estimate_mean for r in first if r.estimator == "mc"]


def test_main_runs_and_rejects_bad_options(tmp_path, capsys):
    argv = ["--quick", "--skip-training", "--skip-priors", "--latent-dims", "2", "--samples",
            "1", "4",
            "--repetitions", "100", "--out", str(tmp_path)]
    assert compare_kl.main(argv) == 0
    assert (tmp_path / "report.md").exists() and not (tmp_path / "learnable_priors.csv").exists()
    capsys.readouterr()
    assert compare_kl.main([*argv[:-2], "--samples", "0", "--out", str(tmp_path)]) == 2
    assert "sample_counts" in capsys.readouterr().err
    assert main(["--repetitions", "many"]) == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'many'" in err and len(err.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out, says in ((blocker, "is a file"), (blocker / "study", "is inside the file")):
        assert main(["--skip-training", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err


def test_missing_dataset_stops_the_study_before_part_one(tmp_path, monkeypatch, capsys):
    # Offline without --data-dir: the download fails (conftest refuses it), and the study must
    # say so at once, not after the estimator part has run.
    monkeypatch.delenv("TFP_VAE_DATA_DIR", raising=False)
    argv = ["--quick", "--latent-dims", "2", "--samples", "1", "--repetitions", "100"]
    assert main([*argv, "--out", str(tmp_path / "offline")]) == 2
    err = capsys.readouterr().err
    assert "Could not download fashion_mnist" in err and "--data-dir" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "offline").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        run_study(tmp_path / "missing", quick=True, latent_dims=(2,), sample_counts=(1,),
                  repetitions=100, data_dir=empty, log=None)
    assert not (tmp_path / "missing").exists()


def test_main_reports_a_runtime_failure_with_status_1(monkeypatch, capsys):
    from tfp_vae.study import runner

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "run_study", disk_full)
    assert main(["--quick"]) == 1
    assert "compare-kl: error: [Errno 28] No space left on device" in capsys.readouterr().err


def test_module_entry_points_share_one_parser():
    for module in ("tfp_vae.compare_kl", "tfp_vae.study"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "--skip-priors" in done.stdout, done.stderr
