"""`tfp_vae.finished_runs`: reading a saved model and how it was trained, and the reports."""

from pathlib import Path

import numpy as np
import pytest

from tfp_vae.config import ModelConfig, TrainingConfig
from tfp_vae.finished_runs import (
    default_run_path,
    evaluate_saved,
    load_test_split,
    reconstruct_saved,
    sample_saved,
    saved_run,
    summary,
)
from tfp_vae.io import save_model
from tfp_vae.models import build_model
from tfp_vae.rundir import RunDir

_TRAINING = TrainingConfig(data="mnist", test_size=40, seed=3)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A VAE saved outside a run (untrained: these tests read, they do not judge quality)."""
    path = tmp_path_factory.mktemp("saved") / "model"
    save_model(build_model(ModelConfig(network="mlp")), path, training=_TRAINING.to_dict())
    return path


def test_saved_run_outside_a_run_unpacks_and_knows_its_plots_folder(model_dir):
    saved = saved_run(model_dir)
    path, run, training = saved
    assert (path, run, training) == (model_dir, None, _TRAINING)
    assert saved.plots_dir == model_dir.parent / "plots"
    assert saved.load_model().config.network == "mlp"


def test_test_split_is_the_runs_own_binarized_slice(model_dir):
    saved = saved_run(model_dir)
    images, labels, _ = saved.test_split()
    assert images.shape == (40, 28, 28, 1) and len(labels) == 40  # the run's test_size
    assert set(np.unique(images)) <= {0.0, 1.0}
    again, _, _ = load_test_split(_TRAINING, test_size=40)
    np.testing.assert_array_equal(images, again)  # binarized with the run's seed, every time
    window, _, _ = saved.test_split(test_size=5, offset=10)
    np.testing.assert_array_equal(window, images[10:15])
    with pytest.raises(ValueError, match="--offset 10000 is beyond the 10000 test images"):
        saved.test_split(test_size=5, offset=10000)


def test_read_commands_write_into_the_plots_folder_beside_the_model(model_dir):
    report = evaluate_saved(model_dir, num_samples=3, test_size=20)
    assert report["model"] == str(model_dir) and report["dataset"] == "mnist"
    assert report["num_images"] == 20 and report["iwae_num_samples"] == 3
    assert report["negative_elbo"] == round(report["negative_elbo"], 4)
    assert sample_saved(model_dir, num_images=4, columns=2) == (
        model_dir.parent / "plots" / "samples.png")
    path, shown = reconstruct_saved(model_dir, num_images=5, offset=9998)
    assert path.is_file() and shown == 2  # the test set ends after two images


def test_saved_run_refuses_what_is_not_a_saved_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        saved_run(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no saved model"):
        saved_run(tmp_path)


def test_default_run_path_names_data_and_kind_or_a_given_name():
    model = ModelConfig(kind="autoencoder")
    assert default_run_path(ModelConfig(), TrainingConfig()) == Path("runs/fashion-mnist-vae")
    assert default_run_path(model, TrainingConfig(data="mnist")) == Path("runs/mnist-autoencoder")
    assert default_run_path(model, TrainingConfig(), "burda_mlp_elbo") == Path(
        "runs/burda_mlp_elbo")


def test_summary_states_the_test_results_and_the_files():
    metrics = {"test_negative_elbo": 90.123, "test_negative_elbo_bits_per_dim": 0.1658,
               "test_reconstruction": 70.0, "test_kl": 20.123, "test_active_units": 3,
               "latent_dim": 4}
    lines = summary(metrics).splitlines()
    assert lines == ["Test negative ELBO: 90.12 nats per image (0.1658 bits/dim; "
                     "reconstruction 70.00 + KL 20.12), 3 of 4 latent units active."]
    metrics.update(test_iwae_num_samples=50, test_iwae_log_likelihood=-88.5,
                   test_iwae_log_likelihood_standard_error=0.25)
    run = RunDir("runs/x")
    lines = summary(metrics, run, [Path("a.png"), Path("b.png")]).splitlines()
    assert lines[1] == "Test IWAE log-likelihood (k = 50): -88.50 ± 0.25 nats."
    assert lines[2] == (f"Wrote {run.metrics_file}, {run.history_file}, the model in "
                        f"{run.model_dir} and 2 plots in {run.plots_dir}: a.png, b.png.")
    assert summary({"test_reconstruction": 61.5}) == (
        "Test reconstruction NLL: 61.50 nats per image.")


def test_the_validation_split_is_the_one_model_selection_saw(tmp_path):
    from tfp_vae.runs import train_run

    training = TrainingConfig(data="mnist", train_size=256, validation_size=300, test_size=50,
                              batch_size=64, epochs=1, jit_compile=False, plots=False, seed=2)
    result = train_run(tmp_path / "run", ModelConfig(network="mlp", latent_dim=2), training)
    report = evaluate_saved(tmp_path / "run", num_samples=5, seed=2, split="validation")
    assert report["split"] == "validation" and report["num_images"] == 300
    # The same images and samples (the run's seed) as the run's own final validation metrics.
    assert report["negative_elbo"] == pytest.approx(
        result.metrics["validation_negative_elbo"], abs=1e-3)
    assert evaluate_saved(tmp_path / "run", num_samples=0)["num_images"] == 50
    with pytest.raises(ValueError, match="--test-size applies to the test split only"):
        evaluate_saved(tmp_path / "run", split="validation", test_size=10)


def test_a_run_without_a_validation_split_says_so(model_dir):
    with pytest.raises(ValueError, match=r"was trained without a validation split "
                                         r"\(--validation-size 0\); evaluate it on the test "
                                         r"split instead\.$"):
        evaluate_saved(model_dir, split="validation")
