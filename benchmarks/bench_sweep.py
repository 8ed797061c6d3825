"""A 200-run sweep on each executor, in one process: serial, forked processes, Dask, mesa.batch_run.

    PYTHONPATH=. python benchmarks/bench_sweep.py [--runs 200] [--workers 2] [--repeat 2]
        [--executors serial,processes,dask] [--no-batch-run] [--quick]

Every executor runs the same 200 (config, seed) pairs of the baseline scenario (60 months). The
sweep timings include everything ``abm sweep`` does per run (metrics, writing its part) and
starting and stopping the executor's workers (forking them, or the Dask LocalCluster).
``mesa.batch_run`` runs the same models and keeps only the datacollector's last row (no cascade
metrics, nothing written), once with 1 process and once with ``--workers`` processes.
Each executor runs ``--repeat`` times, the order rotated between repetitions so that a drift in
machine speed hits every executor alike; the best of each counts, and each repetition's own
ratios to serial are printed too. Every executor's ``runs.parquet`` is checked equal to the
serial one (all columns but ``wall_s``). Start-up is measured on its own: the wall time to start
the workers and get one run back from each, minus the longest of those runs.
The CPU time of each sweep (this process and its reaped children) is recorded too: on a shared
machine the wall-time ratio depends on how busy the other sessions are, the CPU ratio much less.
Target (issue 16): ``--workers 2`` at least 1.8x faster than serial; start-up under 2 s.
Results are printed and written to benchmarks/results/bench_sweep.json; always exits 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from abm.config import load_scenario
from abm.io import write_json_atomic
from abm.model import AIComputeCreditModel
from abm.sweep import load_experiment, run_sweep

TARGET_SPEEDUP = 1.8
TARGET_START_S = 2.0
EXECUTORS = ("serial", "processes", "dask")


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


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (forked workers; not the workers of
    Dask's forkserver, which are the server's children)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def sweep_once(exp, out: Path, executor: str, workers: int) -> tuple[float, float]:
    """(wall s, CPU s) of one sweep."""
    c0 = cpu_s()
    t, _ = timed(lambda: run_sweep(exp, out, executor=executor, workers=workers, progress=False))
    return t, cpu_s() - c0


def start_up_s(exp, executor: str, workers: int) -> float:
    """Seconds to start ``workers`` workers and get one run back from each, minus the longest
    of those runs: the executor's own start-up (imports, forks, cluster handshakes)."""
    from abm.sweep.executors import dask_client, run_on_dask
    from abm.sweep.processes import run_on_processes

    tasks = exp.tasks()[:workers]
    t0 = time.perf_counter()
    if executor == "processes":
        outputs = [o for _, o in run_on_processes(tasks, exp.base_config, workers)]
    else:
        with dask_client(workers, None) as client:
            outputs = [o for _, o in run_on_dask(tasks, exp.base_config, client, "start")]
    wall = time.perf_counter() - t0
    return wall - max(o["row"]["wall_s"] for o in outputs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="repetitions (default 2)")
    parser.add_argument(
        "--executors", default=",".join(EXECUTORS), help="comma-separated, serial first"
    )
    parser.add_argument("--no-batch-run", action="store_true", help="skip mesa.batch_run")
    parser.add_argument("--quick", action="store_true", help="40 runs, one repetition")
    args = parser.parse_args(argv)
    runs = 40 if args.quick else args.runs
    repeat = 1 if args.quick else max(1, args.repeat)
    executors = [e for e in args.executors.split(",") if e]
    if executors[0] != "serial" or any(e not in EXECUTORS for e in executors):
        parser.error(f"--executors: serial first, then any of {EXECUTORS[1:]}")
    exp = load_experiment(experiment(runs))
    tasks = exp.tasks()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print(
        f"{exp.n_runs} runs of baseline x {exp.months} months; {os.cpu_count()} cores; "
        f"load average {load}"
    )
    times: dict[str, list[float]] = {e: [] for e in executors}
    cpus: dict[str, list[float]] = {e: [] for e in executors}
    per_run = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeat):
            order = executors[rep % len(executors) :] + executors[: rep % len(executors)]
            for executor in order:
                out = Path(tmp) / f"{executor}-{rep}"
                wall, cpu = sweep_once(exp, out, executor, args.workers)
                times[executor].append(wall)
                cpus[executor].append(cpu)
            ref = pd.read_parquet(Path(tmp) / f"serial-{rep}" / "runs.parquet")
            for executor in executors[1:]:
                other = pd.read_parquet(Path(tmp) / f"{executor}-{rep}" / "runs.parquet")
                pd.testing.assert_frame_equal(
                    ref.drop(columns="wall_s"), other.drop(columns="wall_s")
                )
            per_run = float(ref["wall_s"].mean())
            print(
                f"  repetition {rep + 1}: "
                + ", ".join(f"{e} {times[e][-1]:.2f} s" for e in executors)
                + "; x serial: "
                + ", ".join(f"{e} {times['serial'][-1] / times[e][-1]:.2f}" for e in executors[1:]),
                flush=True,
            )
    best = {e: min(v) for e, v in times.items()}
    t_serial = best["serial"]
    rows = [("abm sweep, serial", t_serial)]
    names = {"processes": "forked processes", "dask": "Dask LocalCluster"}
    rows += [(f"abm sweep, {names[e]} x{args.workers}", best[e]) for e in executors[1:]]
    starts = {e: start_up_s(exp, e, args.workers) for e in executors[1:]}

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
    speedups = {e: t_serial / best[e] for e in executors[1:]}
    for e in executors[1:]:
        verdict = "meets" if speedups[e] >= TARGET_SPEEDUP else "MISSES"
        start_verdict = "meets" if starts[e] < TARGET_START_S else "MISSES"
        print(
            f"{e} x{args.workers}: {speedups[e]:.2f}x serial ({verdict} target {TARGET_SPEEDUP}); "
            f"start-up {starts[e]:.2f} s ({start_verdict} target {TARGET_START_S} s)"
        )
    print(f"mean model+metrics time per run: {per_run:.3f} s")
    # CPU per run does not depend on the machine's load the way wall time does: equal CPU per
    # run in workers and in serial means a free core per worker gives the full speed-up
    cpu_ratio = {
        e: min(cpus[e]) / min(cpus["serial"]) for e in executors[1:] if e != "dask"
    }  # Dask's workers are not our children: their CPU is not counted
    for e, ratio in cpu_ratio.items():
        print(f"{e}: CPU time of the whole sweep / serial's = {ratio:.2f} (1.00: no overhead)")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    payload = {
        "runs": exp.n_runs,
        "workers": args.workers,
        "repeat": repeat,
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "python": platform.python_version(),
        "wall_s": times,
        "timings_s": dict(rows),
        "speedup_over_serial": speedups,
        "paired_speedups": {
            e: [s / d for s, d in zip(times["serial"], times[e], strict=True)]
            for e in executors[1:]
        },
        "start_up_s": starts,
        "cpu_s": cpus,
        "cpu_over_serial": cpu_ratio,
        "target_speedup": TARGET_SPEEDUP,
        "target_start_s": TARGET_START_S,
        "mean_run_s": per_run,
    }
    write_json_atomic(payload, out / "bench_sweep.json")
    return 0  # benchmarks report; they do not gate


if __name__ == "__main__":
    sys.exit(main())
