"""Instruments as struct-of-arrays books: GPU lots, loans, customer contracts, hosting leases, funding.

Each book stores one record per row in NumPy columns so that monthly bookkeeping (accrual, amortisation,
marks, covenant tests, rents) runs vectorised over all records (DESIGN principle 6). Agents refer to
rows by index; a record is never deleted, only its status changes, so indices stay stable and every
record keeps its history (event logs refer to them).
"""

from __future__ import annotations

import numpy as np

# Loan kinds
GPU_TERM, NOTE, CONVERT, BTC_LOAN, PROJECT, INTERBANK = range(6)
LOAN_KIND_NAMES = (
    "gpu_term_loan",
    "hy_note",
    "convertible",
    "btc_loan",
    "project_loan",
    "interbank",
)

# Loan status
ACTIVE, REPAID, DEFAULTED, CLOSED = range(4)
LOAN_STATUS_NAMES = ("active", "repaid", "defaulted", "closed")

# Seniority classes in the recovery waterfall (lower is paid first)
SENIOR_SECURED, SENIOR_UNSECURED, SUBORDINATED = range(3)


_SCALARS = (int, float, bool, np.generic)


class Book:
    """A growable table of NumPy columns. ``book.col`` is a view of the live rows of column ``col``."""

    COLUMNS: dict[str, tuple[type, object]] = {}

    def __init__(self, capacity: int = 64) -> None:
        object.__setattr__(self, "n", 0)
        data = {
            name: np.full(capacity, fill, dtype=dtype)
            for name, (dtype, fill) in self.COLUMNS.items()
        }
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_capacity", capacity)
        self._refresh_views()

    def _refresh_views(self) -> None:
        # live-row views kept as plain attributes: reading a column is a dict lookup (hot path)
        for name, array in self._data.items():
            object.__setattr__(self, name, array[: self.n])

    def __setattr__(self, name: str, value) -> None:
        if name in self._data:  # ``book.col = values`` writes into the live rows
            self._data[name][: self.n] = value
        else:
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return self.n

    def _grow(self, needed: int) -> None:
        cap = self._capacity
        while cap < needed:
            cap *= 2
        if cap == self._capacity:
            return
        for name, (dtype, fill) in self.COLUMNS.items():
            old = self._data[name]
            new = np.full(cap, fill, dtype=dtype)
            new[: self.n] = old[: self.n]
            self._data[name] = new
        object.__setattr__(self, "_capacity", cap)

    def add(self, **columns) -> np.ndarray:
        """Append rows; every keyword is a column (scalars broadcast). Returns the new row indices."""
        # the longest array column sets the row count (scalars broadcast; scalars only: one row)
        count = -1
        for v in columns.values():
            if type(v) is np.ndarray:  # the common case, without np.size / np.ndim dispatch
                if v.ndim > 0 and v.size > count:
                    count = v.size
            elif not isinstance(v, _SCALARS) and np.ndim(v) > 0 and np.size(v) > count:
                count = np.size(v)
        if count < 0:
            count = 1
        start = self.n
        self._grow(start + count)
        for name, value in columns.items():
            if name not in self._data:
                raise KeyError(f"{type(self).__name__} has no column {name!r}")
            self._data[name][start : start + count] = value
        object.__setattr__(self, "n", start + count)
        self._refresh_views()
        return np.arange(start, start + count)


def _index_rows(index: dict[int, list[int]], keys, rows: np.ndarray) -> None:
    """Append each new row to its key's list in ``index`` (rows ascending); negative keys skipped."""
    for row, key in zip(rows.tolist(), np.broadcast_to(keys, rows.shape).tolist(), strict=True):
        if key >= 0:
            index.setdefault(key, []).append(row)


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
    }

    SCAN_ABOVE_LOANS = 32  # rows_of_loans: beyond this many loans a full scan beats the index

    def __init__(self, capacity: int = 64) -> None:
        super().__init__(capacity)
        object.__setattr__(self, "_lots_of_loan", {})  # loan row -> lot rows pledged at creation

    def add(self, **columns) -> np.ndarray:
        rows = super().add(**columns)
        loan = columns.get("loan")
        if loan is not None:
            _index_rows(self._lots_of_loan, loan, rows)  # free lots (-1) are not indexed
        return rows

    def rows_of_loan(self, loan: int) -> np.ndarray:
        """Rows of the lots pledged to ``loan`` now (ascending), as ``flatnonzero(loan == l)``."""
        candidates = self._lots_of_loan.get(int(loan))
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
        index = self._lots_of_loan
        pairs = [(k, row) for k, ln in enumerate(loans.tolist()) for row in index.get(ln, ())]
        if not pairs:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        pos, rows = np.array(pairs, dtype=np.int64).T
        keep = self.loan[rows] == loans[pos]
        return pos[keep], rows[keep]

    def index_problems(self) -> list[str]:
        """Pledged lots missing from the loan index (empty when the index is complete)."""
        indexed = {(ln, row) for ln, rows in self._lots_of_loan.items() for row in rows}
        pledged = np.flatnonzero(self.loan >= 0)
        missing = [
            row
            for row, ln in zip(pledged.tolist(), self.loan[pledged].tolist(), strict=True)
            if (ln, row) not in indexed
        ]
        return [f"pledged lots missing from the loan index: {missing[:10]}"] if missing else []


class LoanBook(Book):
    """Loans: one lender's asset and one borrower's liability, always the same amount (one row).

    A loan's borrower never changes, so the book keeps an index borrower -> loan rows
    (:meth:`rows_of_borrower`) to find one borrower's loans without scanning every loan.
    """

    COLUMNS = {
        "lender": (np.int64, -1),
        "borrower": (np.int64, -1),
        "kind": (np.int64, 0),
        "seniority": (np.int64, SENIOR_SECURED),
        "principal_usd": (np.float64, 0.0),
        "fixed_rate": (np.float64, 0.0),  # used when floating is False
        "spread": (np.float64, 0.0),  # over the base rate when floating
        "floating": (np.bool_, False),
        "amort_usd_per_month": (np.float64, 0.0),
        "maturity_month": (np.int64, 0),
        "max_ltv": (np.float64, np.inf),
        "min_coverage": (np.float64, 0.0),
        "cure_months": (np.int64, 0),
        "breach_months": (np.int64, 0),
        "status": (np.int64, ACTIVE),
        "collateral_btc": (np.float64, 0.0),
        "initial_ltv": (np.float64, 0.0),
        "margin_call_ltv": (np.float64, np.inf),
        "liquidation_ltv": (np.float64, np.inf),
        "arrears_usd": (np.float64, 0.0),  # past-due interest and amortisation
        "arrears_principal_usd": (np.float64, 0.0),  # the amortisation part of the arrears
        "arrears_months": (np.int64, 0),
        "origination_month": (np.int64, 0),
        "breach_event": (np.int64, -1),
    }

    def __init__(self, capacity: int = 64) -> None:
        super().__init__(capacity)
        object.__setattr__(self, "_loans_of_borrower", {})  # borrower -> its loan rows, ascending

    def add(self, **columns) -> np.ndarray:
        rows = super().add(**columns)
        borrower = columns.get("borrower")
        if borrower is not None:
            _index_rows(self._loans_of_borrower, borrower, rows)
        return rows

    def rows_of_borrower(self, borrower: int) -> np.ndarray:
        """Rows of the loans of ``borrower`` (ascending), as ``flatnonzero(borrower == b)``."""
        return np.array(self._loans_of_borrower.get(int(borrower), ()), dtype=np.int64)

    def index_problems(self) -> list[str]:
        """Differences between the borrower index and the borrower column (empty when none)."""
        pairs = [(b, row) for b, rows in self._loans_of_borrower.items() for row in rows]
        borrower, rows = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
        complete = np.array_equal(np.sort(rows), np.arange(self.n))  # every loan exactly once
        if not complete or np.any(self.borrower[rows] != borrower):
            return ["the borrower index of the loan book does not match its borrower column"]
        return []


class ContractBook(Book):
    """Customer contracts of neoclouds: take-or-pay rent locked for the tenor."""

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
        "active": (np.bool_, True),
    }


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


class ConversionBook(Book):
    """Mining MW being converted to AI hosting; available at ``done_month``."""

    COLUMNS = {
        "miner": (np.int64, -1),
        "mw": (np.float64, 0.0),
        "done_month": (np.int64, 0),
        "active": (np.bool_, True),
    }
