"""The tutorials: each committed notebook is a full run of its text source, and each source runs
top to bottom on quick settings with its key claims asserted in its own cells.

`notebooks/NN_name.py` (jupytext py:percent) is the truth and `notebooks/build.py` builds
`NN_name.ipynb` from it. The quick run executes the *source* (not the committed notebook) with
`TFP_VAE_QUICK=1`: a few hundred to a few thousand images and short training, with the
tutorials' own `assert` lines checking what they teach (add-loss KL = regularizer KL, the IWAE
bound rising with k, save → load exact, ...). The kernel runs under this interpreter.
"""

import importlib.util
import os
from pathlib import Path

import nbclient
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
_spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS_DIR / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SOURCES = build.sources()


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert len(SOURCES) >= 6, f"expected the tutorial sources in {NOTEBOOKS_DIR}"
    built = {path.stem for path in NOTEBOOKS_DIR.glob("*.ipynb")}
    assert built == {path.stem for path in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem[:2] for p in SOURCES])
def test_committed_notebook_is_a_full_run_of_its_source(source):
    problems = build.out_of_sync(source)
    assert not problems, "\n".join(problems) + \
        f"\nRebuild it with `python notebooks/build.py {source.stem[:2]}`."


def test_out_of_sync_notices_an_edited_cell(tmp_path, monkeypatch):
    source = SOURCES[0]
    copy = tmp_path / source.name
    copy.write_text(source.read_text().replace("# %% [markdown]\n#", "# %% [markdown]\n# edited",
                                               1))
    (tmp_path / source.with_suffix(".ipynb").name).write_bytes(
        source.with_suffix(".ipynb").read_bytes())
    assert any("differs" in problem for problem in build.out_of_sync(copy))


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem[:2] for p in SOURCES])
def test_notebook_source_runs_quick_with_its_assertions(source):
    if "TFP_VAE_DATA_DIR" not in os.environ:
        pytest.fail("TFP_VAE_DATA_DIR is not set: the notebooks need the offline datasets.")
    try:
        build.execute(build.read_source(source, quick=True), quick=True)
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{source.name} failed:\n{error}", pytrace=False)
