"""How the monthly loop scales with the number of borrowers: µs per agent-month, 1,000 to 20,000
borrowers (50,000 and 100,000 with ``--large``), as a ratio to Mesa's per node-step.

Run from the repository root (~1-2 minutes on 2 cores when quiet; ``--large`` adds ~3-4 minutes
and ~2-4 GB of memory)::

    PYTHONPATH=. python benchmarks/bench_scale.py                       # 1k .. 20k borrowers
    PYTHONPATH=. python benchmarks/bench_scale.py --large               # and 50k, 100k
    PYTHONPATH=. python benchmarks/bench_scale.py --sizes 2000 10000    # a subset
    PYTHONPATH=. python benchmarks/bench_scale.py --months 24 --out /tmp/scale.json

Each size is built as ``bench_build.py`` builds it: the packaged ``huge_network`` scenario (1,000
lenders, 60 buyers) with ``neoclouds.count`` = ``miners.count`` = borrowers / 2, seed 0. The model
is constructed for ``--months`` months (default 12) and its step loop is timed (wall
``perf_counter`` and CPU ``process_time``, the loop of ``bench_model.py``: a garbage collection
before, none forced during). µs per agent-month = loop seconds / (agents x months), agents being
all of them (borrowers, lenders, buyers). Mesa's ``VirusOnNetwork`` (1,000 nodes, degree 6, 60
steps; ``bench_model.py``'s reference and sampling code) is sampled before the first size and
after every size, in the same process; each row's ratio divides by the best Mesa sample (wall by
wall, CPU by CPU), so a row reads as "ours per agent-month over Mesa's per node-step" on the same
machine. The defaults of the run (borrowers and lenders) are reported per size: defaults carry a
large share of the month's work (estates, seizures, fire sales), so the curve is also a curve of
how many of them a world of that size has in its first months.

Writes ``benchmarks/results/scale_loop.json`` (atomically, or ``--out``) and prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):  # PYTHONPATH (e.g. another checkout of abm) still wins
    if p not in sys.path:
        sys.path.append(p)

from bench_build import SCENARIO, scenario  # noqa: E402
from bench_model import MESA_PARAMS, MesaReference, _environment, _step_loop, write_json  # noqa: E402

import abm  # noqa: E402
from abm.model import AIComputeCreditModel  # noqa: E402

SIZES = (1_000, 2_000, 5_000, 10_000, 20_000)
LARGE_SIZES = (50_000, 100_000)
MONTHS = 12


def bench_size(borrowers: int, months: int) -> dict:
    """Build one world of ``borrowers`` borrowers and time ``months`` months of its step loop."""
    cfg = scenario(borrowers)
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    model = AIComputeCreditModel(cfg, rng=0, months=months)
    build_wall, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    wall, cpu, per_month, rounds = _step_loop(model)
    agent_months = model.n * months
    out = {
        "borrowers": borrowers,
        "agents": int(model.n),
        "months": months,
        "build_wall_s": build_wall,
        "build_cpu_s": build_cpu,
        "loop_wall_s": wall,
        "loop_cpu_s": cpu,
        "per_agent_month_us": wall / agent_months * 1e6,
        "per_agent_month_cpu_us": cpu / agent_months * 1e6,
        "month_wall_s": per_month,
        "cascade_rounds": rounds,
        "defaults": dict(model.defaults),
        "borrower_defaults": int(model.defaults["miner"] + model.defaults["neocloud"]),
        "loans": int(model.loans.n),
        "gpu_lots": int(model.lots.n),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "load_average": os.getloadavg(),
    }
    del model
    gc.collect()
    return out


def table(rows: list[dict], mesa: dict) -> str:
    """Markdown table of the rows; ratios to Mesa's best per node-step (wall and CPU)."""
    mesa_us, mesa_cpu_us = mesa.get("per_node_step_us"), mesa.get("per_node_step_cpu_us")
    lines = [
        "| borrowers | agents | build s (CPU) | loop s (wall) | loop s (CPU) | µs per agent-month "
        "(wall) | ÷ Mesa node-step (wall) | ÷ Mesa (CPU) | borrower defaults | lender failures "
        "| load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['per_agent_month_us'] / mesa_us:.2f}" if mesa_us else "-"
        ratio_cpu = f"{r['per_agent_month_cpu_us'] / mesa_cpu_us:.2f}" if mesa_cpu_us else "-"
        lines.append(
            f"| {r['borrowers']:,} | {r['agents']:,} | {r['build_cpu_s']:.2f} "
            f"| {r['loop_wall_s']:.2f} | {r['loop_cpu_s']:.2f} | {r['per_agent_month_us']:.2f} "
            f"| {ratio} | {ratio_cpu} | {r['borrower_defaults']:,} | {r['defaults']['lender']:,} "
            f"| {r['load_average'][0]:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, metavar="BORROWERS")
    parser.add_argument(
        "--large", action="store_true", help="add 50,000 and 100,000 borrowers (~2-4 GB)"
    )
    parser.add_argument("--months", type=int, default=MONTHS, help="months per run (default 12)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scale_loop.json")
    args = parser.parse_args(argv)
    if args.months < 1:
        parser.error("--months: must be at least 1")
    sizes = args.sizes or list(SIZES) + (list(LARGE_SIZES) if args.large else [])
    AIComputeCreditModel(abm.load_scenario("baseline"), rng=0, months=2).run()  # warm-up
    ref = MesaReference()
    ref.sample(3)
    rows = []
    for borrowers in sizes:
        print(f"{borrowers:,} borrowers, {args.months} months ...", flush=True)
        rows.append(bench_size(borrowers, args.months))
        ref.sample(2)
    mesa = ref.summary()
    results = {
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": SCENARIO,
        "environment": _environment(),
        "mesa": mesa,
        "sizes": rows,
    }
    print()
    print(table(rows, mesa))
    if mesa.get("per_node_step_us"):
        print(
            f"\nMesa VirusOnNetwork({MESA_PARAMS['num_nodes']} nodes, degree "
            f"{MESA_PARAMS['avg_node_degree']}): {mesa['per_node_step_us']:.2f} µs per node-step "
            f"wall, {mesa['per_node_step_cpu_us']:.2f} CPU (best of {mesa['samples']} samples)"
        )
    write_json(results, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
