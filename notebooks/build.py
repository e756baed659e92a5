"""Builds the tutorial notebooks from their plain-text sources, and checks they agree.

Each tutorial's source is `notebooks/NN_name.py` in jupytext's py:percent format (`# %%` starts a
code cell, `# %% [markdown]` a text cell); it is the truth. `NN_name.ipynb` is generated from it
and executed top to bottom in a fresh kernel (this interpreter, working directory `notebooks/`),
so the committed notebook shows the outputs of a full run. Edit the `.py`, never the `.ipynb`
(or edit the `.ipynb` in Jupyter and copy the change back with
`jupytext --to py:percent --opt notebook_metadata_filter=-all --opt cell_metadata_filter=-all`).

Usage (from the repository root):

    python notebooks/build.py                      # rebuild and execute every notebook
    python notebooks/build.py 03 05                # only tutorials 03 and 05
    python notebooks/build.py --quick 04           # a TFP_VAE_QUICK=1 run, nothing written
    python notebooks/build.py --check              # exit 1 if an .ipynb differs from its source
    python notebooks/build.py --text-only 02       # copy edited text cells, keep the outputs

The notebooks read the offline datasets from `$TFP_VAE_DATA_DIR` (`--data-dir` sets it).
The kernel does not copy what C++ code writes to the process's stderr into the cells
(`--IPKernelApp.capture_fd_output=False`): TensorFlow's start-up lines about CPU features and
CUDA go to the terminal, and everything Python prints or warns still shows in the notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jupytext
import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

NOTEBOOKS_DIR = Path(__file__).resolve().parent
FORMAT = "py:percent"
CELL_TIMEOUT_S = 900
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources(names: Sequence[str] = ()) -> list[Path]:
    """The tutorial sources `NN_*.py`, all or those whose name starts with one of `names`."""
    found = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))
    if not names:
        return found
    chosen = [path for path in found if any(path.stem.startswith(name) for name in names)]
    unknown = [name for name in names if not any(p.stem.startswith(name) for p in found)]
    if unknown:
        raise SystemExit(f"No notebook source starts with {unknown}; the sources are "
                         f"{[p.stem for p in found]}.")
    return chosen


def read_source(path: Path, quick: bool = False) -> nbformat.NotebookNode:
    """The notebook a source describes, without outputs."""
    notebook = jupytext.read(path, fmt=FORMAT)
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "tfp_vae": {"quick": quick}}
    for cell in notebook.cells:
        cell.metadata = {}
    return notebook


def _kernel_manager(kernels_dir: Path) -> KernelManager:
    """A kernel manager whose only kernel runs ipykernel under `sys.executable`."""
    spec_dir = kernels_dir / "tfp_vae_build"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "tfp_vae build", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelManager(kernel_name="tfp_vae_build",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


def execute(notebook: nbformat.NotebookNode, quick: bool) -> nbformat.NotebookNode:
    """Runs every cell in a fresh kernel in `notebooks/`; raises on the first failing cell.

    Raises:
      nbclient.exceptions.CellExecutionError: If a cell raises (a failed assertion included).
    """
    env = {**os.environ, "TFP_VAE_QUICK": "1" if quick else "0"}
    if env.get("TFP_VAE_DATA_DIR"):
        # The kernel runs in notebooks/, so a path relative to the caller must become absolute.
        env["TFP_VAE_DATA_DIR"] = str(Path(env["TFP_VAE_DATA_DIR"]).resolve())
    with tempfile.TemporaryDirectory(prefix="tfp_vae_kernels_") as kernels:
        client = nbclient.NotebookClient(
            notebook, km=_kernel_manager(Path(kernels)), timeout=CELL_TIMEOUT_S,
            allow_errors=False, record_timing=False,
            extra_arguments=["--IPKernelApp.capture_fd_output=False"],
            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
        client.execute(env=env)
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
                         "tfp_vae": {"quick": quick}}
    return notebook


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def out_of_sync(source: Path) -> list[str]:
    """Why `source`'s committed `.ipynb` is not a full run of it (empty when it is).

    Checks that the notebook exists, has the source's cells with the same text, was built in
    full (not quick) mode, and that every code cell ran, in order.
    """
    built = source.with_suffix(".ipynb")
    if not built.exists():
        return [f"{built.name} is missing; run `python notebooks/build.py {source.stem[:2]}`."]
    notebook = nbformat.read(built, as_version=4)
    problems = []
    expected, actual = _cells(read_source(source)), _cells(notebook)
    if len(expected) != len(actual):
        problems.append(f"{built.name} has {len(actual)} cells, its source {len(expected)}.")
    for index, (want, have) in enumerate(zip(expected, actual, strict=False)):
        if want != have:
            problems.append(f"cell {index} of {built.name} differs from {source.name}.")
    if notebook.metadata.get("tfp_vae", {}).get("quick", True):
        problems.append(f"{built.name} was not built from a full run (TFP_VAE_QUICK unset).")
    counts = [cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"{built.name}'s code cells did not all run, in order, in one kernel.")
    return problems


def update_text(source: Path) -> None:
    """Copies a source's text cells into its built notebook, keeping the code cells' outputs.

    Raises:
      SystemExit: If a code cell changed, or cells were added, removed or moved: then the
        notebook must be executed again.
    """
    built = source.with_suffix(".ipynb")
    notebook = nbformat.read(built, as_version=4)
    fresh = read_source(source)
    if [(c.cell_type, c.source.strip() if c.cell_type == "code" else "") for c in fresh.cells] != \
            [(c.cell_type, c.source.strip() if c.cell_type == "code" else "")
             for c in notebook.cells]:
        raise SystemExit(f"{source.name} changed more than text; rebuild it with "
                         f"`python notebooks/build.py {source.stem[:2]}`.")
    for old, new in zip(notebook.cells, fresh.cells, strict=True):
        if old.cell_type == "markdown":
            old.source = new.source
    nbformat.write(notebook, built)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook numbers or name prefixes (all if none)")
    parser.add_argument("--check", action="store_true",
                        help="only check that every .ipynb is a full run of its source")
    parser.add_argument("--quick", action="store_true",
                        help="execute with TFP_VAE_QUICK=1 and write nothing")
    parser.add_argument("--text-only", action="store_true",
                        help="copy changed text cells into the built notebooks without running "
                             "them (refused if any code cell changed)")
    parser.add_argument("--data-dir", help="sets TFP_VAE_DATA_DIR for the notebooks")
    args = parser.parse_args(argv)
    if args.data_dir:
        os.environ["TFP_VAE_DATA_DIR"] = args.data_dir
    if args.check:
        problems = [problem for source in sources(args.names) for problem in out_of_sync(source)]
        print("\n".join(problems) or "Every notebook is a full run of its source.")
        return 1 if problems else 0
    if args.text_only:
        for source in sources(args.names):
            update_text(source)
            print(f"{source.stem}: text cells updated, outputs kept.")
        return 0
    for source in sources(args.names):
        start = time.perf_counter()
        notebook = execute(read_source(source, args.quick), args.quick)
        seconds = time.perf_counter() - start
        if args.quick:
            print(f"{source.stem}: quick run passed in {seconds:.0f} s (nothing written).")
        else:
            nbformat.write(notebook, source.with_suffix(".ipynb"))
            print(f"{source.stem}: built {source.with_suffix('.ipynb').name} in {seconds:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
