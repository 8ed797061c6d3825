"""A 200-run sweep three ways, in one process: serial, Dask with 2 workers, and mesa.batch_run.

    PYTHONPATH=. python benchmarks/bench_sweep.py [--runs 200] [--workers 2] [--repeat 2] [--no-batch-run] [--quick]

Every executor runs the same 200 (config, seed) pairs of the baseline scenario (60 months). The
sweep timings include everything ``abm sweep`` does per run (metrics, writing its part) and,
for Dask, starting the LocalCluster. ``mesa.batch_run`` runs the same models and keeps only the
datacollector's last row (no cascade metrics, nothing written), once with 1 process and once with
``--workers`` processes. Target (issue 4): Dask with 2 workers at least 1.6x faster than serial.
Serial and Dask run ``--repeat`` times (default 2), alternating which goes first, and the best
of each counts. Results are printed and written to benchmarks/results/bench_sweep.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from abm.config import load_scenario
from abm.io import write_json_atomic
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


def sweep_once(exp, out: Path, executor: str, workers: int) -> float:
    t, _ = timed(lambda: run_sweep(exp, out, executor=executor, workers=workers, progress=False))
    return t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="serial/Dask pairs (default 2)")
    parser.add_argument("--no-batch-run", action="store_true", help="skip mesa.batch_run")
    parser.add_argument("--quick", action="store_true", help="40 runs, one pair")
    args = parser.parse_args(argv)
    runs = 40 if args.quick else args.runs
    repeat = 1 if args.quick else max(1, args.repeat)
    exp = load_experiment(experiment(runs))
    tasks = exp.tasks()
    print(f"{exp.n_runs} runs of baseline x {exp.months} months; {os.cpu_count()} cores")
    serial, dask = [], []
    per_run = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeat):
            # alternate the order, so a drift in machine speed hits both executors alike
            order = ("serial", "dask") if rep % 2 == 0 else ("dask", "serial")
            for executor in order:
                out = Path(tmp) / f"{executor}-{rep}"
                t = sweep_once(exp, out, executor, args.workers)
                (serial if executor == "serial" else dask).append(t)
            a = pd.read_parquet(Path(tmp) / f"serial-{rep}" / "runs.parquet")
            b = pd.read_parquet(Path(tmp) / f"dask-{rep}" / "runs.parquet")
            pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"))
            per_run = float(a["wall_s"].mean())
            print(
                f"  pair {rep + 1}: serial {serial[-1]:.2f} s, Dask x{args.workers} "
                f"{dask[-1]:.2f} s, ratio {serial[-1] / dask[-1]:.2f}",
                flush=True,
            )
    t_serial, t_dask = min(serial), min(dask)
    rows = [
        ("abm sweep, serial", t_serial),
        (f"abm sweep, Dask LocalCluster x{args.workers}", t_dask),
    ]

    if not args.no_batch_run:
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

    print(f"best of {repeat}" if repeat > 1 else "")
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
    payload = {
        "runs": exp.n_runs,
        "workers": args.workers,
        "repeat": repeat,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "serial_s": serial,
        "dask_s": dask,
        "timings_s": dict(rows),
        "dask_speedup_over_serial": speedup,
        "paired_speedups": [s / d for s, d in zip(serial, dask, strict=True)],
        "target": TARGET_SPEEDUP,
        "mean_run_s": per_run,
    }
    write_json_atomic(payload, out / "bench_sweep.json")
    return 0  # benchmarks report; they do not gate


if __name__ == "__main__":
    sys.exit(main())
