"""Instruments as struct-of-arrays books: GPU lots, loans, customer contracts, hosting leases, funding.

Each book stores one record per row in NumPy columns so that monthly bookkeeping (accrual, amortisation,
marks, covenant tests, rents) runs vectorised over all records (DESIGN principle 6). Agents refer to
rows by index; a record is never deleted, only its status changes, so indices stay stable and every
record keeps its history (event logs refer to them).
"""

from __future__ import annotations

import math

import numpy as np

from abm.agents.base import ACTIVE as AGENT_ACTIVE

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

    # ------------------------------------------------------------------ lifecycle verbs
    # A loan is originated (``add``), serviced (``in_service``, ``rates``), repaid early or on
    # acceleration (``repay_in_full``), amortised to zero (``close_repaid``), released
    # (``release_collateral``), seized on default (``seize_lots``), liquidated when a BTC loan's
    # margin call fails (``liquidate_btc``) and written off (``write_off``). Every verb is
    # vectorised over loan rows; the phases decide *when*, the book does *what*.

    def in_service(self, agent_status: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Mask of the loans being serviced: active, not interbank, their borrower active
        (agent status ``abm.agents.base.ACTIVE``). Over all loans, or over ``rows`` (the mask is then aligned with ``rows``).
        ``agent_status``: the model's per-agent status array (length = agents)."""
        if rows is None:
            status, kind, borrower = self.status, self.kind, self.borrower
        else:
            status, kind, borrower = self.status[rows], self.kind[rows], self.borrower[rows]
        return (status == ACTIVE) & (kind != INTERBANK) & (agent_status[borrower] == AGENT_ACTIVE)

    def rates(self, base_rate: float, rows: np.ndarray | None = None) -> np.ndarray:
        """Annual interest rate of each loan (of ``rows``, or all): base rate + spread when
        floating, else the fixed rate."""
        if rows is None:
            return np.where(self.floating, base_rate + self.spread, self.fixed_rate)
        return np.where(self.floating[rows], base_rate + self.spread[rows], self.fixed_rate[rows])

    def owed_usd(self, rows) -> np.ndarray:
        """What repaying ``rows`` in full costs now (USD): principal plus the interest part of the
        arrears (the amortisation part of the arrears is still in the principal)."""
        return self.principal_usd[rows] + self.arrears_usd[rows] - self.arrears_principal_usd[rows]

    def close_repaid(self, rows) -> None:
        """Mark ``rows`` repaid: nothing owed any more (principal and arrears zero)."""
        self.principal_usd[rows] = 0.0
        self.arrears_usd[rows] = 0.0
        self.arrears_principal_usd[rows] = 0.0
        self.status[rows] = REPAID

    def release_collateral(self, rows: np.ndarray, lots: LotBook, free_btc=None) -> None:
        """Release the collateral of ``rows``: their lots become free and, given ``free_btc`` (per
        agent, updated in place, in row order), their pledged BTC returns to the borrowers' free BTC.
        Without ``free_btc`` only the lots are released (the monthly service's amortisation path)."""
        lots.loan[lots.rows_of_loans(rows)] = -1
        if free_btc is None:
            return
        btc = rows[self.collateral_btc[rows] > 0]
        if len(btc):
            np.add.at(free_btc, self.borrower[btc], self.collateral_btc[btc])
            self.collateral_btc[btc] = 0.0

    def repay_in_full(self, rows: np.ndarray, cash: np.ndarray, lots: LotBook, free_btc) -> list:
        """Each loan of ``rows`` in order (distinct rows) is repaid in full if its borrower's cash
        covers :meth:`owed_usd`: the cash goes to the lender, the loan is closed
        (:meth:`close_repaid`) and its collateral released. Returns whether each was repaid.

        ``cash`` and ``free_btc``: per-agent USD and free BTC, updated in place. Equivalent to
        repaying loan by loan: each borrower's cash is drawn down in Python floats (the same IEEE
        operations as ``cash[b] -= owed``) and lenders are credited in order (``np.add.at``); when a
        lender is also a payer (its later payment would depend on its receipts) the loans are
        repaid one by one."""
        if len(rows) == 0:
            return []
        borrower = self.borrower[rows]
        lender = self.lender[rows]
        if len(rows) > 1 and np.isin(lender, borrower).any():
            return [
                self.repay_in_full(rows[k : k + 1], cash, lots, free_btc)[0]
                for k in range(len(rows))
            ]
        owed = self.owed_usd(rows)
        left: dict[int, float] = {}
        ok: list[bool] = []
        for b, o in zip(borrower.tolist(), owed.tolist(), strict=True):
            c = left.get(b)
            if c is None:
                c = float(cash[b])
            if c < o:
                ok.append(False)
                continue
            left[b] = c - o
            ok.append(True)
        if not left:
            return ok
        paid = np.array(ok)
        done = rows[paid]
        for b, c in left.items():
            cash[b] = c
        np.add.at(cash, lender[paid], owed[paid])
        self.close_repaid(done)
        self.release_collateral(done, lots, free_btc)
        return ok

    def capitalise_arrears(self, rows: np.ndarray) -> None:
        """On default the unpaid interest in arrears joins the principal of ``rows`` (the claim);
        the arrears are cleared."""
        self.principal_usd[rows] += self.arrears_usd[rows] - self.arrears_principal_usd[rows]
        self.arrears_usd[rows] = 0.0
        self.arrears_principal_usd[rows] = 0.0

    def write_off(self, row: int) -> float:
        """Close loan ``row`` with its remaining principal lost; returns that loss (USD)."""
        amount = float(self.principal_usd[row])
        self.principal_usd[row] = 0.0
        self.status[row] = CLOSED
        return amount

    def seize_lots(self, rows: np.ndarray, lots: LotBook, marks: np.ndarray, policy, t: int):
        """Secured lenders of ``rows`` (in order) take enough of each loan's pledged GPU units, at
        their own marks, to cover its principal. A lot only partly needed is split: the rest stays
        with the borrower (split-off lots appended in one batch). The claim falls by the units'
        value; units are rounded up, so the excess is under one GPU.

        ``marks``: (2, G) USD per GPU, row 0 appraisal marks, row 1 market marks; ``policy``: per
        agent, 1 where the lender marks to market. Returns the seizures as lists, one entry per
        seized lot in order: (lot rows, lenders, borrowers, USD values, units, USD per unit)."""
        split = {"owner": [], "gen": [], "units": [], "acquired_month": [], "cost_usd_per_unit": []}
        seized = ([], [], [], [], [], [])
        for loan in rows.tolist():
            lot_rows = lots.rows_of_loan(loan)
            lot_rows = lot_rows[lots.units[lot_rows] > 0]
            if len(lot_rows) == 0:
                continue
            lender = int(self.lender[loan])
            claim = float(self.principal_usd[loan])
            unit_marks = marks[1 if policy[lender] else 0][lots.gen[lot_rows]]
            for row, mark, units in zip(
                lot_rows.tolist(), unit_marks.tolist(), lots.units[lot_rows].tolist(), strict=True
            ):
                if claim <= 1e-6:
                    break
                take = units if mark <= 0 else min(units, math.ceil(claim / mark))
                if take <= 0:
                    continue
                if take < units:  # split the lot: the rest stays in the estate
                    for column, values in split.items():
                        values.append(
                            units - take if column == "units" else getattr(lots, column)[row]
                        )
                    lots.units[row] = take
                lots.owner[row] = lender
                lots.loan[row] = -1
                # carried at the value the claim was reduced by
                lots.book_value_usd_per_unit[row] = mark
                lots.acquired_month[row] = t
                value = take * mark
                for column, x in zip(
                    seized, (row, lender, int(self.borrower[loan]), value, take, mark), strict=True
                ):
                    column.append(x)
                claim -= min(claim, value)
            self.principal_usd[loan] = max(claim, 0.0)
        if split["units"]:
            lots.add(**{column: np.array(values) for column, values in split.items()})
        return seized

    # ------------------------------------------------------------------ BTC-backed loans
    def btc_ltv(self, rows, btc_price_usd: float):
        """Loan-to-value of BTC-backed ``rows``: principal / (pledged BTC x price)."""
        return self.principal_usd[rows] / np.maximum(
            self.collateral_btc[rows] * btc_price_usd, 1e-9
        )

    def margin_called(self, rows: np.ndarray, btc_price_usd: float) -> np.ndarray:
        """The BTC-backed loans of ``rows`` whose LTV is above their margin-call LTV."""
        return rows[self.btc_ltv(rows, btc_price_usd) > self.margin_call_ltv[rows]]

    def liquidate_btc(self, rows: np.ndarray, crypto, acct, lots: LotBook) -> tuple:
        """Lenders sell the pledged BTC of ``rows`` in one clearing (the coins go straight to the
        market: lenders never hold BTC) and repay themselves; the borrower gets the surplus. A loan
        the proceeds clear is repaid; otherwise the borrower is asked to repay the rest in full now
        (:meth:`repay_in_full`), loan by loan in order.

        ``crypto``: the BTC market (``clear_sales``); ``acct``: the accounts. Returns (price USD per
        BTC, proceeds USD per loan, whether each loan ended repaid)."""
        btc = self.collateral_btc[rows].copy()
        lenders = self.lender[rows]
        acct.sector_btc_in["btc_market"] -= float(btc.sum())
        self.collateral_btc[rows] = 0.0
        price = crypto.clear_sales(float(btc.sum()))
        proceeds = btc * price
        settled = []
        for k, loan in enumerate(rows.tolist()):
            b, lender = int(self.borrower[loan]), int(lenders[k])
            owed = float(self.owed_usd(loan))
            to_lender = min(proceeds[k], owed)
            acct.from_sector("btc_market", lender, to_lender)
            acct.from_sector("btc_market", b, proceeds[k] - to_lender)
            self.principal_usd[loan] = owed - to_lender
            self.arrears_usd[loan] = 0.0
            self.arrears_principal_usd[loan] = 0.0
            if self.principal_usd[loan] <= 1e-6:
                self.principal_usd[loan] = 0.0
                self.status[loan] = REPAID
                settled.append(True)
            else:
                row = np.array([loan])
                settled.append(self.repay_in_full(row, acct.cash, lots, acct.btc)[0])
        return price, proceeds, settled

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
