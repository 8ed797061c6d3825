"""Accounting identities of the model, checked by the tests every month.

* GPUs: units held by all agents = initial + delivered - scrapped (no GPU appears or vanishes).
* Cash: total agent cash = initial cash + net payments by the named outside sectors.
* BTC: total agent BTC (free + pledged) = initial + net BTC from the network and the market.
* Claims: every loan is one record, a lender's asset and another agent's liability of the same amount;
  lenders' equity is the same whether computed by the lender layer or the agent balance sheets.
* Holdings: no negative GPU units, BTC or principal; cash negative only for a defaulted estate.
* Indexes: the books' look-up indexes (loan -> pledged lots, borrower -> loans) match their columns.
* Sites: an active miner's site value (book value of its ASICs, sites and conversions) equals what is
  still scheduled to be depreciated: no site value appears without capex or vanishes without
  depreciation, a conversion's write-off or a site sale.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, LENDER


def check(m, tol_usd: float = 1e-3) -> list[str]:
    """Return a list of violated identities (empty when all hold)."""
    problems = []
    units = int(m.lots.units.sum())
    if units != m.initial_gpu_units + m.gpu_delivered - m.gpu_scrapped:
        problems.append(f"gpu units {units} != initial+delivered-scrapped")
    if np.any(m.lots.units < 0):
        problems.append("negative GPU units in a lot")
    gap = m.acct.cash_identity_gap(m.initial_cash_usd)
    scale = max(1.0, abs(m.initial_cash_usd))
    if abs(gap) > tol_usd * scale * 1e-6 + tol_usd:
        problems.append(f"cash identity gap {gap:.6f} USD")
    btc_gap = m.total_btc() - m.initial_btc - sum(m.acct.sector_btc_in.values())
    if abs(btc_gap) > 1e-6 * max(1.0, m.initial_btc):
        problems.append(f"btc identity gap {btc_gap:.9f}")
    if np.any(m.acct.btc < -1e-9) or np.any(m.loans.collateral_btc < -1e-9):
        problems.append("negative BTC")
    if np.any(m.loans.principal_usd < -1e-6):
        problems.append("negative loan principal")
    neg_cash = (m.acct.cash < -1e-6) & (m.status == ACTIVE) & (m.type != LENDER)
    if neg_cash.any():
        problems.append(f"negative cash at active agents {np.flatnonzero(neg_cash).tolist()}")
    loans = m.loans
    # a loan is one record: one lender's asset and one borrower's liability; check that the record
    # runs from a lender to another agent
    if np.any(m.type[loans.lender] != LENDER) or np.any(loans.lender == loans.borrower):
        problems.append("a loan does not run from a lender to another agent")
    # the books' look-up indexes (loan -> pledged lots, borrower -> loans) match their columns
    problems += m.lots.index_problems() + loans.index_problems()
    # site values: the book of an active miner = what its depreciation schedules still hold
    if hasattr(m, "site_assets") and len(m.miner_idx):
        active = m.miner_idx[m.status[m.miner_idx] == ACTIVE]
        book = m.site_assets.book_value(m.steps - 1)[active]
        if not np.allclose(m.site_value_usd[active], book, rtol=1e-9, atol=1e-3):
            problems.append("site value differs from the depreciation schedules' book value")
    # lenders' equity computed two ways (the lender layer's and the agent panel's) must agree
    sheets = m.balance_sheets()
    if len(m.lender_idx) and not np.allclose(
        sheets["equity"][m.lender_idx], m.lender_equity(), rtol=1e-9, atol=1e-3
    ):
        problems.append("lender equity differs between the lender layer and the balance sheets")
    return problems
