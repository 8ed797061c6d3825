"""One Markdown table of the four policy-lever experiments (README, "Policy levers").

Each experiment (``policy_last_resort``, ``policy_ltv_cap``, ``policy_forbearance``,
``policy_capital_buffer``) crosses its lever (off/on: the first parameter) with a few levels of the
lever's own setting (the second). Under common random numbers the "off" points are the same runs at
every level, so the table shows them once (the script checks they are identical) and then one row per
level with the lever on. Cells: the mean over replicates and its 95 % interval (the percentile
bootstrap of :func:`abm.sweep.intervals.mean_interval`, seeded from the sweep's master seed, as
``abm analyze`` reports it).

Usage (after the four sweeps)::

    for e in last_resort ltv_cap forbearance capital_buffer; do
        abm sweep experiments/policy_$e.toml
    done
    python experiments/policy_table.py > policy_table.md   # or: ... policy_table.py DIR [DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from abm.sweep.intervals import interval_seed, mean_interval
from abm.sweep.metrics import CATALOGUE, metric_bounds

CONFIDENCE = 0.95
# the four experiments, in the table's order (default folders: results/sweeps/<name>)
EXPERIMENTS = (
    "policy_last_resort",
    "policy_ltv_cap",
    "policy_forbearance",
    "policy_capital_buffer",
)
# (metric, column title, scale, format)
COLUMNS = (
    ("defaults_neocloud", "neocloud defaults", 1.0, "{:.2f}"),
    ("defaults_miner", "miner defaults", 1.0, "{:.2f}"),
    ("defaults_lender", "lender defaults", 1.0, "{:.2f}"),
    ("lender_losses_usd", "realised lender losses ($B)", 1e-9, "{:.2f}"),
    # economic losses: realised + the unrealised loss on seized GPUs lenders still hold at the end;
    # a lever that changes how many seized GPUs reach the market moves losses between the two
    ("lender_losses_incl_unrealised_usd", "lender losses incl. unrealised ($B)", 1e-9, "{:.2f}"),
    ("min_price_to_fundamental", "deepest price / fundamental", 1.0, "{:.2f}"),
)


def _cell(x: np.ndarray, metric: str, master_seed: int, point: int, scale: float, fmt: str) -> str:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "- (no trade)"
    lo, hi, _ = mean_interval(
        x,
        CATALOGUE[metric].kind,
        CONFIDENCE,
        interval_seed(master_seed, point, metric),
        metric_bounds(metric),
    )
    text = fmt.format(x.mean() * scale)
    if np.isfinite(lo):
        text += f" [{fmt.format(lo * scale)}, {fmt.format(hi * scale)}]"
    # the deepest discount is NaN in runs without a trade: say over how many runs it is a mean
    return text + (f" (n={len(x)})" if metric == "min_price_to_fundamental" else "")


def rows_of(folder: Path) -> list[list[str]]:
    """Table rows of one sweep folder: its off row, then one row per level of the lever."""
    manifest = json.loads((folder / "manifest.json").read_text())
    design = manifest["design"]
    lever, level = (p["name"] for p in design["parameters"][:2])
    seed = int(design["master_seed"])
    runs = pd.read_parquet(folder / "runs.parquet")
    if "status" in runs:
        runs = runs[runs["status"] == "ok"]
    name = design["name"].removeprefix("policy_").replace("_", " ")
    out = []
    off = runs[~runs[lever].astype(bool)]
    off_points = sorted(off["point"].unique())
    first = off[off["point"] == off_points[0]].sort_values("replicate")
    for p in off_points[1:]:  # common random numbers: every off point is the same runs
        other = off[off["point"] == p].sort_values("replicate")
        for metric, *_ in COLUMNS:
            a, b = first[metric].to_numpy(float), other[metric].to_numpy(float)
            if not np.allclose(a, b, equal_nan=True):
                raise SystemExit(f"{folder}: off points {off_points[0]} and {p} differ in {metric}")
    point = int(off_points[0])
    cells = [_cell(first[m].to_numpy(float), m, seed, point, s, f) for m, _, s, f in COLUMNS]
    out.append([name, "off", str(len(first)), *cells])
    on = runs[runs[lever].astype(bool)]
    for value in sorted(on[level].unique()):
        sub = on[on[level] == value]
        point = int(sub["point"].iloc[0])
        cells = [_cell(sub[m].to_numpy(float), m, seed, point, s, f) for m, _, s, f in COLUMNS]
        out.append([name, f"on, {level} = {value:g}", str(len(sub)), *cells])
    return out


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv] or [Path("results/sweeps") / name for name in EXPERIMENTS]
    missing = [str(f) for f in folders if not (f / "runs.parquet").is_file()]
    if missing:
        print(f"no finished sweep in: {', '.join(missing)} (run abm sweep first)", file=sys.stderr)
        return 2
    header = ["lever", "setting", "runs", *(c[1] for c in COLUMNS)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for folder in folders:
        for row in rows_of(folder):
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
