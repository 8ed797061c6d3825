"""experiments/diagnose_runs.py: the one-at-a-time subset, the unrealised inventory loss, the
no-contract-balance counterfactual and bad arguments."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from abm import load_scenario
from abm.agents.base import LENDER
from abm.config import SCHEMA
from abm.finance import losses
from abm.markets.compute import ComputeMarket
from abm.model import AIComputeCreditModel
from abm.results import run
from abm.sweep import load_experiment

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "experiments" / "diagnose_runs.py"
_spec = importlib.util.spec_from_file_location("diagnose_runs", SCRIPT)
diagnose_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diagnose_runs)


def test_one_at_a_time_keeps_all_on_each_channel_off_and_all_off():
    exp = load_experiment(ROOT / "experiments" / "channels.toml")
    keep = diagnose_runs._keep_points(exp.points, one_at_a_time=True)
    chosen = [exp.points[i] for i in keep]
    switches = list(SCHEMA["channels"])
    assert len(keep) == len(switches) + 2 < len(exp.points)
    assert all(chosen[0].values())  # all on
    assert not any(chosen[-1].values())  # all off
    off_alone = sorted(next(k for k, v in p.items() if not v) for p in chosen[1:-1])
    assert off_alone == sorted(switches)
    assert diagnose_runs._keep_points(exp.points, one_at_a_time=False) == list(
        range(len(exp.points))
    )


def test_unrealised_inventory_loss_is_what_selling_at_the_marks_would_book():
    """correlated_crash seed 0 ends with seized GPUs in lenders' hands (292,500 when written).
    The unrealised loss is not yet in ``lender_losses_usd``: selling every held unit at the last
    month's marks books exactly that loss."""
    result = run("correlated_crash", seed=0)
    m, ts = result.model, result.timeseries
    found = diagnose_runs.inventory_at_end(m, ts)
    assert found["held_seized_units"] > 0
    assert found["unrealised_inventory_loss_usd"] > 0  # marks fell below carrying values
    lots = m.lots
    held = np.flatnonzero((lots.owner >= 0) & (lots.units > 0))
    held = held[m.type[lots.owner[held]] == LENDER]
    before = m.lender_losses_usd
    last = ts.iloc[-1]
    for g, name in enumerate(m.gen_names):
        rows = held[lots.gen[held] == g]
        if len(rows):
            price = float(last[f"mark_{name}"])
            losses.book_sales(m, lots.owner[rows], rows, lots.units[rows], price)
    booked = m.lender_losses_usd - before
    assert np.isclose(booked, found["unrealised_inventory_loss_usd"], rtol=1e-9, atol=1.0)


def test_diagnostics_add_the_unrealised_loss_to_the_realised():
    result = run("correlated_crash", seed=0, months=36)
    d = diagnose_runs.diagnostics(result)
    realised = float(result.timeseries["lender_losses_usd"].iloc[-1])
    assert d["losses_incl_unrealised_usd"] == realised + d["unrealised_inventory_loss_usd"]
    assert d["trade_units"] == float(
        result.events.loc[result.events["event"] == "trade", "units"].sum()
    )


def test_no_contract_balance_keeps_the_reference_utilisation(monkeypatch):
    cfg = load_scenario("correlated_crash")
    ref = cfg["compute"]["utilisation_ref"]
    with_balance = AIComputeCreditModel(cfg, rng=0).compute.next_balance_utilisation
    assert with_balance > ref + 0.01  # contracted GPUs count at utilisation_max
    monkeypatch.setattr(ComputeMarket, "set_balance", ComputeMarket.set_balance)
    diagnose_runs._no_contract_balance()
    assert AIComputeCreditModel(cfg, rng=0).compute.next_balance_utilisation == ref


def test_runs_a_small_experiment_and_rejects_bad_arguments(tmp_path, capsys):
    exp = tmp_path / "tiny.toml"
    exp.write_text(
        'name = "tiny"\nscenario = "correlated_crash"\nmaster_seed = 3\nreplications = 2\n'
        "common_random_numbers = true\nmonths = 12\n"
        '[[parameters]]\nname = "fire_sale"\npath = "channels.fire_sale"\nvalues = [true, false]\n'
    )
    out = tmp_path / "out.parquet"
    assert diagnose_runs.main([str(exp), str(out), "--set", "compute.utilisation_ref=0.6"]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and set(frame["replicate"]) == {0, 1}
    assert frame.groupby("replicate")["seed"].nunique().eq(1).all()  # common random numbers
    assert diagnose_runs.main([str(exp), str(out), "--replications", "1"]) == 2
    assert "--replications" in capsys.readouterr().err
    assert diagnose_runs.main([str(exp), str(out), "--set", "no_equals_sign"]) == 2
    assert "--set" in capsys.readouterr().err
