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
    length: a model stepped past ``run.months`` keeps depreciating."""

    def __init__(self, n_agents: int) -> None:
        self.n = n_agents
        self.owner = np.empty(0, dtype=np.int64)
        self.left_usd = np.empty(0)
        self.per_month_usd = np.empty(0)
        self.start_month = np.empty(0, dtype=np.int64)
        self.is_asic = np.empty(0, dtype=bool)
        self.depreciated_usd = 0.0  # cumulative depreciation booked
        self.written_off_usd = 0.0  # ASICs retired by conversions, at book value

    def capitalise(
        self, idx: np.ndarray, amount_usd: np.ndarray, life_months: float, month: int, asic: bool
    ) -> None:
        """Schedule the straight-line depreciation of ``amount_usd`` (per agent of ``idx``) spent
        in ``month``: ``amount / life`` in each of the months ``month + 1 .. month + life``
        (``life_months`` may be fractional: the last month takes the remainder)."""
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
        """Book month ``t``'s depreciation: active miners' ``site_value_usd`` falls by it. A miner
        that is no longer active has sold its site (``resolution.default_borrower``): its schedules
        are cleared. Returns the depreciation per agent (USD)."""
        gone = m.status[self.owner] != ACTIVE
        self.left_usd[gone] = 0.0
        due = np.flatnonzero((self.start_month <= t) & (self.left_usd > 0))
        step = np.minimum(self.per_month_usd[due], self.left_usd[due])
        self.left_usd[due] -= step
        dep = np.bincount(self.owner[due], weights=step, minlength=self.n)
        m.site_value_usd -= dep
        self.depreciated_usd += float(dep.sum())
        spent = self.left_usd <= 0
        # drop fully depreciated vintages now and then (none to drop in a world without miners)
        if spent.size and spent.mean() > 0.5:
            keep = ~spent
            for name in ("owner", "left_usd", "per_month_usd", "start_month", "is_asic"):
                setattr(self, name, getattr(self, name)[keep])
        return dep

    def retire_asic_share(self, m, idx: np.ndarray, share: np.ndarray, t: int) -> np.ndarray:
        """Agents ``idx`` take ``share`` of their mining MW out of mining in month ``t`` (a
        conversion): that share of their ASICs' remaining book value is written off (the machines
        leave the converted halls; their resale is not modelled); the rest keeps its months.
        Returns the amounts (USD, aligned with ``idx``)."""
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
