"""Miners' fixed assets (ASICs, mining sites, AI-hosting conversions) and their straight-line
depreciation, vintage by vintage.

A miner's ``site_value_usd`` is the book value of these assets. Every amount capitalised is
depreciated straight-line over its useful life, starting the month after it was spent, so the book
value always equals what is still scheduled to be depreciated (checked by
:func:`abm.invariants.check`). Depreciation is not a cash flow: it lowers the asset and, with it,
the miner's equity once, and never enters EBITDA (coverage is EBITDA over debt service).
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE


class SiteAssets:
    """Depreciation schedules of the miners' fixed assets: one row per vintage (an amount
    capitalised by one agent in one month), with what is left to depreciate (USD), the straight-line
    amount per month (USD) and the first month it is due. Vintages of ASICs are flagged, since a
    conversion writes off a share of the ASICs only. The schedules do not depend on the run's
    length: a model stepped past ``run.months`` keeps depreciating.

    ``owner``, ``left_usd``, ``per_month_usd``, ``start_month`` and ``is_asic`` are views of the
    rows held (aligned, one element per vintage). The columns live in buffers that grow by doubling
    (a month appends ~one row per miner). Vintages with nothing left to depreciate are dropped once
    they are half the rows: a row with ``left_usd == 0`` adds exact zeros to every sum taken over
    the rows (book values, depreciation, write-offs; ``left_usd`` is never negative), so keeping or
    dropping it changes no figure.
    """

    _COLUMNS = (
        ("owner", np.int64),
        ("left_usd", np.float64),
        ("per_month_usd", np.float64),
        ("start_month", np.int64),
        ("is_asic", bool),
    )

    def __init__(self, n_agents: int) -> None:
        self.n = n_agents
        self._rows = 0  # rows held; the buffers' first _rows elements
        self._buf = {name: np.empty(0, dtype=dtype) for name, dtype in self._COLUMNS}
        self.depreciated_usd = 0.0  # cumulative depreciation booked
        self.written_off_usd = 0.0  # ASICs retired by conversions, at book value
        # the agents' status at the last depreciation, and the rows whose owners it covered: rows
        # of owners that were not active then are zero already, so while no agent's status has
        # changed, only rows added since need the test
        self._status_seen: np.ndarray | None = None
        self._rows_checked = 0
        self._start_sorted = True  # start months non-decreasing along the rows (appended in time)

    # the columns: views of the rows held (writes through them reach the schedules)
    owner = property(lambda self: self._buf["owner"][: self._rows])
    left_usd = property(lambda self: self._buf["left_usd"][: self._rows])
    per_month_usd = property(lambda self: self._buf["per_month_usd"][: self._rows])
    start_month = property(lambda self: self._buf["start_month"][: self._rows])
    is_asic = property(lambda self: self._buf["is_asic"][: self._rows])

    def capitalise(
        self, idx: np.ndarray, amount_usd: np.ndarray, life_months: float, month: int, asic: bool
    ) -> None:
        """Schedule the straight-line depreciation of ``amount_usd`` (per agent of ``idx``) spent
        in ``month``: ``amount / life`` in each of the months ``month + 1 .. month + life``
        (``life_months`` may be fractional: the last month takes the remainder)."""
        idx = np.asarray(idx, dtype=np.int64)
        amount = np.asarray(amount_usd, dtype=float)
        if amount.shape != idx.shape:
            amount = np.broadcast_to(amount, idx.shape)
        new = amount > 0
        count = int(np.count_nonzero(new))
        if count == 0:
            return
        if count < len(idx):
            idx, amount = idx[new], amount[new]
        life = max(float(life_months), 1e-9)
        start, stop = self._rows, self._rows + count
        buf = self._buf
        if stop > len(buf["owner"]):
            capacity = max(2 * len(buf["owner"]), stop, 1024)
            for name, dtype in self._COLUMNS:
                grown = np.empty(capacity, dtype=dtype)
                grown[:start] = buf[name][:start]
                buf[name] = grown
        if start and month + 1 < buf["start_month"][start - 1]:
            self._start_sorted = False
        buf["owner"][start:stop] = idx
        buf["left_usd"][start:stop] = amount
        buf["per_month_usd"][start:stop] = amount / life
        buf["start_month"][start:stop] = month + 1
        buf["is_asic"][start:stop] = asic
        self._rows = stop

    def depreciate(self, m, t: int) -> np.ndarray:
        """Book month ``t``'s depreciation: active miners' ``site_value_usd`` falls by it. A miner
        that is no longer active has sold its site (``resolution.default_borrower``): its schedules
        are cleared. Returns the depreciation per agent (USD)."""
        rows = self._rows
        owner = self._buf["owner"][:rows]
        left = self._buf["left_usd"][:rows]
        status = m.status
        seen = self._status_seen
        first = self._rows_checked if seen is not None and np.array_equal(status, seen) else 0
        if first < rows:
            gone = status.take(owner[first:]) != ACTIVE
            if gone.any():
                left[first:][gone] = 0.0
        self._status_seen = status.copy()
        start_month = self._buf["start_month"][:rows]
        if self._start_sorted:
            # the rows due are the first k; rows with nothing left among them add exact zeros
            # (min(per month, 0) = 0, left stays 0, the sums gain + 0.0), so they need no mask
            k = int(np.searchsorted(start_month, t, side="right"))
            step = np.minimum(self._buf["per_month_usd"][:k], left[:k])
            left[:k] -= step
            dep = np.bincount(owner[:k], weights=step, minlength=self.n)
        else:
            due = np.flatnonzero((start_month <= t) & (left > 0))
            step = np.minimum(self._buf["per_month_usd"][due], left[due])
            left[due] -= step
            dep = np.bincount(owner[due], weights=step, minlength=self.n)
        m.site_value_usd -= dep
        self.depreciated_usd += float(dep.sum())
        # drop the vintages with nothing left once they are half the rows (they only add zeros)
        if rows > 1024:
            live = int(np.count_nonzero(left))
            if 2 * live < rows:
                keep = left > 0
                for name, _ in self._COLUMNS:
                    column = self._buf[name]
                    column[:live] = column[:rows][keep]
                self._rows = live
        self._rows_checked = self._rows
        return dep

    def retire_asic_share(self, m, idx: np.ndarray, share: np.ndarray, t: int) -> np.ndarray:
        """Agents ``idx`` take ``share`` of their mining MW out of mining in month ``t`` (a
        conversion): that share of their ASICs' remaining book value is written off (the machines
        leave the converted halls; their resale is not modelled); the rest keeps its months.
        Returns the amounts (USD, aligned with ``idx``)."""
        idx = np.asarray(idx, dtype=np.int64)
        by_agent = np.zeros(self.n)
        by_agent[idx] = share
        owner, left, per_month = self.owner, self.left_usd, self.per_month_usd
        rows = np.flatnonzero(self.is_asic & (by_agent[owner] > 0))
        cut = by_agent[owner[rows]]
        written = left[rows] * cut
        left[rows] -= written
        per_month[rows] *= 1.0 - cut
        amount = np.bincount(owner[rows], weights=written, minlength=self.n)[idx]
        np.subtract.at(m.site_value_usd, idx, amount)
        self.written_off_usd += float(amount.sum())
        return amount

    def book_value(self, t: int | None = None) -> np.ndarray:
        """Per agent: what is still to be depreciated after the months booked so far (USD; ``t``,
        the last month booked, is accepted for the callers' clarity and not needed)."""
        return np.bincount(self.owner, weights=self.left_usd, minlength=self.n)


def capitalise_initial_sites(m) -> None:
    """Set up the schedules of the 2025 stock: each miner's ASICs (mining MW x
    ``1e6 / efficiency_j_per_th`` TH/s per MW x ``asic_usd_per_th``, at most its site value) and
    its conversions (hosting MW x ``conversion_capex_usd_per_mw``) and the rest of its site value
    (sites) are seasoned: depreciated over
    ``seasoned_life_left_share`` of their useful lives from month 0."""
    mc = m.cfg["miners"]
    idx = m.miner_idx
    asic_per_mw = min(
        1e6 / mc["efficiency_j_per_th"] * mc["asic_usd_per_th"], mc["site_value_usd_per_mining_mw"]
    )
    value = m.site_value_usd[idx]
    asic = np.minimum(m.mining_mw[idx] * asic_per_mw, value)
    conversions = np.minimum(m.hosting_mw[idx] * mc["conversion_capex_usd_per_mw"], value - asic)
    sites = value - asic - conversions
    left = mc["seasoned_life_left_share"]
    sa = m.site_assets
    sa.capitalise(idx, asic, mc["asic_life_months"] * left, -1, asic=True)
    sa.capitalise(idx, sites, mc["site_life_months"] * left, -1, asic=False)
    sa.capitalise(idx, conversions, mc["conversion_life_months"] * left, -1, asic=False)
