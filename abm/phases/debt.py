"""Phases 5-7 of each cascade round: maturities, margin calls, covenant tests, lender responses and
the resolution of the round's defaults.

Tests run on all loans at once from the same marks; lenders respond simultaneously; then all the
round's defaults are resolved together (:mod:`abm.finance.resolution`). The cause of each default
and its parent events are chosen here, in one dict per round: refused rollovers ("maturity",
"lender_failure"), failed margin calls ("margin_call"), accelerated covenant breaches ("ltv",
"coverage", :mod:`abm.phases.covenants`) and arrears past the grace period ("payment", or
"counterparty" when a lost lease explains them).
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import FAILED, MINER
from abm.finance import resolution
from abm.finance.instruments import BTC_LOAN, GPU_TERM
from abm.markets.btc_sales import raise_cash_from_btc
from abm.phases import covenants, debt_service


def tests_and_responses(m, t: int, rnd: int) -> bool:
    """Maturities, margin calls, covenant tests, lender responses; resolve the round's defaults.

    Returns True if any borrower defaulted in this round.
    """
    loans = m.loans
    defaults: dict[int, tuple[str, list[int]]] = {}
    if rnd == 0:
        # appetite moves with capital and losses: re-read monthly (and after failures); appetite and
        # maturity decisions value the same books, so they share one valuation of claims and GPUs
        parts = m.claims_and_inventory()
        m.populations.lenders.update_appetite(m.lender_assets_and_equity(parts))
        _maturities(m, t, defaults, parts)
    _margin_calls(m, t, rnd, defaults)
    covenants.check_covenants(m, t, rnd, defaults)
    if rnd == 0:
        grace = m.cfg["credit"]["payment_grace_months"]
        late = np.flatnonzero(loans.arrears_months > grace)
        late = late[loans.in_service(m.status, late)]
        for b in np.unique(loans.borrower[late]):
            if b in defaults:
                continue
            if m.lost_revenue_event[b] > 0:
                defaults[int(b)] = ("counterparty", [int(m.lost_revenue_event[b])])
            else:
                defaults[int(b)] = ("payment", debt_service.cash_drains(m, int(b), t))
    for b, (cause, parents) in sorted(defaults.items()):
        resolution.default_borrower(m, b, t, cause, parents)
    if defaults:
        resolution.distribute_all_estates(m, t)
    return bool(defaults)


def _maturities(m, t: int, defaults: dict, parts: tuple[np.ndarray, np.ndarray]) -> None:
    """Roll maturing loans or refuse them. ``parts``: the current claims and GPU inventory
    (:meth:`~abm.model.AIComputeCreditModel.claims_and_inventory`)."""
    loans = m.loans
    due = np.flatnonzero(loans.maturity_month <= t)  # then the serviced ones among them
    due = due[loans.in_service(m.status, due)]
    if len(due) == 0:
        return
    roll = m.populations.lenders.decide_rollovers(due, m.balance_sheets(parts))
    _, spreads = m.populations.lenders.new_loan_terms(loans.lender[due])
    # rolled loans are re-priced at the lender's current terms (counted, not logged one by one)
    rolled, spread = due[roll], spreads[roll]
    tenor = np.where(
        loans.kind[rolled] == BTC_LOAN,
        m.cfg["miners"]["btc_loan_roll_months"],
        m.cfg["neoclouds"]["new_loan_months"],
    )
    loans.maturity_month[rolled] = t + tenor
    floating = loans.floating[rolled]
    loans.spread[rolled] = np.where(floating, spread, loans.spread[rolled])
    loans.fixed_rate[rolled] = np.where(
        floating,
        loans.fixed_rate[rolled],
        np.maximum(loans.fixed_rate[rolled], m.base_rate + spread),
    )
    term = loans.kind[rolled] == GPU_TERM
    loans.amort_usd_per_month[rolled[term]] = loans.principal_usd[rolled[term]] / tenor[term]
    m.this_month.rollovers += len(rolled)
    for loan in due[~roll]:
        lender = int(loans.lender[loan])
        b = int(loans.borrower[loan])
        refused = m.events.add(
            t,
            "refused_rollover",
            lender,
            counterparty=b,
            amount=float(loans.principal_usd[loan]),
            parents=[int(m.default_event[lender])] if m.status[lender] == FAILED else [],
        )
        m.drain_events.setdefault(b, []).append((t, refused))
        if b not in defaults and m.type[b] == MINER:
            owed = float(loans.principal_usd[loan] + loans.arrears_usd[loan])
            raise_cash_from_btc(
                m.crypto, m.acct, b, owed, m.cfg["miners"]["btc_raise_cash_multiple"]
            )
        if covenants.repay_in_full(m, np.array([loan]))[0] or b in defaults:
            continue
        if m.status[lender] == FAILED:
            defaults[b] = ("lender_failure", [refused, int(m.default_event[lender])])
        else:
            defaults[b] = ("maturity", [refused])


def _margin_calls(m, t: int, rnd: int, defaults: dict) -> None:
    loans = m.loans
    btc = m.loan_rows_of_kind(BTC_LOAN)
    btc = btc[loans.in_service(m.status, btc)]
    if len(btc) == 0 or not m.cfg["channels"]["margin_calls"]:
        return
    called = loans.margin_called(btc, m.crypto.price_usd)
    liquidate = []
    for loan in called:
        b, lender = int(loans.borrower[loan]), int(loans.lender[loan])
        if loans.breach_months[loan] == 0:
            loans.breach_event[loan] = m.events.add(
                t,
                "margin_call",
                b,
                cause="margin_call",
                counterparty=lender,
                amount=float(loans.principal_usd[loan]),
                parents=m.btc_sale_events[-20:],
            )
        posted, repaid = m.populations.miners.answer_margin_call(loan)
        if posted > 0 or repaid > 0:  # the call took BTC or cash the miner would have used to pay
            m.drain_events.setdefault(b, []).append((t, int(loans.breach_event[loan])))
        ltv_now = loans.btc_ltv(loan, m.crypto.price_usd)
        if ltv_now <= loans.margin_call_ltv[loan]:
            loans.breach_months[loan] = 0
            continue
        if rnd == 0 or loans.breach_months[loan] == 0:
            loans.breach_months[loan] += 1
        if (
            ltv_now > loans.liquidation_ltv[loan]
            or loans.breach_months[loan] > loans.cure_months[loan]
        ):
            liquidate.append(loan)
    if liquidate:
        _liquidate_btc_loans(m, t, np.array(liquidate), defaults)


def _liquidate_btc_loans(m, t: int, rows: np.ndarray, defaults: dict) -> None:
    """Lenders liquidate the BTC collateral of margin-called ``rows`` in one clearing
    (:meth:`~abm.finance.instruments.LoanBook.liquidate_btc`); one ``btc_liquidation`` event per
    loan, child of its margin call; a borrower that cannot repay the rest defaults (margin call)."""
    loans = m.loans
    price, proceeds, settled = loans.liquidate_btc(rows, m.crypto, m.acct, m.lots)
    for k, loan in enumerate(rows.tolist()):
        b, lender = int(loans.borrower[loan]), int(loans.lender[loan])
        eid = m.events.add(
            t,
            "btc_liquidation",
            lender,
            cause="margin_call",
            counterparty=b,
            amount=float(proceeds[k]),
            price=price,
            parents=[int(loans.breach_event[loan])],
        )
        m.btc_sale_events.append(eid)
        if not settled[k] and b not in defaults:
            defaults[b] = ("margin_call", [eid])
