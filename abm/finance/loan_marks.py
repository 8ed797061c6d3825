"""Loan marks by loan class: the overlapping-portfolio half of the ``funding`` channel (Cont and
Schaanning 2017, "Fire sales, indirect contagion and systemic stress testing").

Loans of one **class** are one asset in the overlapping-portfolio sense: a lender selling loans of
a class sells into the same market as every other holder of that class, and the price it gets
re-marks their books. The classes (``LOAN_CLASSES``, by loan kind, ``CLASS_OF_KIND``):

* ``gpu_term``: GPU-backed term loans (equipment finance of neoclouds and miners' GPU halls);
* ``btc_backed``: BTC-backed loans to miners;
* ``notes``: miners' and neoclouds' high-yield notes and convertibles (unsecured paper);
* ``project``: project loans financing miners' AI-hosting conversions.

Interbank loans have no class: they are never sold and never marked.

**Marks** (``LoanMarkState.mark``, shape (C,), a share of principal in (0, 1], 1 at the start):
in a month in which loans of class ``c`` were sold (abm/finance/loan_sales.py) the mark is that
month's clearing price ``p_c``; in a month without sales of the class it recovers toward par,

    mark_c(t) = 1 - (1 - mark_c(t-1)) x (1 - ``funding.loan_mark_recovery_per_month``).

**Who marks**: lenders of kinds with ``lenders.kinds.<kind>.marks_loans_to_market`` (fair value
under ASC 820: BDCs / private credit, high-yield funds) carry each performing loan of class ``c``
at principal x ``mark_c``; the others carry it at principal (amortised cost: banks, vendor
finance, crypto lenders; docs/calibration.md). Defaulted claims keep their own carrying value (the
estate's expected recovery) and interbank loans are carried at principal, whatever the kind.

**Accounting**: the difference principal x (1 - mark) of a lender's performing marked loans is an
*unrealised* mark-down (:func:`markdown_usd`): it lowers the lender's assets and equity
(abm/valuation.py ``claims_value``) while it lasts, is reversed as the mark recovers, and is never
booked into ``lender_losses_usd`` (a sector's realised credit loss). It disappears from the
unrealised stock when the loan stops performing: repaid at par (the mark-down is reversed), sold
(the seller realises principal - price, ``FundingState.loan_sale_discount_usd``, zero-sum among
lenders) or defaulted (the claim is then carried at its estate recovery, and a write-off books
principal - recovery into ``lender_losses_usd`` once, abm/finance/losses.py). So each mark-down is
counted once: unrealised in equity, or realised by one of those routes.

**Events**: when a class's mark falls, every active marking lender holding loans of the class
gets a ``loan_mark`` event (amount: the fall of its unrealised mark-down, USD; price: the new
mark), whose parents are the month's ``loan_sale`` events of that class. The lender's latest
``loan_mark`` of the last ``MARK_PARENT_MONTHS`` months becomes a parent of its next redemption,
borrowing-base margin call, run or loan sale (:func:`recent_mark_parents`), so a re-mark -> next
sale chain can be traced in events.csv.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE as AGENT_ACTIVE
from abm.finance.loans import ACTIVE as LOAN_ACTIVE
from abm.finance.loans import BTC_LOAN, CONVERT, GPU_TERM, INTERBANK, NOTE, PROJECT

LOAN_CLASSES: tuple[str, ...] = ("gpu_term", "btc_backed", "notes", "project")
#: loan kind -> class index (-1: no class, interbank)
CLASS_OF_KIND = np.full(max(GPU_TERM, NOTE, CONVERT, BTC_LOAN, PROJECT, INTERBANK) + 1, -1)
CLASS_OF_KIND[GPU_TERM] = 0
CLASS_OF_KIND[BTC_LOAN] = 1
CLASS_OF_KIND[NOTE] = 2
CLASS_OF_KIND[CONVERT] = 2
CLASS_OF_KIND[PROJECT] = 3
#: loan kind -> column of :func:`carrying_factor`'s table (the class, or C for no class)
CLASS_COLUMN_OF_KIND = np.where(CLASS_OF_KIND >= 0, CLASS_OF_KIND, len(LOAN_CLASSES))
#: months a ``loan_mark`` event stays a parent of the lender's next funding event or sale
MARK_PARENT_MONTHS = 3


class LoanMarkState:
    """Loan marks by class and the month's loan-market record.

    ``mark``: (C,) share of principal each class is carried at by marking lenders; ``min_mark``:
    the lowest mark of any class so far; ``month_price``: (C,) this month's clearing price (NaN: no
    sale of the class this month); ``month_sale_events``: (C,) lists of this month's ``loan_sale``
    event ids; ``marks_to_market``: (n,) bool, lenders carrying loans at the marks;
    ``mark_event``/``mark_event_month``: (n,) each lender's latest ``loan_mark`` event and its
    month (-1: none); ``sale_proceeds_usd``/``purchase_cost_usd``: (n,) cumulative cash received
    for loans sold / paid for loans bought (USD)."""

    def __init__(self, n: int, marks_to_market: np.ndarray) -> None:
        c = len(LOAN_CLASSES)
        self.mark = np.ones(c)
        self.min_mark = 1.0
        self.month_price = np.full(c, np.nan)
        self.month_sale_events: list[list[int]] = [[] for _ in range(c)]
        self.marks_to_market = np.asarray(marks_to_market, dtype=bool)
        self.mark_event = np.full(n, -1, dtype=np.int64)
        self.mark_event_month = np.full(n, -1, dtype=np.int64)
        self.sale_proceeds_usd = np.zeros(n)
        self.purchase_cost_usd = np.zeros(n)


def loan_classes(loans) -> np.ndarray:
    """Class index of every loan row (-1: interbank, no class)."""
    return CLASS_OF_KIND[loans.kind]


def carrying_factor(m) -> np.ndarray:
    """Per loan row: the share of principal its holder carries it at while it performs, i.e. its
    class's mark if its lender marks loans to market and it has a class, else 1.

    Read from a (holder, class) table (``C + 1`` columns, the last for loans without a class): the
    same values as ``where(marked, mark[class], 1)`` with two gathers per loan instead of three."""
    state, loans = m.loan_marks, m.loans
    if not state.marks_to_market.any() or (state.mark == 1.0).all():
        return np.ones(loans.n)  # nobody marks, or every class is at par
    c = len(LOAN_CLASSES)
    table = np.ones((len(state.marks_to_market), c + 1))
    table[state.marks_to_market, :c] = state.mark
    return table.ravel()[loans.lender * (c + 1) + CLASS_COLUMN_OF_KIND[loans.kind]]


def markdown_usd(m) -> np.ndarray:
    """Unrealised mark-down per agent (USD, length ``n``): sum over the performing loans of each
    marking lender of principal x (1 - its class's mark). Computed from principal by (lender,
    class) and the marks, apart from :func:`carrying_factor` (the invariant compares the two)."""
    state, loans = m.loan_marks, m.loans
    c = len(LOAN_CLASSES)
    cls = CLASS_OF_KIND[loans.kind]
    keep = (loans.status == LOAN_ACTIVE) & (cls >= 0)
    by_class = np.bincount(
        loans.lender[keep] * c + cls[keep], weights=loans.principal_usd[keep], minlength=m.n * c
    ).reshape(m.n, c)
    return (by_class @ (1.0 - state.mark)) * state.marks_to_market


def update_marks(m, t: int) -> None:
    """The month's re-mark (module docstring): classes sold this month take the clearing price,
    the others recover toward par; a fall logs ``loan_mark`` events at the marking holders."""
    state, loans = m.loan_marks, m.loans
    recovery = m.cfg["funding"]["loan_mark_recovery_per_month"]
    old = state.mark.copy()
    sold = np.isfinite(state.month_price)
    state.mark = np.where(sold, state.month_price, 1.0 - (1.0 - old) * (1.0 - recovery))
    state.mark = np.clip(state.mark, 1e-12, 1.0)
    state.min_mark = min(state.min_mark, float(state.mark.min()))
    fell = np.flatnonzero(state.mark < old - 1e-12)
    if len(fell):
        cls = CLASS_OF_KIND[loans.kind]
        holders = m.lender_idx[state.marks_to_market[m.lender_idx]]
        for c in fell:
            rows = np.flatnonzero((loans.status == LOAN_ACTIVE) & (cls == c))
            held = np.bincount(loans.lender[rows], weights=loans.principal_usd[rows], minlength=m.n)
            for i in holders[(held[holders] > 0) & (m.status[holders] == AGENT_ACTIVE)]:
                # the fall of this class's part of its mark-down (the other classes' may recover)
                amount = float(held[i] * (old[c] - state.mark[c]))
                eid = m.events.add(
                    t, "loan_mark", int(i), cause="funding_need",
                    parents=state.month_sale_events[c], amount=amount, price=float(state.mark[c]),
                )  # fmt: skip
                state.mark_event[i], state.mark_event_month[i] = eid, t
    state.month_price[:] = np.nan
    state.month_sale_events = [[] for _ in LOAN_CLASSES]


def recent_mark_parents(m, lender: int) -> list[int]:
    """The lender's latest ``loan_mark`` event if it is at most ``MARK_PARENT_MONTHS`` old (a parent
    of what it does next to raise funding), else none."""
    state = m.loan_marks
    if state.mark_event[lender] > 0 and m.month - state.mark_event_month[lender] <= (
        MARK_PARENT_MONTHS
    ):
        return [int(state.mark_event[lender])]
    return []
