"""GPU neoclouds.

Decisions: expand the fleet with the newest generation when its DCF value beats its all-in cost by the
hurdle, as far as cash (kept above a buffer) and its lender's LTV allow; when short of cash, offer free
(unpledged) GPUs to the secondary market at a distressed reserve.
"""

from __future__ import annotations

import math

import numpy as np

from abm.agents.base import ACTIVE, NEOCLOUD, BalanceSheetAgent, Population

# The most GPUs the market holds (units, all owners): 1e15 GPUs at ~1 kW each would draw 1e12 MW,
# some 300,000 times the world's electricity, so the bound means nothing economically. It keeps
# unit counts far inside int64 (9.2e18), which fleets doubling every month (demand growth 10/yr,
# max_growth_per_month 1) otherwise pass within four years and wrap to negative numbers.
MAX_MARKET_GPU_UNITS = 1e15


class Neocloud(BalanceSheetAgent):
    type_code = NEOCLOUD

    @property
    def gpu_units(self) -> int:
        return int(self.model.lots.units[self.model.lots.owner == self.idx].sum())


class Neoclouds(Population):
    """All GPU neoclouds as one population (rows ``model.neocloud_idx``): their decision rules,
    vectorised over the neoclouds or their lots."""

    type_code = NEOCLOUD

    def newest_generation(self, t: int) -> int:
        """Index of the newest GPU generation released by month ``t`` (the one neoclouds buy)."""
        m = self.model
        released = np.flatnonzero(m.release_month <= t)
        return int(released[-1])

    def new_gpu_value(self, g: int, annual_rate: float) -> float:
        """Value (USD) of one new GPU of generation ``g`` placed under the usual contract mix.

        The contracted share earns the locked contract rent for the tenor on the larger of the
        take-or-pay share and today's contract usage, less power (busy hours) and colocation,
        discounted at ``annual_rate``; the rest earns spot (its DCF fundamental value).
        """
        m = self.model
        c = m.cfg["compute"]
        rent = m.compute.rent_spot[g] * (1.0 + c["contract_premium"])
        # paid: the take-or-pay share, or today's contract usage if higher; power for busy hours
        usage = max(c["take_or_pay_share"], m.contract_usage)
        power = (
            m.compute.power_cost_per_hour[g] * m.contract_usage + m.compute.colo_cost_per_hour[g]
        )
        monthly = (rent * usage - power) * c["hours_per_month"]
        k = np.arange(1, c["contract_tenor_months"] + 1)
        contract_pv = float(np.sum(monthly * (1.0 + annual_rate) ** (-k / 12.0)))
        share = float(np.mean(m.contracted_share[m.neocloud_idx])) if len(m.neocloud_idx) else 0.0
        return share * contract_pv + (1.0 - share) * float(m.compute.fundamental_value[g])

    def plan_expansion(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Units of the newest generation each active neocloud wants to buy this month.

        Neoclouds buy against demand: the capacity gap (trend demand ``build_ahead_months`` ahead at the
        reference utilisation minus supply in service, in H100-equivalents) is shared by fleet size, provided a new GPU under the
        usual contract mix is worth its all-in cost plus the hurdle. Financing limits come later.
        Returns (neocloud indices, desired units).
        """
        m = self.model
        nc = m.cfg["neoclouds"]
        c = m.cfg["compute"]
        g = self.newest_generation(t)
        idx = m.neocloud_idx[m.status[m.neocloud_idx] == ACTIVE]
        cost = m.list_price[g] * c["all_in_cost_multiplier"]
        rate = m.base_rate + nc["expansion_discount_spread"]
        value = self.new_gpu_value(g, rate)
        # a free GPU (list price 0) is worth buying when it earns anything; 0/0 would be NaN, and NaN
        # fails every comparison, so the hurdle test below would pass
        margin = value / cost - 1.0 if cost > 0 else (math.inf if value > 0 else 0.0)
        ahead = (1.0 + c["demand_growth_per_year"]) ** (nc["build_ahead_months"] / 12.0)
        gap = (
            m.compute.demand_perf_units * ahead / m.compute.balance_utilisation
            - m.compute.supply_perf_units
        )
        if margin <= nc["investment_hurdle"] or gap <= 0 or len(idx) == 0:
            return idx, np.zeros(len(idx), dtype=np.int64)
        fleet = m.gpu_units_by_agent()[idx]
        share = fleet / max(fleet.sum(), 1.0)
        # orders are spread over the lead time: each month buys its share of the gap / lead months
        per_month = gap / max(nc["build_ahead_months"], 1)
        want = np.minimum(share * per_month / m.perf[g], fleet * nc["max_growth_per_month"])
        # GPUs are counted in int64: orders stop at MAX_MARKET_GPU_UNITS in the market as a whole
        room = max(MAX_MARKET_GPU_UNITS - float(m.lots.units.sum()), 0.0)
        if want.sum() > room:
            want = want * (room / want.sum())
        return idx, np.floor(want).astype(np.int64)

    def affordable_units(self, idx: np.ndarray, cost_usd: float, ltv: np.ndarray) -> np.ndarray:
        """GPUs each neocloud of ``idx`` (agent rows) can pay the equity part of: its cash above a
        buffer of ``cash_buffer_months`` x monthly outflow, over the unit's all-in cost
        (``cost_usd``) x (1 - the lender's ``ltv``). Whole units (float array aligned with ``idx``)."""
        m = self.model
        months = m.cfg["neoclouds"]["cash_buffer_months"]
        buffer = months * np.maximum(m.monthly_outflow_usd[idx], 0.0)
        equity_room = np.maximum(m.acct.cash[idx] - buffer, 0.0)
        equity_per_unit = cost_usd * (1.0 - ltv)
        with np.errstate(divide="ignore", invalid="ignore"):
            # a GPU that needs no equity (free, or financed in full) is not limited by cash (inf):
            # dividing by 0 would give inf or, with no equity room, NaN (a garbage unit count)
            return np.where(equity_per_unit > 0, np.floor(equity_room / equity_per_unit), np.inf)

    def voluntary_offers(self, arrears_by_agent: np.ndarray, best_bid_usd: np.ndarray):
        """Free lots offered by active borrowers in arrears beyond their cash: a borrower sells what
        it must, enough units to cover its arrears at the generation's best bid ``best_bid_usd``
        (USD per GPU, over generations), at reserve 0 (whatever clears: the alternative is a payment
        default). Each lot is sized on its own (a borrower with several free lots may offer more
        than it needs). Returns (lot rows, units, reserve USD per unit)."""
        m = self.model
        lots = m.lots
        # per agent first (active and in arrears), then per lot
        selling = (m.status == ACTIVE) & (arrears_by_agent > 0)
        if not selling.any():  # nobody sells: the lot scan below would find nothing
            rows = np.empty(0, dtype=np.intp)
            return rows, rows, np.empty(0)
        rows = np.flatnonzero((lots.loan < 0) & (lots.units > 0) & selling.take(lots.owner))
        if len(rows) == 0:
            return rows, rows, np.empty(0)
        bid = best_bid_usd[lots.gen[rows]]
        need_units = np.where(
            bid > 0, np.ceil(arrears_by_agent[lots.owner[rows]] / np.maximum(bid, 1.0)), 0
        ).astype(np.int64)
        units = np.minimum(lots.units[rows], need_units)
        return rows, units, np.zeros(len(rows))
