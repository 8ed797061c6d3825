"""The policy levers (abm/policy.py): each off leaves the model unchanged, each on does what it says.

Declared seeds: correlated_crash seeds 0-3 (the crash with covenant defaults and fire sales). Every
test also checks that the lever had something to act on in those seeds, so none passes vacuously.
"""

from __future__ import annotations

import numpy as np
import pytest

from abm import invariants, policy
from abm.config import ConfigError, load_scenario
from abm.model import AIComputeCreditModel
from abm.phases import investment

SEEDS = range(4)


def _model(overrides: dict, seed: int) -> AIComputeCreditModel:
    return AIComputeCreditModel(load_scenario("correlated_crash", overrides), rng=seed)


def _summary(m) -> tuple:
    return (
        dict(m.defaults),
        round(m.lender_losses_usd, 2),
        m.fire_sale_units,
        m.gpu_delivered,
        len(m.events.rows),
    )


def test_levers_are_off_in_every_packaged_scenario():
    for name in ("baseline", "calm", "correlated_crash", "rubin_shock", "buyer_vacuum"):
        p = load_scenario(name)["policy"]
        assert not any(
            p[k] for k in ("last_resort_buyer", "ltv_cap", "forbearance", "capital_requirement")
        ), name


def test_last_resort_with_no_budget_changes_nothing():
    """The buyer of last resort exists (one more agent) but has no money: every outcome is the
    same as with the lever off, so switching it on keeps the other agents' random draws."""
    for seed in SEEDS:
        off = _model({}, seed)
        off.run()
        on = _model({"policy.last_resort_buyer": True, "policy.last_resort_budget_usd": 0.0}, seed)
        on.run()
        assert on.n == off.n + 1
        assert _summary(on) == _summary(off)


def test_last_resort_bids_share_of_fundamental_within_budget():
    # a share above lenders' value of holding seized GPUs (about 0.6 of fundamental in the crash),
    # so that the buyer of last resort trades: below it lenders hold rather than sell to it
    share, budget = 0.8, 1.0e9
    over = {
        "policy.last_resort_buyer": True,
        "policy.last_resort_share_of_fundamental": share,
        "policy.last_resort_budget_usd": budget,
    }
    spent_runs = []
    for seed in SEEDS:
        m = _model(over, seed)
        lr = m.policy.last_resort
        assert m.buyer_kind_names[m.buyer_kind[lr]] == policy.LAST_RESORT_KIND
        while m.running:
            start = len(m.events.rows)
            m.step()
            assert invariants.policy_problems(m) == []
            assert m.policy.last_resort_spent_usd <= budget * (1 + 1e-9)
            buys = [r for r in m.events.rows[start:] if r[2] == "trade" and r[6] == m.agent_ids[lr]]
            if buys:
                # the uniform price is the lowest accepted bid: at most its bid, share x fundamental
                ceiling = share * float(m.compute.fundamental_value.max())
                assert max(r[10] for r in buys) <= ceiling * (1 + 1e-9)
        spent_runs.append(m.policy.last_resort_spent_usd)
        assert m.acct.sector_cash_in["policy_authority"] == pytest.approx(
            m.policy.last_resort_spent_usd - m.policy.last_resort_returned_usd
        )
    assert max(spent_runs) > 0.9 * budget  # the budget binds in some crash run


def test_last_resort_bid_schedule_never_exceeds_budget_or_price():
    m = _model(
        {
            "policy.last_resort_buyer": True,
            "policy.last_resort_share_of_fundamental": 0.4,
            "policy.last_resort_budget_usd": 3.0e8,
        },
        0,
    )
    m.step()
    offered = np.full(m.G, 50_000)
    bids = m.populations.buyers.bid_schedules(offered)
    lr = m.policy.last_resort
    total = 0.0
    for g, (b, p, u) in enumerate(bids):
        mine = b == lr
        assert mine.sum() <= 1
        if mine.any():
            assert p[mine][0] == pytest.approx(0.4 * m.compute.fundamental_value[g])
            total += float((p[mine] * u[mine]).sum())
    assert 0 < total <= 3.0e8


def test_last_resort_bids_for_every_unit_at_a_price_near_zero():
    """At a subnormal share of fundamental value the budget / price overflows: the buyer of last
    resort then bids for every unit offered (found by the schema-wide invariant test)."""
    m = _model(
        {
            "policy.last_resort_buyer": True,
            "policy.last_resort_share_of_fundamental": 5e-324,
            "policy.last_resort_budget_usd": 3.0e8,
        },
        0,
    )
    m.step()
    offered = np.full(m.G, 50_000)
    bids = m.populations.buyers.bid_schedules(offered)
    lr = m.policy.last_resort
    units = [int(u[b == lr].sum()) for b, _, u in bids]
    live = m.compute.fundamental_value > 0
    assert live.any()
    assert all(units[g] == 50_000 for g in np.flatnonzero(live))


def test_ltv_cap_bounds_every_new_gpu_loan(monkeypatch):
    cap = 0.45
    seen = {"on": [], "off": []}
    original = investment._draw_tranches

    def spy(m, t, idx, lenders, g, principal, spread, ltv, tenor, units, cost):
        mark = np.where(m.market_policy[lenders], m.mark_market[g], m.mark_appraisal[g])
        value = units * np.minimum(cost, mark)
        key = "on" if m.cfg["policy"]["ltv_cap"] else "off"
        seen[key].extend((principal / value).tolist())
        return original(m, t, idx, lenders, g, principal, spread, ltv, tenor, units, cost)

    monkeypatch.setattr(investment, "_draw_tranches", spy)
    for seed in SEEDS:
        _model({"policy.ltv_cap": True, "policy.ltv_cap_max_ltv": cap}, seed).run()
        _model({}, seed).run()
    assert len(seen["on"]) > 10
    assert max(seen["on"]) <= cap * (1 + 1e-9)
    assert max(seen["off"]) > cap  # without the cap some new loan is above it


def _covenant_defaults_by_stress(over: dict, seed: int) -> tuple[int, int, int]:
    """(covenant defaults in stress months, in other months, holiday months) of one run."""
    m = _model(over, seed)
    in_stress = out_stress = 0
    while m.running:
        start = len(m.events.rows)
        m.step()
        n = sum(
            1 for r in m.events.rows[start:] if r[2] == "default" and r[5] in ("ltv", "coverage")
        )
        if m.shocks.stress:
            in_stress += n
        else:
            out_stress += n
    return in_stress, out_stress, len(m.policy.holiday_months)


def test_forbearance_no_covenant_default_in_stress():
    on = {"policy.forbearance": True, "policy.forbearance_max_months": 600}
    off_in_stress = 0
    for seed in SEEDS:
        in_stress, _, holidays = _covenant_defaults_by_stress(on, seed)
        assert in_stress == 0
        assert holidays > 0
        off_in_stress += _covenant_defaults_by_stress({}, seed)[0]
    assert off_in_stress > 0  # without forbearance the crash has covenant defaults in stress


def test_forbearance_month_limit():
    m = _model({"policy.forbearance": True, "policy.forbearance_max_months": 3}, 1)
    m.run()
    assert len(m.policy.holiday_months) == 3


def test_capital_requirement_blocks_lenders_below_it(monkeypatch):
    funded = []
    original = investment._draw_capacity

    def spy(capacity_left, lenders, amounts):
        funded.append((lenders.copy(), amounts.copy()))
        return original(capacity_left, lenders, amounts)

    monkeypatch.setattr(investment, "_draw_capacity", spy)
    below_months = 0
    buffers = []
    for seed in SEEDS:
        m = _model({"policy.capital_requirement": True, "policy.capital_min_ratio": 0.3}, seed)
        while m.running:
            funded.clear()
            m.step()
            below = m.policy.below_requirement
            for lenders, amounts in funded:
                assert not below[lenders[amounts > 0]].any()
            below_months += int(below.sum())
            buffers.append((m.shocks.stress, m.policy.buffer_ratio))
    assert below_months > 0  # the requirement binds somewhere
    assert all(b == 0.0 for s, b in buffers if s)  # the buffer is released in stress
    assert max(b for s, b in buffers if not s) == pytest.approx(0.025)


def test_capital_requirement_rebuilds_buffer_in_calm():
    m = _model({"policy.capital_requirement": True}, 0)
    path = []
    while m.running:
        m.step()
        path.append((m.shocks.stress, m.policy.buffer_ratio))
    step = 0.025 / 12
    rebuilt = 0
    for (_, b0), (s1, b1) in zip(path, path[1:], strict=False):
        if not s1:
            assert b1 == pytest.approx(min(0.025, b0 + step))
            rebuilt += b1 > b0
    assert rebuilt >= 12  # released in the crash, then rebuilt over a year of calm


@pytest.mark.parametrize(
    "key,value",
    [
        ("policy.last_resort_share_of_fundamental", 1.5),
        ("policy.last_resort_budget_usd", -1.0),
        ("policy.ltv_cap_max_ltv", 0.0),
        ("policy.forbearance_max_months", 1.5),
        ("policy.capital_buffer_build_months", 0),
        ("policy.risk_weight_gpu_loans", 20.0),
        ("policy.ltv_cap", "yes"),
    ],
)
def test_bad_policy_field_names_it(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_scenario("baseline", {key: value})


def test_last_resort_kind_name_is_reserved():
    over = {
        "policy.last_resort_buyer": True,
        "buyers.kinds.last_resort": dict(load_scenario("baseline")["buyers"]["kinds"]["broker"]),
    }
    with pytest.raises(ConfigError, match=r"buyers\.kinds\.last_resort"):
        load_scenario("baseline", over)


def test_every_invariant_holds_monthly_with_all_levers_on():
    over = {
        "policy.last_resort_buyer": True,
        "policy.last_resort_share_of_fundamental": 0.8,  # above lenders' hold values: it trades
        "policy.ltv_cap": True,
        "policy.forbearance": True,
        "policy.capital_requirement": True,
    }
    spent = 0.0
    for seed in SEEDS:
        m = _model(over, seed)
        while m.running:
            m.step()
            assert invariants.all_problems(m) == [], (seed, m.month)
        spent += m.policy.last_resort_spent_usd
    assert spent > 0  # the buyer of last resort traded, so its flows were checked
