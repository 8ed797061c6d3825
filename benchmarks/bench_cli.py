"""How long the ``abm`` command takes, as a user sees it: wall time of fresh processes.

    PYTHONPATH=. python benchmarks/bench_cli.py [--repeat 5] [--compare SNAPSHOT_PATH]

Each command runs ``--repeat`` times in a new interpreter (``python -m abm.cli ...``, so the
pyenv shim in front of the ``abm`` script is not counted); the best wall time counts, and the
CPU time of that process and the children it reaped, i.e. the figure process (user + system,
from ``os.wait4``), is shown next to it: on a shared
machine wall time rises with the load, CPU time much less. ``abm run`` writes the baseline
(60 months, seed 0) with its figure into a temporary folder. Then one breakdown of ``abm run``
in one process, as ``abm.cli.cmd_run`` does it (imports, fork of the figure process, model,
tables while the child draws, the wait for the figure), followed by the in-process drawing as a
reference (what the wait would be without the figure process). Targets (issue 16): ``abm run`` < 2 s,
``abm scenarios`` and ``abm --help`` < 1 s. Always exits 0: benchmarks report, they do not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"--help": 1.0, "scenarios": 1.0, "run": 2.0}

BREAKDOWN = r"""
import json, os, sys, time, tempfile
from pathlib import Path
t = {"start": time.perf_counter()}
import abm.cli
t["import abm.cli"] = time.perf_counter()
abm.cli.import_mesa()
t["import Mesa (no SciPy)"] = time.perf_counter()
from abm.io import write_run
from abm.results import run
t["import model, io"] = time.perf_counter()
from abm.viz.overview_process import held_signals, start_overview_process
with held_signals():
    drawer = start_overview_process()
t["fork figure process"] = time.perf_counter()
result = run("baseline", seed=0)
t["run the model"] = time.perf_counter()
out = Path(tempfile.mkdtemp()) / "run"
if drawer is not None:
    drawer.submit(result)
write_run(result, out, figure=None)
t["write tables (child draws)"] = time.perf_counter()
if drawer is not None:
    png = drawer.png_bytes()
    drawer.close()
t["wait for overview.png"] = time.perf_counter()
from abm.viz.overview import overview_figure
t["in-process reference: import matplotlib, viz"] = time.perf_counter()
overview_figure(result, out / "overview.png")
t["in-process reference: draw overview.png"] = time.perf_counter()
keys = list(t)
print(json.dumps({k: t[k] - t[p] for p, k in zip(keys, keys[1:])}))
"""


def timed_process(args: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one child process running ``args``, in the folder ``env`` puts first
    on the path (``python -m`` also puts the working folder on it)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, cwd=env["PYTHONPATH"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} exited {proc.returncode}: {proc.stderr.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_cli.json"))
    parser.add_argument(
        "--compare",
        metavar="PATH",
        default=None,
        help="also time the abm package found on PATH (e.g. a `git archive` snapshot of an older "
        "commit), interleaved with this checkout's, and print the ratios",
    )
    args = parser.parse_args(argv)
    cmd = [sys.executable, "-m", "abm.cli"]
    results = {}
    paths = {"this": str(ROOT)} | ({"compare": args.compare} if args.compare else {})
    samples: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "--help": [*cmd, "--help"],
            "scenarios": [*cmd, "scenarios"],
            "run": [*cmd, "run", "--out", str(Path(tmp) / "run"), "--no-progress"],
        }
        for _ in range(max(1, args.repeat)):  # interleaved, so a slow spell hits every command
            for label, path in paths.items():
                env = {**os.environ, "PYTHONPATH": path}
                for name, command in commands.items():
                    key = name if label == "this" else f"{name} [{label}]"
                    samples.setdefault(key, []).append(timed_process(command, env))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print(f"abm CLI, best of {args.repeat}; {os.cpu_count()} cores, load average {load}")
    print(f"{'command':<24} {'wall s':>8} {'CPU s':>8} {'target s':>9}  verdict")
    for name, runs in samples.items():
        wall, cpu = min(runs)
        target = TARGETS_S[name.split(" [")[0]]
        verdict = "PASS" if wall < target else "FAIL"
        print(f"abm {name:<20} {wall:8.2f} {cpu:8.2f} {target:9.1f}  {verdict}")
        results[name] = {"wall_s": [w for w, _ in runs], "cpu_s": [c for _, c in runs]}
    if args.compare:
        for name in commands:
            this, other = min(samples[name]), min(samples[f"{name} [compare]"])
            print(
                f"abm {name}: compare / this = {other[0] / this[0]:.2f} (wall), "
                f"{other[1] / this[1]:.2f} (CPU)"
            )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", BREAKDOWN], env=env, capture_output=True, text=True, check=True
    )
    breakdown = json.loads(proc.stdout.strip().splitlines()[-1])
    print("abm run, in one process (s): " + ", ".join(f"{k} {v:.3f}" for k, v in breakdown.items()))
    record = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "load": load},
        "repeat": args.repeat,
        "compare": args.compare,
        "commands": results,
        "run_breakdown_s": breakdown,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(record, indent=1))
    os.replace(tmp_out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
