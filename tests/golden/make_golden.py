"""Golden outputs: sha256 of the tables of a fixed set of runs.

Pure refactors and speed work keep these hashes; a model change regenerates them on purpose in the
same commit and says why in its message::

    python tests/golden/make_golden.py            # rewrite tests/golden/hashes.json
    python tests/golden/make_golden.py --check    # compare, exit 1 on any difference

The runs: baseline, correlated_crash and buyer_vacuum at seeds 0-2 (their scenario's months), and
large_network seed 0 at 24 months. Hashed: timeseries.csv, agents.csv, events.csv, network.graphml,
as ``abm.io.write_run`` writes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

HASHES = Path(__file__).with_name("hashes.json")
FILES = ("timeseries.csv", "agents.csv", "events.csv", "network.graphml")
RUNS = tuple(
    [
        (s, seed, None)
        for s in ("baseline", "correlated_crash", "buyer_vacuum")
        for seed in (0, 1, 2)
    ]
    + [("large_network", 0, 24)]
)


def run_key(scenario: str, seed: int, months: int | None) -> str:
    return f"{scenario}-seed{seed}" + (f"-{months}m" if months else "")


def hashes_of(scenario: str, seed: int, months: int | None) -> dict[str, str]:
    """sha256 of each golden file of one run, written by ``abm.io.write_run`` to a temp folder."""
    import abm
    from abm.io import write_run

    result = abm.run(scenario, seed=seed, months=months)
    with tempfile.TemporaryDirectory() as tmp:
        out = write_run(result, Path(tmp) / "run", figure=False)
        return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}


def compute_all() -> dict[str, dict[str, str]]:
    return {run_key(*r): hashes_of(*r) for r in RUNS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with hashes.json, do not write")
    args = ap.parse_args(argv)
    current = compute_all()
    if args.check:
        stored = json.loads(HASHES.read_text())["runs"]
        bad = [
            f"{k}/{f}" for k in stored for f in FILES if current.get(k, {}).get(f) != stored[k][f]
        ]
        print("golden outputs: " + ("identical" if not bad else "CHANGED: " + ", ".join(bad)))
        return 1 if bad else 0
    import numpy
    import pandas

    data = {
        "note": "sha256 of run outputs; regenerate only with a model change and say why",
        "versions": {"numpy": numpy.__version__, "pandas": pandas.__version__},
        "runs": current,
    }
    tmp = HASHES.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(HASHES)
    print(f"wrote {HASHES} ({len(current)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
