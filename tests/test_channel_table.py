"""experiments/channel_table.py: paired channel effects, their intervals and shares, bad folders."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abm.config import SCHEMA
from abm.sweep import load_experiment, run_sweep

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "experiments" / "channel_table.py"
_spec = importlib.util.spec_from_file_location("channel_table", SCRIPT)
channel_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(channel_table)

SWITCHES = list(SCHEMA["channels"])  # the table's rows come from the schema, not a list here
DESIGN = {"master_seed": 7, "scenario": "correlated_crash", "months": 60}
METRICS = (
    "defaults_neocloud",
    "defaults_miner",
    "defaults_lender",
    "lender_losses_usd",
    "lender_losses_incl_unrealised_usd",
)
LOSSES = ("lender_losses_usd", "lender_losses_incl_unrealised_usd")


def _frame(points: list[frozenset], value, replicates: int = 6, shuffle: int = 0) -> pd.DataFrame:
    """A results frame: one row per (point, replicate); ``value(off, replicate, metric)``."""
    rows = []
    for p, off in enumerate(points):
        for r in range(replicates):
            row = {"point": p, "replicate": r, "status": "ok"}
            row |= {s: s not in off for s in SWITCHES}
            row |= {m: float(value(off, r, m)) for m in METRICS}
            rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=shuffle) if shuffle else frame


def _row(lines: list[str], label: str) -> list[str]:
    hits = [ln for ln in lines if ln.startswith(f"| {label} |")]
    assert len(hits) == 1, (label, lines)
    return [c.strip() for c in hits[0].strip("|").split("|")]


ONE_AT_A_TIME = [frozenset(), *(frozenset({s}) for s in SWITCHES), frozenset(SWITCHES)]


def test_differences_are_paired_by_replicate_with_known_intervals():
    """Levels vary by tens across replicates, but switching channel i off lowers every replicate's
    neocloud defaults by exactly i + 1: paired by replicate number (rows shuffled), the difference
    is i + 1 with the degenerate interval [i + 1, i + 1]; unpaired means would give a wide one."""

    def value(off, r, metric):
        if metric != "defaults_neocloud":
            return 0.0 if off else 2.0  # the all-on level 2, every single channel off 0
        level = 10.0 * r + 50.0
        return level - sum(SWITCHES.index(s) + 1 for s in off)

    runs = _frame(ONE_AT_A_TIME, value, shuffle=3)
    columns = {s: s for s in SWITCHES}
    lines = channel_table.table_lines(runs, DESIGN, columns)
    n = len(SWITCHES)
    for i, s in enumerate(SWITCHES):
        cells = _row(lines, f"`{s}`")
        assert cells[1] == f"+{i + 1:.2f} [+{i + 1:.2f}, +{i + 1:.2f}]"
        assert cells[2] == "+2.00 [+2.00, +2.00]"  # miner defaults: all on 2, this one off 0
    total_neo = n * (n + 1) / 2
    assert _row(lines, channel_table.SUM_ROW)[1].startswith(f"+{total_neo:.2f} ")
    assert _row(lines, channel_table.TOTAL_ROW)[1].startswith(f"+{total_neo:.2f} ")
    # miner defaults vanish with any one channel off: the marginal effects sum to 2n, the total is
    # 2, so the interaction is 2 - 2n
    assert _row(lines, channel_table.SUM_ROW)[2].startswith(f"+{2 * n:.2f} ")
    assert _row(lines, channel_table.INTERACTION_ROW)[2].startswith(f"{2 - 2 * n:+.2f} ")
    # without the full grid there is no Shapley share
    assert _row(lines, f"`{SWITCHES[0]}`")[-1] == "-"


def test_shapley_shares_add_up_when_marginal_shares_do_not():
    """Full grid; lender losses are 1 when the first two channels are both on, else 0. Each of them
    alone removes everything (marginal shares 100 % each, sum 200 %), the Shapley shares are 50 %
    each, 0 for the others, and add up to the total (100 %)."""
    a, b = SWITCHES[:2]
    full = [
        frozenset(c) for k in range(len(SWITCHES) + 1) for c in itertools.combinations(SWITCHES, k)
    ]

    def value(off, r, metric):
        return float(a not in off and b not in off) if metric in LOSSES else 1.0

    runs = _frame(full, value)
    effects = channel_table.shapley_effects(
        runs, {s: s for s in SWITCHES}, channel_table.LOSS_METRIC
    )
    np.testing.assert_allclose(effects[a], 0.5)
    np.testing.assert_allclose(effects[b], 0.5)
    np.testing.assert_allclose(effects.drop(columns=[a, b]).to_numpy(), 0.0)
    lines = channel_table.table_lines(runs, DESIGN, {s: s for s in SWITCHES})
    assert _row(lines, f"`{a}`")[7] == "100 % [100, 100]"  # marginal share of losses
    assert _row(lines, f"`{a}`")[8] == "100 % [100, 100]"  # ... of realised losses
    assert _row(lines, f"`{a}`")[10] == "50 % [50, 50]"  # Shapley share of losses
    assert _row(lines, f"`{SWITCHES[2]}`")[10] == "0 % [0, 0]"
    assert _row(lines, channel_table.SUM_ROW)[7] == "200 % [200, 200]"
    assert _row(lines, channel_table.TOTAL_ROW)[10] == "100 % [100, 100]"


@pytest.fixture(scope="module")
def tiny_sweeps(tmp_path_factory):
    """The packaged channels experiment at 2 replicates and 4 months, and a one-switch sweep."""
    tmp = tmp_path_factory.mktemp("channels")
    raw = tomllib.loads((ROOT / "experiments" / "channels.toml").read_text())
    raw |= {"replications": 2, "months": 4}
    run_sweep(load_experiment(raw), tmp / "channels", executor="serial", progress=False)
    one = {k: v for k, v in raw.items() if k != "parameters"}
    one |= {"name": "one_switch", "parameters": raw["parameters"][:1]}
    run_sweep(load_experiment(one), tmp / "one_switch", executor="serial", progress=False)
    return tmp


def _script(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True, cwd=ROOT
    )


@pytest.mark.slow  # 32 design points x 2 replicates of 4 months, serially
def test_tiny_sweep_gives_a_row_per_schema_switch(tiny_sweeps):
    proc = _script(tiny_sweeps / "channels")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for s in SWITCHES:
        cells = _row(lines, f"`{s}`")
        assert len(cells) == 11
        assert "[" not in cells[1]  # 2 replicates: below MIN_REPLICATES, no interval
    # the total row equals all-on minus all-off in the sweep's own runs
    runs = pd.read_parquet(tiny_sweeps / "channels" / "runs.parquet")
    on = runs[runs[SWITCHES].all(axis=1)]
    off = runs[~runs[SWITCHES].any(axis=1)]
    diff = (
        on.set_index("replicate")["lender_losses_usd"]
        - off.set_index("replicate")["lender_losses_usd"]
    ).mean()
    assert _row(lines, channel_table.TOTAL_ROW)[4] == f"{diff * 1e-9:+.2f}"
    assert (
        json.loads((tiny_sweeps / "channels" / "manifest.json").read_text())["status"] == "complete"
    )


@pytest.mark.slow
def test_a_folder_that_is_not_a_channels_sweep_exits_2(tiny_sweeps, tmp_path):
    proc = _script(tiny_sweeps / "one_switch")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not a channels sweep" in proc.stderr and f"channels.{SWITCHES[1]}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _script(tmp_path)  # an empty folder
    assert proc.returncode == 2 and "no finished sweep" in proc.stderr
