"""The secondary GPU market: one uniform-price call auction per generation per round.

All offers (seized inventory, bankruptcy estates, distressed voluntary sellers) and all buyers' bid
schedules are collected first; each generation then clears once. The traded quantity is the largest at
which the marginal bid still covers the marginal ask, the price is the lowest accepted bid, and every
trade in that generation settles at it. Unsold units stay with their sellers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Clearing:
    """Result of one call auction."""

    price: float  # USD per GPU (nan when nothing traded)
    quantity: int
    sold: np.ndarray  # units sold by each ask (input order)
    bought: np.ndarray  # units bought by each bid (input order)
    # the bids in priority order (best first, ties in input order) when the book was sorted, for
    # callers that walk the bids again (None when the auction returned before sorting)
    bid_order: np.ndarray | None = None


def _fill(order: np.ndarray, units: np.ndarray, quantity: int, cum=None) -> np.ndarray:
    """Fill ``quantity`` units along ``order`` (priority); the marginal order takes the rest.
    ``cum``: ``np.cumsum(units[order])`` when the caller has it."""
    filled = np.zeros(len(units), dtype=np.int64)
    if cum is None:
        cum = np.cumsum(units[order])
    full = cum <= quantity
    filled[order[full]] = units[order[full]]
    k = int(np.count_nonzero(full))
    if k < len(order):
        filled[order[k]] = quantity - (cum[k - 1] if k > 0 else 0)
    return filled


def _empty(n_asks: int, n_bids: int, bid_order: np.ndarray | None = None) -> Clearing:
    """No trade: nothing sold by any of ``n_asks`` asks, nothing bought by any of ``n_bids`` bids."""
    return Clearing(
        float("nan"), 0, np.zeros(n_asks, np.int64), np.zeros(n_bids, np.int64), bid_order
    )


def clear_uniform(ask_price, ask_units, bid_price, bid_units) -> Clearing:
    """Clear a uniform-price double auction.

    Parameters
    ----------
    ask_price, ask_units:
        Sellers' reserve prices (USD per GPU) and units (>= 0); asks with a lower reserve sell first.
    bid_price, bid_units:
        Buyers' bid steps: price (USD per GPU) and incremental units; higher bids buy first.

    Returns
    -------
    Clearing
        Uniform price = the lowest accepted bid; quantity is maximal such that every accepted bid is at
        or above every accepted ask. Ties keep input order (deterministic).
    """
    ask_price = np.asarray(ask_price, dtype=float)
    ask_units = np.asarray(ask_units, dtype=np.int64)
    bid_price = np.asarray(bid_price, dtype=float)
    bid_units = np.asarray(bid_units, dtype=np.int64)
    n_asks, n_bids = len(ask_units), len(bid_units)
    if n_asks == 0 or n_bids == 0:
        return _empty(n_asks, n_bids)
    if ask_units.sum() == 0:
        return _empty(n_asks, n_bids)
    bid_order = np.argsort(-bid_price, kind="stable")
    cum_bid = np.cumsum(bid_units[bid_order])
    if cum_bid[-1] == 0:
        return _empty(n_asks, n_bids, bid_order)
    bp = bid_price[bid_order]
    if np.isnan(bp[-1]):  # a bid without a price (sorted last): the whole book, as written
        ask_order = np.argsort(ask_price, kind="stable")
    else:
        # only asks at or below the best bid can meet a bid: their priority order is the start
        # of the whole book's (a stable sort puts every dearer ask after them), and the others
        # sell nothing, so they are left out of the sort
        cheap = np.flatnonzero(ask_price <= bp[0])
        if len(cheap) == 0:
            return _empty(n_asks, n_bids, bid_order)
        ask_order = cheap[np.argsort(ask_price[cheap], kind="stable")]
    cum_ask = np.cumsum(ask_units[ask_order])
    # units offered at or below each bid step's price
    supply_at = np.searchsorted(ask_price[ask_order], bp, side="right")
    supply_units = np.where(supply_at > 0, cum_ask[np.maximum(supply_at - 1, 0)], 0)
    traded = np.minimum(cum_bid, supply_units)
    best = int(np.argmax(traded))
    quantity = int(traded[best])
    if quantity <= 0:
        return _empty(n_asks, n_bids, bid_order)
    # the marginal accepted bid: the first step whose cumulative demand reaches the quantity
    marginal = int(np.searchsorted(cum_bid, quantity, side="left"))
    price = float(bp[marginal])
    sold = _fill(ask_order, ask_units, quantity, cum_ask)
    bought = _fill(bid_order, bid_units, quantity, cum_bid)
    return Clearing(price, quantity, sold, bought, bid_order)
