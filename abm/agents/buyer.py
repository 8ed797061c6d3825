"""Secondary-market GPU buyers: hyperscalers, tier-2 clouds, brokers, overseas buyers, start-ups,
sovereign/academic.

Each buyer values a GPU by the DCF of its expected rents at its own hurdle rate, less the cost of
integrating it, and bids a downward-sloping schedule: a few units near its valuation and more only at
deeper discounts, down to zero at its full capacity (a linear inverse demand; ``buyers.bid_floor`` is
an option, 0 = off). Its bids are capped by what it can spend this month (its owners' cash budget plus
a credit line whose size follows lenders' appetite, :meth:`Buyers.monthly_spending_usd`) and by the MW
of compatible power and cooling it can bring online this month (liquid-cooled generations need
liquid-cooling capability; overseas buyers are capped at the export-control performance limit).
"""

from __future__ import annotations

import numpy as np

from abm import policy
from abm.agents.base import ACTIVE, BUYER, BalanceSheetAgent, Population


class SecondaryBuyer(BalanceSheetAgent):
    type_code = BUYER

    @property
    def kind(self) -> str:
        return self.model.buyer_kind_names[int(self.model.buyer_kind[self.idx])]


class Buyers(Population):
    """All secondary-market buyers as one population (rows ``model.buyer_idx``): how they value GPUs
    and bid, vectorised over buyers and generations."""

    type_code = BUYER

    def valuations(self) -> np.ndarray:
        """Value per GPU (USD) to each buyer: gens x buyers, after integration cost, 0 if incompatible
        (cooling, export cap, or an equipment class the buyer's kind does not buy: ``equipment``)."""
        m = self.model
        b = m.buyer_idx
        dcf = m.compute.value_per_gpu(m.month, m.hurdle[b])  # gens x buyers
        value = np.maximum(dcf - m.integration_usd[b][None, :], 0.0)
        compatible = (
            (~m.liquid[:, None] | m.buyer_liquid[b][None, :])
            & (m.perf[:, None] <= m.buyer_max_perf[b][None, :])
            & (m.is_asic[:, None] == m.buyer_asic[b][None, :])  # it buys this equipment class
        )
        return np.where(compatible, value, 0.0)

    def monthly_spending_usd(self, budget_multiplier: float) -> np.ndarray:
        """What each buyer (rows ``model.buyer_idx``) can spend this month, USD: its owners' cash
        budget (``monthly_budget_usd`` x ``budget_multiplier``) plus a credit line.

        The line is a limit linked to lenders' appetite, not a loan booked in the model: a buyer
        can finance ``buyers.purchase_financing_ltv`` of its purchases, so the line is
        ``cash x ltv / (1 - ltv)`` at full appetite, scaled by the lenders' size-weighted mean
        appetite (failed lenders count at zero): in a credit crunch the lines tighten with it. The
        owners pay in the whole amount (``equity_investors``); the borrowing behind the line lies
        outside the model's balance sheets."""
        m = self.model
        b = m.buyer_idx
        cash = m.budget_usd[b] * budget_multiplier
        ltv = m.cfg["buyers"]["purchase_financing_ltv"]
        lenders = m.lender_idx
        weight = m.lender_size_weight[lenders]
        appetite = float(np.sum(weight * m.appetite[lenders]) / max(float(weight.sum()), 1e-12))
        return cash * (1.0 + ltv / (1.0 - ltv) * appetite)

    def best_bids_usd(self) -> np.ndarray:
        """The highest price (USD per GPU, over generations) any active buyer with money and MW
        left this month would bid now: the top of the bid schedules; 0 where nobody would bid."""
        m = self.model
        b = m.buyer_idx
        able = (m.status[b] == ACTIVE) & (m.budget_left[b] > 0) & (m.mw_left[b] > 0)
        if not able.any():
            return np.zeros(m.G)
        return self.valuations()[:, able].max(axis=1)

    def bid_levels(self) -> np.ndarray:
        """Bid price / valuation at each step of the schedule (length ``bid_steps``): from 1 down
        to ``bid_floor`` (0 by default: the last step bids nothing). One rule for every buyer
        kind; a kind that bids differently (e.g. a buyer of last resort) adds its own steps."""
        m = self.model
        steps = m.cfg["buyers"]["bid_steps"]
        floor = m.cfg["buyers"]["bid_floor"]
        return 1.0 - (1.0 - floor) * np.arange(steps) / max(steps - 1, 1)

    def bid_schedules(self, offered_units: np.ndarray):
        """Bids per generation given the units offered in each generation this round.

        Budget and MW left this month are split across generations in proportion to the offered value and
        offered MW in each. Returns a list over generations of (buyer_idx, price_usd, units) arrays, with
        each buyer's steps in descending price order.
        """
        m = self.model
        b = m.buyer_idx
        active = m.status[b] == ACTIVE
        value = self.valuations()  # gens x buyers
        level = self.bid_levels()
        steps = len(level)
        offered_value = offered_units[:, None] * value
        offered_mw = offered_units[:, None] * m.kw[:, None] / 1000.0 * (value > 0)
        budget_share = offered_value / np.maximum(offered_value.sum(axis=0, keepdims=True), 1e-9)
        mw_share = offered_mw / np.maximum(offered_mw.sum(axis=0, keepdims=True), 1e-9)
        budget = budget_share * np.maximum(m.budget_left[b], 0.0)[None, :]
        mw = mw_share * np.maximum(m.mw_left[b], 0.0)[None, :]
        # every generation offered at once (gens offered x buyers x steps); the same elementwise
        # operations as one generation at a time, so the same numbers
        offered_gens = np.flatnonzero(offered_units > 0)
        kw = m.kw[offered_gens]
        cap_units = np.minimum(
            mw[offered_gens] * 1000.0 / kw[:, None], offered_units[offered_gens][:, None]
        )  # gens offered x buyers
        prices = value[offered_gens][:, :, None] * level[None, None, :]
        cum = cap_units[:, :, None] * (np.arange(1, steps + 1) / steps)[None, None, :]
        cum = np.minimum(cum, budget[offered_gens][:, :, None] / np.maximum(prices, 1e-9))
        cum = np.floor(np.maximum.accumulate(cum, axis=2))
        # np.diff(cum, axis=2, prepend=0.0) without its concatenation
        incr = np.empty(cum.shape, dtype=np.int64)
        incr[:, :, 0] = cum[:, :, 0]
        np.subtract(cum[:, :, 1:], cum[:, :, :-1], out=incr[:, :, 1:], casting="unsafe")
        ok = (incr > 0) & (prices > 0) & active[None, :, None]
        out = [(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)) for _ in range(m.G)]
        for i, g in enumerate(offered_gens.tolist()):
            ok_g = ok[i]
            # the buyer of each bid step: its row of the (buyers x steps) arrays, in the same
            # row-major order as the masks (as broadcast_to(b[:, None], shape)[ok], without the view)
            out[g] = (b.take(ok_g.nonzero()[0]), prices[i][ok_g], incr[i][ok_g])
        return policy.with_last_resort_bids(m, out, offered_units)
