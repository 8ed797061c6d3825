"""The work of one sweep run, as a top-level function a Dask worker (spawned process) can import.

``run_task`` never raises for a failing model run: it returns the traceback, so the sweep records
the failure and goes on. The environment variable ``ABM_SWEEP_FAULTS`` injects faults for tests
("raise:3,exit:5": run 3 raises, run 5 kills its worker process).
"""

from __future__ import annotations

import os
import time
import traceback

STATUS_OK = "ok"
STATUS_FAILED = "failed"


def _injected_fault(run_id: int) -> None:
    spec = os.environ.get("ABM_SWEEP_FAULTS", "")
    for item in filter(None, spec.split(",")):
        kind, _, rid = item.partition(":")
        if rid.strip() == str(run_id):
            if kind == "raise":
                raise RuntimeError(f"fault injected by ABM_SWEEP_FAULTS into run {run_id}")
            if kind == "exit":
                os._exit(17)  # the worker process dies mid-task, as with an OOM kill


def run_task(task: dict, base_config: dict) -> dict:
    """Run one (point, replicate) of a sweep and return its row (and tables when kept).

    Returns ``{"row": dict, "timeseries": DataFrame | None, "agents": DataFrame | None,
    "traceback": str | None}``; ``row`` holds the run's identity, parameter values, metrics,
    ``status`` and ``wall_s``."""
    from abm.config import apply_overrides, validate
    from abm.results import run
    from abm.sweep.metrics import METRICS, run_metrics

    t0 = time.perf_counter()
    row = {
        "run_id": task["run_id"],
        "point": task["point"],
        "replicate": task["replicate"],
        "seed": task["seed"],
        **task["params"],
    }
    out = {"row": row, "timeseries": None, "agents": None, "traceback": None}
    try:
        _injected_fault(task["run_id"])
        cfg = apply_overrides(base_config, task["overrides"])
        validate(cfg)
        # run() releases the finished model from Mesa's registry (abm.results.release_model),
        # so a worker's memory stays flat over thousands of runs; the result goes out of scope
        # at the end of this function.
        result = run(cfg, seed=task["seed"], months=task["months"])
        row.update(run_metrics(result))
        row["status"] = STATUS_OK
        row["error"] = ""
        if task["keep_timeseries"]:
            ts = result.timeseries.copy()
            ts.insert(0, "run_id", task["run_id"])
            out["timeseries"] = ts
        if task["keep_agents"]:
            ag = result.agents.copy()
            ag.insert(0, "run_id", task["run_id"])
            out["agents"] = ag
    except Exception as exc:  # a failing run is data, not a crash of the sweep
        row.update({name: float("nan") for name in METRICS})
        row["status"] = STATUS_FAILED
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        out["traceback"] = traceback.format_exc()
    row["wall_s"] = time.perf_counter() - t0
    return out


# On Dask the base scenario reaches each worker process once, through a worker plugin (also on
# workers that join or restart later), instead of travelling with every task: tasks then carry
# no dependencies, so the scheduler queues them and hands a worker one run at a time.
_BASE_CONFIGS: dict[str, dict] = {}


def run_task_on_worker(task: dict, tag: str) -> dict:
    """Dask entry point: ``run_task`` with the base scenario the plugin left in this process."""
    try:
        base = _BASE_CONFIGS[tag]
    except KeyError:
        raise RuntimeError(f"worker has no base scenario {tag!r}: plugin not set up") from None
    return run_task(task, base)
