"""Every tutorial in notebooks/ runs top to bottom from a clean kernel, on quick settings.

Each notebook reads `TFP_VAE_QUICK=1` and then uses a few hundred images and one epoch, so the
suite stays fast; without it the notebooks teach on the full data (their committed outputs).
The kernel is started with this interpreter (`sys.executable`), not whatever `python3` kernel
spec Jupyter happens to find, so the notebooks see the same environment as the tests.
"""

import json
import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def _kernel_manager(kernels_dir: Path) -> KernelManager:
    """A kernel manager whose only kernel runs ipykernel under `sys.executable`."""
    spec_dir = kernels_dir / "tfp_vae_tests"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "tfp_vae tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelManager(kernel_name="tfp_vae_tests",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TFP_VAE_QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if "TFP_VAE_DATA_DIR" not in os.environ:
        pytest.fail("TFP_VAE_DATA_DIR is not set: the notebooks need the offline datasets.")
    # The kernel runs in a temporary folder, so a relative data path must be made absolute.
    monkeypatch.setenv("TFP_VAE_DATA_DIR", str(Path(os.environ["TFP_VAE_DATA_DIR"]).resolve()))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, km=_kernel_manager(tmp_path / "kernels"), timeout=CELL_TIMEOUT_S,
        allow_errors=False, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors, f"{path.name} recorded errors: {errors}"
