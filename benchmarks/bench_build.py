"""How world building scales with the number of borrowers: a table from 1,000 to 100,000 borrowers.

Run from the repository root (~2-4 minutes on 2 cores when quiet)::

    PYTHONPATH=. python benchmarks/bench_build.py                      # 1k .. 100k borrowers
    PYTHONPATH=. python benchmarks/bench_build.py --sizes 1000 10000   # a subset
    PYTHONPATH=. python benchmarks/bench_build.py --reps 1             # one build per size
    PYTHONPATH=. python benchmarks/bench_build.py --out /tmp/build.json

Each size is the packaged ``huge_network`` scenario (1,000 lenders, 60 buyers) with
``neoclouds.count`` = ``miners.count`` = borrowers / 2, seed 0; only the borrower count varies, so
the curve shows how the build grows with borrowers at a fixed lender population. Per size, the best
of k constructions (k = ``--reps``, default 3, up to 20,000 borrowers, else 1) of ``AIComputeCreditModel`` is timed
(wall ``perf_counter`` and CPU ``process_time``), split into the world build (``abm.world``'s build
functions, wrapped with timers at runtime) and the rest (agent table, Mesa agents and network space,
lending graph, snapshots). Mesa's ``VirusOnNetwork`` (1,000 nodes, degree 6, 60 steps, the
reference of ``bench_model.py``) is sampled before and after every size so that each row can be
read as a ratio in the same process: the machine is shared, and seconds move with its load.

Writes ``benchmarks/results/build_scaling.json`` (atomically) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):  # PYTHONPATH (e.g. another checkout of abm) still wins
    if p not in sys.path:
        sys.path.append(p)

from bench_model import MESA_PARAMS, MesaReference, _environment, write_json  # noqa: E402

import abm  # noqa: E402
import abm.world as world  # noqa: E402
from abm.model import AIComputeCreditModel  # noqa: E402

SIZES = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
SCENARIO = "huge_network"
BUILD_FUNCTIONS = (
    "build_neoclouds",
    "build_contracts",
    "build_miners",
    "build_leases",
    "build_miner_debt",
    "build_buyers",
    "initial_cash_for_borrowers",
    "build_lender_funding",
)


def _timed_world() -> tuple[dict, list]:
    """Wrap abm.world's build functions with wall-clock timers (the model calls them by module
    attribute); returns the accumulator and the originals to restore."""
    seconds: dict[str, float] = {}
    originals = []
    for name in BUILD_FUNCTIONS:
        fn = getattr(world, name)
        originals.append((name, fn))

        def timed(*args, _fn=fn, _name=name, **kwargs):
            t0 = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - t0

        setattr(world, name, timed)
    return seconds, originals


def build_once(cfg: dict) -> dict:
    """Construct the model once; wall, CPU and world-build seconds, sizes of the books."""
    seconds, originals = _timed_world()
    try:
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        model = AIComputeCreditModel(cfg, rng=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for name, fn in originals:
            setattr(world, name, fn)
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "world_s": sum(seconds.values()),
        "world_by_function_s": dict(seconds),
        "agents": int(model.n),
        "loans": int(model.loans.n),
        "gpu_lots": int(model.lots.n),
        "contracts": int(model.contracts.n),
    }
    del model
    return out


def scenario(borrowers: int) -> dict:
    """``huge_network`` with ``borrowers`` borrowers, half of them neoclouds."""
    half = borrowers // 2
    return abm.load_scenario(
        SCENARIO, overrides={"neoclouds.count": half, "miners.count": borrowers - half}
    )


def bench_size(borrowers: int, reps: int, ref: MesaReference) -> dict:
    cfg = scenario(borrowers)
    runs = []
    for _ in range(reps):
        runs.append(build_once(cfg))
        ref.sample(1)
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        "borrowers": borrowers,
        "repetitions": reps,
        **best,
        "cpu_s_best": min(r["cpu_s"] for r in runs),
        "wall_s_all": [r["wall_s"] for r in runs],
        "load_average": os.getloadavg(),
    }


def table(rows: list[dict], mesa_us: float | None) -> str:
    lines = [
        "| borrowers | agents | loans | GPU lots | build s (wall) | CPU s | world s | µs per agent "
        "| µs per agent (CPU) | per agent ÷ Mesa node-step | load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_agent = r["wall_s"] / r["agents"] * 1e6
        per_agent_cpu = r["cpu_s_best"] / r["agents"] * 1e6
        ratio = f"{per_agent / mesa_us:.1f}" if mesa_us else "-"
        lines.append(
            f"| {r['borrowers']:,} | {r['agents']:,} | {r['loans']:,} | {r['gpu_lots']:,} "
            f"| {r['wall_s']:.2f} | {r['cpu_s_best']:.2f} | {r['world_s']:.2f} | {per_agent:.0f} "
            f"| {per_agent_cpu:.0f} | {ratio} | {r['load_average'][0]:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), metavar="BORROWERS")
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions up to 20,000 borrowers (default 3)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "build_scaling.json")
    args = parser.parse_args(argv)
    AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)  # warm-up: imports, first calls
    ref = MesaReference()
    ref.sample(3)
    rows = []
    for borrowers in args.sizes:
        reps = args.reps if borrowers <= 20_000 else 1
        print(f"building {borrowers:,} borrowers (best of {reps}) ...", flush=True)
        rows.append(bench_size(borrowers, reps, ref))
    mesa = ref.summary()
    mesa_us = mesa.get("per_node_step_us")
    results = {
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": SCENARIO,
        "environment": _environment(),
        "mesa": mesa,
        "sizes": rows,
    }
    print()
    print(table(rows, mesa_us))
    if mesa_us:
        print(
            f"\nMesa VirusOnNetwork({MESA_PARAMS['num_nodes']} nodes, degree "
            f"{MESA_PARAMS['avg_node_degree']}): {mesa_us:.2f} µs per node-step "
            f"(best of {mesa['samples']} samples)"
        )
    write_json(results, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
