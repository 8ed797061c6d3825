"""Phases 8-9: the secondary GPU market round and the re-marking of collateral.

Offers come from lenders' seized inventory (a share per month, at a reserve that drops when the lender is
stressed), bankruptcy estates (everything, at the distressed reserve) and, in the first round, borrowers
in arrears (free lots, at the voluntary reserve). Buyers bid from their valuations, budgets and MW.
Each generation clears once at a uniform price; then marks move.
"""

from __future__ import annotations

import numpy as np

from abm import policy
from abm.agents.base import ACTIVE, DEFAULTED, LENDER
from abm.finance import losses, resolution
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.markets.secondary import clear_uniform
from abm.world import match_cumulative


def _offers(m, t: int, rnd: int):
    """(lot rows, units, reserve USD per unit) of everything for sale this round."""
    lots = m.lots
    fundamental = m.compute.fundamental_value
    lot_units = lots.units
    owner = lots.owner
    # forced sellers: lenders (seized inventory) and estates; only their lots are gathered
    is_lender, is_estate = m.type == LENDER, m.status == DEFAULTED
    has = np.flatnonzero(
        (lot_units > 0) & (lots.offered_month != t) & (is_lender | is_estate).take(owner)
    )
    has_owner = owner.take(has)
    # a forced seller cuts its reserve for every month a lot has stayed unsold
    decay_per_month = m.cfg["credit"]["reserve_decay_per_unsold_month"]
    rows_l = has[is_lender.take(has_owner)]
    units_l, res_l = m.populations.lenders.offer_seized_lots(rows_l)
    floor = m.cfg["credit"]["reserve_floor_multiplier"]
    rows_e = has[is_estate.take(has_owner)]
    units_e = lot_units[rows_e]
    res_e = (
        np.maximum(
            m.cfg["credit"]["estate_reserve_multiplier"]
            * decay_per_month ** lots.unsold_months[rows_e],
            floor,
        )
        * fundamental[lots.gen[rows_e]]
    )
    parts = [(rows_l, units_l, res_l), (rows_e, units_e, res_e)]
    if rnd == 0:
        loans = m.loans
        owed = np.flatnonzero(loans.arrears_usd > 0)  # loans without arrears add nothing
        owed = owed[
            (loans.status[owed] == LOAN_ACTIVE) & (m.status[loans.borrower[owed]] == ACTIVE)
        ]
        arrears = np.bincount(loans.borrower[owed], weights=loans.arrears_usd[owed], minlength=m.n)
        arrears = np.maximum(arrears - np.maximum(m.acct.cash, 0.0), 0.0)
        parts.append(m.populations.neoclouds.voluntary_offers(arrears))
    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    units = np.concatenate([p[1] for p in parts]).astype(np.int64)
    reserve = np.concatenate([p[2] for p in parts]).astype(float)
    keep = units > 0
    return rows[keep], units[keep], reserve[keep]


def secondary_round(m, t: int, rnd: int) -> bool:
    """Collect all offers and bids, clear, settle. Returns True if anything traded.

    ``market.clearing = "simultaneous"`` (default): every offer and bid of the
    round meets in one uniform-price auction per generation. ``"sequential"`` (for comparison): sellers
    come one at a time in a random order, each clears alone against what is left of the bid book, and
    the marks move after each seller.
    """
    rows, units, reserve = _offers(m, t, rnd)
    if len(rows) == 0:
        return False
    lots = m.lots
    lots.offered_month[rows] = t
    gen = lots.gen[rows]
    estates: set[int] = set()
    sold_by_offer = np.zeros(len(rows), dtype=np.int64)
    traded = False
    if m.cfg["market"]["clearing"] == "sequential":
        owners = lots.owner[rows]
        for seller in m.rng.permutation(np.unique(owners)):
            mine = owners == seller
            offered = np.bincount(gen[mine], weights=units[mine], minlength=m.G)
            bids = m.populations.buyers.bid_schedules(offered)
            for g in np.flatnonzero(offered):
                sel = np.flatnonzero(mine & (gen == g))
                traded |= _clear_generation(
                    m, t, g, rows, units, reserve, sel, bids[g], sold_by_offer, estates
                )
            update_marks(m, t)
    else:
        offered = np.bincount(gen, weights=units, minlength=m.G)
        bids = m.populations.buyers.bid_schedules(offered)
        for g in np.flatnonzero(offered):
            sel = np.flatnonzero(gen == g)
            traded |= _clear_generation(
                m, t, g, rows, units, reserve, sel, bids[g], sold_by_offer, estates
            )
    # a lot offered by a lender or an estate that did not sell out cuts its reserve next time
    forced = (m.type[lots.owner[rows]] == LENDER) | (m.status[lots.owner[rows]] == DEFAULTED)
    unsold = forced & (sold_by_offer < units)
    lots.unsold_months[rows[unsold]] += 1
    for b in sorted(estates):
        resolution.distribute_estate(m, int(b), t)
    return traded


def _clear_generation(m, t, g, rows, units, reserve, sel, bids, sold_by_offer, estates) -> bool:
    """One call auction for generation ``g`` over the offers ``sel``; settle and record it."""
    bid_buyer, bid_price, bid_units = bids
    result = clear_uniform(reserve[sel], units[sel], bid_price, bid_units)
    if result.quantity <= 0:
        return False
    sold_by_offer[sel] = result.sold
    event_ids, sellers = _settle(m, t, g, rows[sel], result, bid_buyer)
    estates.update(s for s in sellers if m.status[s] == DEFAULTED)
    fundamental = m.compute.fundamental_value[g]
    m.fire_sale_units += result.quantity
    m.this_month.trade_units[g] += result.quantity
    m.this_month.trade_price[g] = result.price
    if fundamental > 0:
        ratio = result.price / fundamental
        m.this_month.min_discount[g] = (
            ratio
            if np.isnan(m.this_month.min_discount[g])
            else min(m.this_month.min_discount[g], ratio)
        )
    m.last_trade_price[g] = result.price
    m.last_trade_weight[g] = min(1.0, result.quantity / m.cfg["compute"]["mark_full_weight_units"])
    m.last_trade_month[g] = t
    m.last_trade_events[g] = event_ids
    m.last_trade_sellers[g] = sellers
    return True


def _settle(m, t: int, g: int, lot_rows: np.ndarray, result, bid_buyer: np.ndarray):
    """Move units and cash for one generation's clearing; log one trade event per seller-buyer pair."""
    lots, acct = m.lots, m.acct
    price = result.price
    sold = result.sold
    bought_by = np.bincount(bid_buyer, weights=result.bought, minlength=m.n)
    buyers = np.flatnonzero(bought_by)
    seller_rows = np.flatnonzero(sold)
    s_i, b_i, amount = match_cumulative(sold[seller_rows].astype(float), bought_by[buyers])
    q = np.rint(amount).astype(np.int64)
    keep = q > 0
    rows = lot_rows[seller_rows[s_i[keep]]]
    buyer = buyers[b_i[keep]]
    q = q[keep]
    seller = lots.owner[rows]
    cash = q * price
    # cash, units and buyers' remaining budget and MW, all pairs at once
    acct.transfer(buyer, seller, cash)
    policy.fund_last_resort(m, buyer, cash)
    np.subtract.at(lots.units, rows, q)
    np.subtract.at(m.budget_left, buyer, cash)
    np.subtract.at(m.mw_left, buyer, q * m.kw[g] / 1000.0)
    per_buyer = np.bincount(buyer, weights=q, minlength=m.n)
    for b in np.flatnonzero(per_buyer):
        _add_to_buyer(m, int(b), g, int(per_buyer[b]), price, t)
    # a lender's realised loss (or gain) on inventory sold against the value it was carried at
    losses.book_sales(m, seller, rows, q, price)
    # one trade event per seller-buyer pair; parents: the seizure that brought the lot to a lender,
    # and the seller's default when an estate sells
    origin = [m.lot_origin_event.get(row, 0) for row in rows.tolist()]
    default_event = np.where(m.status[seller] == DEFAULTED, m.default_event[seller], -1).tolist()
    parents = [[o] if d < 0 else [o, d] for o, d in zip(origin, default_event, strict=True)]
    event_ids = m.events.add_many(
        t,
        "trade",
        seller.tolist(),
        buyer.tolist(),
        parents,
        cash.tolist(),
        units=q.tolist(),
        prices=[price] * len(q),
    )
    return event_ids, set(seller.tolist())


def _add_to_buyer(m, buyer: int, g: int, units: int, price: float, t: int) -> None:
    """Credit bought units to the buyer: ``redeploy_share`` of them re-enter this market's compute
    supply, the rest are used elsewhere (exported, internal use) and stay on its books idle here."""
    redeployed = policy.redeployed_units(m, buyer, units)
    for exported, n_units in ((False, redeployed), (True, units - redeployed)):
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


_F64_MAX = np.finfo(np.float64).max


def _nan_to_zero(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x)`` for a float array (NaN -> 0, +-inf -> the largest finite floats), without
    its per-call overhead (this runs several times a month on a few generations)."""
    largest = _F64_MAX if x.dtype == np.float64 else np.finfo(x.dtype).max
    # np.clip's values (NaN stays NaN, masked anyway), without its Python-level dispatch
    return np.where(np.isnan(x), 0.0, np.minimum(np.maximum(x, -largest), largest))


def update_marks(m, t: int) -> None:
    """Market marks follow recent clearing prices, else the used-market index; appraisals lag."""
    c = m.cfg["compute"]
    index = m.compute.fundamental_value * (1.0 - c["calm_market_discount"])
    recent = (t - m.last_trade_month) < c["mark_window_months"]
    if not m.cfg["channels"]["fire_sale"]:
        recent[:] = False  # channel off: clearing prices never re-mark collateral
    # a clearing moves the mark in proportion to its volume: a thin distressed trade barely does,
    # a sale of mark_full_weight_units GPUs or more sets it
    traded = index + m.last_trade_weight * (_nan_to_zero(m.last_trade_price) - index)
    m.mark_market = np.where(recent, traded, index)
