"""Phase 4 and the end of each cascade round: debt service, arrears and unpaid suppliers.

Borrowers pay interest and amortisation from cash; miners short of cash sell BTC in one clearing with
routine production sales. Unpaid amounts become arrears, cured from later sale proceeds
(:func:`settle_arrears`) or turning into payment defaults after the grace period
(:func:`abm.phases.debt.tests_and_responses`). A borrower left with negative cash after all sales
cannot pay its suppliers and defaults (:func:`unpaid_suppliers`).
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, BUYER, MINER, NEOCLOUD
from abm.finance import resolution
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import GPU_TERM, PROJECT
from abm.markets.btc_sales import raise_cash_from_btc, sell_btc
from abm.phases.operations import push_history


def service(m, t: int, production_sale_btc: np.ndarray) -> None:
    """Phase 4: each serviced loan's interest (annual rate / 12) and amortisation fall due; miners
    sell their routine BTC production, and BTC to cover shortfalls (:meth:`Miners.plan_btc_sales
    <abm.agents.miner.Miners.plan_btc_sales>`), in one clearing; every borrower pays its month's service
    pro rata as far as its cash goes, the rest becomes arrears. Loans amortised to zero with
    nothing past due are repaid and their lots released. ``production_sale_btc``: BTC each agent
    sells from this month's production (per agent, from :func:`abm.phases.operations.run`). Writes ``m.service_hist`` (USD per
    agent, newest month first) and ``m.monthly_outflow_usd``."""
    # Only the serviced loans are read and written (closed rows stay in the book for history): the
    # other rows would get zero interest and amortisation, and adding zeros changes no sum and no
    # balance, so the per-borrower sums (in loan-row order) and all results are the same.
    loans, acct = m.loans, m.acct
    live = np.flatnonzero(loans.in_service(m.status))
    borrower, kind = loans.borrower[live], loans.kind[live]
    principal, arrears = loans.principal_usd[live], loans.arrears_usd[live]
    rate = loans.rates(m.base_rate, live)
    interest = principal * rate / 12.0
    amortising = (kind == GPU_TERM) | (kind == PROJECT)
    # principal in arrears is already due (settle_arrears collects it): this month's amortisation
    # comes out of the rest, else a loan could be amortised to zero and then lose its arrears too
    not_due = np.maximum(principal - loans.arrears_principal_usd[live], 0.0)
    amort = np.where(amortising, np.minimum(not_due, loans.amort_usd_per_month[live]), 0.0)
    due = interest + amort
    due_by = np.bincount(borrower, weights=due + arrears, minlength=m.n)
    due_now = np.bincount(borrower, weights=due, minlength=m.n)  # this month's service
    m.service_hist = push_history(m.service_hist, due_now)
    m.hist_months += 1
    loans.arrears_months[live[arrears > 0]] += 1

    # routine sales of production are part of the market's normal flow (no extra impact); miners short
    # of cash also sell treasury BTC, and those forced sales clear together against market depth
    routine = np.minimum(production_sale_btc[m.miner_idx], acct.btc[m.miner_idx])
    price = m.crypto.price_usd
    acct.btc_from_sector("btc_market", m.miner_idx, -routine)
    acct.from_sector("btc_market", m.miner_idx, routine * price)
    shortfall = np.maximum(due_by - acct.cash, 0.0)
    forced = np.minimum(m.populations.miners.plan_btc_sales(shortfall), acct.btc[m.miner_idx])
    sell_btc(m.crypto, acct, m.miner_idx, forced)

    # pay pro rata to what is due, as far as cash goes
    cash = np.maximum(acct.cash, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(due_now > 0, np.minimum(1.0, cash / due_now), 1.0)
    r = ratio[borrower]
    paid = due * r
    acct.transfer(borrower, loans.lender[live], paid)
    principal = principal - amort * r
    arrears = arrears + (due - paid)
    loans.principal_usd[live] = principal
    loans.arrears_usd[live] = arrears
    loans.arrears_principal_usd[live] += amort * (1.0 - r)
    m.monthly_outflow_usd = m.monthly_opex_usd + m.service_hist[:, 0]
    # loans amortised to zero with nothing past due are repaid: their collateral is released
    done = live[(principal <= 1e-6) & (arrears <= 1e-6)]
    if len(done):
        loans.close_repaid(done)
        # (their pledged BTC, if any, stays on the loan: this path releases the lots only)
        loans.release_collateral(done, m.lots)


def settle_arrears(m) -> None:
    """Borrowers pay arrears from whatever cash sales brought in (oldest first: pro rata)."""
    loans, acct = m.loans, m.acct
    owed = np.flatnonzero(
        loans.arrears_usd > 0
    )  # the loans in arrears, serviced by an active borrower
    owed = owed[(loans.status[owed] == LOAN_ACTIVE) & (m.status[loans.borrower[owed]] == ACTIVE)]
    if len(owed) == 0:
        return
    borrower = loans.borrower[owed]
    total = np.bincount(borrower, weights=loans.arrears_usd[owed], minlength=m.n)
    cash = np.maximum(acct.cash, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total > 0, np.minimum(1.0, cash / total), 0.0)
    r = ratio[borrower]
    pay = loans.arrears_usd[owed] * r
    acct.transfer(borrower, loans.lender[owed], pay)
    loans.principal_usd[owed] -= loans.arrears_principal_usd[owed] * r
    loans.arrears_principal_usd[owed] *= 1.0 - r
    loans.arrears_usd[owed] -= pay
    cleared = owed[loans.arrears_usd[owed] <= 1e-6]
    loans.arrears_usd[cleared] = 0.0
    loans.arrears_months[cleared] = 0


def cash_drains(m, b: int, t: int) -> list[int]:
    """The events that drained borrower ``b``'s cash before it missed payments: its margin calls
    answered with BTC or cash, and loans its lenders refused to roll, in the months its arrears
    built up (the payment grace period plus the month of the shortfall and the one before)."""
    since = t - m.cfg["credit"]["payment_grace_months"] - 2
    return sorted({eid for month, eid in m.drain_events.get(b, ()) if month >= since})


def unpaid_suppliers(m, t: int) -> bool:
    """An active borrower left with negative cash after all sales cannot pay its suppliers: default.

    An active secondary-market buyer left with negative cash (its GPUs' power and colocation cost
    more than its rent and this month's budget) is recapitalised by its owners, the
    ``equity_investors`` sector that funds its budget: buyers are arms of larger companies and
    carry no debt to default on."""
    short = np.flatnonzero(m.acct.cash < -1e-6)
    kind = m.type[short]
    owned = short[(m.status[short] == ACTIVE) & (kind == BUYER)]
    m.acct.from_sector("equity_investors", owned, -m.acct.cash[owned])
    short = short[(m.status[short] == ACTIVE) & ((kind == MINER) | (kind == NEOCLOUD))]
    for b in short:
        raise_cash_from_btc(
            m.crypto, m.acct, int(b), 0.0, m.cfg["miners"]["btc_raise_cash_multiple"]
        )
    short = [b for b in short if m.acct.cash[b] < -1e-6]
    for b in short:
        if m.lost_revenue_event[b] > 0:
            resolution.default_borrower(
                m, int(b), t, "counterparty", [int(m.lost_revenue_event[b])]
            )
        else:
            resolution.default_borrower(m, int(b), t, "payment", cash_drains(m, int(b), t))
    if short:
        resolution.distribute_all_estates(m, t)
    return bool(short)
