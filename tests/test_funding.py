"""Finite lender funding (abm/finance/funding.py): runs, redemptions, borrowing-base calls, the
outside funding cap and illiquidity failures, and the ``funding`` channel switch."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm import invariants
from abm.finance import funding
from abm.model import AIComputeCreditModel

FUNDING_EVENTS = ("redemption", "depositor_run", "funding_margin_call")


def _run(scenario: str, seed: int, overrides: dict | None = None) -> AIComputeCreditModel:
    m = AIComputeCreditModel(abm.load_scenario(scenario, overrides), rng=seed)
    m.run()
    return m


def _kind(m, agent: int) -> str:
    return m.lender_kind_names[int(m.lender_kind[agent])]


def test_draws_stop_at_the_cap():
    """A lender asking for more outside funding than its cap allows gets only the room left."""
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0, months=1)
    m.step()
    i = m.lender_idx[:2]
    m.funding_state.cap_usd[i] = m.outside_funding_usd[i] + np.array([5.0e6, 0.0])
    before, cash = m.outside_funding_usd[i].copy(), m.acct.cash[i].copy()
    drawn = funding.draw_outside_funding(m, i, np.array([8.0e6, 3.0e6]))
    np.testing.assert_allclose(drawn, [5.0e6, 0.0])
    np.testing.assert_allclose(m.outside_funding_usd[i] - before, [5.0e6, 0.0])
    np.testing.assert_allclose(m.acct.cash[i] - cash, [5.0e6, 0.0])
    assert invariants.check(m) == []  # the cash came from the outside_funders sector


def test_a_crypto_depositor_run_leads_to_loan_sales_at_one_price():
    """correlated_crash seed 0: BTC falls more than half below its 12-month high, the crypto
    lenders' depositors run, and the withdrawals they cannot pay from cash are a funding need they
    meet by selling loans: each ``loan_sale`` has the run as its parent and goes below par (the
    volume sold over the buyers' cash sets the discount, abm/finance/loan_sales.py)."""
    m = _run("correlated_crash", 0)
    rows = {r[0]: r for r in m.events.rows}
    runs = {i for i, r in rows.items() if r[2] == "depositor_run"}
    assert runs and all(rows[i][5] in ("btc_fall", "losses") for i in runs)
    sales = [r for r in rows.values() if r[2] == "loan_sale"]
    assert sales
    for r in sales:
        assert set(m.events.parents(r[0])) & runs, r
        assert 0.5 <= r[10] < 1.0
    assert m.funding_state.loan_sale_discount_usd.sum() > 0


def test_a_run_that_cannot_be_met_ends_in_an_illiquidity_failure(monkeypatch):
    """With no loan sales possible (the sale verb made a no-op), correlated_crash seed 0's crypto
    lenders cannot pay their running depositors: after the grace month they fail for illiquidity,
    with the run among the failure's parents, while still solvent (no write-down of their funding)."""
    from abm.finance import loan_sales

    monkeypatch.setattr(loan_sales, "sell_loans", lambda *args, **kwargs: None)
    m = _run("correlated_crash", 0)
    rows = {r[0]: r for r in m.events.rows}
    runs = {i for i, r in rows.items() if r[2] == "depositor_run"}
    failures = [r for r in rows.values() if r[2] == "default" and r[5] == "illiquidity"]
    assert failures
    agent_row = {int(a): i for i, a in enumerate(m.agent_ids)}
    for r in failures:
        assert set(m.events.parents(r[0])) & runs, r
        assert r[1] > min(rows[i][1] for i in runs)  # a month of grace after the first run
        assert m.funding_written_down_usd[agent_row[r[3]]] == 0.0


@pytest.mark.parametrize("seeds", [range(12)])
def test_runs_and_loan_sales_over_crash_seeds(seeds):
    """Over correlated_crash seeds 0-11 (measured: depositor runs and loan sales in 12 of 12 seeds,
    no illiquidity failure), runs are the rule in a crypto crash, as in 2022; every run is at a
    crypto lender, every redemption at an HY or private-credit fund, and all loans sold in a month
    go at one price."""
    with_runs = with_sales = 0
    for seed in seeds:
        m = _run("correlated_crash", seed)
        rows = m.events.rows
        agent_row = {int(a): i for i, a in enumerate(m.agent_ids)}
        price_of_month = {}
        for r in rows:
            if r[2] == "depositor_run":
                assert _kind(m, agent_row[r[3]]) == "crypto_lender"
            if r[2] == "redemption":
                assert _kind(m, agent_row[r[3]]) in ("hy_fund", "private_credit")
            if r[2] == "loan_sale":
                assert price_of_month.setdefault(r[1], r[10]) == r[10]
        with_runs += any(r[2] == "depositor_run" for r in rows)
        with_sales += bool(price_of_month)
    assert with_runs >= 10 and with_sales >= 10


def test_the_funding_channel_off_turns_finite_funding_off():
    """With ``channels.funding = false``: no runs, redemptions or borrowing-base calls, no
    illiquidity failures, no interbank loans, and a lender short of cash draws what it needs."""
    m = _run("correlated_crash", 0, {"channels.funding": False})
    events = {r[2] for r in m.events.rows} | {r[5] for r in m.events.rows}
    assert not events & {*FUNDING_EVENTS, "loan_sale", "illiquidity"}
    fs = m.funding_state
    assert fs.redemptions_total_usd.sum() == fs.withdrawals_total_usd.sum() == 0.0
    assert not (m.funding_need_usd > 0).any()
    assert invariants.funding_problems(m) == []


def test_funding_invariants_hold_every_month_in_a_crash():
    """correlated_crash seed 1 (runs, redemptions, six lender failures): the funding invariants
    (cap, interbank add-up, redemptions received by fund investors) hold every month, and the
    private-credit funds' redemptions in the 3 months up to a month they pay stay within their gate
    of 5 % of the equity (NAV) they have when they pay (equity read at the end of the month plus
    the month's redemptions; 5 % slack for the month's later gains and losses)."""
    m = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=1)
    pc = np.array([i for i in m.lender_idx if _kind(m, i) == "private_credit"])
    pc_pos = np.searchsorted(m.lender_idx, pc)
    paying_months = 0
    while m.running:
        m.step()
        assert invariants.funding_problems(m) == []
        window = m.funding_state.redeemed_usd[pc]
        paid_now = window[:, -1] > 0
        nav = np.maximum(m.lender_equity()[pc_pos], 0.0) + window[:, -1]
        assert np.all(window.sum(axis=1)[paid_now] <= 0.05 * 1.05 * nav[paid_now] + 1.0)
        paying_months += int(paid_now.any())
    assert paying_months > 0


def test_bank_capital_ratio_is_equity_over_risk_weighted_assets():
    """``Lenders.risk_based_capital``: RWA = risk weight x (loans + GPUs); cash weighs nothing."""
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0, months=1)
    ratio, rwa = m.populations.lenders.risk_based_capital()
    claims, inventory = m.claims_and_inventory()
    lenders = m.lender_idx
    np.testing.assert_allclose(
        rwa, m.lk["loan_risk_weight"][lenders] * (claims + inventory)[lenders]
    )
    has = rwa > 0
    np.testing.assert_allclose(ratio[has], m.lender_equity()[has] / rwa[has])
    # cash is not in RWA: the capital ratio on RWA is above equity / total assets
    assets = m.lender_assets()
    assert np.all(ratio[has] > m.lender_equity()[has] / assets[has])
