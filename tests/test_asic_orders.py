"""Miners' ASIC orders (abm/phases/asic_orders.py): the value/price test, the deposit, delivery after
the lead time on a machine-backed loan at the lender's LTV against its mark, the forfeit rule, and
the order book's identities every month of asic_2022."""

from __future__ import annotations

import numpy as np
import pytest

from abm.config import load_scenario
from abm.finance.instruments import GPU_TERM
from abm.invariants import all_problems
from abm.model import AIComputeCreditModel
from abm.phases import asic_orders
from abm.vocabulary import EVENTS
from abm.world import lenders_of_kind
from abm.world_miner_asics import machine_lender_kinds


def _fresh(outstanding: float = 0.0) -> AIComputeCreditModel:
    """asic_2022 at its start (seed 0), with ``outstanding`` x the fleet on order."""
    cfg = load_scenario("asic_2022")
    cfg["miners"]["asic_orders_outstanding_share"] = outstanding
    return AIComputeCreditModel(cfg, rng=0)


def _one_lender_capacity(m, usd: float) -> tuple[np.ndarray, int]:
    """Capacity left (per agent, USD): ``usd`` at the first machine lender, 0 elsewhere."""
    lender = int(lenders_of_kind(m, machine_lender_kinds(m.cfg))[0])
    capacity = np.zeros(m.n)
    capacity[lender] = usd
    return capacity, lender


def _set_value_ratio(m, ratio: float) -> int:
    """Set the newest ASIC generation's fundamental value to ``ratio`` x its list price."""
    g = asic_orders.newest_asic_generation(m, 0)
    m.compute.fundamental_value[g] = ratio * m.list_price[g]
    return g


def _spare_miner(m, mw: float = 5.0, cash_usd: float = 1e9) -> int:
    """Give the first miner ``mw`` of empty site MW and ample cash."""
    i = int(m.miner_idx[0])
    m.asic_site_mw[i] += mw
    m.acct.cash[i] = cash_usd
    m.monthly_opex_usd[i] = 0.0
    return i


def test_orders_placed_only_when_value_over_price_beats_the_hurdle():
    hurdle = load_scenario("asic_2022")["miners"]["asic_order_hurdle"]
    placed = {}
    for ratio in (1.0 + hurdle + 0.05, 1.0 + hurdle - 0.05):
        m = _fresh()
        assert m.asic_orders.n == 0
        i = _spare_miner(m)
        g = _set_value_ratio(m, ratio)
        capacity, _ = _one_lender_capacity(m, 1e12)
        asic_orders.place_orders(m, 0, capacity)
        ob = m.asic_orders
        placed[ratio] = int(ob.units[ob.miner == i].sum())
        if placed[ratio]:
            # the spare MW is filled, not more; the deposit is the sourced share of the price
            assert placed[ratio] == int(np.floor(5.0 * 1000.0 / m.kw[g]))
            share = m.cfg["miners"]["asic_order_deposit_share"]
            assert m.asic_deposits_usd[i] == pytest.approx(placed[ratio] * m.list_price[g] * share)
    assert placed[1.0 + hurdle + 0.05] > 0
    assert placed[1.0 + hurdle - 0.05] == 0


def test_orders_limited_by_cash_for_the_deposit():
    m = _fresh()
    i = _spare_miner(m, mw=50.0, cash_usd=1e6)
    g = _set_value_ratio(m, 2.0)
    capacity, lender = _one_lender_capacity(m, 1e12)
    asic_orders.place_orders(m, 0, capacity)
    ob = m.asic_orders
    ltv = m.populations.lenders.new_loan_terms(np.array([lender]))[0][0]
    price = m.list_price[g]
    own = max(
        price * m.cfg["miners"]["asic_order_deposit_share"],
        price - ltv * m.lender_marks_usd(lender, g),
    )
    # 50 MW would take ~2,300 machines; $1M of cash pays the own share of far fewer
    assert int(ob.units[ob.miner == i].sum()) == int(np.floor(1e6 / own))


def test_delivery_after_the_lead_time_on_a_loan_at_the_lenders_ltv():
    m = _fresh()
    i = _spare_miner(m)
    g = _set_value_ratio(m, 2.0)
    capacity, lender = _one_lender_capacity(m, 1e12)
    asic_orders.place_orders(m, 0, capacity)
    ob = m.asic_orders
    units = int(ob.units[0])
    lag = m.cfg["miners"]["asic_order_lead_months"]
    assert int(ob.delivery_month[0]) == lag
    lots_before, loans_before = m.lots.n, m.loans.n
    asic_orders.deliver_orders(m, lag - 1, capacity)
    assert ob.open[0] and m.lots.n == lots_before
    asic_orders.deliver_orders(m, lag, capacity)
    assert not ob.open[0]
    new_lot = m.lots.n - 1
    assert m.lots.n == lots_before + 1 and m.loans.n == loans_before + 1
    assert int(m.lots.units[new_lot]) == units and int(m.lots.owner[new_lot]) == i
    row = loans_before
    assert m.loans.kind[row] == GPU_TERM and int(m.lots.loan[new_lot]) == row
    ltv = m.populations.lenders.new_loan_terms(np.array([lender]))[0][0]
    mark = m.lender_marks_usd(lender, g)
    balance = units * m.list_price[g] - float(ob.deposit_usd[0])
    assert m.loans.principal_usd[row] == pytest.approx(min(ltv * units * mark, balance))
    assert m.asic_deposits_usd[i] == 0.0 and ob.deposits_applied_usd == pytest.approx(
        float(ob.deposit_usd[0])
    )
    assert asic_orders.order_book_problems(m) == []


def test_a_miner_that_cannot_pay_the_balance_forfeits_its_deposit():
    m = _fresh()
    i = _spare_miner(m)
    _set_value_ratio(m, 2.0)
    capacity, _ = _one_lender_capacity(m, 1e12)
    asic_orders.place_orders(m, 0, capacity)
    ob = m.asic_orders
    deposit = float(ob.deposit_usd[0])
    m.acct.cash[i] = 0.0
    no_credit = np.zeros(m.n)  # the lenders have nothing left to lend
    lots_before = m.lots.n
    asic_orders.deliver_orders(m, int(ob.delivery_month[0]), no_credit)
    assert m.lots.n == lots_before
    assert ob.deposits_forfeited_usd == pytest.approx(deposit)
    assert ob.units_forfeited == int(ob.units[0])
    assert asic_orders.order_book_problems(m) == []


def test_no_orders_without_asic_generations():
    m = AIComputeCreditModel(load_scenario("baseline"), rng=0)
    capacity = np.full(m.n, 1e12)
    asic_orders.run(m, 0, capacity)
    assert m.asic_orders.n == 0 and not m.asic_deposits_usd.any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_order_book_identities_every_month_of_asic_2022(seed):
    m = AIComputeCreditModel(load_scenario("asic_2022"), rng=seed)
    assert m.asic_orders.units_ordered > 0  # the 2021 order book
    for _ in range(m.months):
        m.step()
        assert asic_orders.order_book_problems(m) == []
        assert all_problems(m) == []
    ob = m.asic_orders
    assert ob.units_delivered > 0 and not ob.open.any()
    assert {row[2] for row in m.events.rows} <= set(EVENTS)
