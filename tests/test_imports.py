"""Every module of ``abm`` imports on its own, first, in a fresh interpreter: no import cycle that
only shows when a module other than ``abm.model`` is imported first (a notebook that starts with
``from abm.finance.instruments import ...`` once failed that way)."""

from __future__ import annotations

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


@pytest.mark.slow  # one interpreter per module
def test_every_module_imports_first_in_a_fresh_interpreter():
    script = (
        "import subprocess, sys\n"
        "failed = []\n"
        "for mod in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', 'import ' + mod], capture_output=True,"
        " text=True)\n"
        "    if r.returncode:\n"
        "        failed.append(mod + ': ' + r.stderr.strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *MODULES], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", out.stdout


def test_the_loan_book_imports_before_the_model():
    """The import order that broke: instruments first (it pulls in the agents package)."""
    r = subprocess.run(
        [sys.executable, "-c", "import abm.finance.instruments, abm.policy"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
