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
        lengths = [np.size(v) for v in columns.values() if np.ndim(v) > 0]
        count = max(lengths) if lengths else 1
        start = self.n
        self._grow(start + count)
        for name, value in columns.items():
            if name not in self._data:
                raise KeyError(f"{type(self).__name__} has no column {name!r}")
            self._data[name][start : start + count] = value
        object.__setattr__(self, "n", start + count)
        self._refresh_views()
        return np.arange(start, start + count)


class LotBook(Book):
    """GPU lots: ``units`` GPUs of one generation with one owner, possibly pledged to one loan."""

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


class LoanBook(Book):
    """Loans: one lender's asset and one borrower's liability, always the same amount (one row)."""

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
