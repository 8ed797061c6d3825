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
    """Depreciation schedules of the miners' fixed assets (USD per agent per month).

    ``asic[i, s]`` and ``facility[i, s]`` are the depreciation of agent ``i``'s ASICs and of its
    sites and conversions due in month ``s`` (``s`` in 0..months); the last column holds what is
    still to be depreciated after the run. Rows of agents other than miners stay zero."""

    def __init__(self, n_agents: int, months: int) -> None:
        self.months = months
        self.asic = np.zeros((n_agents, months + 2))
        self.facility = np.zeros((n_agents, months + 2))
        self.depreciated_usd = 0.0  # cumulative depreciation booked
        self.written_off_usd = 0.0  # ASICs retired by conversions, at book value

    def capitalise(
        self, idx: np.ndarray, amount_usd: np.ndarray, life_months: float, month: int, asic: bool
    ) -> None:
        """Schedule the straight-line depreciation of ``amount_usd`` (per agent of ``idx``) spent
        in ``month``: ``amount / life`` in each of the months ``month + 1 .. month + life``
        (``life_months`` may be fractional: the last month takes the remainder)."""
        table = self.asic if asic else self.facility
        idx = np.asarray(idx)
        amount = np.broadcast_to(np.asarray(amount_usd, dtype=float), idx.shape)
        life = max(float(life_months), 1e-9)
        per_month = amount / life
        left = amount.copy()
        s = month + 1
        while s <= self.months and np.any(left > 0):
            step = np.minimum(per_month, left)
            np.add.at(table[:, s], idx, step)
            left -= step
            s += 1
        np.add.at(table[:, -1], idx, left)  # depreciated after the run

    def depreciate(self, m, t: int) -> np.ndarray:
        """Book month ``t``'s depreciation: active miners' ``site_value_usd`` falls by it. A miner
        that is no longer active has sold its site (``resolution.default_borrower``): its schedules
        are cleared. Returns the depreciation per agent (USD)."""
        gone = m.status != ACTIVE
        self.asic[gone] = 0.0
        self.facility[gone] = 0.0
        dep = self.asic[:, t] + self.facility[:, t]
        m.site_value_usd -= dep
        self.depreciated_usd += float(dep.sum())
        return dep

    def retire_asic_share(self, m, idx: np.ndarray, share: np.ndarray, t: int) -> np.ndarray:
        """Agents ``idx`` take ``share`` of their mining MW out of mining in month ``t`` (a
        conversion): that share of their ASICs' remaining book value is written off (the machines
        leave the converted halls; their resale is not modelled). Returns the amounts (USD)."""
        future = self.asic[idx, t + 1 :]
        amount = future.sum(axis=1) * share
        self.asic[idx, t + 1 :] = future * (1.0 - share)[:, None]
        np.subtract.at(m.site_value_usd, idx, amount)
        self.written_off_usd += float(amount.sum())
        return amount

    def book_value(self, t: int) -> np.ndarray:
        """Per agent: what is still to be depreciated after month ``t`` (USD)."""
        return self.asic[:, t + 1 :].sum(axis=1) + self.facility[:, t + 1 :].sum(axis=1)


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
