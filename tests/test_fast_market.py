"""Fast paths of the secondary market round against the slow code they replaced.

The twins kept here are the code as it was before the issue-16 speed pass on the market round:
the call auction sorting the whole ask book (:func:`_clear_uniform_whole_book`), the DCF computed
on every call for every rate given (:func:`_value_per_gpu_direct`), bid schedules built one
generation at a time, the mark evidence walking the bids with its own sort, bought units
credited buyer by buyer, offers (reserves, best bids) computed in rounds with nothing to offer,
and lenders' lots found by clipping owners. Unit tests draw books and rates; whole-run tests swap every twin back
and check that each output table is identical, and that the runs used the fast paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twins import run_tables

import abm
from abm import policy
from abm.agents.base import ACTIVE, DEFAULTED, LENDER
from abm.agents.buyer import Buyers
from abm.finance import estate_sale, impairment
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.markets import compute as compute_module
from abm.markets.secondary import Clearing, clear_uniform
from abm.model import AIComputeCreditModel
from abm.phases import market

# ----------------------------------------------------------------------------- the slow twins


def _fill_whole(order: np.ndarray, units: np.ndarray, quantity: int) -> np.ndarray:
    filled = np.zeros(len(units), dtype=np.int64)
    cum = np.cumsum(units[order])
    full = cum <= quantity
    filled[order[full]] = units[order[full]]
    k = int(full.sum())
    if k < len(order):
        filled[order[k]] = quantity - (cum[k - 1] if k > 0 else 0)
    return filled


def _clear_uniform_whole_book(ask_price, ask_units, bid_price, bid_units) -> Clearing:
    """The call auction as it was: every ask sorted, cumulative sums computed twice."""
    ask_price = np.asarray(ask_price, dtype=float)
    ask_units = np.asarray(ask_units, dtype=np.int64)
    bid_price = np.asarray(bid_price, dtype=float)
    bid_units = np.asarray(bid_units, dtype=np.int64)
    empty = Clearing(
        float("nan"), 0, np.zeros(len(ask_units), np.int64), np.zeros(len(bid_units), np.int64)
    )
    if len(ask_units) == 0 or len(bid_units) == 0 or ask_units.sum() == 0 or bid_units.sum() == 0:
        return empty
    ask_order = np.argsort(ask_price, kind="stable")
    bid_order = np.argsort(-bid_price, kind="stable")
    sorted_ask_price = ask_price[ask_order]
    cum_ask = np.cumsum(ask_units[ask_order])
    cum_bid = np.cumsum(bid_units[bid_order])
    bp = bid_price[bid_order]
    supply_at = np.searchsorted(sorted_ask_price, bp, side="right")
    supply_units = np.where(supply_at > 0, cum_ask[np.maximum(supply_at - 1, 0)], 0)
    traded = np.minimum(cum_bid, supply_units)
    best = int(np.argmax(traded))
    quantity = int(traded[best])
    if quantity <= 0:
        return empty
    marginal = int(np.searchsorted(cum_bid, quantity, side="left"))
    price = float(bp[marginal])
    sold = _fill_whole(ask_order, ask_units, quantity)
    bought = _fill_whole(bid_order, bid_units, quantity)
    return Clearing(price, quantity, sold, bought)


def _value_per_gpu_direct(self, month, annual_discount_rate, horizon=None, rent_share=1.0):
    """ComputeMarket.value_per_gpu as it was: the DCF computed on every call, for every rate."""
    cfg = self.cfg
    if horizon is None:
        horizon = cfg["valuation_horizon_months"]
    k = np.arange(1, horizon + 1)
    rent, op = self.expected_rent_and_power(horizon)
    margin = np.maximum(rent * rent_share - op, 0.0) - self.colo_cost_per_hour[:, None]
    cash = margin * self.hours
    rates = np.atleast_1d(np.asarray(annual_discount_rate, dtype=float))
    disc = (1.0 + rates[:, None]) ** (-k[None, :] / 12.0)
    kept = np.cumsum(cash[:, None, :] * disc[None, :, :], axis=2)
    kept += self.salvage_usd_per_gpu[:, None, None] * disc[None, :, :]
    values = np.maximum(kept.max(axis=2), self.salvage_usd_per_gpu[:, None])
    return values[:, 0] if np.ndim(annual_discount_rate) == 0 else values


def _bid_schedules_by_generation(self, offered_units: np.ndarray):
    """Buyers.bid_schedules as it was: one generation at a time."""
    m = self.model
    b = m.buyer_idx
    active = m.status[b] == ACTIVE
    value = self.valuations()
    level = self.bid_levels()
    steps = len(level)
    offered_value = offered_units[:, None] * value
    offered_mw = offered_units[:, None] * m.kw[:, None] / 1000.0 * (value > 0)
    budget_share = offered_value / np.maximum(offered_value.sum(axis=0, keepdims=True), 1e-9)
    mw_share = offered_mw / np.maximum(offered_mw.sum(axis=0, keepdims=True), 1e-9)
    budget = budget_share * np.maximum(m.budget_left[b], 0.0)[None, :]
    mw = mw_share * np.maximum(m.mw_left[b], 0.0)[None, :]
    out = []
    for g in range(m.G):
        if offered_units[g] <= 0:
            out.append((np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)))
            continue
        cap_units = np.minimum(mw[g] * 1000.0 / m.kw[g], offered_units[g])
        prices = value[g][:, None] * level[None, :]
        cum = cap_units[:, None] * (np.arange(1, steps + 1) / steps)[None, :]
        cum = np.minimum(cum, budget[g][:, None] / np.maximum(prices, 1e-9))
        cum = np.floor(np.maximum.accumulate(cum, axis=1))
        incr = np.empty(cum.shape, dtype=np.int64)
        incr[:, 0] = cum[:, 0]
        np.subtract(cum[:, 1:], cum[:, :-1], out=incr[:, 1:], casting="unsafe")
        ok = (incr > 0) & (prices > 0) & active[:, None]
        out.append((b.take(ok.nonzero()[0]), prices[ok], incr[ok]))
    return policy.with_last_resort_bids(m, out, offered_units)


def _record_mark_evidence_sorting(m, t, g, offered_units, result, bid_price, bid_units) -> None:
    """market._record_mark_evidence as it was: its own sort of the bids, np.diff with prepend."""
    if offered_units <= 0:
        return
    if m.mark_evidence_month[g] != t:
        m.mark_evidence_month[g] = t
        m.mark_offered_units[g] = 0.0
        m.mark_evidence_usd[g] = 0.0
    sold = result.quantity
    filled = result.bought if sold > 0 else np.zeros(len(bid_units), dtype=np.int64)
    unsold = max(offered_units - sold, 0)
    lowest = m.this_month.min_discount[g] * m.compute.fundamental_value[g]
    if sold > 0:
        lowest = result.price if np.isnan(lowest) else min(lowest, result.price)
    beyond = float(m.compute.salvage_usd_per_gpu[g]) if np.isnan(lowest) else float(lowest)
    left = bid_units - filled
    order = np.argsort(-bid_price, kind="stable")
    take = np.diff(np.minimum(np.cumsum(left[order]), unsold), prepend=0)
    walked = float((take * bid_price[order]).sum())
    unsold_value = walked + (unsold - int(take.sum())) * beyond
    m.mark_offered_units[g] += offered_units
    m.mark_evidence_usd[g] += sold * (result.price if sold > 0 else 0.0) + unsold_value
    m.last_trade_price[g] = m.mark_evidence_usd[g] / m.mark_offered_units[g]
    m.last_trade_weight[g] = min(
        1.0, m.mark_offered_units[g] / m.cfg["compute"]["mark_full_weight_units"]
    )
    m.last_trade_month[g] = t


def _add_to_buyers_one_by_one(m, buyers, g, units, price, t) -> None:
    """The units bought credited as they were: one buyer, one lot row, one write at a time."""
    for buyer, n in zip(buyers, units, strict=True):
        redeployed = policy.redeployed_units(m, buyer, n)
        for exported, n_units in ((False, redeployed), (True, n - redeployed)):
            if n_units <= 0:
                continue
            key = (buyer, g, exported)
            row = m.buyer_lots.get(key)
            if row is None:
                row = int(
                    m.lots.add(
                        owner=buyer,
                        gen=g,
                        units=0,
                        acquired_month=t,
                        cost_usd_per_unit=price,
                        exported=exported,
                    )[0]
                )
                m.buyer_lots[key] = row
            m.lots.units[row] += n_units


def _offers_every_round(m, t: int, rnd: int):
    """market._offers as it was: the sellers' reserves and the best bids computed in every round,
    also when no lot is left to offer; empty offers dropped after gathering."""
    lots = m.lots
    lot_units, owner = lots.units, lots.owner
    is_lender, is_estate = m.type == LENDER, m.status == DEFAULTED
    has = np.flatnonzero(
        (lot_units > 0) & (lots.offered_month != t) & (is_lender | is_estate).take(owner)
    )
    has_owner = owner.take(has)
    best_bid = m.populations.buyers.best_bids_usd()
    rows_e = has[is_estate.take(has_owner)]
    parts = [
        m.populations.lenders.offer_seized_lots(has[is_lender.take(has_owner)], best_bid),
        (rows_e, lot_units[rows_e], estate_sale.estate_reserves_usd(m, rows_e)),
    ]
    if rnd == 0:
        loans = m.loans
        owed = np.flatnonzero(loans.arrears_usd > 0)
        owed = owed[
            (loans.status[owed] == LOAN_ACTIVE) & (m.status[loans.borrower[owed]] == ACTIVE)
        ]
        arrears = np.bincount(loans.borrower[owed], weights=loans.arrears_usd[owed], minlength=m.n)
        arrears = np.maximum(arrears - np.maximum(m.acct.cash, 0.0), 0.0)
        parts.append(m.populations.neoclouds.voluntary_offers(arrears, best_bid))
    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    units = np.concatenate([p[1] for p in parts]).astype(np.int64)
    reserve = np.concatenate([p[2] for p in parts]).astype(float)
    reserve = np.maximum(reserve, m.compute.salvage_usd_per_gpu[lots.gen[rows]])
    keep = units > 0
    return rows[keep], units[keep], reserve[keep]


# ----------------------------------------------------------------------------- the call auction

# few distinct prices, so that ties (between asks, between bids, and across) are common
PRICES = st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, 7.0, np.inf])
ODD_PRICES = st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan, np.inf, -np.inf])


def _books(prices):
    side = st.lists(st.tuples(prices, st.integers(0, 6)), max_size=14)
    return st.tuples(side, side)


def _assert_same_clearing(asks, bids) -> None:
    ap, au = (np.array([p for p, _ in asks]), np.array([u for _, u in asks], dtype=np.int64))
    bp, bu = (np.array([p for p, _ in bids]), np.array([u for _, u in bids], dtype=np.int64))
    fast, slow = clear_uniform(ap, au, bp, bu), _clear_uniform_whole_book(ap, au, bp, bu)
    assert fast.quantity == slow.quantity
    assert np.array_equal([fast.price], [slow.price], equal_nan=True)
    assert np.array_equal(fast.sold, slow.sold)
    assert np.array_equal(fast.bought, slow.bought)
    if fast.bid_order is not None:  # the order handed to the mark evidence is the bids' priority
        assert np.array_equal(fast.bid_order, np.argsort(-bp, kind="stable"))


@settings(max_examples=400, deadline=None)
@given(_books(PRICES))
def test_clearing_without_the_dear_asks_equals_sorting_the_whole_book(book):
    _assert_same_clearing(*book)


@settings(max_examples=300, deadline=None)
@given(_books(ODD_PRICES))
def test_clearing_equals_the_whole_book_with_nan_and_infinite_prices(book):
    _assert_same_clearing(*book)


def test_the_auction_leaves_out_asks_dearer_than_every_bid():
    # the ask at 9 is above the best bid (5): it sells nothing, the cheap ones fill in price order
    c = clear_uniform([9.0, 1.0, 2.0], [10, 3, 3], [5.0, 4.0], [4, 4])
    assert (c.quantity, c.price) == (6, 4.0)
    assert c.sold.tolist() == [0, 3, 3]
    assert c.bought.tolist() == [4, 2]


# ----------------------------------------------------------------------------- DCF values


@pytest.fixture(scope="module")
def stepped_model():
    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=3)
    for _ in range(4):
        model.step()
    return model


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.sampled_from([0.0, 0.05, 0.08, 0.12, 0.25, 0.4]), min_size=1, max_size=9),
    rent_share=st.sampled_from([1.0, 0.85]),
)
def test_remembered_dcf_values_equal_the_dcf_computed_each_call(stepped_model, rates, rent_share):
    c = stepped_model.compute
    rates = np.array(rates)
    for _ in range(2):  # the second call reads the remembered values
        fast = c.value_per_gpu(0, rates, rent_share=rent_share)
        slow = _value_per_gpu_direct(c, 0, rates, rent_share=rent_share)
        assert np.array_equal(fast, slow)
    assert np.array_equal(c.value_per_gpu(0, 0.08), _value_per_gpu_direct(c, 0, 0.08))


def test_remembered_dcf_values_follow_the_market_and_are_the_callers_own():
    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=4)
    model.step()
    c = model.compute
    rates = model.hurdle[model.buyer_idx]
    first = c.value_per_gpu(0, rates)
    reference = first.copy()
    first[:] = -1.0  # a caller writing into its values does not change the next caller's
    assert np.array_equal(c.value_per_gpu(0, rates), reference)
    c.clear(c.demand_perf_units * 0.5, c.supply_perf_units)  # a slacker market: other rents
    after = c.value_per_gpu(0, rates)
    assert np.array_equal(after, _value_per_gpu_direct(c, 0, rates))
    assert not np.array_equal(after, reference)  # (so a stale value would have been caught)
    c.salvage_usd_per_gpu = c.salvage_usd_per_gpu + 100.0  # any input changed: a new DCF
    assert np.array_equal(c.value_per_gpu(0, rates), _value_per_gpu_direct(c, 0, rates))


# ----------------------------------------------------------------------------- lenders' lots


def _lender_lot_rows_clipping(m) -> np.ndarray:
    """impairment.lender_lot_rows as it was: owners clipped at 0, then masked."""
    owner = m.lots.owner
    held = (owner >= 0) & (m.lots.units > 0)
    return np.flatnonzero(held & (m.type[np.maximum(owner, 0)] == LENDER))


def test_lender_lot_rows_equal_the_clipped_scan_with_lots_without_an_owner():
    model = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=1)
    for _ in range(14):  # by month 12 lenders hold seized lots (20 at month 14)
        model.step()
    rows = impairment.lender_lot_rows(model)
    assert len(rows) > 0  # lenders hold seized lots in this run
    assert np.array_equal(rows, _lender_lot_rows_clipping(model))
    model.lots.owner[rows[0]] = -1  # a lot without an owner is no lender's
    assert np.array_equal(impairment.lender_lot_rows(model), _lender_lot_rows_clipping(model))
    assert rows[0] not in impairment.lender_lot_rows(model)


# ----------------------------------------------------------------------------- whole runs

# the default clearing; sellers one at a time with the buyer of last resort buying (at 0.8 x the
# fundamental value: at the packaged 0.5 it buys nothing in this run); a large book
LAST_RESORT = {
    "market.clearing": "sequential",
    "policy.last_resort_buyer": True,
    "policy.last_resort_share_of_fundamental": 0.8,
}
RUNS = [
    ("correlated_crash", 5, {}),
    ("correlated_crash", 1, LAST_RESORT),
    ("large_network", 0, {"run.months": 30}),
]


def _tables(scenario: str, seed: int, overrides: dict) -> list[pd.DataFrame]:
    return run_tables(scenario, seed, overrides=overrides)


@pytest.mark.parametrize(("scenario", "seed", "overrides"), RUNS)
def test_market_round_fast_paths_equal_their_slow_twins_over_whole_runs(
    monkeypatch, scenario, seed, overrides
):
    used = {"trades": 0, "dcf_reused": 0}
    fast_clear = market.clear_uniform
    fast_dcf = compute_module.ComputeMarket._dcf_values
    calls = {"value": 0, "dcf": 0}

    def counting_clear(*args):
        out = fast_clear(*args)
        used["trades"] += out.quantity > 0
        return out

    def counting_dcf(self, *args):
        calls["dcf"] += 1
        return fast_dcf(self, *args)

    fast_value = compute_module.ComputeMarket.value_per_gpu

    def counting_value(self, *args, **kwargs):
        calls["value"] += 1
        return fast_value(self, *args, **kwargs)

    fast_fund = policy.fund_last_resort

    def counting_fund(m, buyer, cash_usd):
        used["last_resort_trades"] += int((buyer == m.policy.last_resort).sum())
        return fast_fund(m, buyer, cash_usd)

    used["last_resort_trades"] = 0
    monkeypatch.setattr(policy, "fund_last_resort", counting_fund)
    monkeypatch.setattr(market, "clear_uniform", counting_clear)
    monkeypatch.setattr(compute_module.ComputeMarket, "_dcf_values", counting_dcf)
    monkeypatch.setattr(compute_module.ComputeMarket, "value_per_gpu", counting_value)
    fast = _tables(scenario, seed, overrides)
    assert used["trades"] > 0  # the auctions traded
    assert calls["dcf"] < calls["value"]  # remembered DCF values were served
    assert (used["last_resort_trades"] > 0) == (overrides is LAST_RESORT)

    monkeypatch.setattr(market, "clear_uniform", _clear_uniform_whole_book)
    monkeypatch.setattr(compute_module.ComputeMarket, "value_per_gpu", _value_per_gpu_direct)
    monkeypatch.setattr(Buyers, "bid_schedules", _bid_schedules_by_generation)
    monkeypatch.setattr(market, "_record_mark_evidence", _record_mark_evidence_sorting)
    monkeypatch.setattr(market, "_add_to_buyers", _add_to_buyers_one_by_one)
    monkeypatch.setattr(impairment, "lender_lot_rows", _lender_lot_rows_clipping)
    monkeypatch.setattr(market, "_offers", _offers_every_round)
    slow = _tables(scenario, seed, overrides)
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
