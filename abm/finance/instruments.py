"""Instruments as struct-of-arrays books: GPU lots, loans, customer contracts, hosting leases, funding.

Each book stores one record per row in NumPy columns so that monthly bookkeeping (accrual, amortisation,
marks, covenant tests, rents) runs vectorised over all records (:class:`~abm.finance.book.Book`). The
loan book and its lifecycle verbs live in :mod:`abm.finance.loans` (re-exported here). Agents refer to
rows by index; a record is never deleted, only its status changes, so indices stay stable and every
record keeps its history (event logs refer to them).
"""

from __future__ import annotations

import numpy as np

from abm.finance.book import Book
from abm.finance.loans import (
    ACTIVE,
    BTC_LOAN,
    CLOSED,
    CONVERT,
    DEFAULTED,
    GPU_TERM,
    INTERBANK,
    LOAN_KIND_NAMES,
    LOAN_STATUS_NAMES,
    NOTE,
    PROJECT,
    REPAID,
    SENIOR_SECURED,
    SENIOR_UNSECURED,
    SUBORDINATED,
    LoanBook,
)

__all__ = [
    "ACTIVE",
    "BTC_LOAN",
    "CLOSED",
    "CONVERT",
    "DEFAULTED",
    "GPU_TERM",
    "INTERBANK",
    "LOAN_KIND_NAMES",
    "LOAN_STATUS_NAMES",
    "NOTE",
    "PROJECT",
    "REPAID",
    "SENIOR_SECURED",
    "SENIOR_UNSECURED",
    "SUBORDINATED",
    "Book",
    "ContractBook",
    "ConversionBook",
    "LeaseBook",
    "LoanBook",
    "LotBook",
]


class LotBook(Book):
    """GPU lots: ``units`` GPUs of one generation with one owner, possibly pledged to one loan.

    A lot is pledged when it is added (``loan`` column) and can only be released (``loan`` set to
    -1), never re-pledged to another loan. The book therefore keeps an index loan row -> lot rows
    pledged at creation, so that finding a loan's collateral does not scan every lot:
    :meth:`rows_of_loan` filters the index by the current ``loan`` column.
    """

    COLUMNS = {
        "owner": (np.int64, -1),  # agent index
        "gen": (np.int64, 0),  # generation index
        "units": (np.int64, 0),
        "acquired_month": (np.int64, 0),
        "cost_usd_per_unit": (np.float64, 0.0),
        "loan": (np.int64, -1),  # pledged to this loan row, -1 if free
        "book_value_usd_per_unit": (np.float64, 0.0),  # a lender's carrying value of seized units
        "offered_month": (np.int64, -10_000),  # last month the lot was put up for sale
        # months offered without selling out: the reserve steps down
        "unsold_months": (np.int64, 0),
        # bought units used outside this market (exported, internal use): no rent, no supply here
        "exported": (np.bool_, False),
        # a lender's lower-of-cost-or-market write-down per unit held (abm/finance/impairment.py)
        "impairment_usd_per_unit": (np.float64, 0.0),
    }

    SCAN_ABOVE_LOANS = 32  # rows_of_loans: beyond this many loans a full scan beats the index
    INDEX_BY = "loan"  # loan row -> lot rows pledged at creation (free lots, -1, not indexed)

    def rows_of_loan(self, loan: int) -> np.ndarray:
        """Rows of the lots pledged to ``loan`` now (ascending), as ``flatnonzero(loan == l)``."""
        candidates = self._index.get(int(loan))
        if not candidates:
            return np.empty(0, dtype=np.int64)
        rows = np.array(candidates, dtype=np.int64)
        return rows[self.loan[rows] == loan]

    def rows_of_loans(self, loans) -> np.ndarray:
        """Rows of the lots pledged to any of ``loans`` now (ascending), as ``flatnonzero(isin)``."""
        loans = np.asarray(loans, dtype=np.int64)
        if len(loans) > self.SCAN_ABOVE_LOANS:  # many loans: one vectorised pass over all lots
            if loans.min() < 0:
                return np.flatnonzero(np.isin(self.loan, loans))
            # a lookup table loan row -> wanted (np.isin's result, without sorting): free lots
            # (loan -1) read the table's last slot, which no wanted loan reaches
            top = max(int(self.loan.max(initial=-1)), int(loans.max()))
            wanted = np.zeros(top + 2, dtype=bool)
            wanted[loans] = True
            return np.flatnonzero(wanted[self.loan])
        _, rows = self.pledged_lots(loans)
        return np.sort(rows)

    def pledged_lots(self, loans) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``loans``, lot row) of every lot pledged now to one of ``loans``."""
        loans = np.asarray(loans, dtype=np.int64)
        index = self._index
        # two flat lists, not a list of pairs: converting pairs to an array costs a microsecond each
        pos: list[int] = []
        rows: list[int] = []
        for k, ln in enumerate(loans.tolist()):
            indexed = index.get(ln)
            if indexed:
                rows.extend(indexed)
                pos.extend([k] * len(indexed))
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        pos, rows = np.array(pos, dtype=np.int64), np.array(rows, dtype=np.int64)
        keep = self.loan[rows] == loans[pos]
        if np.count_nonzero(keep) == len(keep):  # common: no lot released since it was pledged
            return pos, rows
        return pos[keep], rows[keep]


class ContractBook(Book):
    """Customer contracts of neoclouds: take-or-pay rent locked for the tenor. A contract's customer
    is one of the named anchor customers (``anchor`` >= 0) or the many small customers of a grade."""

    COLUMNS = {
        "provider": (np.int64, -1),
        "gen": (np.int64, 0),
        "units": (np.int64, 0),
        "rent_per_gpu_hour": (np.float64, 0.0),
        "end_month": (np.int64, 0),
        "take_or_pay_share": (np.float64, 1.0),
        "prepaid_usd": (np.float64, 0.0),  # unreleased prepayment: the provider's deferred revenue
        "prepay_release_share": (np.float64, 0.0),
        "investment_grade": (np.bool_, False),
        # the named anchor customer holding the contract (-1: many small ones)
        "anchor": (np.int64, -1),
        "active": (np.bool_, True),
    }
    INDEX_BY = "provider"  # provider -> its contract rows (a contract's provider never changes)

    def rows_of_provider(self, provider: int) -> np.ndarray:
        """Rows of the contracts ``provider`` provides (ascending), as ``flatnonzero(provider ==
        p)``, without a scan of the book."""
        return self.indexed_rows(provider)


class LeaseBook(Book):
    """Hosting leases: a tenant (neocloud) rents MW of AI-ready power from a host (miner)."""

    COLUMNS = {
        "tenant": (np.int64, -1),
        "host": (np.int64, -1),  # -1: an outside infrastructure buyer took over the site
        "mw": (np.float64, 0.0),
        "rate_usd_per_kw_month": (np.float64, 0.0),
        "end_month": (np.int64, 0),
        "active": (np.bool_, True),
    }

    INDEX_BY = "tenant"  # tenant at signing -> lease rows (a tenant is only ever replaced by -1)

    def rows_of_tenant(self, tenant: int) -> np.ndarray:
        """Rows of the leases whose tenant is ``tenant`` now (ascending), as ``flatnonzero(tenant
        == t)``, without a scan of the book."""
        rows = self.indexed_rows(tenant)
        return rows[self.tenant[rows] == tenant]


class ConversionBook(Book):
    """Mining MW being converted to AI hosting; available at ``done_month``."""

    COLUMNS = {
        "miner": (np.int64, -1),
        "mw": (np.float64, 0.0),
        "done_month": (np.int64, 0),
        "active": (np.bool_, True),
    }
