"""The entry points load TensorFlow without its C++ log lines; `--verbose` brings them back."""

import os
import subprocess
import sys

import pytest

from tfp_vae.quiet import import_tensorflow_quietly

_NOISE = ("onednn", "cuda", "absl", "cpu_feature_guard")


def _help(*argv):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", *argv, "--help"], env=env, capture_output=True,
                          text=True, timeout=180)


def _noise(text):
    return [line for line in text.splitlines() if any(word in line.lower() for word in _NOISE)]


@pytest.mark.parametrize("module", ["tfp_vae.compare_kl", "tfp_vae.study"])  # tfp-vae: test_cli
def test_help_of_every_entry_point_prints_no_tensorflow_log_line(module):
    result = _help(module)
    assert result.returncode == 0 and "--verbose" in result.stdout
    assert _noise(result.stdout + result.stderr) == []
    assert result.stderr == ""


def test_verbose_brings_the_tensorflow_lines_back():
    result = _help("tfp_vae.compare_kl", "--verbose")
    assert result.returncode == 0 and "--skip-training" in result.stdout
    assert _noise(result.stderr)


def test_tensorflow_already_imported_or_a_log_level_the_user_set_is_left_alone(monkeypatch):
    # The test process has imported TensorFlow (conftest): nothing to do, nothing changed.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert import_tensorflow_quietly() is False
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert import_tensorflow_quietly(["--verbose"]) is False
