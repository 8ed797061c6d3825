"""Bitcoin miners pivoting to AI hosting.

Decisions: how much BTC to sell (routine share of production, plus what covers a cash shortfall); how to
answer a margin call (post free BTC, then pay cash); whether to convert mining MW to AI hosting (when
neoclouds want hosted capacity and the lease margin beats mining, financed by a project loan).
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, MINER, BalanceSheetAgent, Population


class Miner(BalanceSheetAgent):
    type_code = MINER

    @property
    def hashrate_eh(self) -> float:
        """EH/s: the un-lotted base fleet plus the TH/s of its in-service ASIC lots."""
        return float(self.model.miner_hashrate_eh()[self.idx])

    @property
    def btc(self) -> float:
        """Free (unpledged) BTC."""
        return float(self.model.acct.btc[self.idx])


class Miners(Population):
    """All bitcoin miners as one population (rows ``model.miner_idx``): their decision rules,
    vectorised over the miners (BTC sales, conversions) or one loan at a time (margin calls)."""

    type_code = MINER

    def plan_btc_sales(self, shortfall_usd: np.ndarray) -> np.ndarray:
        """BTC each miner sells this month (array aligned with ``model.miner_idx``): an active miner
        sells its cash shortfall (``shortfall_usd``: per agent, USD) x ``btc_shortfall_sale_multiple``
        (a buffer against its own price impact) at the current price, capped at its free BTC.
        Decided by all miners at once, before the sale clears."""
        m = self.model
        idx = m.miner_idx
        price = m.crypto.price_usd
        want = shortfall_usd[idx] * m.cfg["miners"]["btc_shortfall_sale_multiple"] / price
        ok = m.status[idx] == ACTIVE
        return np.where(ok, np.minimum(want, m.acct.btc[idx]), 0.0)

    def answer_margin_call(self, loan: int) -> tuple[float, float]:
        """The borrower of margin-called BTC loan ``loan`` (a loan row) restores it to its initial
        LTV: it posts free BTC first, then repays principal with its cash (never below zero).

        Returns (BTC posted, USD repaid)."""
        m = self.model
        loans = m.loans
        b = int(loans.borrower[loan])
        price = m.crypto.price_usd
        target_coll = loans.principal_usd[loan] / (loans.initial_ltv[loan] * price)
        need_btc = max(0.0, target_coll - loans.collateral_btc[loan])
        post = min(need_btc, float(m.acct.btc[b]))
        m.acct.btc[b] -= post
        loans.collateral_btc[loan] += post
        cash_paid = 0.0
        remaining = (
            loans.principal_usd[loan] - loans.initial_ltv[loan] * loans.collateral_btc[loan] * price
        )
        if remaining > 0:
            cash_paid = min(remaining, max(0.0, float(m.acct.cash[b])))
            m.acct.transfer(b, int(loans.lender[loan]), cash_paid)
            loans.principal_usd[loan] -= cash_paid
        return post, cash_paid

    def plan_conversions(self, unmet_hosting_mw: float) -> np.ndarray:
        """MW each miner starts converting this month (array aligned with ``model.miner_idx``), given
        the hosting MW neoclouds want and cannot find (``unmet_hosting_mw``).

        A miner converts when the hosting margin beats the mining margin by more than the cost of the
        project loan on the capex (costed at base rate + ``conversion_funding_spread`` plus
        straight-line repayment over the lease, per year), neoclouds want more hosted MW than is free
        or being built, and it still mines. Each willing miner converts at most
        ``max_conversion_share_per_month`` of its mining MW; the unmet demand is shared among them
        by that capacity. (Whether its lenders fund the project is decided in the investment
        phase.)
        """
        m = self.model
        mc = m.cfg["miners"]
        idx = m.miner_idx
        if unmet_hosting_mw <= 0:  # nothing to convert for (the test below, before the margins)
            return np.zeros(len(idx))
        hosting_margin = (
            mc["hosting_rate_usd_per_kw_month"] * 1000.0 * (1.0 - mc["hosting_site_cost_share"])
        )
        mining_margin = m.mining_margin_per_mw_month()[idx]
        gain_per_year = (hosting_margin - mining_margin) * 12.0
        cost = mc["conversion_capex_usd_per_mw"] * (
            m.base_rate + mc["conversion_funding_spread"] + 1.0 / (mc["lease_months"] / 12.0)
        )
        willing = (m.status[idx] == ACTIVE) & (gain_per_year > cost) & (m.mining_mw[idx] > 0)
        if unmet_hosting_mw <= 0 or not willing.any():
            return np.zeros(len(idx))
        cap = m.mining_mw[idx] * mc["max_conversion_share_per_month"] * willing
        share = cap / max(cap.sum(), 1e-9)
        return np.minimum(cap, share * unmet_hosting_mw)
