"""A 200-run sweep three ways, in one process: serial, Dask with 2 workers, and mesa.batch_run.

    PYTHONPATH=. python benchmarks/bench_sweep.py [--runs 200] [--workers 2] [--quick]

Every executor runs the same 200 (config, seed) pairs of the baseline scenario (60 months). The
sweep timings include everything ``abm sweep`` does per run (metrics, writing a Parquet part) and,
for Dask, starting the LocalCluster. ``mesa.batch_run`` runs the same models and keeps only the
datacollector's last row (no cascade metrics, nothing written), once with 1 process and once with
``--workers`` processes. Target (issue 4): Dask with 2 workers at least 1.6x faster than serial.
Results are printed and written to benchmarks/results/bench_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from abm.config import load_scenario
from abm.model import AIComputeCreditModel
from abm.sweep import load_experiment, run_sweep

TARGET_SPEEDUP = 1.6


class BatchModel(AIComputeCreditModel):
    """The model as mesa.batch_run builds it: keyword parameters only (one sweep task)."""

    def __init__(self, task: dict):
        cfg = load_scenario("baseline", task["overrides"] or None)
        super().__init__(cfg, rng=task["seed"], months=task["months"])


def experiment(runs: int) -> dict:
    reps = 4
    points = max(1, runs // reps)
    values = [round(0.05 + 0.45 * i / max(points - 1, 1), 6) for i in range(points)]
    return {
        "name": "bench_sweep",
        "scenario": "baseline",
        "master_seed": 4242,
        "replications": reps,
        "parameters": [
            {"name": "rent_deflation", "path": "compute.rent_deflation_per_year", "values": values}
        ],
    }


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="40 runs")
    args = parser.parse_args(argv)
    runs = 40 if args.quick else args.runs
    exp = load_experiment(experiment(runs))
    tasks = exp.tasks()
    print(f"{exp.n_runs} runs of baseline x {exp.months} months; {os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t_serial, _ = timed(
            lambda: run_sweep(exp, Path(tmp) / "serial", executor="serial", progress=False)
        )
        rows.append(("abm sweep, serial", t_serial))
        t_dask, _ = timed(
            lambda: run_sweep(
                exp, Path(tmp) / "dask", executor="dask", workers=args.workers, progress=False
            )
        )
        rows.append((f"abm sweep, Dask LocalCluster x{args.workers}", t_dask))
        a = pd.read_parquet(Path(tmp) / "serial" / "runs.parquet").drop(columns="wall_s")
        b = pd.read_parquet(Path(tmp) / "dask" / "runs.parquet").drop(columns="wall_s")
        pd.testing.assert_frame_equal(a, b)  # same runs, same results
        per_run = pd.read_parquet(Path(tmp) / "serial" / "runs.parquet")["wall_s"].mean()

    from mesa.batchrunner import batch_run

    for procs in (1, args.workers):
        t, _ = timed(
            lambda procs=procs: batch_run(
                BatchModel,
                {"task": tasks},
                number_processes=procs,
                iterations=1,
                max_steps=10_000,
                display_progress=False,
            )
        )
        rows.append((f"mesa.batch_run, {procs} process{'es' if procs > 1 else ''}", t))

    print(f"{'executor':42s} {'wall s':>8s} {'runs/s':>8s} {'x serial':>9s}")
    for name, t in rows:
        print(f"{name:42s} {t:8.2f} {exp.n_runs / t:8.2f} {t_serial / t:9.2f}")
    speedup = t_serial / t_dask
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(
        f"Dask x{args.workers} speed-up over serial: {speedup:.2f} ({verdict} target {TARGET_SPEEDUP})"
    )
    print(f"mean model+metrics time per run: {per_run:.3f} s")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_sweep.json").write_text(
        json.dumps(
            {
                "runs": exp.n_runs,
                "workers": args.workers,
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "timings_s": dict(rows),
                "dask_speedup_over_serial": speedup,
                "target": TARGET_SPEEDUP,
                "mean_run_s": per_run,
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if speedup >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
