"""The secondary market's prices come from its participants (issue 13, item 1): no parameter floor
binds the clearing price, sellers' reserves follow their state, estates hand unsold GPUs over."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm.agents.base import DEFAULTED
from abm.finance import estate_sale
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.model import AIComputeCreditModel

#: declared seeds of correlated_crash for the price tests
SEEDS = range(8)
#: every reserve or bid parameter value, as a share of fundamental value, the packaged scenarios
#: have or had: today's options (both 0), and the retired multipliers and floors (0.3 reserve
#: floor, 0.35 bid floor, 0.45 estate, 0.65 voluntary / distressed, 0.85 lender reserve)
PARAMETER_VALUES = (0.0, 0.3, 0.35, 0.45, 0.65, 0.85)


def _deepest(scale: float, seed: int) -> float:
    cfg = abm.load_scenario("correlated_crash")
    for kind in cfg["buyers"]["kinds"].values():
        kind["monthly_budget_usd"] *= scale
        kind["absorption_mw_per_month"] *= scale
    return abm.run(cfg, seed=seed).summary()["min_price_to_fundamental"] or np.nan


@pytest.fixture(scope="module")
def deepest():
    return {s: {seed: _deepest(s, seed) for seed in SEEDS} for s in (0.25, 1.0, 4.0)}


def test_packaged_scenarios_have_no_price_floor():
    cfg = abm.load_scenario("correlated_crash")
    assert cfg["credit"]["reserve_floor_multiplier"] == 0.0
    assert cfg["buyers"]["bid_floor"] == 0.0


def test_the_deepest_price_sits_at_no_parameter_value(deepest):
    """Seeds 0-7 at 0.25x, 1x and 4x buyer capacity: the deepest clearing price / fundamental of
    every run with a trade is more than 1e-3 away from every reserve or bid parameter value."""
    ratios = [r for by_seed in deepest.values() for r in by_seed.values() if np.isfinite(r)]
    assert len(ratios) >= 12
    for r in ratios:
        assert min(abs(r - v) for v in PARAMETER_VALUES) > 1e-3, r


def test_the_deepest_price_changes_with_buyer_depth(deepest):
    """In at least 2 of seeds 0-7 the deepest price / fundamental differs (by more than 1e-3)
    between 0.25x and 4x buyer capacity (5 of 8 on the market's own branch; 2 of 8 on the merged
    issue-13 model, where the sourced rents make fire sales rare: in the others lenders' hold
    values, not buyers, set the deepest price)."""
    changed = sum(
        abs(deepest[0.25][s] - deepest[4.0][s]) > 1e-3
        for s in SEEDS
        if np.isfinite(deepest[0.25][s]) and np.isfinite(deepest[4.0][s])
    )
    assert changed >= 2, changed


def _model_with_seized_lot(units: int = 1000):
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0, months=2)
    m.step()
    lender = int(m.lender_idx[0])
    g = int(np.argmax(m.compute.fundamental_value))
    row = int(m.lots.add(owner=lender, gen=g, units=units, book_value_usd_per_unit=1.0)[0])
    return m, lender, g, row


def test_a_lender_sells_what_its_funding_need_requires_at_any_price():
    m, lender, g, row = _model_with_seized_lot()
    bid = np.full(m.G, 10_000.0)
    rows, units, reserve = m.populations.lenders.offer_seized_lots(np.array([row]), bid)
    assert units[reserve == 0].sum() == 0  # no need: it sells only against holding
    hold = m.populations.lenders.hold_value_per_gpu(np.array([lender]), np.array([g]))[0]
    assert reserve.max() == pytest.approx(hold) and hold > 0
    m.funding_need_usd[lender] = 2.5e6
    rows, units, reserve = m.populations.lenders.offer_seized_lots(np.array([row]), bid)
    assert units[reserve == 0].sum() == 250  # 2.5e6 / 10,000 per GPU, at reserve 0
    # a lender short of capital values holding less
    m.appetite[lender] = 0.0
    assert m.populations.lenders.hold_value_per_gpu(np.array([lender]), np.array([g]))[0] < hold


def test_an_estate_hands_unsold_gpus_to_its_creditors_at_the_mark():
    m, lender, g, _ = _model_with_seized_lot()
    borrower = int(m.neocloud_idx[0])
    loan = int(m.loans.rows_of_borrower(borrower)[0])
    m.status[borrower] = DEFAULTED
    m.default_month[borrower] = 0
    m.open_estates.add(borrower)
    m.loans.status[loan] = LOAN_DEFAULTED
    m.loans.principal_usd[loan] = 1e12  # larger than every GPU it has
    owned = (m.lots.owner == borrower) & (m.lots.units > 0)
    units_before = int(m.lots.units[owned].sum())
    value = float((m.lots.units[owned] * m.mark_market[m.lots.gen[owned]]).sum())
    claim_lender = int(m.loans.lender[loan])
    seized_before = float(m.inventory_seized_usd[claim_lender])
    losses_before = m.lender_losses_usd
    assert estate_sale.hand_over_unsold(m, m.cfg["credit"]["estate_sale_months"]) == {borrower}
    assert m.lots.units[(m.lots.owner == borrower)].sum() == 0
    assert units_before > 0
    assert m.inventory_seized_usd[claim_lender] - seized_before == pytest.approx(value)
    assert m.loans.principal_usd[loan] == pytest.approx(1e12 - value)
    assert m.lender_losses_usd == losses_before  # no loss until the claim is written off
