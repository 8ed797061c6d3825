"""Accounting identities of the model, checked by the tests every month.

* GPUs: units held by all agents = initial + delivered - scrapped (no GPU appears or vanishes).
* Cash: total agent cash = initial cash + net payments by the named outside sectors.
* BTC: total agent BTC (free + pledged) = initial + net BTC from the network and the market.
* Claims: every loan is one record, a lender's asset and another agent's liability of the same amount;
  lenders' equity is the same whether computed by the lender layer or the agent balance sheets.
* Holdings: no negative GPU units, BTC or principal; cash negative only for a defaulted estate.
* Indexes: the books' look-up indexes (loan -> pledged lots, borrower -> loans) match their columns.
* Compute demand: the H100-equivalents paid for this month never exceed those demanded plus those
  take-or-pay obliges customers to pay for while idle, and no rent is paid except by the
  ``compute_customers`` sector (its cumulative net flow to agents is never negative).
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
    # lenders' equity computed two ways (the lender layer's and the agent panel's) must agree
    sheets = m.balance_sheets()
    if len(m.lender_idx) and not np.allclose(
        sheets["equity"][m.lender_idx], m.lender_equity(), rtol=1e-9, atol=1e-3
    ):
        problems.append("lender equity differs between the lender layer and the balance sheets")
    problems += demand_problems(m)
    return problems


def demand_problems(m) -> list[str]:
    """The demand identity of the month's rents (:func:`abm.phases.operations.run`): paid
    H100-equivalents <= demanded + take-or-pay-obliged idle ones (both in H100-equivalent GPUs
    over the month, i.e. perf-hours / hours); idle obligations non-negative; the customers pay."""
    problems = []
    paid = m.paid_compute_perf_units
    obliged = m.idle_take_or_pay_perf_units
    demand = m.compute.demand_perf_units
    if obliged < -1e-9:
        problems.append(f"negative idle take-or-pay {obliged:.3f} H100-equivalents")
    if paid > demand + obliged + 1e-6 * max(1.0, demand):
        problems.append(
            f"paid compute {paid:.1f} > demanded {demand:.1f} + take-or-pay obliged {obliged:.1f} "
            "H100-equivalents"
        )
    if m.acct.sector_cash_in["compute_customers"] < -1e-6:
        problems.append("compute customers received more from agents than they paid")
    return problems
