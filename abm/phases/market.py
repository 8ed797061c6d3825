"""Phases 8-9: the secondary GPU market round and the re-marking of collateral.

Offers come from lenders' seized inventory (a share per month at their value of holding it, plus what
a funding need forces them to sell at any price), bankruptcy estates (everything, at their creditors'
credit bid, for ``credit.estate_sale_months``; then the rest goes to the creditors in kind) and, in the
first round, borrowers in arrears (free lots, enough to cover the arrears, at any price). Buyers bid from
their valuations, what they can spend and MW. Each generation clears once at a uniform price; then marks
move towards the evidence of the round: its clearing price for the units sold and the best bid left
for the units offered and not sold.
"""

from __future__ import annotations

import numpy as np

from abm import policy
from abm.agents.base import ACTIVE, DEFAULTED, LENDER
from abm.finance import estate_sale, losses, resolution, seized_sale
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.markets.secondary import clear_uniform
from abm.world import match_cumulative


def _offers(m, t: int, rnd: int):
    """(lot rows, units, reserve USD per unit) of everything for sale this round. Every seller's
    reserve follows from its own state (docs/ODD.md, *Secondary market*): a lender's from its value
    of holding and its funding need, an estate's from its creditors' credit bid, a borrower in
    arrears sells what it must."""
    lots = m.lots
    lot_units = lots.units
    owner = lots.owner
    # forced sellers: lenders (seized inventory) and estates; only their lots are gathered
    is_lender, is_estate = m.type == LENDER, m.status == DEFAULTED
    has = np.flatnonzero(
        (lot_units > 0) & (lots.offered_month != t) & (is_lender | is_estate).take(owner)
    )
    if len(has) == 0 and rnd != 0:
        # nothing left to offer after the first round (most later rounds of a month): the sellers'
        # reserves and the best bids would be computed for no offer
        return has, np.empty(0, dtype=np.int64), np.empty(0)
    has_owner = owner.take(has)
    best_bid = m.populations.buyers.best_bids_usd()
    rows_e = has[is_estate.take(has_owner)]
    parts = [
        m.populations.lenders.offer_seized_lots(has[is_lender.take(has_owner)], best_bid),
        # (an estate's credit bid scans every loan: not without an estate lot to price)
        (
            rows_e,
            lot_units[rows_e],
            estate_sale.estate_reserves_usd(m, rows_e) if len(rows_e) else np.empty(0),
        ),
    ]
    if rnd == 0:
        loans = m.loans
        owed = np.flatnonzero(loans.arrears_usd > 0)  # loans without arrears add nothing
        owed = owed[
            (loans.status[owed] == LOAN_ACTIVE) & (m.status[loans.borrower[owed]] == ACTIVE)
        ]
        arrears = np.bincount(loans.borrower[owed], weights=loans.arrears_usd[owed], minlength=m.n)
        arrears = np.maximum(arrears - np.maximum(m.acct.cash, 0.0), 0.0)
        parts.append(m.populations.neoclouds.voluntary_offers(arrears, best_bid))
    units = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
    keep = np.flatnonzero(units > 0)
    rows = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False).take(keep)
    reserve = np.concatenate([p[2] for p in parts]).astype(float, copy=False).take(keep)
    # no seller takes less than a salvage buyer pays for the GPU (it can always scrap it)
    reserve = np.maximum(reserve, m.compute.salvage_usd_per_gpu[lots.gen.take(rows)])
    return rows, units.take(keep), reserve


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
    # months a lot of a lender or an estate was offered without selling out (a record; reserves
    # follow the sellers' state, not this count)
    forced = (m.type[lots.owner[rows]] == LENDER) | (m.status[lots.owner[rows]] == DEFAULTED)
    unsold = forced & (sold_by_offer < units)
    lots.unsold_months[rows[unsold]] += 1
    # estates whose court sale process has ended hand the rest to their creditors in kind
    estates |= estate_sale.hand_over_unsold(m, t)
    for b in sorted(estates):
        resolution.distribute_estate(m, int(b), t)
    return traded


def _clear_generation(m, t, g, rows, units, reserve, sel, bids, sold_by_offer, estates) -> bool:
    """One call auction for generation ``g`` over the offers ``sel``; settle and record it, and
    record the round's evidence for the marks (:func:`_record_mark_evidence`)."""
    bid_buyer, bid_price, bid_units = bids
    result = clear_uniform(reserve[sel], units[sel], bid_price, bid_units)
    first_of_month = m.mark_evidence_month[g] != t
    _record_mark_evidence(m, t, g, int(units[sel].sum()), result, bid_price, bid_units)
    if first_of_month:
        # the trades behind the marks are the month's, as the evidence is: a later round (sold
        # out or empty) adds to them and does not wipe them; a month without a trade has none
        m.last_trade_events[g] = []
        m.last_trade_sellers[g] = set()
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
    m.last_trade_events[g] = m.last_trade_events[g] + event_ids
    m.last_trade_sellers[g] = m.last_trade_sellers[g] | sellers
    return True


def _record_mark_evidence(m, t, g, offered_units, result, bid_price, bid_units) -> None:
    """Add a round's evidence about generation ``g``'s price to the month's (the rule in
    docs/ODD.md, *Marks*).

    Every unit offered this month counts once (a lot is offered at most once a month): a unit sold
    at the clearing price; the units offered and not sold at what they would fetch now, walking
    down the bids left unfilled in their round, best first (a liquidation appraisal of the
    overhang). Units beyond the bids left (the buyers had spent the month's money or MW) are
    evidence at the lowest price the generation cleared at this month (the marginal buyer's bid),
    or the salvage value without a trade this month (what a salvage buyer pays). The month's
    evidence price is the mean over the units offered; its weight in the marks is
    ``min(1, units offered this month / compute.mark_full_weight_units)``: a large offer tests the
    market more than a small one, whether or not it clears."""
    if offered_units <= 0:
        return
    if m.mark_evidence_month[g] != t:  # the first offer of the month: start the month's evidence
        m.mark_evidence_month[g] = t
        m.mark_offered_units[g] = 0.0
        m.mark_evidence_usd[g] = 0.0
    sold = result.quantity
    filled = result.bought if sold > 0 else np.zeros(len(bid_units), dtype=np.int64)
    unsold = max(offered_units - sold, 0)
    # beyond the bids left: the lowest price the generation cleared at this month, else salvage
    lowest = m.this_month.min_discount[g] * m.compute.fundamental_value[g]
    if sold > 0:
        lowest = result.price if np.isnan(lowest) else min(lowest, result.price)
    beyond = float(m.compute.salvage_usd_per_gpu[g]) if np.isnan(lowest) else float(lowest)
    # the unsold units walk down the bids left unfilled, best first; the rest at ``beyond``
    left = bid_units - filled
    # the clearing's priority order of the bids (the same stable sort), else sorted here
    order = result.bid_order
    if order is None:
        order = np.argsort(-bid_price, kind="stable")
    # units taken from each bid: the steps of the capped cumulative (np.diff(..., prepend=0)
    # without its concatenation; integers, so the same numbers)
    reach = np.minimum(np.cumsum(left[order]), unsold)
    take = reach.copy()
    take[1:] -= reach[:-1]
    walked = float((take * bid_price[order]).sum())
    unsold_value = walked + (unsold - (int(reach[-1]) if len(reach) else 0)) * beyond
    m.mark_offered_units[g] += offered_units
    m.mark_evidence_usd[g] += sold * (result.price if sold > 0 else 0.0) + unsold_value
    m.last_trade_price[g] = m.mark_evidence_usd[g] / m.mark_offered_units[g]
    m.last_trade_weight[g] = min(
        1.0, m.mark_offered_units[g] / m.cfg["compute"]["mark_full_weight_units"]
    )
    m.last_trade_month[g] = t


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
    receivers = np.flatnonzero(per_buyer)
    _add_to_buyers(
        m, receivers.tolist(), g, per_buyer[receivers].astype(np.int64).tolist(), price, t
    )
    # a lender's realised loss (or gain) on inventory sold against the value it was carried at
    losses.book_sales(m, seller, rows, q, price)
    # a lender selling with a funding need: the event behind the need is the trade's parent
    need_event = seized_sale.need_parents(m, seller)
    # what a lender raised goes against its funding need (it sells no more than the need requires)
    np.subtract.at(m.funding_need_usd, seller, np.where(m.type[seller] == LENDER, cash, 0.0))
    np.maximum(m.funding_need_usd, 0.0, out=m.funding_need_usd)
    # one trade event per seller-buyer pair; parents: the seizure that brought the lot to a lender,
    # and the seller's default when an estate sells
    origin = [m.lot_origin_event.get(row, 0) for row in rows.tolist()]
    default_event = np.where(m.status[seller] == DEFAULTED, m.default_event[seller], -1).tolist()
    parents = [
        [o] if d < 0 and f < 0 else [o, d, f]
        for o, d, f in zip(origin, default_event, need_event, strict=True)
    ]
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


def _add_to_buyers(m, buyers: list, g: int, units: list, price: float, t: int) -> None:
    """Credit bought units to buyers (distinct agent rows, in this order) buying ``units``
    (aligned) of generation ``g`` at ``price`` USD per GPU in month ``t``: ``redeploy_share`` of
    them re-enter this market's compute supply, the rest are used elsewhere (exported, internal
    use) and stay on the buyer's books idle here. The lot rows are found (or added) buyer by
    buyer, in order; the units are added to them at once (distinct rows, integers)."""
    buyer_lots = m.buyer_lots
    rows, added = [], []
    for buyer, n in zip(buyers, units, strict=True):
        redeployed = policy.redeployed_units(m, buyer, n)
        for exported, n_units in ((False, redeployed), (True, n - redeployed)):
            if n_units <= 0:
                continue
            key = (buyer, g, exported)
            row = buyer_lots.get(key)
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
                buyer_lots[key] = row
            rows.append(row)
            added.append(n_units)
    if rows:
        np.add.at(m.lots.units, np.array(rows, dtype=np.int64), np.array(added, dtype=np.int64))


_F64_MAX = np.finfo(np.float64).max


def _nan_to_zero(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x)`` for a float array (NaN -> 0, +-inf -> the largest finite floats), without
    its per-call overhead (this runs several times a month on a few generations)."""
    largest = _F64_MAX if x.dtype == np.float64 else np.finfo(x.dtype).max
    # np.clip's values (NaN stays NaN, masked anyway), without its Python-level dispatch
    return np.where(np.isnan(x), 0.0, np.minimum(np.maximum(x, -largest), largest))


def update_marks(m, t: int) -> None:
    """Market marks follow the evidence of recent rounds (clearing prices for units sold, the best
    bid left for units offered and not sold), else the used-market index; appraisals lag.

    ``mark = index + w x (evidence - index)`` for ``compute.mark_window_months`` after a round in
    which the generation was offered, with ``w = min(1, units offered / mark_full_weight_units)``
    (:func:`_record_mark_evidence`); the index where it was not offered recently."""
    c = m.cfg["compute"]
    index = m.compute.fundamental_value * (1.0 - c["calm_market_discount"])
    recent = (t - m.last_trade_month) < c["mark_window_months"]
    if not m.cfg["channels"]["fire_sale"]:
        recent[:] = False  # channel off: the secondary market never re-marks collateral
    traded = index + m.last_trade_weight * (_nan_to_zero(m.last_trade_price) - index)
    m.mark_market = np.where(recent, traded, index)
