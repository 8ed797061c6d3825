"""Phase 11, ASIC orders: miners order new mining machines from the vendor, pay a deposit, and take
delivery months later on machine-backed loans (docs/ODD.md 7.22, "ASIC orders").

Called from :func:`abm.phases.investment.run` (one hook) with the lenders' capacity left this month.
Does nothing in scenarios without ASIC generations (the 2025 GPU scenarios): no order, no draw.

The order book (:class:`AsicOrderBook`) holds one row per order: miner, generation, units, price per
unit (USD), deposit paid (USD), order and delivery months and whether it is still open. A miner's
deposits on open orders are an asset on its balance sheet (``m.asic_deposits_usd``, per agent,
USD): a prepayment to the vendor (the ``asic_vendor`` sector), applied to the price at delivery or
forfeited if the balance is not paid.
"""

from __future__ import annotations

import numpy as np

from abm import network
from abm.agents.base import ACTIVE
from abm.finance.book import Book
from abm.finance.instruments import GPU_TERM, SENIOR_SECURED
from abm.world import lenders_of_kind
from abm.world_miner_asics import machine_lender_kinds


class AsicOrderBook(Book):
    """Miners' open and closed ASIC orders (struct of arrays, one row per order) and the order
    book's running totals (USD, units) the invariants check:
    deposits paid = deposits held + applied + forfeited; units ordered = units delivered + units
    forfeited + units on open orders; units delivered = units added to lots by deliveries."""

    COLUMNS = {
        "miner": (np.int64, -1),
        "gen": (np.int64, -1),
        "units": (np.int64, 0),
        "price_usd_per_unit": (np.float64, 0.0),
        "deposit_usd": (np.float64, 0.0),
        "order_month": (np.int64, 0),
        "delivery_month": (np.int64, 0),
        "open": (bool, False),
    }

    def __init__(self, capacity: int = 16) -> None:
        super().__init__(capacity)
        self.deposits_paid_usd = 0.0
        self.deposits_applied_usd = 0.0
        self.deposits_forfeited_usd = 0.0
        self.units_ordered = 0
        self.units_delivered = 0
        self.units_forfeited = 0
        self.units_added_to_lots = 0
        self.loans_usd = 0.0  # machine-backed loans originated at delivery
        self.cash_paid_usd = 0.0  # balances paid in cash at delivery


def newest_asic_generation(m, t: int) -> int:
    """The newest ASIC generation released by month ``t`` (latest release month; -1 if none)."""
    released = m.is_asic & (m.release_month <= t)
    if not released.any():
        return -1
    rows = np.flatnonzero(released)
    return int(rows[np.argmax(m.release_month[rows])])


def spare_site_mw(m, idx: np.ndarray) -> np.ndarray:
    """Mining-site MW of miners ``idx`` not taken by their installed ASIC lots or their open
    orders (MW, aligned with ``idx``, >= 0): ``asic_site_mw`` less the kW of the ASICs they own and
    have on order / 1000. Machines retired, seized or sold free their MW."""
    lots = m.lots
    asic_lot = (lots.units > 0) & m.is_asic[lots.gen]
    installed_kw = np.bincount(
        lots.owner[asic_lot], weights=lots.units[asic_lot] * m.kw[lots.gen[asic_lot]], minlength=m.n
    )
    ob = m.asic_orders
    open_ = ob.open
    ordered_kw = np.bincount(
        ob.miner[open_], weights=ob.units[open_] * m.kw[ob.gen[open_]], minlength=m.n
    )
    return np.maximum(m.asic_site_mw[idx] - (installed_kw[idx] + ordered_kw[idx]) / 1000.0, 0.0)


def run(m, t: int, capacity_left: np.ndarray) -> None:
    """Deliveries due this month, then this month's new orders (rules: :func:`deliver_orders`,
    :func:`place_orders`). ``capacity_left``: the lenders' lending capacity left (per agent, USD),
    drawn down by the machine-backed loans funded."""
    if not m.is_asic.any():
        return
    deliver_orders(m, t, capacity_left)
    place_orders(m, t, capacity_left)


def _machine_lender(m, capacity_left: np.ndarray) -> int:
    """The active machine lender (:func:`machine_lender_kinds`) with the most capacity left
    (agent row; -1 if none)."""
    lenders = lenders_of_kind(m, machine_lender_kinds(m.cfg))
    lenders = lenders[m.status[lenders] == ACTIVE]
    if len(lenders) == 0:
        return -1
    return int(lenders[int(np.argmax(capacity_left[lenders]))])


def place_orders(m, t: int, capacity_left: np.ndarray) -> None:
    """Miners order machines of the newest released ASIC generation ``g`` when they are worth more
    than they cost (rules; units in names):

    * worth: ``compute.fundamental_value[g]`` (the DCF of a new machine's hashprice revenue less
      power, the model's own value); cost: the vendor's list price ``list_price_usd`` of ``g``
      (the scenario's price index at its start; the market mark is not used: in calm markets it is
      the fundamental value less ``calm_market_discount``, which would make the test always pass).
      Orders are placed when ``value / price - 1 > miners.asic_order_hurdle``.
    * how many: the machines that fill each active miner's spare site MW (:func:`spare_site_mw`),
      as far as its cash above ``asic_refresh_cash_buffer_months`` x monthly opex pays, per machine,
      the larger of the deposit (``asic_order_deposit_share`` x price) and the part of the price the
      lender's loan will not cover (price - LTV x the lender's mark of ``g``, LTV its new-loan LTV
      today), and
      as far as the machine lender with most capacity left could fund the expected loans (shared
      pro rata among this month's orders; nothing is drawn until delivery).
    * the deposit is paid to the vendor (``asic_vendor``) now and held as the miner's asset; the
      machines arrive ``asic_order_lead_months`` later (:func:`deliver_orders`).
    """
    mc = m.cfg["miners"]
    g = newest_asic_generation(m, t)
    if g < 0 or len(m.miner_idx) == 0:
        return
    price = float(m.list_price[g])
    value = float(m.compute.fundamental_value[g])
    if price <= 0 or value / price - 1.0 <= mc["asic_order_hurdle"]:
        return
    idx = m.miner_idx[m.status[m.miner_idx] == ACTIVE]
    units = np.floor(spare_site_mw(m, idx) * 1000.0 / m.kw[g])
    lender = _machine_lender(m, capacity_left)
    loan_per_unit = 0.0  # what the lender would lend per machine today: LTV x its mark
    if lender >= 0:
        ltv = float(m.populations.lenders.new_loan_terms(np.array([lender]))[0][0])
        loan_per_unit = min(ltv * float(m.lender_marks_usd(lender, g)), price)
    deposit_share = mc["asic_order_deposit_share"]
    cash_per_unit = max(price * deposit_share, price - loan_per_unit)
    spare_cash = np.maximum(
        m.acct.cash[idx] - mc["asic_refresh_cash_buffer_months"] * m.monthly_opex_usd[idx], 0.0
    )
    units = np.minimum(units, np.floor(spare_cash / cash_per_unit))
    if loan_per_unit > 0:
        asked = float(units.sum()) * loan_per_unit
        if asked > capacity_left[lender]:
            units = np.floor(units * max(capacity_left[lender], 0.0) / asked)
    go = units > 0
    if not go.any():
        return
    idx, units = idx[go], units[go].astype(np.int64)
    deposit = units * price * deposit_share
    m.acct.to_sector("asic_vendor", idx, deposit)
    m.asic_deposits_usd[idx] += deposit
    ob = m.asic_orders
    ob.add(
        miner=idx,
        gen=g,
        units=units,
        price_usd_per_unit=price,
        deposit_usd=deposit,
        order_month=t,
        delivery_month=t + int(mc["asic_order_lead_months"]),
        open=True,
    )
    ob.deposits_paid_usd += float(deposit.sum())
    ob.units_ordered += int(units.sum())
    m.events.add_many(
        t, "asic_order", idx.tolist(), [-1] * len(idx), [()] * len(idx), deposit.tolist(),
        units=units.tolist(), prices=[price] * len(idx),
    )  # fmt: skip


def deliver_orders(m, t: int, capacity_left: np.ndarray) -> None:
    """Orders due this month are delivered and paid, whatever the machines are worth today (the
    order is a commitment). Rules, per order in order-book order (USD):

    * balance = units x price - deposit. The machine lender with most capacity left lends
      ``min(LTV x units x mark, balance)`` (LTV: its new-loan LTV today, ``new_loan_terms``; mark:
      its own mark of the generation today, so a loan starts at its LTV against the collateral, not
      against the price paid), as far as its capacity left allows (drawn down); the miner pays the
      rest of the balance in cash.
    * a miner whose cash above its buffer (``asic_refresh_cash_buffer_months`` x monthly opex, as
      when it orders) cannot pay its part takes the machines it can pay for (the deposit and the
      loan are split evenly over the units); the deposit on the machines it does not take is
      forfeited to the vendor (Bitmain's terms of sale: deposits are not refunded when the balance
      is not paid; docs/calibration.md). A miner no longer active forfeits the whole order.
    * delivered machines become a lot acquired this month at the order's price: pledged to a new
      amortising ``GPU_TERM`` loan (fixed ``asic_loan_rate_per_year``, ``asic_loan_tenor_months``,
      the lender's covenants) when one was funded, free when bought with cash.
    """
    ob = m.asic_orders
    due = np.flatnonzero(ob.open & (ob.delivery_month <= t))
    if len(due) == 0:
        return
    mc = m.cfg["miners"]
    tenor = int(mc["asic_loan_tenor_months"])
    for r in due.tolist():
        i, g, units = int(ob.miner[r]), int(ob.gen[r]), int(ob.units[r])
        price, deposit = float(ob.price_usd_per_unit[r]), float(ob.deposit_usd[r])
        ob.open[r] = False
        m.asic_deposits_usd[i] -= deposit
        balance = units * price - deposit
        lender = _machine_lender(m, capacity_left)
        loan = 0.0
        if lender >= 0 and m.status[i] == ACTIVE:
            ltv = float(m.populations.lenders.new_loan_terms(np.array([lender]))[0][0])
            mark = float(m.lender_marks_usd(lender, g))  # the lender lends against its own mark
            loan = max(min(ltv * units * mark, balance, capacity_left[lender]), 0.0)
        cash_part = balance - loan
        # the miner pays from cash above its buffer (``asic_refresh_cash_buffer_months`` x monthly
        # opex): it walks away from the rest of the order rather than run out of cash for its debts
        buffer = mc["asic_refresh_cash_buffer_months"] * m.monthly_opex_usd[i]
        cash = max(float(m.acct.cash[i] - buffer), 0.0) if m.status[i] == ACTIVE else 0.0
        if cash_part <= cash + 1e-9:
            taken = units
        else:  # per unit: the miner's cash pays (balance - loan) / units
            taken = int(np.floor(cash / (cash_part / units))) if cash_part > 0 else units
        taken = min(max(taken, 0), units) if m.status[i] == ACTIVE else 0
        share = taken / units
        applied, forfeited = deposit * share, deposit * (1.0 - share)
        ob.deposits_applied_usd += applied
        ob.deposits_forfeited_usd += forfeited
        ob.units_forfeited += units - taken
        if taken < units:
            m.events.add(
                t, "asic_order_forfeit", i, amount=forfeited, units=units - taken, price=price
            )
        if taken == 0:
            continue
        loan *= share
        paid = taken * price - applied  # the balance of the machines taken
        if loan > 0:
            capacity_left[lender] -= loan
            m.acct.transfer(np.array([lender]), np.array([i]), np.array([loan]))
        m.acct.to_sector("asic_vendor", np.array([i]), np.array([paid]))
        row = -1
        if loan > 0:
            row = int(
                m.loans.add(
                    lender=lender,
                    borrower=i,
                    kind=GPU_TERM,
                    seniority=SENIOR_SECURED,
                    principal_usd=loan,
                    fixed_rate=mc["asic_loan_rate_per_year"],
                    amort_usd_per_month=loan / tenor,
                    maturity_month=t + tenor,
                    max_ltv=m.lk["origination_ltv"][lender] + m.lk["covenant_headroom"][lender],
                    min_coverage=m.lk["min_coverage"][lender],
                    cure_months=m.lk["cure_months"][lender],
                    initial_ltv=loan / max(taken * mark, 1.0),
                    origination_month=t,
                )[0]
            )
            network.add_loan_edges(m, np.array([lender]), np.array([i]), np.array([row]))
        m.lots.add(owner=i, gen=g, units=taken, acquired_month=t, cost_usd_per_unit=price, loan=row)
        m.gpu_delivered += taken
        ob.units_delivered += taken
        ob.units_added_to_lots += taken
        ob.loans_usd += loan
        ob.cash_paid_usd += paid - loan
        m.events.add(
            t, "asic_delivery", i, counterparty=lender if loan > 0 else -1,
            amount=taken * price, units=taken, price=price,
        )  # fmt: skip


def order_book_problems(m) -> list[str]:
    """The order book's identities (empty when they hold; abm/invariants.py): deposits paid =
    held + applied + forfeited (USD); each miner's deposits held = its open orders' deposits;
    units ordered = delivered + forfeited + on open orders; units delivered = units added to lots."""
    ob = m.asic_orders
    problems = []
    held = float(m.asic_deposits_usd.sum())
    total = held + ob.deposits_applied_usd + ob.deposits_forfeited_usd
    if abs(ob.deposits_paid_usd - total) > 1e-6 * max(1.0, ob.deposits_paid_usd):
        problems.append(f"ASIC deposits paid {ob.deposits_paid_usd:.2f} != held+applied+forfeited")
    by_miner = np.bincount(ob.miner[ob.open], weights=ob.deposit_usd[ob.open], minlength=m.n)
    if not np.allclose(by_miner, m.asic_deposits_usd, rtol=1e-9, atol=1e-3):
        problems.append("a miner's ASIC deposits held differ from its open orders'")
    on_order = int(ob.units[ob.open].sum())
    if ob.units_ordered != ob.units_delivered + ob.units_forfeited + on_order:
        problems.append("ASIC units ordered != delivered + forfeited + on order")
    if ob.units_delivered != ob.units_added_to_lots:
        problems.append("ASIC units delivered != units added to lots")
    return problems
