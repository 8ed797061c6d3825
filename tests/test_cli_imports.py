"""The CLI verbs that build no model start fast: they import neither Mesa nor the plotting and
table libraries (``abm/__init__`` loads the model lazily; issue 16). Checked on ``sys.modules`` in
a fresh interpreter, not by timing, so the test does not depend on the machine's load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mesa", "matplotlib", "pandas", "networkx", "scipy")

PROBE = """
import contextlib, io, json, sys
from abm.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main({argv!r})
    except SystemExit as exc:  # --help exits through argparse
        code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy, "out": out.getvalue()}}))
"""


def _probe(argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["scenarios"], ["run", "--help"]])
def test_verbs_without_a_model_import_no_heavy_library(argv):
    probe = _probe(argv)
    assert probe["code"] == 0
    assert probe["heavy"] == [], f"abm {' '.join(argv)} imported {probe['heavy']}"


def test_scenarios_still_lists_the_packaged_scenarios():
    probe = _probe(["scenarios"])
    names = [line.split()[0] for line in probe["out"].splitlines() if line.strip()]
    assert "baseline" in names and "correlated_crash" in names


def test_the_lazy_package_attributes_resolve_to_the_model_and_results():
    import abm
    from abm.model import AIComputeCreditModel
    from abm.results import RunResult, run

    assert abm.run is run
    assert abm.RunResult is RunResult
    assert abm.AIComputeCreditModel is AIComputeCreditModel
    assert {"run", "RunResult", "AIComputeCreditModel"} <= set(dir(abm))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        abm.not_a_name  # noqa: B018


@pytest.mark.parametrize("cores", [2, 1])
def test_abm_run_draws_its_figure_without_pyplot(tmp_path, cores):
    """``abm run`` imports the model; with two cores and fork its figure is drawn in a forked
    child (abm.viz.overview_process), so the parent never imports matplotlib; with one core it
    draws in-process with matplotlib but not pyplot (networkx's drawing helpers import it; the
    overview draws its network with matplotlib collections instead)."""
    out = tmp_path / "run"
    probe = PROBE.replace(
        "heavy = sorted(m for m in {heavy!r} if m in sys.modules)",
        "heavy = sorted(m for m in ('mesa', 'matplotlib', 'matplotlib.pyplot') if m in sys.modules)",
    ).format(argv=["run", "--months", "3", "--out", str(out)], heavy=HEAVY)
    probe = f"import abm.viz.overview_process as p; p.usable_cores = lambda: {cores}\n" + probe
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert (out / "overview.png").is_file()
    forked = cores >= 2 and hasattr(os, "fork")
    assert result["heavy"] == (["mesa"] if forked else ["matplotlib", "mesa"])
