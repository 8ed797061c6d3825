"""Accounting identities of the model, checked by the tests every month.

* GPUs: units held by all agents = initial + delivered - scrapped (no GPU appears or vanishes).
* Cash: total agent cash = initial cash + net payments by the named outside sectors.
* BTC: total agent BTC (free + pledged) = initial + net BTC from the network and the market.
* Claims: every open loan is one lender's asset and one borrower's liability of the same amount.
* Holdings: no negative GPU units, BTC or principal; cash negative only for a defaulted estate.
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
    sheets = m.balance_sheets()
    loans = m.loans
    open_ = loans.status != 3
    assets = np.bincount(loans.lender, weights=loans.principal_usd * open_, minlength=m.n).sum()
    liabilities = np.bincount(
        loans.borrower, weights=loans.principal_usd * open_, minlength=m.n
    ).sum()
    if abs(assets - liabilities) > 1e-6 * max(assets, 1.0):
        problems.append("loan assets != loan liabilities")
    if not np.allclose(sheets["assets"] - sheets["liabilities"], sheets["equity"]):
        problems.append("balance sheet does not add up")
    return problems
