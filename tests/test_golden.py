"""Golden outputs: the tables of a fixed set of runs keep their sha256 (tests/golden/hashes.json).

A pure refactor or speed change must keep them. A model change regenerates them on purpose with
``python tests/golden/make_golden.py`` in the same commit and says why.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_GOLDEN = Path(__file__).parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", _GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)
STORED = json.loads((_GOLDEN / "hashes.json").read_text())


def test_golden_set_is_the_declared_one():
    assert set(STORED["runs"]) == {make_golden.run_key(*r) for r in make_golden.RUNS}


@pytest.mark.parametrize("run", make_golden.RUNS, ids=lambda r: make_golden.run_key(*r))
def test_outputs_match_golden_hashes(run):
    got = make_golden.hashes_of(*run)
    want = STORED["runs"][make_golden.run_key(*run)]
    changed = [f for f in make_golden.FILES if got[f] != want[f]]
    assert not changed, (
        f"{make_golden.run_key(*run)}: {changed} changed; if the model changed on purpose, run "
        f"python tests/golden/make_golden.py and say why in the commit (hashes made with "
        f"{STORED['versions']})"
    )
