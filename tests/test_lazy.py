"""Tests for tfp_vae.lazy: packages that import their public names on first use."""

import subprocess
import sys

import pytest


def test_importing_the_packages_loads_no_tensorflow():
    code = ("import sys, tfp_vae, tfp_vae.study; "
            "print(sorted(m for m in ('tensorflow', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_lazy_name_is_the_defining_module_s_object_and_is_cached():
    import tfp_vae
    import tfp_vae.study
    from tfp_vae.runs import train_run
    from tfp_vae.study.runner import run_study

    assert tfp_vae.train_run is train_run and vars(tfp_vae)["train_run"] is train_run
    assert tfp_vae.study.run_study is run_study
    assert {"train_run", "ModelConfig"} <= set(dir(tfp_vae))
    assert "run_study" in dir(tfp_vae.study)


@pytest.mark.parametrize("package", ["tfp_vae", "tfp_vae.study"])
def test_an_unknown_name_is_an_attribute_error_naming_the_package(package):
    import importlib

    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'colour'"):
        module.colour  # noqa: B018
