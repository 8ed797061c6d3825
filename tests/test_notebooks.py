"""The committed notebooks are executed (notebooks/README.md says so) and show their figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Code cells whose result is a figure (their last line builds it), by notebook.
FIGURE_CELLS = {
    "01_quickstart.ipynb": (
        "market_figure",
        "defaults_figure",
        "network_figure",
        "cascade_tree_figure",
    ),
    "02_contagion_experiment.ipynb": (
        "phase_diagram",
        "response_figure",
        "fan_chart",
        "cascade_ccdf",
    ),
    "03_validation.ipynb": ("assert inside > outside",),
    "04_backtest_2022.ipynb": ("price_band_figure",),
}


@pytest.mark.parametrize("name", sorted(FIGURE_CELLS))
def test_committed_notebook_is_executed_with_inline_figures(name):
    path = NOTEBOOKS / name
    assert path.stat().st_size < 1_000_000  # outputs stay small enough to review
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: not executed top to bottom: {counts}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: a cell raised"
    for marker in FIGURE_CELLS[name]:
        cell = next(c for c in code if marker in c.source.strip().splitlines()[-1])
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (
            f"{name}: the cell ending in {marker!r} shows {len(images)} figures"
        )
