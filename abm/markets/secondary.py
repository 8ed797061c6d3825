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


def _fill(order: np.ndarray, units: np.ndarray, quantity: int) -> np.ndarray:
    """Fill ``quantity`` units along ``order`` (priority); the marginal order takes the rest."""
    filled = np.zeros(len(units), dtype=np.int64)
    cum = np.cumsum(units[order])
    full = cum <= quantity
    filled[order[full]] = units[order[full]]
    k = int(full.sum())
    if k < len(order):
        filled[order[k]] = quantity - (cum[k - 1] if k > 0 else 0)
    return filled


def clear_uniform(ask_price, ask_units, bid_price, bid_units) -> Clearing:
    """Clear a uniform-price double auction.

    Parameters
    ----------
    ask_price, ask_units:
        Sellers' reserve prices (USD per GPU) and units; asks with a lower reserve sell first.
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
    # units offered at or below each bid step's price
    supply_at = np.searchsorted(sorted_ask_price, bp, side="right")
    supply_units = np.where(supply_at > 0, cum_ask[np.maximum(supply_at - 1, 0)], 0)
    traded = np.minimum(cum_bid, supply_units)
    best = int(np.argmax(traded))
    quantity = int(traded[best])
    if quantity <= 0:
        return empty
    # the marginal accepted bid: the first step whose cumulative demand reaches the quantity
    marginal = int(np.searchsorted(cum_bid, quantity, side="left"))
    price = float(bp[marginal])
    sold = _fill(ask_order, ask_units, quantity)
    bought = _fill(bid_order, bid_units, quantity)
    return Clearing(price, quantity, sold, bought)
