"""Every module of ``abm`` imports on its own, first, in a fresh interpreter: no import cycle that
only shows when a module other than ``abm.model`` is imported first (a notebook that starts with
``from abm.finance.instruments import ...`` once failed that way)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import abm

PACKAGE_DIR = Path(abm.__file__).parent
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE_DIR.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE_DIR.rglob("*.py")
    if p.name != "__main__.py"
)


def _import_alone(module: str) -> str:
    """'' if ``module`` imports first in a fresh interpreter, else its name and last error line."""
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    return f"{module}: {r.stderr.strip().splitlines()[-1]}" if r.returncode else ""


@pytest.mark.slow  # one interpreter per module, as many at once as there are cores
def test_every_module_imports_first_in_a_fresh_interpreter():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        failed = [f for f in pool.map(_import_alone, MODULES) if f]
    assert failed == [], "\n".join(failed)


def test_the_loan_book_imports_before_the_model():
    """The import order that broke: instruments first (it pulls in the agents package)."""
    r = subprocess.run(
        [sys.executable, "-c", "import abm.finance.instruments, abm.policy"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
