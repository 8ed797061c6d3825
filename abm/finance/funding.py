"""Finite funding of lenders (the ``funding`` channel): redemptions, depositor runs, borrowing-base
margin calls, outside funding at a price and within a cap, and the funding need that is left.

Run monthly in the lender phase (abm/phases/lenders.py), before failures are cleared, with the
``funding`` channel on. Each step is a vectorised verb over the lenders (rows ``model.lender_idx``);
all amounts in USD, shares per month unless named otherwise:

1. **Fund investors redeem** (kinds with ``redemption_gate_share_per_quarter`` > 0: HY funds,
   private-credit vehicles). Once a lender's net asset value per share is
   ``funding.redemption_trigger_drawdown`` below its high of the last 3 months (investors respond
   to recent losses), they ask back ``redemption_per_drawdown`` x that drawdown / 3 of its equity a
   month; the gate caps what is paid in any 3 months at the kind's share of equity per quarter. Redemptions
   are paid at net asset value from cash to the ``fund_investors`` sector: cash and equity fall
   together. What cash does not cover (within the gate) is raised by loan sales in step 5 and paid
   from their proceeds; what the sales do not raise is gated (not carried over).
2. **Depositors run** (kinds with ``run_share_per_month`` > 0: crypto lenders) when BTC is
   ``funding.run_btc_drawdown`` below its high of the last ``funding.btc_high_window_months``, or
   the lender's equity is ``funding.run_equity_drawdown`` below its peak: each month they ask back
   that share of their deposits (outside funding) plus what was asked and not paid.
3. **Borrowing-base margin calls** (kinds with ``borrowing_base_advance_rate`` > 0: private
   credit): the bank facility (an interbank loan in the book) may not exceed its borrowing base,
   the advance rate x the carrying value of the vehicle's performing loans plus its cash; the
   excess is called and repaid to the bank (with new outside funding if it must).
4. **Outside funding at a price and within a cap**: a lender short of cash draws new outside
   funding only up to its cap (the debt its equity supports at the capital floor of
   ``credit.min_capital_ratio_multiple`` x its start capital ratio, less what it owes banks) and not
   while its own depositors are running; the spread it pays rises by
   ``funding.spread_per_capital_shortfall`` per unit of capital ratio lost against its start.
5. **Loan sales**: a lender still short sells performing loans to the other lenders with cash to
   spare at one price per loan class for the month (abm/finance/loan_sales.py), then pays its
   bank, its depositors and its investors from the proceeds. A kind with
   ``sells_seized_before_loans`` first keeps the part of its need its seized lots raise at the
   best bids for the next market round (abm/finance/seized_sale.py); a need so covered does not
   count towards the grace of step 6. The month's prices then re-mark the loan classes
   (abm/finance/loan_marks.py): lenders marking loans to market lose equity, which can trigger
   their redemptions, margin calls and sales the next month.
6. **Funding need**: what a lender must still raise (margin calls and withdrawals it could not pay,
   negative cash) goes to ``model.funding_need_usd``; it stops lending, and a lender whose need
   outlasts ``funding.illiquidity_grace_months``, or whose cash is still negative (it cannot pay
   its funders this month), fails (cause ``illiquidity``).

Payments come first to the bank (secured), then to depositors and investors, from cash only.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE
from abm.finance import loan_marks, loan_sales, seized_sale
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import INTERBANK


class FundingState:
    """Per-agent funding state (USD unless named; arrays of shape (n_agents,), only lender rows used).

    ``equity_peak_usd``: highest equity seen; ``nav_path``: net asset value per share over the
    last 4 months (shape (n, 4), newest last, 1 at start); ``equity_after_usd``: equity after last
    month's redemptions (the base of this month's return per share); ``redeemed_usd``: redemptions paid in each of the last
    3 months (shape (n, 3), newest last); ``withdrawals_pending_usd``: withdrawals asked and not paid;
    ``need_months``: consecutive months with a funding need; ``cap_usd``: this month's outside
    funding cap; ``drawn_usd``: outside funding drawn this month; ``premium``: extra funding spread
    (per year); cumulative totals ``drawn_total_usd``, ``redemptions_total_usd``,
    ``withdrawals_total_usd``, ``margin_calls_total_usd``, ``loans_sold_usd`` (principal sold) and
    ``loan_sale_discount_usd`` (principal sold - price received, abm/finance/loan_sales.py);
    ``need_event``: the event that created a
    lender's current funding need (-1 none), the parent of what it sells to meet it; ``btc_path_usd``:
    BTC prices seen by the lender phase, month by month."""

    def __init__(self, n: int) -> None:
        self.equity_peak_usd = np.zeros(n)
        self.nav_path = np.ones((n, 4))
        self.equity_after_usd = np.zeros(n)
        self.redeemed_usd = np.zeros((n, 3))
        self.withdrawals_pending_usd = np.zeros(n)
        self.need_months = np.zeros(n, dtype=np.int64)
        self.cap_usd = np.full(n, np.inf)
        self.drawn_usd = np.zeros(n)
        self.premium = np.zeros(n)
        self.drawn_total_usd = np.zeros(n)
        self.redemptions_total_usd = np.zeros(n)
        self.withdrawals_total_usd = np.zeros(n)
        self.margin_calls_total_usd = np.zeros(n)
        self.need_event = np.full(n, -1, dtype=np.int64)
        self.loans_sold_usd = np.zeros(n)
        self.loan_sale_discount_usd = np.zeros(n)
        self.btc_path_usd: list[float] = []


def interbank_owed(m) -> np.ndarray:
    """Open interbank principal each agent owes (USD, per agent)."""
    loans = m.loans
    ib = m.loan_rows_of_kind(INTERBANK)
    ib = ib[loans.status[ib] == LOAN_ACTIVE]
    return np.bincount(loans.borrower[ib], weights=loans.principal_usd[ib], minlength=m.n)


def outside_funding_cap(m, equity: np.ndarray) -> np.ndarray:
    """Outside funding cap of each lender (USD, aligned with ``model.lender_idx``): the debt its
    equity ``equity`` (USD, lender rows) supports at its capital floor (``min_capital_ratio_multiple``
    x start capital ratio ``r``): equity x (1 / floor - 1), less what it owes banks; zero for a lender
    with no equity."""
    lenders = m.lender_idx
    floor = m.capital_ratio_start[lenders] * m.cfg["credit"]["min_capital_ratio_multiple"]
    debt_room = np.maximum(equity, 0.0) * (1.0 / np.maximum(floor, 1e-3) - 1.0)
    return np.maximum(debt_room - interbank_owed(m)[lenders], 0.0)


def draw_outside_funding(m, lenders: np.ndarray, want_usd: np.ndarray) -> np.ndarray:
    """Draw up to ``want_usd`` of new outside funding for ``lenders`` (agent rows), within each
    one's cap left (``FundingState.cap_usd`` - current outside funding). Returns what was drawn."""
    fs = m.funding_state
    room = np.maximum(fs.cap_usd[lenders] - m.outside_funding_usd[lenders], 0.0)
    drawn = np.minimum(np.maximum(want_usd, 0.0), room)
    if drawn.any():
        m.outside_funding_usd[lenders] += drawn
        m.acct.from_sector("outside_funders", lenders, drawn)
        fs.drawn_usd[lenders] += drawn
        fs.drawn_total_usd[lenders] += drawn
    return drawn


def _recent_default_parents(m, lender: int, by_lender: dict | None = None) -> list[int]:
    """Default events of this lender's borrowers (the losses behind a run), most recent 20.
    ``by_lender``: :func:`borrower_default_events` of the current state, when the caller has it
    (one pass over the loans for every lender, instead of one per lender)."""
    if by_lender is None:
        by_lender = borrower_default_events(m, np.array([lender]))
    # and the re-mark of its loan book, when loan sales marked its loans down lately
    return by_lender.get(lender, []) + loan_marks.recent_mark_parents(m, lender)


def borrower_default_events(
    m, lenders: np.ndarray, rows: np.ndarray | None = None
) -> dict[int, list[int]]:
    """For each of ``lenders`` (agent rows) whose borrowers defaulted: the default events of its
    distinct borrowers on loans other than interbank loans, ascending, the last 20 (the parents of
    its funding events). One pass over the loans for all of them; ``rows``:
    :func:`defaulted_borrower_rows` of the current state, when the caller has it. Interbank loans
    are the only loans lenders owe, so a lender's own failure never adds to another's list."""
    loans, n = m.loans, m.n
    if rows is None:
        rows = defaulted_borrower_rows(m)
    wanted = np.zeros(n, dtype=bool)
    wanted[lenders] = True
    rows = rows[wanted[loans.lender[rows]]]
    if not len(rows):
        return {}
    pairs = np.unique(loans.lender[rows] * n + loans.borrower[rows])  # (lender, borrower) once
    lender = pairs // n
    events = m.default_event[pairs - lender * n]
    order = np.lexsort((events, lender))  # by lender, events ascending within
    lender, events = lender[order], events[order]
    starts = np.flatnonzero(np.r_[True, lender[1:] != lender[:-1]])
    ends = np.r_[starts[1:], len(lender)]
    return {
        int(lender[a]): events[max(a, b - 20) : b].tolist()
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def defaulted_borrower_rows(m) -> np.ndarray:
    """Rows of the loans other than interbank loans whose borrower has defaulted."""
    loans = m.loans
    return np.flatnonzero((m.default_event[loans.borrower] > 0) & (loans.kind != INTERBANK))


def lender_funding_month(m, t: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The month's funding step for all lenders (steps 1-5 of the module docstring). Returns a
    mask aligned with ``model.lender_idx``: lenders that fail for illiquidity this month, and the
    lenders' (assets, equity) at the end of the step (USD, ``lender_idx`` order), which the lender
    phase goes on from."""
    fs, f = m.funding_state, m.cfg["funding"]
    lenders = m.lender_idx
    lk = m.lk
    active = m.status[lenders] == ACTIVE
    loan_value, gpu_value, claims = m.claims_parts()
    _, equity = m.lender_assets_and_equity((claims, gpu_value))
    fs.equity_peak_usd[lenders] = np.maximum(fs.equity_peak_usd[lenders], equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(
            fs.equity_peak_usd[lenders] > 0, 1.0 - equity / fs.equity_peak_usd[lenders], 0.0
        )
    drawdown = np.clip(drawdown, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(fs.equity_after_usd[lenders] > 0, equity / fs.equity_after_usd[lenders], 1.0)
    nav = np.roll(fs.nav_path[lenders], -1, axis=1)
    nav[:, -1] = nav[:, -2] * np.maximum(ret, 0.0)
    fs.nav_path[lenders] = nav
    nav_drawdown = np.clip(1.0 - nav[:, -1] / np.maximum(nav.max(axis=1), 1e-12), 0.0, 1.0)
    fs.btc_path_usd.append(float(m.crypto.price_usd))
    window = fs.btc_path_usd[-int(f["btc_high_window_months"]) :]
    btc_drawdown = 1.0 - window[-1] / max(window)
    fs.drawn_usd[lenders] = 0.0
    fs.redeemed_usd[lenders] = np.roll(fs.redeemed_usd[lenders], -1, axis=1)
    fs.redeemed_usd[lenders, -1] = 0.0
    need = np.zeros(len(lenders))
    redemption_due = np.zeros(len(lenders))
    stressed = np.zeros(len(lenders), dtype=bool)  # depositors running: no new deposits
    event = np.full(len(lenders), -1, dtype=np.int64)
    # the parents of steps 1-3's events, for all the lenders of a step at once; the defaulted
    # borrowers' loans found once: until the loan sales of step 5 no loan changes lender or is
    # added, and no borrower defaults in this phase
    defaulted_rows: list[np.ndarray] = []

    def parents_for(agents: np.ndarray) -> dict[int, list[int]]:
        if not defaulted_rows:
            defaulted_rows.append(defaulted_borrower_rows(m))
        return borrower_default_events(m, agents, defaulted_rows[0])

    # 3. borrowing-base margin calls (paid first: the bank's facility is secured)
    call_unpaid = np.zeros(len(lenders))
    advance = lk["borrowing_base_advance_rate"][lenders]
    loans = m.loans
    ib = m.loan_rows_of_kind(INTERBANK)
    ib = ib[loans.status[ib] == LOAN_ACTIVE]
    if (advance > 0).any() and len(ib):
        value = loan_value  # m.claims_value(): nothing above wrote the books, marks or accounts
        performing = (loans.status == LOAN_ACTIVE) & (loans.kind != INTERBANK)
        eligible = np.bincount(loans.lender, weights=value * performing, minlength=m.n)[lenders]
        # cash in the vehicle's collateral account counts in full (a call paid from cash lowers
        # the facility and the base alike)
        base = advance * eligible + np.maximum(m.acct.cash[lenders], 0.0)
        owed = interbank_owed(m)[lenders]
        call = np.where((advance > 0) & active, np.maximum(owed - base, 0.0), 0.0)
        calls = np.flatnonzero(call > 1.0)
        default_parents = parents_for(lenders[calls]) if len(calls) else {}
        for j in calls:
            i = int(lenders[j])
            paid = min(call[j], max(m.acct.cash[i], 0.0))
            rows = ib[loans.borrower[ib] == i]
            bank = int(loans.lender[rows[0]])
            eid = m.events.add(
                t, "funding_margin_call", i, cause="borrowing_base", counterparty=bank,
                parents=_recent_default_parents(m, i, default_parents), amount=float(call[j]),
            )  # fmt: skip
            _repay_interbank(m, rows, paid)
            fs.margin_calls_total_usd[i] += paid
            call_unpaid[j] = call[j] - paid
            event[j] = eid

    # 1. fund investors redeem after losses, through the gate
    gate = lk["redemption_gate_share_per_quarter"][lenders]
    redeem = active & (gate > 0) & (nav_drawdown >= f["redemption_trigger_drawdown"])
    if redeem.any():
        ask = f["redemption_per_drawdown"] * nav_drawdown / 3.0 * np.maximum(equity, 0.0)
        gate_left = np.maximum(
            gate * np.maximum(equity, 0.0) - fs.redeemed_usd[lenders].sum(axis=1), 0.0
        )
        owed = np.where(redeem, np.minimum(ask, gate_left), 0.0)
        pay = np.minimum(owed, np.maximum(m.acct.cash[lenders], 0.0))
        redemption_due = owed - pay  # within the gate: paid after loan sales (step 5)
        redeeming = np.flatnonzero(redeem & (ask > 1.0))
        default_parents = parents_for(lenders[redeeming]) if len(redeeming) else {}
        for j in redeeming:
            i = int(lenders[j])
            eid = m.events.add(
                t, "redemption", i, cause="losses",
                parents=_recent_default_parents(m, i, default_parents), amount=float(owed[j]),
            )  # fmt: skip
            if event[j] < 0:
                event[j] = eid
        _pay_redemptions(m, lenders, pay, equity)

    # 2. depositors run (deposits are the lender's outside funding)
    run_share = lk["run_share_per_month"][lenders]
    btc_run = btc_drawdown >= f["run_btc_drawdown"]
    loss_run = drawdown >= f["run_equity_drawdown"]
    run = active & (run_share > 0) & (btc_run | loss_run)
    pending = fs.withdrawals_pending_usd[lenders]
    ask = np.where(run, run_share * np.maximum(m.outside_funding_usd[lenders] - pending, 0.0), 0.0)
    ask = np.where(active, ask + pending, 0.0)
    if ask.any():
        pay = np.minimum(ask, np.maximum(m.acct.cash[lenders], 0.0))
        running = np.flatnonzero(run)
        default_parents = parents_for(lenders[running]) if len(running) else {}
        for j in running:
            i = int(lenders[j])
            eid = m.events.add(
                t, "depositor_run", i, cause="btc_fall" if btc_run else "losses",
                parents=_recent_default_parents(m, i, default_parents), amount=float(ask[j]),
            )  # fmt: skip
            if event[j] < 0:
                event[j] = eid
        m.outside_funding_usd[lenders] -= pay
        m.acct.to_sector("outside_funders", lenders, pay)
        fs.withdrawals_total_usd[lenders] += pay
        fs.withdrawals_pending_usd[lenders] = ask - pay
        stressed |= run | (ask - pay > 1.0)

    # 4. outside funding within the cap, at a price
    _, equity = m.lender_assets_and_equity()
    fs.equity_after_usd[lenders] = equity  # next month's return per share starts here
    fs.cap_usd[lenders] = np.where(active & ~stressed, outside_funding_cap(m, equity), 0.0)
    # it borrows what it is short, and what it still owes its bank on a margin call
    short = np.maximum(-m.acct.cash[lenders], 0.0) + call_unpaid
    draw_outside_funding(m, lenders, np.where(active, short, 0.0))
    _pay_margin_calls(m, lenders, call_unpaid, ib)

    # 5. a lender still short sells loans at the month's common price, then pays its bank first
    # (redemptions due within the gate are sold for too; what the sales do not cover is gated;
    # the part its seized lots raise at the best bids, for kinds that sell them first, waits
    # for the market round: abm/finance/seized_sale.py)
    need = _unmet_need_usd(m, lenders, call_unpaid, active) + redemption_due
    kept = seized_sale.need_kept_for_inventory_usd(m, lenders, need)
    if (need - kept > 1.0).any():
        short_lenders = need - kept > 1.0
        parents = np.where(event > 0, event, fs.need_event[lenders])
        loan_sales.sell_loans(
            m, t, lenders[short_lenders], (need - kept)[short_lenders], parents[short_lenders]
        )
        _pay_from_cash(m, lenders, call_unpaid, ib)
        if redemption_due.any():
            _, equity = m.lender_assets_and_equity()
            late = np.minimum(redemption_due, np.maximum(m.acct.cash[lenders], 0.0))
            _pay_redemptions(m, lenders, late, equity)
            fs.equity_after_usd[lenders] -= late
    loan_marks.update_marks(m, t)  # the month's loan prices re-mark the loan classes
    assets, equity = m.lender_assets_and_equity()
    ratio = equity / np.maximum(assets, 1.0)
    lost = np.clip(1.0 - ratio / np.maximum(m.capital_ratio_start[lenders], 1e-9), 0.0, 1.0)
    fs.premium[lenders] = f["spread_per_capital_shortfall"] * lost

    # 6. the funding need left; illiquid lenders past their grace fail
    need = _unmet_need_usd(m, lenders, call_unpaid, active)
    m.funding_need_usd[lenders] = need
    has_need = need > 1.0
    # a need covered by seized lots awaiting the market round does not count towards the grace
    fs.need_months[lenders] = np.where(need - kept > 1.0, fs.need_months[lenders] + 1, 0)
    fs.need_event[lenders] = np.where(
        has_need, np.where(event > 0, event, fs.need_event[lenders]), -1
    )
    # a lender whose cash is still negative cannot pay what it owes this month: it fails now
    overdrawn = active & (m.acct.cash[lenders] < -1e-6)
    illiquid = (has_need & (fs.need_months[lenders] > f["illiquidity_grace_months"])) | overdrawn
    return illiquid, (assets, equity)  # nothing since the re-mark wrote the balance sheets


def _pay_redemptions(m, lenders: np.ndarray, pay: np.ndarray, equity: np.ndarray) -> None:
    """Pay ``pay`` (USD, aligned with ``lenders``) of redemptions at net asset value from cash to
    the ``fund_investors`` sector; ``equity``: the lenders' equity before the payment."""
    fs = m.funding_state
    m.acct.to_sector("fund_investors", lenders, pay)
    # redeemed shares leave at net asset value: the equity peak scales down with the equity
    # paid out, so the drawdown (a loss per share) does not grow with redemptions
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(equity > 0, 1.0 - pay / equity, 1.0)
    fs.equity_peak_usd[lenders] *= np.clip(kept, 0.0, 1.0)
    fs.redeemed_usd[lenders, -1] += pay
    fs.redemptions_total_usd[lenders] += pay


def _unmet_need_usd(m, lenders: np.ndarray, call_unpaid: np.ndarray, active: np.ndarray):
    """USD each of ``lenders`` still owes this month and cannot pay from cash: unpaid margin calls,
    pending withdrawals and any overdraft; 0 for lenders that are not ``active``."""
    need = (
        call_unpaid
        + m.funding_state.withdrawals_pending_usd[lenders]
        + np.maximum(-m.acct.cash[lenders], 0.0)
    )
    return np.where(active, need, 0.0)


def _pay_margin_calls(m, lenders: np.ndarray, call_unpaid: np.ndarray, ib: np.ndarray) -> None:
    """Pay the banks' borrowing-base margin calls from cash, as far as it goes (``call_unpaid``,
    USD aligned with ``lenders``, reduced in place; ``ib``: the open interbank loan rows)."""
    fs, loans = m.funding_state, m.loans
    for j in np.flatnonzero(call_unpaid > 0):
        i = int(lenders[j])
        paid = min(call_unpaid[j], max(m.acct.cash[i], 0.0))
        _repay_interbank(m, ib[loans.borrower[ib] == i], paid)
        fs.margin_calls_total_usd[i] += paid
        call_unpaid[j] -= paid


def _pay_from_cash(m, lenders: np.ndarray, call_unpaid: np.ndarray, ib: np.ndarray) -> None:
    """After loan sales: pay what is still owed from cash, the bank's margin calls first
    (``call_unpaid``, aligned with ``lenders``, reduced in place), then pending withdrawals."""
    fs = m.funding_state
    _pay_margin_calls(m, lenders, call_unpaid, ib)
    pending = fs.withdrawals_pending_usd[lenders]
    pay = np.minimum(pending, np.maximum(m.acct.cash[lenders], 0.0))
    if pay.any():
        m.outside_funding_usd[lenders] -= pay
        m.acct.to_sector("outside_funders", lenders, pay)
        fs.withdrawals_total_usd[lenders] += pay
        fs.withdrawals_pending_usd[lenders] = pending - pay


def _repay_interbank(m, rows: np.ndarray, amount_usd: float) -> None:
    """Repay ``amount_usd`` of the interbank loans ``rows`` (one borrower), pro rata to principal:
    cash moves from the borrower to each bank and the principal falls by as much."""
    if amount_usd <= 0 or not len(rows):
        return
    loans = m.loans
    principal = loans.principal_usd[rows]
    part = amount_usd * principal / max(principal.sum(), 1e-9)
    part = np.minimum(part, principal)
    m.acct.transfer(loans.borrower[rows], loans.lender[rows], part)
    loans.principal_usd[rows] -= part


def liquidity_for_lending(m, lenders: np.ndarray) -> np.ndarray:
    """New lending (USD, aligned with ``lenders``: agent rows) each lender can pay out this month:
    its cash plus the outside funding it may still draw under its cap; zero while it has a funding
    need (a lender short of funding cuts lending first)."""
    fs = m.funding_state
    room = np.maximum(fs.cap_usd[lenders] - m.outside_funding_usd[lenders], 0.0)
    liquid = np.maximum(m.acct.cash[lenders], 0.0) + room
    return np.where(m.funding_need_usd[lenders] > 1.0, 0.0, liquid)
