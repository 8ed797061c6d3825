"""Defaults, fire sales and mark-down contagion emerge from the agents and the market (DESIGN 1)."""

from __future__ import annotations

import numpy as np
import pytest

import abm

BUYER_KINDS = ("hyperscaler", "tier2_cloud", "broker", "overseas", "ai_startup", "sovereign")
#: The declared seed set of the frequency statements below (correlated_crash, full length). Counts
#: measured on it when the statements were written are given next to each bound.
CRASH_SEEDS = range(16)


def _ancestors(events, event_id):
    rows = events.set_index("event_id")
    stack, seen = [event_id], set()
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        parents = rows.at[e, "parent_event_ids"]
        if isinstance(parents, str) and parents:
            stack.extend(int(p) for p in parents.split(";"))
    seen.discard(event_id)
    return rows.loc[sorted(seen)]


#: Calm seeds (of 0-4) in which a neocloud defaults, with the mechanism read from the event log:
#: calm is a control defined by its inputs (no stress regime, low volatility), not by its outcome,
#: so any default here stays as a strict expected failure. Under the merged economics of issue 12
#: 6 of calm seeds 0-11 had a default (7 neocloud defaults), all from an initialisation artefact:
#: starting demand was utilisation_ref x supply while contracted shares reach 95 %, so reserved
#: GPUs took nearly all demand and spot GPUs idled for years. With starting demand set from the
#: contract book (reserved GPUs at utilisation_max, spot GPUs at utilisation_ref; ODD section 5) calm
#: seeds 0-11 had no default (spot utilisation averages 0.72-0.79 per run, was 0.10-0.60). With the
#: sourced rents by generation (Blackwell and later at 0.6 of performance parity) new capacity
#: clears the investment hurdle only at scarcity rents, so spot utilisation sits near 0.95. On the
#: merged issue-13 model 3 of calm seeds 0-11 have defaults, all LTV (seeds 0, 5 and 8: 5, 2 and 6
#: neoclouds).
CALM_DEFAULTS: dict[int, str] = {
    0: "LTV defaults of neoclouds 12 (month 12), 11 and 14 (month 18), 16 (month 19) and 13 "
    "(month 34) on the merged issue-13 model: the H100 market mark falls from $20.3k to $13.4k in "
    "the first year (fundamental value $23.9k -> $19.4k, rent trend and Blackwell releases) faster "
    "than the loans amortise; the breaches are not cured from cash above the liquidity floor and "
    "the lenders accelerate. Of calm seeds 0-11, seeds 0, 5 and 8 have LTV defaults (13 neoclouds)",
}


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=CALM_DEFAULTS[s]))
        if s in CALM_DEFAULTS
        else s
        for s in range(5)
    ],
)
def test_calm_has_no_defaults(run_cache, seed):
    res = run_cache("calm", seed)
    assert (res.events["event"] != "default").all()
    last = res.timeseries.iloc[-1]
    assert last[["defaults_miner", "defaults_neocloud", "defaults_lender"]].sum() == 0


def test_correlated_crash_brings_defaults_and_seizures(run_cache):
    types, seizures = set(), 0
    for seed in range(5):
        ev = run_cache("correlated_crash", seed).events
        defaults = ev[ev["event"] == "default"]
        types |= set(defaults["agent_type"])
        seizures += int((ev["event"] == "seizure").sum())
        # no default was scheduled: every one is logged with a cause from the agents' tests
        assert set(defaults["cause"]) <= set(abm.events.CAUSES)
        assert len(defaults) > 0
    assert {"miner", "neocloud"} <= types
    assert seizures > 0


def test_seized_gpus_clear_below_fundamental_value(run_cache):
    ratios = []
    for seed in range(6):
        ratios.extend(_clearing_ratios(run_cache("correlated_crash", seed)))
    ratios = np.array(ratios)
    assert len(ratios) > 0
    assert np.all(ratios < 1.0)
    assert np.median(ratios) < 0.8


def _clearing_ratios(res):
    ts = res.timeseries
    gens = [c[len("secondary_price_") :] for c in ts.columns if c.startswith("secondary_price_")]
    ratios = []
    for g in gens:
        traded = ts[f"secondary_price_{g}"].notna()
        ratios.extend(
            ts.loc[traded, f"secondary_price_{g}"] / ts.loc[traded, f"fundamental_value_{g}"]
        )
    return ratios


@pytest.mark.xfail(
    strict=True,
    reason="with starting demand set from the contract book (spot GPUs at the reference "
    "utilisation, not idle), correlated_crash seeds 0-15 had 18 LTV defaults but only 2 runs "
    "(seeds 1, 7) where one descends from another seller's trade (11 before) on the "
    "recalibration branch; the merged issue-13 model has 10 LTV defaults in those seeds: marks fall with "
    "rents before fire sales move them. Missing: fire sales large and early enough to mark down "
    "others' collateral (the contagion-mechanism issue)",
)
def test_a_default_is_caused_by_someone_elses_fire_sale(run_cache):
    """An LTV default whose genealogy reaches a trade by another seller (a mark-down from someone
    else's fire sale) happens in some crash paths: in correlated_crash seeds 0-15, 4 to 14 of the
    16 runs have one (2 when written, seeds 2 and 7; 9 once rents follow demand, issue 12 item 1:
    lower rents in the crash put more neoclouds near their LTV limit when the fire sales mark the
    collateral down; 11 on the merged economics of issue 12, seeds 0-2, 4, 5, 7, 9, 10, 13-15)."""
    runs_with_one = 0
    for seed in CRASH_SEEDS:
        ev = run_cache("correlated_crash", seed).events
        for row in ev[(ev["event"] == "default") & (ev["cause"] == "ltv")].itertuples():
            anc = _ancestors(ev, row.event_id)
            if len(anc[(anc["event"] == "trade") & (anc["agent_id"] != row.agent_id)]):
                runs_with_one += 1
                break
    assert 4 <= runs_with_one <= 14, runs_with_one


def _buyer_scaled(scale):
    base = abm.load_scenario("correlated_crash")
    out = []
    for k in BUYER_KINDS:
        spec = base["buyers"]["kinds"][k]
        out.append(
            (f"buyers.kinds.{k}.absorption_mw_per_month", spec["absorption_mw_per_month"] * scale)
        )
        out.append((f"buyers.kinds.{k}.monthly_budget_usd", spec["monthly_budget_usd"] * scale))
    return tuple(out)


def _volume_weighted_discount(res):
    ts = res.timeseries
    gens = [c[len("secondary_price_") :] for c in ts.columns if c.startswith("secondary_price_")]
    events = res.events[res.events["event"] == "trade"]
    value, fundamental = 0.0, 0.0
    for row in events.itertuples():
        month = ts[ts["month"] == row.month].iloc[0]
        for g in gens:
            if np.isclose(month[f"secondary_price_{g}"], row.price_usd):
                value += row.units * row.price_usd
                fundamental += row.units * month[f"fundamental_value_{g}"]
                break
    return value / fundamental if fundamental > 0 else np.nan


@pytest.mark.slow  # 12 extra crash runs at two buyer capacities
@pytest.mark.xfail(
    strict=True,
    reason="with sourced rents by generation (Blackwell and later at 0.6 of performance parity) "
    "capacity is scarce and rents high, so correlated_crash seeds 0-11 have 10 neocloud defaults "
    "on the merged issue-13 model (6 on the recalibration branch, 16 at parity rents, 30 before the starting demand came from the contract book) and only 2 "
    "of seeds 0-5 have fire sales at both 0.3x and 3x buyer capacity (3 needed). Missing: enough "
    "neocloud distress in the crash for seizures to reach the secondary market",
)
def test_less_buyer_absorption_gives_deeper_discounts(run_cache):
    """Volume-weighted clearing price / fundamental with 3x versus 0.3x the baseline buyers' budgets
    and MW. (At baseline capacity the market is already saturated by a large neocloud's seizure and
    prices sit at the sellers' reserve floor, so the contrast is taken around it.)"""
    deep, shallow = [], []
    for seed in range(6):
        shallow.append(
            _volume_weighted_discount(run_cache("correlated_crash", seed, None, _buyer_scaled(3.0)))
        )
        deep.append(
            _volume_weighted_discount(run_cache("correlated_crash", seed, None, _buyer_scaled(0.3)))
        )
    pairs = [
        (d, s) for d, s in zip(deep, shallow, strict=True) if np.isfinite(d) and np.isfinite(s)
    ]
    assert len(pairs) >= 3  # enough crash paths with fire sales at both capacities
    assert np.mean([d for d, _ in pairs]) < np.mean([s for _, s in pairs]) - 0.02
    assert sum(d < s for d, s in pairs) >= len(pairs) - 1


def test_an_unsold_overhang_marks_below_the_clearing_price(run_cache):
    """Marks follow the month's evidence: units sold at the clearing price and units offered and not
    sold at the bids left (docs/ODD.md, *Marks*). A mark can therefore fall below the price that
    cleared, which marks lying between the clearing price and the index never could: in
    correlated_crash seeds 0-15, at least 3 of the 16 runs have a traded month whose mark of an
    H100, H200 or B200 is below its clearing price (15 when written)."""
    runs_below = sum(
        _marks_below_price(run_cache("correlated_crash", seed)) > 0 for seed in CRASH_SEEDS
    )
    assert runs_below >= 3, runs_below


def _marks_below_price(res) -> int:
    ts = res.timeseries
    below = 0
    for g in ("H100", "H200", "B200"):
        traded = ts[f"secondary_price_{g}"].notna()
        price = ts.loc[traded, f"secondary_price_{g}"]
        mark = ts.loc[traded, f"mark_{g}"]
        below += int((mark < price * (1 - 1e-6)).sum())
    return below


def test_release_steps_rents_down():
    """A generation release lowers every rent per unit of compute (the newest caps the others)."""
    base = abm.load_scenario("calm", {"shocks.ai_demand_vol_per_year": 0.0})
    early = abm.load_scenario(
        "calm", {"shocks.ai_demand_vol_per_year": 0.0, "generations.B300.release": "2025-04"}
    )
    a = abm.run(base, seed=0, months=8).timeseries
    b = abm.run(early, seed=0, months=8).timeseries
    assert b["rent_spot_H100"].iloc[6] < a["rent_spot_H100"].iloc[6]
