"""Where the large-network run spends its time: a wall-clock phase breakdown and a cProfile.

Run from the repository root (~6 s)::

    PYTHONPATH=. python benchmarks/profile_model.py [--top 30] [--prof-out /tmp/large.prof]

Two passes over the same synthetic large network as ``bench_model.py`` (2,000 borrowers, 200
lenders, 60 buyers, 60 months, seed 0):

1. phase breakdown: the schedule's phase functions (and the debt-phase helpers) are wrapped with
   ``perf_counter`` timers at runtime, no profiler attached, so the shares are real wall time
   (nested entries are inclusive: ``_covenants`` contains ``_try_equity_cure``);
2. cProfile of the step loop, sorted by cumulative and by internal time. cProfile inflates the cost
   of cheap, very frequent Python calls (e.g. ``Book.__getattr__``), so read its shares against the
   phase breakdown.

The report is printed and written to ``benchmarks/results/profile_large.txt``. Nothing under
``abm/`` is modified; the wrappers are removed again before the cProfile pass.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import io
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):  # PYTHONPATH (e.g. another checkout of abm) still wins
    if p not in sys.path:
        sys.path.append(p)

from bench_model import SEED, _git, large_config  # noqa: E402

from abm.model import AIComputeCreditModel  # noqa: E402

TIMED = (
    ("abm.phases.environment", "shocks_and_markets"),
    ("abm.phases.operations", "run"),
    ("abm.phases.debt_service", "service"),
    ("abm.phases.debt", "tests_and_responses"),
    ("abm.phases.debt", "_maturities"),
    ("abm.phases.debt", "_margin_calls"),
    ("abm.phases.covenants", "check_covenants"),
    ("abm.phases.covenants", "_borrowing_base_sweep"),
    ("abm.phases.covenants", "mark_parents"),
    ("abm.phases.covenants", "_report_breaches"),
    ("abm.phases.covenants", "repay_in_full"),
    ("abm.agents.lender:Lenders", "update_appetite"),
    ("abm.agents.lender:Lenders", "decide_rollovers"),
    ("abm.agents.buyer:Buyers", "bid_schedules"),
    ("abm.finance.loans:LoanBook", "repay_in_full"),
    ("abm.phases.market", "secondary_round"),
    ("abm.phases.market", "update_marks"),
    ("abm.phases.debt_service", "settle_arrears"),
    ("abm.phases.debt_service", "unpaid_suppliers"),
    ("abm.finance.resolution", "default_borrower"),
    ("abm.finance.resolution", "distribute_all_estates"),
    ("abm.phases.lenders", "run"),
    ("abm.phases.investment", "run"),
    ("abm.phases.collect", "collect"),
)


def phase_breakdown(cfg: dict) -> str:
    seconds, calls, originals = Counter(), Counter(), []

    def wrap(module, name):
        fn = getattr(module, name)
        key = f"{module.__name__.removeprefix('abm.')}.{name}"

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[key] += time.perf_counter() - t0
                calls[key] += 1

        originals.append((module, name, fn))
        setattr(module, name, timed)

    for mod_name, name in TIMED:
        mod_name, _, class_name = mod_name.partition(":")  # "module:Class" times a method
        module = importlib.import_module(mod_name)
        if class_name:
            module = getattr(module, class_name)
        if hasattr(module, name):
            wrap(module, name)
    try:
        t0 = time.perf_counter()
        model = AIComputeCreditModel(cfg, rng=SEED)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(model.months):
            model.step()
        loop = time.perf_counter() - t0
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
    lines = [
        f"setup {setup:.3f} s, step loop {loop:.3f} s (wall, no profiler; shares of the loop)",
        f"{'seconds':>9} {'share':>7} {'calls':>9}  function",
    ]
    for key, s in seconds.most_common():
        lines.append(f"{s:9.3f} {s / loop:7.1%} {calls[key]:9d}  {key}")
    events = Counter(row[2] for row in model.events.rows)
    lines.append("")
    lines.append(
        f"at the end: {model.loans.n} loans, {model.lots.n} GPU lots, "
        f"{len(model.events.rows)} events; most frequent events: "
        + ", ".join(f"{k} {v}" for k, v in events.most_common(6))
    )
    return "\n".join(lines)


def cprofile(cfg: dict, top: int, prof_out: Path | None) -> str:
    model = AIComputeCreditModel(cfg, rng=SEED)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(model.months):
        model.step()
    prof.disable()
    if prof_out is not None:
        prof.dump_stats(str(prof_out))
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    total = stats.total_tt
    out.write(f"cProfile of the step loop: {total:.2f} s under the profiler\n")
    for key in ("cumulative", "tottime"):
        out.write(f"\n===== top {top} by {key} =====\n")
        stats.sort_stats(key).print_stats(top)
    package_root = Path(sys.modules["abm"].__file__).resolve().parent.parent
    return out.getvalue().replace(str(package_root) + os.sep, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=30, help="rows per cProfile table")
    parser.add_argument("--prof-out", type=Path, default=None, help="also dump raw pstats here")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "profile_large.txt", help="report file"
    )
    parser.add_argument(
        "--large-scenario", default="auto", metavar="NAME", help="as in bench_model.py"
    )
    args = parser.parse_args(argv)
    label, _, cfg = large_config(args.large_scenario)
    report = [
        f"abm large-network profile, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        f"code: abm from {Path(sys.modules['abm'].__file__).parent}, {_git()}",
        f"large case: {label}",
        "",
        "== phase breakdown ==",
        phase_breakdown(cfg),
        "",
        "== cProfile ==",
        cprofile(cfg, args.top, args.prof_out),
    ]
    text = "\n".join(report)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", suffix=".tmp", dir=args.out.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
