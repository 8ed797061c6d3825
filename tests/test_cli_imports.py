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
    """``abm run`` imports the model but not SciPy (``abm.mesa_import.import_mesa``); with two
    cores and fork its figure is drawn in a forked child (abm.viz.overview_process), so the
    parent never imports matplotlib; with one core it draws in-process with matplotlib but not pyplot (networkx's drawing helpers import it; the
    overview draws its network with matplotlib collections instead)."""
    out = tmp_path / "run"
    probe = PROBE.replace(
        "heavy = sorted(m for m in {heavy!r} if m in sys.modules)",
        "heavy = sorted(m for m in ('mesa', 'matplotlib', 'matplotlib.pyplot', 'scipy') "
        "if m in sys.modules)",
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


DEFERRED_SCIPY = """
import json, sys
import numpy as np
from abm.cli import import_mesa
import_mesa()
import mesa
from mesa.experimental.continuous_space import continuous_space as space
before = "scipy.spatial" in sys.modules
a, b = np.random.default_rng(0).random((5, 3)), np.random.default_rng(1).random((4, 3))
ours = [space.cdist(a, b).tolist(), space.cdist(a, b, metric="cityblock").tolist()]
import scipy.spatial.distance as real
print(json.dumps({
    "scipy_before_first_call": before,
    "real_module": getattr(real, "__file__", None) is not None,
    "same": ours == [real.cdist(a, b).tolist(), real.cdist(a, b, "cityblock").tolist()],
    "continuous_space": isinstance(mesa.experimental.continuous_space.ContinuousSpace, type),
}))
"""


def test_import_mesa_defers_scipy_until_mesas_cdist_is_called():
    """``abm run`` imports Mesa without SciPy's spatial module (~0.24 s): Mesa's continuous space
    gets a ``cdist`` that imports SciPy when first called and returns SciPy's results, and a
    later ``import scipy.spatial.distance`` is the real module."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", DEFERRED_SCIPY],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "scipy_before_first_call": False,
        "real_module": True,
        "same": True,
        "continuous_space": True,
    }
