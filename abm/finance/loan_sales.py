"""Loan sales by lenders short of funding (the ``funding`` channel), at one price for the month.

A lender with a funding need (abm/finance/funding.py) sells whole performing loans to the credit
funds of the model that have cash to spare: every other active lender with no funding need, up to
its cash x its appetite. All loans sold in a month clear at one price per USD of principal,

    p = max(1 - ``funding.loan_sale_discount`` - ``funding.loan_sale_price_impact`` x S / D, floor),

where S is the principal sold that month by all sellers together and D the principal of all
performing loans in the model: the discount deepens with the volume sold, and every seller of the
month faces the same price (price-mediated contagion through a common market, in the manner of Cont
and Schaanning's overlapping portfolios). The price is solved as the fixed point of that equation
with each seller selling what covers its need at the price (``need / p``), capped by its loans and
by the buyers' cash. The floor is 1 - discount - impact (everything sold), and never below 0.01.

A sale moves the loan row to its buyer (``LoanBook.lender``): the borrower's debt is unchanged, the
buyer pays ``p`` x principal to the seller, and the discount (1 - p) x principal is a loss of the
seller's equity and an equal gain of the buyer's: zero-sum among lenders, so it is not a sector
loss (``lender_losses_usd``); it is accumulated in ``FundingState.loan_sale_discount_usd``. Loans
are carried at principal (there are no loan marks in the model), so the price does not re-mark
the loans other lenders keep.
"""

from __future__ import annotations

import numpy as np

from abm import network as netmod
from abm.agents.base import ACTIVE
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import INTERBANK


def clearing_price(
    need_usd: np.ndarray, saleable_usd: np.ndarray, buyers_cash_usd: float, market_usd: float, f
) -> float:
    """The month's loan sale price per USD of principal (see the module docstring). ``need_usd``,
    ``saleable_usd``: each seller's need and performing principal (USD); ``buyers_cash_usd``: what
    the buyers can pay in all; ``market_usd``: all performing principal; ``f``: ``cfg["funding"]``."""
    floor = max(1.0 - f["loan_sale_discount"] - f["loan_sale_price_impact"], 0.01)
    p = max(1.0 - f["loan_sale_discount"], floor)
    for _ in range(50):  # a contraction: S falls as p falls only through the caps
        sold = np.minimum(saleable_usd, need_usd / p).sum()
        sold = min(sold, buyers_cash_usd / p)
        new = max(
            1.0 - f["loan_sale_discount"] - f["loan_sale_price_impact"] * sold / market_usd, floor
        )
        if abs(new - p) < 1e-12:
            break
        p = new
    return p


def sell_loans(m, t: int, sellers: np.ndarray, need_usd: np.ndarray, parents: np.ndarray) -> None:
    """Sell performing loans of ``sellers`` (agent rows) to cover ``need_usd`` (USD, aligned) at the
    month's common price; ``parents``: the event that created each seller's need (-1 none), the
    parent of its ``loan_sale`` event. Cash moves buyer -> seller; loan rows change lender."""
    loans, fs = m.loans, m.funding_state
    f = m.cfg["funding"]
    performing = np.flatnonzero((loans.status == LOAN_ACTIVE) & (loans.kind != INTERBANK))
    # a borrower's open GPU tranche stays with the lender that draws it down
    performing = performing[~np.isin(performing, m.tranche_row[m.tranche_row >= 0])]
    market = float(loans.principal_usd[performing].sum())
    if market <= 0:
        return
    lenders = m.lender_idx
    is_seller = np.zeros(m.n, dtype=bool)
    is_seller[sellers] = True
    buyers = lenders[
        (m.status[lenders] == ACTIVE) & ~is_seller[lenders] & (m.funding_need_usd[lenders] <= 1.0)
    ]
    budget = np.zeros(m.n)
    budget[buyers] = np.maximum(m.acct.cash[buyers], 0.0) * m.appetite[buyers]
    saleable = np.bincount(
        loans.lender[performing], weights=loans.principal_usd[performing], minlength=m.n
    )[sellers]
    if budget.sum() <= 0 or saleable.sum() <= 0:
        return
    p = clearing_price(need_usd, saleable, float(budget.sum()), market, f)
    for k, seller in enumerate(sellers):
        rows = performing[loans.lender[performing] == seller]
        rows = rows[np.argsort(loans.principal_usd[rows], kind="stable")]
        raised = sold = 0.0
        buyer_of_row = []
        for row in rows:
            if raised >= need_usd[k] - 1.0:
                break
            price = p * float(loans.principal_usd[row])
            buyer = int(np.argmax(budget))
            if budget[buyer] < price:
                break
            budget[buyer] -= price
            m.acct.transfer(buyer, int(seller), price)
            loans.lender[row] = buyer
            netmod.move_loan_edge(m, int(row), int(seller))
            raised += price
            sold += float(loans.principal_usd[row])
            buyer_of_row.append(buyer)
        if sold > 0:
            fs.loan_sale_discount_usd[seller] += sold - raised
            fs.loans_sold_usd[seller] += sold
            m.events.add(
                t, "loan_sale", int(seller), cause="funding_need",
                counterparty=buyer_of_row[0], parents=[int(parents[k])], amount=sold,
                price=p,
            )  # fmt: skip
