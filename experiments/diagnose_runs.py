"""Per-run diagnostics of an experiment file's runs, including what the sweep metrics leave out.

Runs the design points of an experiment file (``abm sweep``'s seeds: the same replicate numbers,
common random numbers and overrides) serially, and writes one row per run to a parquet file: the
design values, ``replicate``, ``seed``, every sweep metric (:func:`abm.sweep.metrics.run_metrics`)
and these diagnostics, read from the finished model and its tables:

* ``held_seized_units`` and ``held_seized_book_usd``: seized GPUs lenders still hold at the end of
  the run and their carrying value (USD);
* ``unrealised_inventory_loss_usd``: that carrying value minus the same units at the last month's
  lender marks (USD). ``lender_losses_usd`` books an inventory loss only when a unit is sold or
  leaves the world (abm/finance/losses.py), so a lender that holds seized GPUs to the end of the
  run hides this part of its loss from the metric; ``unrealised_loss_at_hold_value_usd``: the
  same at the lenders' own value of holding them (``Lenders.hold_value_per_gpu``; NaN on commits
  without it), a second reading, as an empty market marks down to salvage;
* ``losses_incl_unrealised_usd``: ``lender_losses_usd`` + the unrealised inventory loss;
* ``trade_units``, ``trade_value_usd``: secondary-market trades over the run (``trade`` events);
* ``spot_utilisation_mean``, ``spot_utilisation_stress_mean``: mean spot utilisation over all
  months and over the stress-regime months; ``idle_take_or_pay_usd``: take-or-pay paid for idle
  reserved GPUs over the run (USD); ``contract_cuts``: customer contract cuts over the run;
  ``gpu_units_delivered``: new GPUs delivered over the run.

The script runs on whatever ``abm`` is on ``PYTHONPATH``, so the same command measures an older
commit checked out in a scratch worktree (docs/validation.md, "Where the contagion went").

Usage::

    PYTHONPATH=. python experiments/diagnose_runs.py EXPERIMENT.toml OUT.parquet \\
        [--replications N] [--one-at-a-time] [--set dotted.key=JSON ...] [--no-contract-balance]

``--one-at-a-time`` keeps the first design point, the points that differ from it in exactly one
parameter and the last point (for ``experiments/channels.toml``: all channels on, each channel off
in turn, all off). ``--set`` applies fixed overrides to every point (values as JSON: ``1.0``,
``false``). ``--no-contract-balance`` is a counterfactual for diagnosis only: it replaces
``ComputeMarket.set_balance`` by a rule that keeps the balance utilisation at
``compute.utilisation_ref``, which is how the model set starting demand and the spot factor before
the contract-book balance was merged (commit d442279). Exit codes: 0 written; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd


def _keep_points(points: list[dict], one_at_a_time: bool) -> list[int]:
    """Indices of the design points to run (every point, or the one-at-a-time subset)."""
    if not one_at_a_time or len(points) < 2:
        return list(range(len(points)))
    first = points[0]
    keep = [0]
    for i, p in enumerate(points[1:], start=1):
        if sum(p[k] != first[k] for k in first) == 1:
            keep.append(i)
    if len(points) - 1 not in keep:
        keep.append(len(points) - 1)
    return keep


def inventory_at_end(model, timeseries: pd.DataFrame) -> dict[str, float]:
    """Seized GPUs lenders hold at the end of the run: units, carrying value (USD) and carrying
    value minus the last month's lender marks (``mark_<generation>`` columns, USD per GPU)."""
    from abm.agents.base import LENDER

    lots = model.lots
    held = np.flatnonzero((lots.owner >= 0) & (lots.units > 0))
    held = held[model.type[lots.owner[held]] == LENDER]
    last = timeseries.iloc[-1]
    mark = np.array([float(last[f"mark_{g}"]) for g in model.gen_names])
    units = lots.units[held].astype(float)
    book = float((units * lots.book_value_usd_per_unit[held]).sum())
    at_mark = float((units * mark[lots.gen[held]]).sum())
    out = {
        "held_seized_units": float(units.sum()),
        "held_seized_book_usd": book,
        "unrealised_inventory_loss_usd": book - at_mark,
        "unrealised_loss_at_hold_value_usd": float("nan"),
    }
    lenders = getattr(getattr(model, "populations", None), "lenders", None)
    if hasattr(lenders, "hold_value_per_gpu"):  # commits with the participants' market
        hold = lenders.hold_value_per_gpu(lots.owner[held], lots.gen[held])
        out["unrealised_loss_at_hold_value_usd"] = book - float((units * hold).sum())
    return out


def diagnostics(result) -> dict[str, float]:
    """The diagnostics of one :class:`abm.results.RunResult` (see the module docstring)."""
    ts, ev = result.timeseries, result.events
    out = inventory_at_end(result.model, ts)
    out["losses_incl_unrealised_usd"] = (
        float(ts["lender_losses_usd"].iloc[-1]) + out["unrealised_inventory_loss_usd"]
    )
    trades = ev[ev["event"] == "trade"]
    out["trade_units"] = float(trades["units"].sum())
    out["trade_value_usd"] = float((trades["units"] * trades["price_usd"]).sum())
    stress = ts["regime"] == "stress"
    out["spot_utilisation_mean"] = float(ts["spot_utilisation"].mean())
    out["spot_utilisation_stress_mean"] = (
        float(ts.loc[stress, "spot_utilisation"].mean()) if stress.any() else float("nan")
    )
    out["idle_take_or_pay_usd"] = float(ts["idle_take_or_pay_usd"].sum())
    out["contract_cuts"] = float(ts["contract_cuts"].sum())
    out["gpu_units_delivered"] = float(ts["gpu_units_delivered"].iloc[-1])
    return out


def _no_contract_balance() -> None:
    """Counterfactual: the balance utilisation stays at ``utilisation_ref`` (pre-d442279 rule)."""
    from abm.markets.compute import ComputeMarket

    def keep_reference(self, reserved_perf_units: float, supply_perf_units: float) -> None:
        self.next_balance_utilisation = self.cfg["utilisation_ref"]

    ComputeMarket.set_balance = keep_reference


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--replications", type=int, default=None)
    parser.add_argument("--one-at-a-time", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--no-contract-balance", action="store_true")
    args = parser.parse_args(argv)

    from abm.config import ConfigError, apply_overrides, validate
    from abm.results import run
    from abm.sweep.experiment import load_experiment
    from abm.sweep.metrics import run_metrics

    try:
        raw = tomllib.loads(args.experiment.read_text())
        if args.replications is not None:
            if not 2 <= args.replications <= 10_000:
                raise ConfigError("--replications: must be an integer in [2, 10000]")
            raw["replications"] = args.replications
        scenario = raw.get("scenario", "baseline")
        if isinstance(scenario, str) and scenario.endswith(".toml"):  # relative to the file
            raw["scenario"] = str(args.experiment.parent / scenario)
        exp = load_experiment(raw)
        fixed = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r}: must be dotted.key=JSON")
            fixed[key] = json.loads(value)
    except (ConfigError, OSError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.no_contract_balance:
        _no_contract_balance()

    rows = []
    t0 = time.perf_counter()
    for point in _keep_points(exp.points, args.one_at_a_time):
        cfg = apply_overrides(exp.point_config(point), fixed)
        validate(cfg)
        for rep in range(exp.replications):
            seed = exp.seed(point, rep)
            result = run(cfg, seed=seed, months=exp.months)
            row = {"point": point, "replicate": rep, "seed": seed, **exp.points[point]}
            row.update(run_metrics(result))
            row.update(diagnostics(result))
            rows.append(row)
    pd.DataFrame(rows).to_parquet(args.out)
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
