"""Fast paths of operations, covenants, maturities, investment and collection against the slow code
they replaced (kept here as references), bit for bit.

Each comparison could fail: the reference is the code as it was before issue 16's third pass, run
on the same states (hypothesis-drawn sequences, or whole runs side by side), and every figure is
compared with ``==`` / ``np.array_equal``, not within a tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import abm
from abm.agents.base import ACTIVE
from abm.finance import site_assets
from abm.finance.site_assets import SiteAssets


def _tables(scenario: str, seed: int, months: int | None) -> list[pd.DataFrame]:
    result = abm.run(scenario, seed=seed, months=months)
    return [result.timeseries, result.agents, result.events]


def _assert_same_run(fast: list[pd.DataFrame], slow: list[pd.DataFrame]) -> None:
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


# --------------------------------------------------------------------------- site assets
class SiteAssetsByConcatenation:
    """The depreciation schedules as they were: columns re-concatenated at every capitalisation,
    every row tested every month, spent rows dropped once they are more than half."""

    def __init__(self, n_agents: int) -> None:
        self.n = n_agents
        self.owner = np.empty(0, dtype=np.int64)
        self.left_usd = np.empty(0)
        self.per_month_usd = np.empty(0)
        self.start_month = np.empty(0, dtype=np.int64)
        self.is_asic = np.empty(0, dtype=bool)
        self.depreciated_usd = 0.0
        self.written_off_usd = 0.0

    def capitalise(self, idx, amount_usd, life_months, month, asic) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        amount = np.broadcast_to(np.asarray(amount_usd, dtype=float), idx.shape)
        new = amount > 0
        if not new.any():
            return
        idx, amount = idx[new], amount[new]
        life = max(float(life_months), 1e-9)
        self.owner = np.concatenate((self.owner, idx))
        self.left_usd = np.concatenate((self.left_usd, amount))
        self.per_month_usd = np.concatenate((self.per_month_usd, amount / life))
        self.start_month = np.concatenate(
            (self.start_month, np.full(len(idx), month + 1, dtype=np.int64))
        )
        self.is_asic = np.concatenate((self.is_asic, np.full(len(idx), asic)))

    def depreciate(self, m, t: int) -> np.ndarray:
        gone = m.status[self.owner] != ACTIVE
        self.left_usd[gone] = 0.0
        due = np.flatnonzero((self.start_month <= t) & (self.left_usd > 0))
        step = np.minimum(self.per_month_usd[due], self.left_usd[due])
        self.left_usd[due] -= step
        dep = np.bincount(self.owner[due], weights=step, minlength=self.n)
        m.site_value_usd -= dep
        self.depreciated_usd += float(dep.sum())
        spent = self.left_usd <= 0
        if spent.size and spent.mean() > 0.5:
            keep = ~spent
            for name in ("owner", "left_usd", "per_month_usd", "start_month", "is_asic"):
                setattr(self, name, getattr(self, name)[keep])
        return dep

    def retire_asic_share(self, m, idx, share, t: int) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        by_agent = np.zeros(self.n)
        by_agent[idx] = share
        rows = np.flatnonzero(self.is_asic & (by_agent[self.owner] > 0))
        cut = by_agent[self.owner[rows]]
        written = self.left_usd[rows] * cut
        self.left_usd[rows] -= written
        self.per_month_usd[rows] *= 1.0 - cut
        amount = np.bincount(self.owner[rows], weights=written, minlength=self.n)[idx]
        np.subtract.at(m.site_value_usd, idx, amount)
        self.written_off_usd += float(amount.sum())
        return amount

    def book_value(self, t=None) -> np.ndarray:
        return np.bincount(self.owner, weights=self.left_usd, minlength=self.n)


class _Owners:
    """The two attributes of the model the schedules read and write."""

    def __init__(self, n: int) -> None:
        self.status = np.full(n, ACTIVE)
        self.site_value_usd = np.zeros(n)


_step = st.one_of(
    st.tuples(
        st.just("capitalise"),
        st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),
        st.lists(st.sampled_from([0.0, 1.0, 3.3e6, 7.25e7, 1e-3]), min_size=6, max_size=6),
        st.sampled_from([1.0, 2.5, 7.0, 36.0, 0.3]),
        st.booleans(),
    ),
    st.tuples(st.just("depreciate")),
    st.tuples(st.just("fail"), st.integers(0, 5)),
    st.tuples(st.just("revive"), st.integers(0, 5)),
    st.tuples(
        st.just("convert"),
        st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
        st.sampled_from([0.1, 0.5, 1.0, 0.25]),
    ),
    st.tuples(st.just("back_in_time")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_step, min_size=1, max_size=40))
def test_buffered_site_schedules_equal_the_concatenated_ones_bit_for_bit(steps):
    """Any sequence of capitalisations (including months out of order), depreciations, miners
    failing and coming back and conversions gives the same site values, depreciation, write-offs
    and book values, to the last bit, as the schedules re-concatenated every time."""
    fast, slow = SiteAssets(6), SiteAssetsByConcatenation(6)
    mf, ms = _Owners(6), _Owners(6)
    t = 0
    for step in steps:
        kind = step[0]
        if kind == "capitalise":
            _, idx, amounts, life, asic = step
            for sa, m in ((fast, mf), (slow, ms)):
                m.site_value_usd[idx] += amounts[: len(idx)]
                sa.capitalise(np.array(idx), np.array(amounts[: len(idx)]), life, t, asic)
        elif kind == "depreciate":
            dep = [sa.depreciate(m, t) for sa, m in ((fast, mf), (slow, ms))]
            assert np.array_equal(dep[0], dep[1])
            t += 1
        elif kind in ("fail", "revive"):
            for m in (mf, ms):
                m.status[step[1]] = ACTIVE if kind == "revive" else ACTIVE + 1
        elif kind == "convert":
            idx, share = np.array(step[1]), np.full(len(step[1]), step[2])
            out = [sa.retire_asic_share(m, idx, share, t) for sa, m in ((fast, mf), (slow, ms))]
            assert np.array_equal(out[0], out[1])
        else:  # a capitalisation dated before the last one: the schedules are no longer in order
            for sa, m in ((fast, mf), (slow, ms)):
                m.site_value_usd[0] += 5e5
                sa.capitalise(np.array([0]), np.array([5e5]), 4.0, max(t - 3, -1), True)
        assert np.array_equal(mf.site_value_usd, ms.site_value_usd)
        assert np.array_equal(fast.book_value(), slow.book_value())
        assert fast.depreciated_usd == slow.depreciated_usd
        assert fast.written_off_usd == slow.written_off_usd


def test_buffered_site_schedules_give_the_runs_of_the_concatenated_ones(monkeypatch):
    """Whole runs (asic_2022: miners default and their sites are cleared; large_network: ~1,000
    vintages a month, dropped in bulk) are identical with the reference schedules."""
    import abm.model

    for scenario, seed, months in (("asic_2022", 0, None), ("large_network", 0, 40)):
        fast = _tables(scenario, seed, months)
        monkeypatch.setattr(abm.model, "SiteAssets", SiteAssetsByConcatenation)
        slow = _tables(scenario, seed, months)
        monkeypatch.setattr(abm.model, "SiteAssets", site_assets.SiteAssets)
        _assert_same_run(fast, slow)
