"""The KL study's typed rows and CSV files, including the committed full-study results."""

import dataclasses
import math
from pathlib import Path

import pytest

from tfp_vae.study import read_rows, write_rows
from tfp_vae.study.rows import CurveRow, EstimatorRow, LearnablePriorRow, TrainingRow

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "kl_study"


def test_rows_round_trip_with_none_inf_and_booleans(tmp_path):
    rows = [CurveRow("diag/loss/mc/S=1", 1, 300.5, 290.25, 10.25, None, None, None, 1.5),
            CurveRow("diag/loss/mc/S=1", 2, math.inf, 0.1 + 0.2, 1e-300, 1.0, 2.0, 3.0, None)]
    path = write_rows(tmp_path / "curves.csv", rows)
    assert read_rows(path, CurveRow) == rows
    header = path.read_text().splitlines()[0]
    assert header == ",".join(f.name for f in dataclasses.fields(CurveRow))


def test_learnable_prior_rows_round_trip_unknown_and_infinite_values(tmp_path):
    names = [f.name for f in dataclasses.fields(LearnablePriorRow)]
    # The gradient and cost columns shared with EstimatorRow come last, as in EstimatorRow.
    shared = [f.name for f in dataclasses.fields(EstimatorRow)][-11:]
    assert names[:2] == ["prior", "setting"] and names[-11:] == shared
    values = dict.fromkeys(names, 0.5)
    values.update(prior="flow", setting="flow d=2 far", latent_dim=2, distance="far",
                  estimator="mc_ratio_cv", num_samples=4, repetitions=100,
                  reference_samples=10**6, variance_finite=None, ratio_second_moment=None,
                  non_finite=0, batch_size=100, bias_z=-math.inf)
    rows = [LearnablePriorRow(**values),
            LearnablePriorRow(**{**values, "prior": "mixture", "variance_finite": False,
                                 "ratio_second_moment": math.inf})]
    path = write_rows(tmp_path / "learnable_priors.csv", rows)
    assert read_rows(path, LearnablePriorRow) == rows
    assert rows[0].grad_snr("loc") == 0.5


def test_write_rows_rejects_empty_and_mixed_rows(tmp_path):
    with pytest.raises(ValueError, match="No rows to write"):
        write_rows(tmp_path / "x.csv", [])
    curve = CurveRow("a", 1, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="must be CurveRows"):
        write_rows(tmp_path / "x.csv", [curve, "not a row"])


def test_read_rows_names_a_missing_column_and_a_bad_value(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("run,epoch\na,1\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['loss', "):
        read_rows(path, CurveRow)
    path.write_text("run,epoch,loss,reconstruction_loss,kl_loss\na,1,x,1,1\n")
    with pytest.raises(ValueError, match="line 2, column loss"):
        read_rows(path, CurveRow)


def test_committed_full_study_reads_as_typed_rows():
    estimators = read_rows(RESULTS / "estimators.csv", EstimatorRow)
    grid = [r for r in estimators if r.block == "grid"]
    one_d = [r for r in estimators if r.block == "theory_1d"]
    assert len(estimators) == 462 and len(one_d) == 84
    assert read_rows(RESULTS / "theory_1d.csv", EstimatorRow) == one_d
    assert all(r.distance is None and r.mu is not None for r in one_d)
    assert {r.distance for r in grid} == {"close", "moderate", "far"}
    assert all(r.mu is None and r.sigma is None for r in grid)
    training = read_rows(RESULTS / "training.csv", TrainingRow)
    assert len(training) == 15 and training[-1].seed_offset == 1
    # Every layer attachment starts from its loss-function twin's weights and batches: the same
    # model to the last bit; the loss-function runs have no twin.
    twins = {r.run: r.weights_max_abs_difference for r in training if r.kl_attachment != "loss"}
    assert len(twins) == 5 and set(twins.values()) == {0.0}
    assert all(r.weights_max_abs_difference is None for r in training if r.kl_attachment == "loss")
    curves = read_rows(RESULTS / "training_curves.csv", CurveRow)
    assert len(curves) == 15 * 8 and all(c.validation_loss is not None for c in curves)
    assert all(c.seconds > 0 for c in curves)
    priors = read_rows(RESULTS / "learnable_priors.csv", LearnablePriorRow)
    assert len(priors) == 240 and {r.prior for r in priors} == {"flow", "mixture"}
