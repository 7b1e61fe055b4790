"""The notebook runs end to end on a validated lakehouse, so it never rots."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
#: the repository's notebook (wheels do not ship it): next to this tests/ directory
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "topolake_tour.ipynb"


def test_the_notebook_runs_end_to_end_and_plots_roc_curves(
    topolake_home, validated_gold, monkeypatch
):
    import nbformat
    from nbclient import NotebookClient

    current, work = validated_gold
    assert current().returncode == 0
    monkeypatch.setenv("TOPOLAKE_HOME", str(topolake_home))
    # the kernel is this interpreter's ipykernel
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no ROC plot"
    (aucs,) = [
        o["data"]["text/plain"]
        for o in notebook.cells[-1].outputs
        if o.output_type == "execute_result"
    ]
    assert all(f"'{name}'" in aucs for name in ("qcd", "ttbar", "wjets"))
    assert any("VERSION AS OF" in cell.source for cell in notebook.cells)
