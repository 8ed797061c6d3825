"""Memory stays flat over many runs in one process (Mesa 3.3.1's agent registry worked around).

Mesa 3.3.1 keeps every model alive through ``mesa.Agent._ids`` (a class-level dict keyed by the
model; Mesa issue #3179). ``abm.results.release_model`` removes the agents and that entry once a
run's tables are out; ``abm.run`` and the sweep's task path rely on it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import weakref

import pytest
from mesa.agent import Agent

import abm
from abm.config import load_scenario
from abm.model import AIComputeCreditModel
from abm.results import release_model


def _rss_mb() -> float:
    """Resident memory of this process after a full collection, with freed heap returned to
    the OS (glibc keeps freed blocks otherwise, which is allocator caching, not retention)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: measure as is
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_mesa_registry_keeps_a_model_alive_until_it_is_released():
    cfg = load_scenario("baseline")
    kept = AIComputeCreditModel(cfg, rng=1, months=1)
    kept.step()
    kept_ref = weakref.ref(kept)
    del kept
    gc.collect()
    # the pinned Mesa's leak: nothing of ours refers to the model, the registry does
    assert kept_ref() is not None and kept_ref() in Agent._ids
    release_model(kept_ref())
    gc.collect()
    assert kept_ref() is None


def test_run_releases_its_model_and_the_result_still_reads_it():
    result = abm.run("baseline", seed=3, months=2)
    model = result.model
    assert model not in Agent._ids and len(model.agents) == 0
    # the model's own state is intact for callers that read it (analysis, invariant tests)
    assert model.loans.principal_usd.shape[0] > 0 and model.n == len(model.agent_objects)
    assert result.cascade_metrics()["debtrank_start"] is not None
    ref = weakref.ref(model)
    del model, result
    gc.collect()
    assert ref() is None


_THOUSAND_RUNS = """
import sys
sys.path.insert(0, {tests!r})
from test_memory import _rss_mb
from abm.config import load_scenario
from abm.sweep.tasks import STATUS_OK, run_task

base = load_scenario("baseline")
rss = {{}}
for i in range(1, 1001):
    task = {{
        "run_id": i, "point": 0, "replicate": i, "seed": i, "months": 1, "overrides": {{}},
        "params": {{}}, "keep_timeseries": False, "keep_agents": False,
    }}
    out = run_task(task, base)
    assert out["row"]["status"] == STATUS_OK, out["traceback"]
    if i in (100, 1000):
        rss[i] = _rss_mb()
print(rss[1000] - rss[100])
"""


@pytest.mark.slow
def test_a_thousand_sweep_runs_keep_resident_memory_flat():
    """1,000 one-month baseline runs through the sweep's task path: resident memory after run
    1,000 is within 8 MB of that after run 100 (without the release: ~0.33 MB per run, +300 MB).
    Measured in a fresh interpreter, so that what earlier tests of the session left in the heap
    (and its fragmentation) does not count: it grew 10-13 MB after test_cli and test_reproduce in
    one process, with the same code."""
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": str(Path(tests).parent)}
    done = subprocess.run(
        [sys.executable, "-c", _THOUSAND_RUNS.format(tests=tests)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    growth = float(done.stdout.strip().splitlines()[-1])
    assert growth < 8.0, f"resident memory grew {growth:.1f} MB over 900 runs"
