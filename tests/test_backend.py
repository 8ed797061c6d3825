"""The matplotlib backend is the process's choice: importing abm never switches it.

In Jupyter the backend is ``module://matplotlib_inline.backend_inline``; a module calling
``matplotlib.use("Agg")`` on import silently switched it off (notebooks showed no figures). The
check runs in a fresh interpreter, so modules already imported by other tests cannot hide an import
that switches the backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

INLINE = "module://matplotlib_inline.backend_inline"
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import importlib, json, pkgutil, sys
import matplotlib

import abm

before = matplotlib.get_backend(auto_select=False)
names = sorted(m.name for m in pkgutil.walk_packages(abm.__path__, "abm."))
# the app's modules import mesa.visualization, which imports pyplot itself: imported last
app = [n for n in names if n in ("abm.app", "abm.viz.app_components")]
pyplot_after = None
for name in [n for n in names if n not in app] + app:
    importlib.import_module(name)
    if pyplot_after is None and name not in app and "matplotlib.pyplot" in sys.modules:
        pyplot_after = name
after_import = matplotlib.get_backend(auto_select=False)

from abm.viz.overview import overview_figure

result = abm.run("baseline", seed=0, months=6)
out = sys.argv[1]
fig = overview_figure(result, out)
print(json.dumps({
    "modules": len(names),
    "before": before,
    "after_import": after_import,
    "after_write": matplotlib.get_backend(auto_select=False),
    "pyplot_imported_by": pyplot_after,
    "figure_axes": len(fig.axes),
}))
"""


def test_importing_abm_keeps_the_inline_backend_and_files_are_still_written(tmp_path):
    png = tmp_path / "overview.png"
    env = dict(os.environ, MPLBACKEND=INLINE, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(png)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["modules"] > 40  # every module of the package was imported
    assert report["before"] == INLINE
    assert report["after_import"] == INLINE, "an abm module switched the matplotlib backend"
    assert report["after_write"] == INLINE, "writing a figure switched the matplotlib backend"
    # file writers draw on Figure objects with their own Agg canvas, never through pyplot
    assert report["pyplot_imported_by"] is None, report["pyplot_imported_by"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["figure_axes"] >= 4  # the four panels (and twin axes) were drawn
