"""Cascade tree and metrics on a hand-built event log and on a model run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from abm.analysis import _parents, cascade_depth, cascade_metrics, cascade_tree
from abm.events import COLUMNS


def _events(rows):
    full = []
    for r in rows:
        base = dict.fromkeys(COLUMNS, "")
        base.update(amount_usd=0.0, units=0, price_usd=0.0, counterparty_id=-1)
        base.update(r)
        full.append(base)
    return pd.DataFrame(full, columns=list(COLUMNS))


def test_tree_links_defaults_through_intermediate_events():
    # miner 1 defaults (root); its lender seizes and sells GPUs; the trade marks down neocloud 2's
    # collateral -> breach -> acceleration -> default; neocloud 2 was tenant of miner 3, whose lost
    # lease leads to miner 3's counterparty default. Lender 9 fails from its losses on 2.
    ev = _events([
        dict(event_id=1, month=1, event="default", agent_id=1, agent_type="miner", cause="payment"),
        dict(event_id=2, month=1, event="seizure", agent_id=9, agent_type="lender", parent_event_ids="1"),
        dict(event_id=3, month=1, event="trade", agent_id=9, agent_type="lender", parent_event_ids="2"),
        dict(event_id=4, month=2, event="covenant_breach", agent_id=2, agent_type="neocloud", cause="ltv", parent_event_ids="3"),
        dict(event_id=5, month=3, event="acceleration", agent_id=9, agent_type="lender", cause="ltv", parent_event_ids="4"),
        dict(event_id=6, month=3, event="default", agent_id=2, agent_type="neocloud", cause="ltv", parent_event_ids="4;5"),
        dict(event_id=7, month=3, event="lease_terminated", agent_id=3, agent_type="miner", cause="counterparty", parent_event_ids="6"),
        dict(event_id=8, month=5, event="default", agent_id=3, agent_type="miner", cause="counterparty", parent_event_ids="7"),
        dict(event_id=9, month=6, event="default", agent_id=9, agent_type="lender", cause="counterparty", parent_event_ids="6;8"),
        dict(event_id=10, month=7, event="default", agent_id=4, agent_type="miner", cause="maturity"),
    ])  # fmt: skip
    tree = cascade_tree(ev)
    assert set(tree.nodes) == {1, 6, 8, 9, 10}
    assert tree.edges[1, 6]["channel"] == "fire_sale"
    assert tree.edges[6, 8]["channel"] == "counterparty"
    assert tree.edges[6, 9]["channel"] == "counterparty"
    assert tree.edges[8, 9]["channel"] == "counterparty"
    assert not tree.has_edge(1, 8)  # the walk stops at the nearest default
    assert cascade_depth(tree) == 4  # 1 -> 6 -> 8 -> 9
    assert [n for n in tree if tree.in_degree(n) == 0] == [1, 10]


def test_lender_failure_pushes_are_funding_or_credit_crunch():
    ev = _events([
        dict(event_id=1, month=1, event="default", agent_id=7, agent_type="lender", cause="counterparty"),
        dict(event_id=2, month=1, event="default", agent_id=8, agent_type="lender", cause="lender_failure", parent_event_ids="1"),
        dict(event_id=3, month=2, event="refused_rollover", agent_id=7, agent_type="lender", parent_event_ids="1"),
        dict(event_id=4, month=2, event="default", agent_id=5, agent_type="neocloud", cause="lender_failure", parent_event_ids="3;1"),
    ])  # fmt: skip
    tree = cascade_tree(ev)
    assert tree.edges[1, 2]["channel"] == "funding"
    assert tree.edges[1, 4]["channel"] == "credit_crunch"


def _crash_metrics(run_cache) -> list[dict]:
    return [cascade_metrics(run_cache("correlated_crash", seed)) for seed in range(16)]


def test_metrics_of_a_crash_run(run_cache, tmp_path):
    """Per run, the metrics agree with the event log (correlated_crash seeds 0-15)."""
    for seed in range(16):
        res = run_cache("correlated_crash", seed)
        metrics = cascade_metrics(res)
        assert metrics["defaults"] == (res.events["event"] == "default").sum()
        assert sum(metrics["defaults_by_type"].values()) == metrics["defaults"]
        disc = metrics["min_price_to_fundamental"]
        assert disc is None or 0.0 < disc < 1.0  # None: no fire sale in that path
        assert metrics["debtrank_start"] > 0.0
        json.dumps(metrics)  # serialisable for cascade.json


def test_crash_runs_chain_defaults_through_fire_sales(run_cache):
    """Over correlated_crash seeds 0-15 (counts when written, then on the merged economics of issue
    12, in brackets; then with the sourced rents by generation): at least 4 of 16 runs have a chain
    of two or more defaults (5; 11; 5) and at least 2 have a default pushed through the fire-sale
    channel (2; 11; 3). (Fire-sale frequency: next test.)"""
    all_metrics = _crash_metrics(run_cache)
    assert sum(m["cascade_depth"] >= 2 for m in all_metrics) >= 4  # a default pushed another
    assert sum(m["pushes_by_channel"]["fire_sale"] > 0 for m in all_metrics) >= 2


@pytest.mark.xfail(
    strict=True,
    reason="with the starting demand from the contract book and the sourced rents by generation "
    "(Blackwell and later at 0.6 of performance parity: scarce capacity, high rents) only 4 of "
    "correlated_crash seeds 0-15 had a fire sale on the recalibration branch and 7 on the merged "
    "issue-13 model (seeds 0-3, 5, 13, 15; 15 before the recalibration). Missing: enough neocloud distress in the crash for seizures to reach the market",
)
def test_most_crash_runs_have_a_fire_sale(run_cache):
    """At least 12 of correlated_crash seeds 0-15 have a fire sale (12 when written; 15 on the
    merged economics of issue 12)."""
    all_metrics = _crash_metrics(run_cache)
    assert sum(m["min_price_to_fundamental"] is not None for m in all_metrics) >= 12


def test_calm_run_has_an_empty_tree(run_cache):
    # calm seed 2 has no default (calm seeds 0, 5 and 8 of 0-11 do: tests/test_emergence.py
    # CALM_DEFAULTS)
    metrics = cascade_metrics(run_cache("calm", 2))
    assert metrics["defaults"] == 0 and metrics["cascade_depth"] == 0
    assert metrics["first_default_month"] is None


def test_parent_ids_survive_a_naive_csv_round_trip():
    """pd.read_csv turns a single parent id "40" into 40.0: the genealogy must not lose it."""
    from abm.analysis import _parents

    assert _parents("3;17") == [3, 17]
    assert _parents(40.0) == [40] and _parents(40) == [40]
    assert _parents(float("nan")) == [] and _parents("") == [] and _parents(None) == []


def test_payment_defaults_link_the_margin_calls_that_drained_the_miner(run_cache):
    """A miner that answered margin calls (posting BTC or paying cash) and then missed payments has
    those calls as parents, so the genealogy sees the margin-call channel (ODD note 16).
    correlated_crash seeds 1 and 2 showed it on the issue-12 model; on issue 13's (miners' GPU
    fleets, emergent correlation) seeds 2, 3, 13 and 15 of 0-15 link margin calls to payment
    defaults and 13 and 15 push through the channel, so the test reads 13 and 15."""
    linked_calls = pushes = 0
    for seed in (13, 15):
        res = run_cache("correlated_crash", seed)
        ev = res.events.set_index("event_id")
        pay = ev[(ev["event"] == "default") & (ev["cause"] == "payment")]
        for _, row in pay.iterrows():
            for p in _parents(row["parent_event_ids"]):
                parent = ev.loc[p]
                assert parent["event"] in ("margin_call", "refused_rollover")
                # the parent pushed this borrower, in the months its arrears built up
                mine = parent["agent_id"] if parent["event"] == "margin_call" else None
                mine = parent["counterparty_id"] if mine is None else mine
                assert mine == row["agent_id"]
                assert row["month"] - 3 <= parent["month"] <= row["month"]
                linked_calls += parent["event"] == "margin_call"
        pushes += res.cascade_metrics()["pushes_by_channel"]["margin_calls"]
    assert linked_calls > 0
    assert pushes > 0
