"""Loan sales by lenders short of funding (the ``funding`` channel): one price per loan class a
month, set by the buyers who are there.

A lender with a funding need (abm/finance/funding.py) sells whole performing loans. The loans of a
class (abm/finance/loan_marks.py: GPU term loans, BTC-backed loans, notes and convertibles,
project loans) are one asset: all loans of class ``c`` sold in a month clear at one price per USD
of principal ``p_c``, and that price re-marks the class in the books of the lenders that mark to
market (the overlapping-portfolio channel of Cont and Schaanning 2017).

**Buyers and depth.** The buyers are the other active lenders with no funding need; each can
deploy its cash x its appetite (``model.appetite``, which falls with its capital and the sector's
losses). Their total is the month's market depth ``D``, shared among the classes offered in
proportion to the USD the sellers want to raise from each. There is no outside buyer sector.

**Price impact** (Cont and Schaanning's exponential impact in volume over depth):

    p_c = (1 - ``funding.loan_sale_discount``) x exp(-``funding.loan_sale_price_impact`` x S_c / D_c),

where ``S_c`` is the principal of class ``c`` sold that month by all sellers together and ``D_c``
the depth for that class. Each seller splits its need over its classes in proportion to its
performing principal in each, and wants to sell need / ``p_c`` of principal; the price is the
largest fixed point of the equation, found by iterating down from par. Proceeds ``p_c x S_c``
are largest at ``S_c = D_c / impact``; sellers sell no further than that (selling more would
raise less), and when they want more they are rationed pro rata. So the price of a month with
rationing is ``(1 - discount) x exp(-1)``: a property of the impact function, reached only when
the sellers' needs exceed what the buyers' cash can pay for at any price.

A sale moves the loan row to its buyer (``LoanBook.lender``): the borrower's debt is unchanged, the
buyer pays ``p_c`` x principal to the seller (``LoanMarkState.purchase_cost_usd`` and
``sale_proceeds_usd``), and the discount (1 - ``p_c``) x principal is the seller's realised loss
against principal, accumulated in ``FundingState.loan_sale_discount_usd``: zero-sum among lenders
(the buyer owns the principal), so it is not a sector loss (``lender_losses_usd``).
"""

from __future__ import annotations

import numpy as np

from abm import network as netmod
from abm.agents.base import ACTIVE
from abm.finance import loan_marks
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE


def clearing_price(
    want_usd: np.ndarray, saleable_usd: np.ndarray, depth_usd: float, impact: float, discount: float
) -> tuple[float, np.ndarray]:
    """One class's clearing price per USD of principal and each seller's principal to sell (module
    docstring). ``want_usd``: USD each seller wants to raise from the class; ``saleable_usd``: its
    performing principal of the class (both shape (k,)); ``depth_usd``: the buyers' cash for the
    class; ``impact``, ``discount``: ``funding.loan_sale_price_impact``, ``loan_sale_discount``.
    Returns (price, principal to sell per seller, shape (k,))."""
    top = 1.0 - discount
    if depth_usd <= 0 or top <= 0:
        return top, np.zeros_like(want_usd)
    most = depth_usd / impact if impact > 0 else np.inf  # the volume of the largest proceeds
    p = top
    for _ in range(200):  # monotone from par: S rises as p falls, p falls as S rises
        wanted = np.minimum(saleable_usd, want_usd / p)
        sold = min(wanted.sum(), most)
        new = top * np.exp(-impact * sold / depth_usd)
        if abs(new - p) < 1e-13:
            break
        p = new
    wanted = np.minimum(saleable_usd, want_usd / p)
    if wanted.sum() > most:  # rationed pro rata to the volume each wanted
        wanted = wanted * (most / wanted.sum())
    return p, wanted


def sell_loans(m, t: int, sellers: np.ndarray, need_usd: np.ndarray, parents: np.ndarray) -> None:
    """Sell performing loans of ``sellers`` (agent rows) to cover ``need_usd`` (USD, aligned) at the
    month's price of each class; ``parents``: the event that created each seller's need (-1 none),
    a parent of its ``loan_sale`` events with its latest recent ``loan_mark``. Cash moves buyer ->
    seller; loan rows change lender; the prices are left in ``LoanMarkState.month_price``."""
    loans, fs, lm = m.loans, m.funding_state, m.loan_marks
    f = m.cfg["funding"]
    cls_of = loan_marks.loan_classes(loans)
    performing = np.flatnonzero((loans.status == LOAN_ACTIVE) & (cls_of >= 0))
    # a borrower's open GPU tranche stays with the lender that draws it down
    performing = performing[~np.isin(performing, m.tranche_row[m.tranche_row >= 0])]
    lenders = m.lender_idx
    is_seller = np.zeros(m.n, dtype=bool)
    is_seller[sellers] = True
    buyers = lenders[
        (m.status[lenders] == ACTIVE) & ~is_seller[lenders] & (m.funding_need_usd[lenders] <= 1.0)
    ]
    budget = np.zeros(m.n)
    budget[buyers] = np.maximum(m.acct.cash[buyers], 0.0) * m.appetite[buyers]
    n_cls = len(loan_marks.LOAN_CLASSES)
    # saleable principal by (seller, class), shape (k, C)
    saleable = np.bincount(
        loans.lender[performing] * n_cls + cls_of[performing],
        weights=loans.principal_usd[performing],
        minlength=m.n * n_cls,
    ).reshape(m.n, n_cls)[sellers]
    total = saleable.sum(axis=1)
    if budget.sum() <= 0 or total.sum() <= 0:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(total[:, None] > 0, need_usd[:, None] * saleable / total[:, None], 0.0)
    depth = budget.sum() * want.sum(axis=0) / max(want.sum(), 1e-300)
    price = np.full(n_cls, np.nan)
    plan = np.zeros_like(want)
    for c in np.flatnonzero(want.sum(axis=0) > 0):
        price[c], plan[:, c] = clearing_price(
            want[:, c], saleable[:, c], float(depth[c]), f["loan_sale_price_impact"],
            f["loan_sale_discount"],
        )  # fmt: skip
    # each seller's performing rows, ascending, from one stable sort by holder (a sale moves a
    # row to a buyer, and buyers are never sellers: the rows of sellers still to come stay put)
    by_holder = performing[np.argsort(loans.lender[performing], kind="stable")]
    holders = loans.lender[by_holder]
    lo = np.searchsorted(holders, sellers, side="left")
    hi = np.searchsorted(holders, sellers, side="right")
    for k, seller in enumerate(sellers):
        mine = by_holder[lo[k] : hi[k]]
        extra = loan_marks.recent_mark_parents(m, int(seller))
        for c in np.flatnonzero(plan[k] > 0):
            rows = mine[cls_of[mine] == c]
            rows = rows[np.argsort(loans.principal_usd[rows], kind="stable")]
            raised = sold = 0.0
            first_buyer = -1
            for row in rows:
                if sold >= plan[k, c] - 1.0:
                    break
                pay = price[c] * float(loans.principal_usd[row])
                buyer = int(np.argmax(budget))
                if budget[buyer] < pay:
                    break
                budget[buyer] -= pay
                m.acct.transfer(buyer, int(seller), pay)
                lm.purchase_cost_usd[buyer] += pay
                loans.lender[row] = buyer
                netmod.move_loan_edge(m, int(row), int(seller))
                raised += pay
                sold += float(loans.principal_usd[row])
                first_buyer = buyer if first_buyer < 0 else first_buyer
            if sold > 0:
                fs.loan_sale_discount_usd[seller] += sold - raised
                fs.loans_sold_usd[seller] += sold
                lm.sale_proceeds_usd[seller] += raised
                eid = m.events.add(
                    t, "loan_sale", int(seller), cause="funding_need", counterparty=first_buyer,
                    parents=[int(parents[k]), *extra], amount=sold, price=float(price[c]),
                )  # fmt: skip
                lm.month_price[c] = price[c]
                lm.month_sale_events[c].append(eid)
    if any(lm.month_sale_events):
        m.forget_pledged_keys()  # sold loans' lots are now valued at their buyers' marks
