"""Lenders: banks, private-credit funds, HY/convert funds, crypto lenders, vendor finance.

Decisions (all lenders decide from the same state, vectorised over the loans or lenders concerned):
appetite from capital and recent sector losses; waive or accelerate a covenant breach; roll a maturing
loan or not; how much seized inventory to offer and at what reserve (its value of holding it); whether to fund a new loan.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, LENDER, BalanceSheetAgent, Population
from abm.finance import funding


class Lender(BalanceSheetAgent):
    type_code = LENDER

    @property
    def kind(self) -> str:
        return self.model.lender_kind_names[int(self.model.lender_kind[self.idx])]

    @property
    def appetite(self) -> float:
        return float(self.model.appetite[self.idx])


class Lenders(Population):
    """All lenders as one population (rows ``model.lender_idx``): their decision rules, vectorised over
    the lenders or loans concerned. Amounts in USD, rates per year, appetite in [0, 1]."""

    type_code = LENDER

    def update_appetite(self, sheet: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Appetite in [0, 1]: falls with the capital ratio relative to its start and with sector losses.

        ``appetite = clip(capital_ratio / (multiple * start ratio), 0, 1) * exp(-sensitivity * loss_rate)``,
        where loss_rate is sector-wide realised losses over the memory window / total lending at start.
        Failed lenders have zero appetite. ``sheet``: the lenders' (assets, equity) when the caller has
        them at the current state (:meth:`~abm.model.AIComputeCreditModel.lender_assets_and_equity`).
        """
        m = self.model
        lenders = m.lender_idx
        assets_usd, equity = m.lender_assets_and_equity() if sheet is None else sheet
        assets = np.maximum(assets_usd, 1.0)
        ratio = equity / assets
        target = m.capital_ratio_start[lenders] * m.cfg["credit"]["target_capital_ratio_multiple"]
        base = np.clip(ratio / np.maximum(target, 1e-9), 0.0, 1.0)
        window = m.cfg["credit"]["loss_memory_months"]
        # net of recoveries (a month can book more recoveries than losses), never below zero
        recent = max(sum(m.loss_history[-window:]), 0.0) if m.loss_history else 0.0
        loss_rate = recent / max(m.initial_lending_usd, 1.0)
        appetite = base * np.exp(-m.lk["loss_sensitivity"][lenders] * loss_rate)
        if not m.cfg["channels"]["credit_crunch"]:
            appetite = np.ones(len(lenders))  # channel off: appetite ignores capital and losses
        appetite[m.status[lenders] != ACTIVE] = 0.0
        m.appetite[lenders] = appetite

    def respond_to_breaches(self, loans: np.ndarray, severity: np.ndarray) -> np.ndarray:
        """True where the lender waives (and reprices) a breach that outlived its cure period.

        ``loans``: loan rows of the overdue breaches; ``severity``: each breach's relative size
        (LTV / max LTV - 1, or min coverage / coverage - 1). A lender waives when
        ``waiver_tolerance`` x its appetite covers the severity; a failed lender in run-off never
        waives. Returns a mask aligned with ``loans``.
        """
        m = self.model
        lender = m.loans.lender[loans]
        tolerance = m.lk["waiver_tolerance"][lender] * m.appetite[lender]
        return (m.status[lender] == ACTIVE) & (severity <= tolerance)

    def reprice_waivers(
        self,
        loans: np.ndarray,
        waive: np.ndarray,
        ltv_breach: np.ndarray,
        ltv: np.ndarray,
        coverage: np.ndarray,
    ) -> None:
        """Reprice the waived breaches among ``loans`` (``waive``: mask aligned with ``loans``) and
        reset their covenants to where the loan stands: the breach count restarts, the spread rises
        by ``credit.waiver_spread_step`` (per year), an LTV covenant (``ltv_breach``) becomes
        max(old, ``waiver_ltv_reset_multiple`` x current ``ltv``), a coverage covenant
        min(old, ``waiver_coverage_reset_multiple`` x current ``coverage``)."""
        m = self.model
        book, credit = m.loans, m.cfg["credit"]
        waived = loans[waive]
        book.breach_months[waived] = 0
        book.spread[waived] += credit["waiver_spread_step"]
        # (np.where in the argument order of Python's max(old, new) / min(old, new): the same result)
        reset_ltv, reset_cov = waive & ltv_breach, waive & ~ltv_breach
        old_ltv = book.max_ltv[loans[reset_ltv]]
        new_ltv = ltv[reset_ltv] * credit["waiver_ltv_reset_multiple"]
        book.max_ltv[loans[reset_ltv]] = np.where(new_ltv > old_ltv, new_ltv, old_ltv)
        old_cov = book.min_coverage[loans[reset_cov]]
        new_cov = coverage[reset_cov] * credit["waiver_coverage_reset_multiple"]
        book.min_coverage[loans[reset_cov]] = np.where(new_cov < old_cov, new_cov, old_cov)

    def decide_rollovers(self, loans: np.ndarray, sheets: dict) -> np.ndarray:
        """True where the lender rolls the maturing loan (``loans``: loan rows; returns a mask).

        A lender rolls when it is active with appetite >= ``credit.roll_min_appetite`` and the
        borrower is healthy: nothing past due, the loan within its LTV covenant (collateral at the
        lender's marks), and either its trailing EBITDA covers debt service
        (>= ``credit.roll_min_coverage``) or it has ample equity behind its debt (equity >=
        ``credit.roll_min_equity_to_debt`` x debt: asset coverage). ``sheets``: every agent's
        current balance sheet (:meth:`~abm.valuation.Valuation.balance_sheets`, USD)."""
        m = self.model
        book, credit = m.loans, m.cfg["credit"]
        coll = m.collateral_value_of(loans)
        borrower = book.borrower[loans]
        cov = m.coverage()[borrower]
        equity, debt = sheets["equity"][borrower], sheets["debt"][borrower]
        with np.errstate(divide="ignore", invalid="ignore"):
            ltv = np.where(coll > 0, book.principal_usd[loans] / coll, 0.0)
        solvent = (cov >= credit["roll_min_coverage"]) | (
            equity >= credit["roll_min_equity_to_debt"] * debt
        )
        healthy = (book.arrears_usd[loans] <= 0) & solvent & (ltv <= book.max_ltv[loans])
        lender = book.lender[loans]
        return (
            (m.status[lender] == ACTIVE)
            & (m.appetite[lender] >= credit["roll_min_appetite"])
            & healthy
        )

    def hold_rate(self, lenders: np.ndarray) -> np.ndarray:
        """Annual rate (aligned with ``lenders``: agent rows) at which a lender discounts the rents
        of GPUs it holds: its funding cost (base rate + ``funding_spread``: the carry of the capital
        tied up in them) plus ``credit.spread_per_lost_appetite`` x (1 - appetite), the same price
        of scarce capital it charges on new loans. A lender short of capital discounts holding more
        heavily."""
        m = self.model
        a = m.appetite[lenders]
        return (
            m.base_rate
            + m.lk["funding_spread"][lenders]
            + (1.0 - a) * m.cfg["credit"]["spread_per_lost_appetite"]
        )

    def hold_value_per_gpu(self, lenders: np.ndarray, gens: np.ndarray) -> np.ndarray:
        """USD per GPU (aligned pairs ``lenders``, ``gens``) a lender's seized GPU is worth to it
        if held: the DCF of leasing it out through a servicer (spot rent net of
        ``credit.servicer_fee_share``, power and colocation, over its remaining economic life and to
        its salvage value, as :meth:`~abm.markets.compute.ComputeMarket.value_per_gpu`) at
        :meth:`hold_rate` (a failed lender in run-off has zero appetite: the highest rate; its
        administrator leases the GPUs out as well)."""
        m = self.model
        if len(lenders) == 0:
            return np.zeros(0)
        # one rate per distinct lender (a few dozen), not per lot (thousands): the sorted distinct
        # lenders from a presence mask over agent rows, each pair's position among them by a gather
        present = np.zeros(m.n, dtype=bool)
        present[lenders] = True
        distinct = np.flatnonzero(present)
        position = np.empty(m.n, dtype=np.int64)
        position[distinct] = np.arange(len(distinct))
        # the rounded rates of the distinct lenders are the same set as those of all pairs
        unique, inverse = np.unique(np.round(self.hold_rate(distinct), 6), return_inverse=True)
        values = m.compute.value_per_gpu(
            m.month, unique, rent_share=1.0 - m.cfg["credit"]["servicer_fee_share"]
        )  # gens x rates
        return values[gens, inverse.reshape(-1)[position[lenders]]]

    def offer_seized_lots(
        self, rows: np.ndarray, best_bid_usd: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What lenders offer from the seized lots ``rows`` (lot rows they own, not yet offered this
        month). Two kinds of offer per lot:

        - a sale against holding: ``ceil(units x offer_share_per_month)`` GPUs (the pace its
          broker places them) at a reserve of :meth:`hold_value_per_gpu` (it sells only to a bid
          that beats holding), never below ``max(credit.reserve_floor_multiplier x fundamental)``
          (an option, 0 = off);
        - a sale it must make: a lender with ``model.funding_need_usd > 0`` offers, lot by lot in
          row order, enough units at reserve 0 to raise its need at the generation's best bid
          ``best_bid_usd`` (USD per GPU, over generations).

        Returns (lot rows, units, reserve USD per GPU), the must-sell offers after the others."""
        m = self.model
        lots, credit = m.lots, m.cfg["credit"]
        owner = lots.owner[rows]
        gen = lots.gen[rows]
        units_left = lots.units[rows]
        # forced units first: cumulative value at the best bid within each lender, in row order
        need = m.funding_need_usd[owner]
        price = np.maximum(best_bid_usd[gen], 1e-9)
        forced = np.zeros(len(rows), dtype=np.int64)
        if np.any(need > 0):
            for lender in np.unique(owner[need > 0]).tolist():
                mine = np.flatnonzero(owner == lender)
                left = float(m.funding_need_usd[lender])
                for k in mine.tolist():
                    if left <= 0 or best_bid_usd[gen[k]] <= 0:
                        continue
                    forced[k] = min(int(units_left[k]), int(np.ceil(left / price[k])))
                    left -= forced[k] * price[k]
        free = units_left - forced
        paced = np.ceil(free * m.lk["offer_share_per_month"][owner]).astype(np.int64)
        reserve = np.maximum(
            self.hold_value_per_gpu(owner, gen),
            credit["reserve_floor_multiplier"] * m.compute.fundamental_value[gen],
        )
        return (
            np.concatenate([rows, rows]),
            np.concatenate([paced, forced]),
            np.concatenate([reserve, np.zeros(len(rows))]),
        )

    def lending_capacity(
        self, lenders: np.ndarray, sheet: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """New lending (USD, aligned with ``lenders``: agent rows) each lender can fund this month:
        the asset growth that would bring its capital ratio down to ``min_capital_ratio_multiple`` x
        its start ratio, times its appetite; zero for failed lenders and below
        ``new_loan_min_appetite``. ``sheet``: all lenders' current (assets, equity) in
        ``model.lender_idx`` order, when the caller has them."""
        m = self.model
        assets_usd, equity_usd = np.zeros(m.n), np.zeros(m.n)
        assets_usd[m.lender_idx], equity_usd[m.lender_idx] = (
            m.lender_assets_and_equity() if sheet is None else sheet
        )
        equity = np.maximum(equity_usd[lenders], 0.0)
        assets = assets_usd[lenders]
        floor = m.capital_ratio_start[lenders] * m.cfg["credit"]["min_capital_ratio_multiple"]
        room = equity / np.maximum(floor, 1e-9) - assets
        ok = (m.status[lenders] == ACTIVE) & (
            m.appetite[lenders] >= m.cfg["credit"]["new_loan_min_appetite"]
        )
        capacity = np.where(ok, np.maximum(room, 0.0) * m.appetite[lenders], 0.0)
        if m.cfg["channels"]["funding"]:
            # finite funding: no more than it can pay out, and a regulated lender (a bank) keeps
            # equity / RWA above its minimum (new loans carry its risk weight)
            capacity = np.minimum(capacity, funding.liquidity_for_lending(m, lenders))
            ratio, rwa = self.risk_based_capital(equity_usd[m.lender_idx])
            pos = np.searchsorted(m.lender_idx, lenders)
            minimum = m.lk["min_risk_based_capital_ratio"][lenders]
            weight = np.maximum(m.lk["loan_risk_weight"][lenders], 1e-9)
            rwa_room = (equity / np.maximum(minimum, 1e-9) - rwa[pos]) / weight
            capacity = np.where(
                minimum > 0, np.minimum(capacity, np.maximum(rwa_room, 0.0)), capacity
            )
        return capacity

    def risk_based_capital(
        self, equity_usd: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(capital ratio, risk-weighted assets in USD) of every lender (``model.lender_idx`` order):
        RWA = ``loan_risk_weight`` x (carrying value of its loans, interbank included, + its GPUs
        at marks); cash weighs zero. Capital ratio = equity / RWA (inf with no RWA). A bank makes no
        new loans that would take it below ``min_risk_based_capital_ratio``
        (:meth:`lending_capacity`). ``equity_usd``: the lenders' equity, when the caller has it."""
        m = self.model
        lenders = m.lender_idx
        claims, inventory = m.claims_and_inventory()
        rwa = m.lk["loan_risk_weight"][lenders] * (claims + inventory)[lenders]
        if equity_usd is None:
            equity_usd = m.lender_equity()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(rwa > 0, equity_usd / rwa, np.inf)
        return ratio, rwa

    def new_loan_terms(self, lenders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(LTV, spread per year) each of ``lenders`` (agent rows) offers on a new secured loan,
        tighter and dearer as its appetite ``a`` falls: LTV = ``origination_ltv`` x (f + (1 - f) a)
        with f = ``credit.origination_ltv_floor_share``, spread = ``loan_spread`` + (1 - a) x
        ``credit.spread_per_lost_appetite``."""
        m = self.model
        c = m.cfg["credit"]
        a = m.appetite[lenders]
        floor = c["origination_ltv_floor_share"]
        ltv = m.lk["origination_ltv"][lenders] * (floor + (1.0 - floor) * a)
        spread = m.lk["loan_spread"][lenders] + (1.0 - a) * c["spread_per_lost_appetite"]
        return ltv, spread
