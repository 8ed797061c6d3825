"""The loan book: one row per loan, with the verbs of a loan's lifecycle.

A loan is originated (``LoanBook.add``), serviced, rolled or refused at maturity, repaid early or on
acceleration, seized, liquidated (BTC-backed loans) and written off; the phases decide *when*, the
book's verbs do *what*, vectorised over loan rows. Kinds, statuses and seniority classes are named
constants here (re-exported by :mod:`abm.finance.instruments`).
"""

from __future__ import annotations

import math

import numpy as np

from abm.finance.book import Book

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

# Equity-cure history kept per loan: the months of its last CURE_HISTORY cures
CURE_HISTORY = 4
NO_CURE_MONTH = -(10**6)


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
        # equity cures of this facility: how many over its life, and the months of the last
        # CURE_HISTORY of them (newest first; -10**6 = none), for the limits per rolling year
        "cures_total": (np.int64, 0),
        **{f"cure_month_{k}": (np.int64, NO_CURE_MONTH) for k in range(4)},
        # interbank loans: principal written down when the borrowing lender failed and not yet
        # restored from its later gains (USD)
        "written_down_usd": (np.float64, 0.0),
    }

    INDEX_BY = "borrower"  # borrower -> its loan rows (a loan's borrower never changes)

    def rows_of_borrower(self, borrower: int) -> np.ndarray:
        """Rows of the loans of ``borrower`` (ascending), as ``flatnonzero(borrower == b)``."""
        return self.indexed_rows(borrower)

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
        # imported here: importing the agents package at module level would run its __init__, which
        # imports the lenders' funding rules and through them this module (a circular import)
        from abm.agents.base import ACTIVE as AGENT_ACTIVE

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

    def release_collateral(self, rows: np.ndarray, lots, free_btc=None) -> None:
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

    def repay_in_full(self, rows: np.ndarray, cash: np.ndarray, lots, free_btc) -> list:
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

    def seize_lots(self, rows: np.ndarray, lots, marks: np.ndarray, mark_row, t: int, pledged=None):
        """Secured lenders of ``rows`` (distinct loan rows, in order) take enough of each loan's
        pledged GPU units, at their own marks, to cover its principal. A lot only partly needed is
        split: the rest stays with the borrower (split-off lots appended in one batch). The claim
        falls by the units' value; units are rounded up, so the excess is under one GPU.

        ``marks``: (R, G) USD per GPU, one row per way of marking (the model's
        :meth:`~abm.valuation.Valuation.mark_table`); ``mark_row``: per agent, the row of ``marks``
        its lender marks with. ``pledged``: ``lots.pledged_lots(rows)`` when the caller has it.
        Returns the seizures as lists, one entry per seized lot in order: (lot rows, lenders,
        borrowers, USD values, units, USD per unit)."""
        seized = ([], [], [], [], [], [])
        # every loan's pledged lots with units, their marks and units, read once before the loop
        # (a lot is pledged to one loan: seizing one loan's lots leaves the others' as they were)
        rows = np.asarray(rows, dtype=np.int64)
        at, lot_rows_all = lots.pledged_lots(rows) if pledged is None else pledged
        lot_units = lots.units[lot_rows_all]
        live = lot_units > 0
        if np.count_nonzero(live) < len(live):
            at, lot_rows_all, lot_units = at[live], lot_rows_all[live], lot_units[live]
        if len(at) == 0:
            return seized
        loan_of_lot = rows[at]
        lender_of_lot = self.lender[loan_of_lot]
        lot_marks = marks[np.asarray(mark_row)[lender_of_lot], lots.gen[lot_rows_all]]
        # the loop runs on Python lists (NumPy scalar reads and writes cost far more than list
        # items); the lots' columns are written once after it. Every lot appears once (distinct
        # loans, one loan per lot), and each is read before it is written, so deferring the
        # writes changes nothing; the claims are reduced in Python floats as before.
        seized_rows, seized_lenders, seized_borrowers, values, takes, prices = seized
        split_rows, split_units, split_take = [], [], []
        claim_loans, claim_left = [], []
        loan_now, lender, borrower, claim = -1, -1, -1, 0.0
        for loan, row, mark, units, lot_lender, lot_borrower, principal in zip(
            loan_of_lot.tolist(),
            lot_rows_all.tolist(),
            lot_marks.tolist(),
            lot_units.tolist(),
            lender_of_lot.tolist(),
            self.borrower[loan_of_lot].tolist(),
            self.principal_usd[loan_of_lot].tolist(),  # no claim is written before the loop ends
            strict=True,
        ):
            if loan != loan_now:  # the first lot of the next loan (lots come grouped by loan)
                if loan_now >= 0:
                    claim_left.append(max(claim, 0.0))
                loan_now, lender, borrower, claim = loan, lot_lender, lot_borrower, principal
                claim_loans.append(loan)
            if claim <= 1e-6:
                continue
            # (a subnormal mark makes claim / mark infinite: then every unit is taken)
            ratio = claim / mark if mark > 0 else math.inf
            take = math.ceil(ratio) if ratio < units else units
            if take <= 0:
                continue
            if take < units:  # split the lot: the rest stays in the estate
                split_rows.append(row)
                split_units.append(units - take)
                split_take.append(take)
            value = take * mark  # the lot is carried at the value the claim was reduced by
            seized_rows.append(row)
            seized_lenders.append(lender)
            seized_borrowers.append(borrower)
            values.append(value)
            takes.append(take)
            prices.append(mark)
            claim -= min(claim, value)
        claim_left.append(max(claim, 0.0))
        self.principal_usd[claim_loans] = claim_left
        if split_rows:
            split = np.array(split_rows, dtype=np.int64)
            new_lots = {
                "owner": lots.owner[split],
                "gen": lots.gen[split],
                "units": np.array(split_units),
                "acquired_month": lots.acquired_month[split],
                "cost_usd_per_unit": lots.cost_usd_per_unit[split],
            }
            lots.units[split] = split_take
        if seized_rows:
            taken = np.array(seized_rows, dtype=np.int64)
            lots.owner[taken] = seized_lenders
            lots.loan[taken] = -1
            lots.book_value_usd_per_unit[taken] = prices
            lots.acquired_month[taken] = t
        if split_rows:
            lots.add(**new_lots)
        return seized

    def cures_allowed(self, rows: np.ndarray, t: int, per_year: int, per_life: int) -> np.ndarray:
        """Mask aligned with ``rows``: the facility may still be cured in month ``t``, having had
        fewer than ``per_year`` cures in the last 12 months (months t-11 .. t) and fewer than
        ``per_life`` over its life. ``per_year`` is at most :data:`CURE_HISTORY`."""
        recent = np.zeros(len(rows), dtype=np.int64)
        # the history is newest first (record_cures), so a facility whose last cure is older
        # than 12 months has none in them: only the few with a recent cure are counted
        cured_lately = np.flatnonzero(self.cure_month_0[rows] > t - 12)
        if len(cured_lately):
            lately = rows[cured_lately]
            for k in range(CURE_HISTORY):
                recent[cured_lately] += getattr(self, f"cure_month_{k}")[lately] > t - 12
        return (recent < per_year) & (self.cures_total[rows] < per_life)

    def record_cures(self, rows: np.ndarray, t: int) -> None:
        """Count one equity cure in month ``t`` on each loan of ``rows`` (distinct rows)."""
        self.cures_total[rows] += 1
        for k in range(CURE_HISTORY - 1, 0, -1):
            getattr(self, f"cure_month_{k}")[rows] = getattr(self, f"cure_month_{k - 1}")[rows]
        self.cure_month_0[rows] = t

    # ------------------------------------------------------------------ BTC-backed loans
    def btc_ltv(self, rows, btc_price_usd: float):
        """Loan-to-value of BTC-backed ``rows``: principal / (pledged BTC x price)."""
        return self.principal_usd[rows] / np.maximum(
            self.collateral_btc[rows] * btc_price_usd, 1e-9
        )

    def margin_called(self, rows: np.ndarray, btc_price_usd: float) -> np.ndarray:
        """The BTC-backed loans of ``rows`` whose LTV is above their margin-call LTV."""
        return rows[self.btc_ltv(rows, btc_price_usd) > self.margin_call_ltv[rows]]

    def liquidate_btc(self, rows: np.ndarray, crypto, acct, lots) -> tuple:
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
