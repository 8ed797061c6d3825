"""Properties of the uniform-price call auction that clears every generation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.markets.secondary import clear_uniform

orders = st.lists(st.tuples(st.floats(0, 100, allow_nan=False), st.integers(0, 50)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(asks=orders, bids=orders)
def test_clearing_properties(asks, bids):
    ap = np.array([a[0] for a in asks])
    au = np.array([a[1] for a in asks], dtype=np.int64)
    bp = np.array([b[0] for b in bids])
    bu = np.array([b[1] for b in bids], dtype=np.int64)
    c = clear_uniform(ap, au, bp, bu)
    assert c.sold.sum() == c.bought.sum() == c.quantity
    assert np.all(c.sold <= au) and np.all(c.bought <= bu)
    assert np.all(c.sold >= 0) and np.all(c.bought >= 0)
    if c.quantity > 0:
        assert np.all(ap[c.sold > 0] <= c.price + 1e-12)  # no seller sells below its reserve
        assert np.all(bp[c.bought > 0] >= c.price - 1e-12)  # no buyer pays above its bid
        # efficiency: an unfilled bid strictly above the price and an unfilled ask strictly below it
        # would be a missed trade
        open_bids = bp[c.bought < bu]
        open_asks = ap[c.sold < au]
        if len(open_bids) and len(open_asks):
            assert not (open_bids.max() > c.price and open_asks.min() < c.price)
    else:
        if len(ap) and len(bp) and (au > 0).any() and (bu > 0).any():
            assert bp[bu > 0].max() < ap[au > 0].min()


def test_excess_supply_clears_at_the_marginal_bid():
    c = clear_uniform([0.0, 0.0], [100, 50], [35.0, 25.0, 15.0], [4, 4, 4])
    assert c.quantity == 12 and c.price == 15.0


def test_thin_demand_lowers_the_price():
    deep = clear_uniform([10.0], [20], [30.0, 20.0, 12.0], [10, 10, 10])
    thin = clear_uniform([10.0], [20], [30.0, 20.0, 12.0], [5, 5, 10])
    assert thin.price < deep.price
