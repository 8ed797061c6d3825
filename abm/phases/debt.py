"""Phases 4-7: debt service, covenant and margin tests, lender responses, and defaults.

Borrowers pay interest and amortisation from cash; miners short of cash sell BTC in one clearing with
routine production sales. Unpaid amounts become arrears, cured from later sale proceeds or turning into
payment defaults after the grace period. Tests run on all loans at once from the same marks; lenders
respond simultaneously; then all the round's defaults are resolved together.
"""

from __future__ import annotations

import numpy as np

from abm.agents import lender as lender_rules
from abm.agents import miner as miner_rules
from abm.agents.base import ACTIVE, BUYER, FAILED, MINER, NEOCLOUD
from abm.finance import resolution
from abm.finance.instruments import (
    ACTIVE as LOAN_ACTIVE,
)
from abm.finance.instruments import (
    BTC_LOAN,
    GPU_TERM,
    INTERBANK,
    PROJECT,
    REPAID,
)
from abm.phases.operations import push_history


def _serviced(m) -> np.ndarray:
    """Mask of the loans being serviced: active, not interbank, the borrower active."""
    loans = m.loans
    return (
        (loans.status == LOAN_ACTIVE)
        & (loans.kind != INTERBANK)
        & (m.status[loans.borrower] == ACTIVE)
    )


def _serviced_among(m, rows: np.ndarray) -> np.ndarray:
    """The loans of ``rows`` that are serviced (:func:`_serviced` on a subset, in order)."""
    loans = m.loans
    keep = (
        (loans.status[rows] == LOAN_ACTIVE)
        & (loans.kind[rows] != INTERBANK)
        & (m.status[loans.borrower[rows]] == ACTIVE)
    )
    return rows[keep]


def service(m, t: int) -> None:
    # Only the serviced loans are read and written (closed rows stay in the book for history): the
    # other rows would get zero interest and amortisation, and adding zeros changes no sum and no
    # balance, so the per-borrower sums (in loan-row order) and all results are the same.
    loans, acct = m.loans, m.acct
    live = np.flatnonzero(_serviced(m))
    borrower, kind = loans.borrower[live], loans.kind[live]
    principal, arrears = loans.principal_usd[live], loans.arrears_usd[live]
    rate = np.where(loans.floating[live], m.base_rate + loans.spread[live], loans.fixed_rate[live])
    interest = principal * rate / 12.0
    amortising = (kind == GPU_TERM) | (kind == PROJECT)
    amort = np.where(amortising, np.minimum(principal, loans.amort_usd_per_month[live]), 0.0)
    due = interest + amort
    due_by = np.bincount(borrower, weights=due + arrears, minlength=m.n)
    due_now = np.bincount(borrower, weights=due, minlength=m.n)  # this month's service
    m.service_hist = push_history(m.service_hist, due_now)
    m.hist_months += 1
    loans.arrears_months[live[arrears > 0]] += 1

    # routine sales of production are part of the market's normal flow (no extra impact); miners short
    # of cash also sell treasury BTC, and those forced sales clear together against market depth
    routine = np.minimum(m.btc_production_sale[m.miner_idx], acct.btc[m.miner_idx])
    price = m.crypto.price_usd
    acct.btc_from_sector("btc_market", m.miner_idx, -routine)
    acct.from_sector("btc_market", m.miner_idx, routine * price)
    shortfall = np.maximum(due_by - acct.cash, 0.0)
    forced = np.minimum(miner_rules.plan_btc_sales(m, shortfall), acct.btc[m.miner_idx])
    sell_btc(m, m.miner_idx, forced)

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
        loans.principal_usd[done] = 0.0
        loans.status[done] = REPAID
        m.lots.loan[m.lots.rows_of_loans(done)] = -1


def sell_btc(m, sellers: np.ndarray, btc: np.ndarray) -> float:
    """Sell BTC from ``sellers`` in one clearing; all get the post-impact price. Returns the price."""
    total = float(btc.sum())
    if total <= 0:
        return m.crypto.price_usd
    price = m.crypto.clear_sales(total)
    m.acct.btc_from_sector("btc_market", sellers, -btc)
    m.acct.from_sector("btc_market", sellers, btc * price)
    return price


def raise_cash_from_btc(m, b: int, target_usd: float, rounds: int = 4) -> None:
    """Sell free BTC until the cash of ``b`` reaches ``target_usd`` or the BTC runs out.

    Each sale moves the price (forced-sale impact), so the seller keeps selling what is still missing.
    """
    for _ in range(rounds):
        short = target_usd - m.acct.cash[b]
        if short <= 0 or m.acct.btc[b] <= 1e-12:
            return
        need = short * 1.02 / m.crypto.price_usd
        sell_btc(m, np.array([b]), np.array([min(need, m.acct.btc[b])]))


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


def _release_collateral(m, loan: int) -> None:
    lots, loans = m.lots, m.loans
    lots.loan[lots.rows_of_loan(loan)] = -1
    if loans.collateral_btc[loan] > 0:
        m.acct.btc[loans.borrower[loan]] += loans.collateral_btc[loan]
        loans.collateral_btc[loan] = 0.0


def repay_in_full(m, loan: int) -> bool:
    """The borrower repays principal and arrears now if its cash allows; the loan closes."""
    loans = m.loans
    b = int(loans.borrower[loan])
    owed = float(
        loans.principal_usd[loan] + loans.arrears_usd[loan] - loans.arrears_principal_usd[loan]
    )
    if m.acct.cash[b] < owed:
        return False
    m.acct.transfer(b, int(loans.lender[loan]), owed)
    loans.principal_usd[loan] = 0.0
    loans.arrears_usd[loan] = 0.0
    loans.arrears_principal_usd[loan] = 0.0
    loans.status[loan] = REPAID
    _release_collateral(m, loan)
    return True


def _repay_in_full_many(m, rows: np.ndarray) -> list[bool]:
    """:func:`repay_in_full` on each loan of ``rows`` in order (distinct loans); returns whether each
    was repaid. The same decisions and the same cash, loan and lot state as the loop: each borrower's
    cash is drawn down loan by loan in Python floats (the same IEEE operations as the per-loan
    ``cash[b] -= owed``), the lenders are credited in order with ``np.add.at``, and the repaid loans'
    collateral is released in one pass. Falls back to the loop when a payee is also a payer."""
    loans, acct = m.loans, m.acct
    if len(rows) == 0:
        return []
    borrower = loans.borrower[rows]
    lender = loans.lender[rows]
    if np.isin(lender, borrower).any():  # a lender's own repayment would depend on its receipts
        return [repay_in_full(m, int(loan)) for loan in rows.tolist()]
    owed = loans.principal_usd[rows] + loans.arrears_usd[rows] - loans.arrears_principal_usd[rows]
    cash = acct.cash
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
    loans.principal_usd[done] = 0.0
    loans.arrears_usd[done] = 0.0
    loans.arrears_principal_usd[done] = 0.0
    loans.status[done] = REPAID
    m.lots.loan[m.lots.rows_of_loans(done)] = -1
    btc = done[loans.collateral_btc[done] > 0]
    if len(btc):
        np.add.at(acct.btc, loans.borrower[btc], loans.collateral_btc[btc])
        loans.collateral_btc[btc] = 0.0
    return ok


def _moved_generations(m, t: int) -> np.ndarray:
    """(2, G) booleans: whether a recent clearing of generation g pulled its market mark below the
    used-market index (the mark a calm market would give), as seen by an appraisal lender (row 0)
    and a market-marking lender (row 1). Appraisal marks average market marks, so for an appraisal
    lender a trade counts for the appraisal lag too."""
    c = m.cfg["compute"]
    index = m.compute.fundamental_value * (1.0 - c["calm_market_discount"])
    moved = (m.last_trade_price < index) & (m.last_trade_weight > 0.1)
    age_months = t - m.last_trade_month
    window = c["mark_window_months"]
    return np.stack(
        [moved & (age_months < window + c["appraisal_lag_months"]), moved & (age_months < window)]
    )


def _mark_parents(m, t: int, loan_rows: np.ndarray, wanted: np.ndarray) -> list[list[int]]:
    """For each loan of ``loan_rows`` where ``wanted``: the trade events of other sellers that set
    the marks of the generations pledged to it recently and pulled them below the used-market index
    (see :func:`_moved_generations`). Empty lists elsewhere. One pass over the pledged lots."""
    out: list[list[int]] = [[] for _ in range(len(loan_rows))]
    moved = _moved_generations(m, t)
    if not moved.any() or not wanted.any():
        return out
    asked = np.flatnonzero(wanted)
    pos, lot_rows = m.lots.pledged_lots(loan_rows[asked])
    k = asked[pos]
    gen = m.lots.gen[lot_rows]
    market_marks = m.market_policy[m.loans.lender[loan_rows[k]]].astype(np.int64)
    hit = moved[market_marks, gen]
    pairs = np.unique(k[hit] * m.G + gen[hit])  # each (loan, generation) once
    borrower = m.loans.borrower[loan_rows].tolist()
    for kk, g in zip((pairs // m.G).tolist(), (pairs % m.G).tolist(), strict=True):
        if borrower[kk] not in m.last_trade_sellers[g]:
            out[kk].extend(m.last_trade_events[g][:20])
    return out


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
        lender_rules.update_appetite(m, m.lender_assets_and_equity(parts))
        _maturities(m, t, defaults, parts)
    _margin_calls(m, t, rnd, defaults)
    _covenants(m, t, rnd, defaults)
    if rnd == 0:
        grace = m.cfg["credit"]["payment_grace_months"]
        late = _serviced_among(m, np.flatnonzero(loans.arrears_months > grace))
        for b in np.unique(loans.borrower[late]):
            if b in defaults:
                continue
            if m.lost_revenue_event[b] > 0:
                defaults[int(b)] = ("counterparty", [int(m.lost_revenue_event[b])])
            else:
                defaults[int(b)] = ("payment", _cash_drains(m, int(b), t))
    for b, (cause, parents) in sorted(defaults.items()):
        resolution.default_borrower(m, b, t, cause, parents)
    if defaults:
        resolution.distribute_all_estates(m, t)
    return bool(defaults)


def _maturities(m, t: int, defaults: dict, parts: tuple[np.ndarray, np.ndarray]) -> None:
    """Roll maturing loans or refuse them. ``parts``: the current claims and GPU inventory
    (:meth:`~abm.model.AIComputeCreditModel.claims_and_inventory`)."""
    loans = m.loans
    due = np.flatnonzero(_serviced(m) & (loans.maturity_month <= t))
    if len(due) == 0:
        return
    coll = m.collateral_value_of(due)
    borrower = loans.borrower[due]
    cov = m.coverage()[borrower]
    sheets = m.balance_sheets(parts)
    equity, debt = sheets["equity"][borrower], sheets["debt"][borrower]
    with np.errstate(divide="ignore", invalid="ignore"):
        ltv = np.where(coll > 0, loans.principal_usd[due] / coll, 0.0)
    # a lender refinances a borrower that pays, sits within its LTV covenant and either covers its
    # debt service or has ample equity behind the debt (asset coverage)
    solvent = (cov >= 1.0) | (equity >= 0.5 * debt)
    healthy = (loans.arrears_usd[due] <= 0) & solvent & (ltv <= loans.max_ltv[due])
    roll = lender_rules.decide_rollovers(m, due, healthy)
    _, spreads = lender_rules.new_loan_terms(m, loans.lender[due])
    # rolled loans are re-priced at the lender's current terms (counted, not logged one by one)
    rolled, spread = due[roll], spreads[roll]
    tenor = np.where(loans.kind[rolled] == BTC_LOAN, 12, m.cfg["neoclouds"]["new_loan_months"])
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
    m.month_rollovers += len(rolled)
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
            raise_cash_from_btc(m, b, float(loans.principal_usd[loan] + loans.arrears_usd[loan]))
        if repay_in_full(m, loan) or b in defaults:
            continue
        if m.status[lender] == FAILED:
            defaults[b] = ("lender_failure", [refused, int(m.default_event[lender])])
        else:
            defaults[b] = ("maturity", [refused])


def _margin_calls(m, t: int, rnd: int, defaults: dict) -> None:
    loans = m.loans
    btc = _serviced_among(m, m.loan_rows_of_kind(BTC_LOAN))
    if len(btc) == 0 or not m.cfg["channels"]["margin_calls"]:
        return
    price = m.crypto.price_usd
    ltv = loans.principal_usd[btc] / np.maximum(loans.collateral_btc[btc] * price, 1e-9)
    called = btc[ltv > loans.margin_call_ltv[btc]]
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
        posted, repaid = miner_rules.answer_margin_call(m, loan)
        if posted > 0 or repaid > 0:  # the call took BTC or cash the miner would have used to pay
            m.drain_events.setdefault(b, []).append((t, int(loans.breach_event[loan])))
        value = loans.collateral_btc[loan] * m.crypto.price_usd
        ltv_now = loans.principal_usd[loan] / max(value, 1e-9)
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
    """Lenders sell the BTC collateral of margin-called loans in one clearing and repay themselves."""
    loans = m.loans
    btc = loans.collateral_btc[rows].copy()
    lenders = loans.lender[rows]
    # the collateral goes straight to the market: lenders never hold BTC
    m.acct.sector_btc_in["btc_market"] -= float(btc.sum())
    loans.collateral_btc[rows] = 0.0
    price = m.crypto.clear_sales(float(btc.sum()))
    proceeds = btc * price
    for k, loan in enumerate(rows):
        b, lender = int(loans.borrower[loan]), int(lenders[k])
        owed = float(
            loans.principal_usd[loan] + loans.arrears_usd[loan] - loans.arrears_principal_usd[loan]
        )
        to_lender = min(proceeds[k], owed)
        m.acct.from_sector("btc_market", lender, to_lender)
        m.acct.from_sector("btc_market", b, proceeds[k] - to_lender)
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
        loans.principal_usd[loan] = owed - to_lender
        loans.arrears_usd[loan] = 0.0
        loans.arrears_principal_usd[loan] = 0.0
        if loans.principal_usd[loan] <= 1e-6:
            loans.principal_usd[loan] = 0.0
            loans.status[loan] = REPAID
        elif not repay_in_full(m, loan) and b not in defaults:
            defaults[b] = ("margin_call", [eid])


def _covenants(m, t: int, rnd: int, defaults: dict) -> None:
    loans = m.loans
    rows = np.flatnonzero(_serviced(m) & (loans.kind == GPU_TERM))
    if len(rows) == 0:
        return
    coll = m.collateral_value()[rows]
    borrower_rows, principal, max_ltv = (
        loans.borrower[rows],
        loans.principal_usd[rows],
        loans.max_ltv[rows],
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ltv = np.where(coll > 0, principal / coll, np.inf)
    cov = m.coverage()[borrower_rows]
    ltv_breach = ltv > max_ltv
    cured = _borrowing_base_sweep(m, rows, coll, ltv_breach, (borrower_rows, principal, max_ltv))
    ltv_breach &= ~cured
    cov_breach = cov < loans.min_coverage[rows]
    breach = ltv_breach | cov_breach
    months = loans.breach_months[rows]
    counted = np.where(breach, np.where((rnd == 0) | (months == 0), months + 1, months), 0)
    changed = counted != months  # (writing the unchanged counts back would change nothing)
    loans.breach_months[rows[changed]] = counted[changed]
    new = breach & (months == 0)
    # (the rows are serviced loans, so all active: the sweep only changes principals)
    overdue = breach & (counted > loans.cure_months[rows])
    _report_breaches(m, t, rows[new], ltv_breach[new], ltv[new])
    if not overdue.any():
        return
    od = rows[overdue]
    ltv_od, cov_od, ltv_breach_od = ltv[overdue], cov[overdue], ltv_breach[overdue]
    with np.errstate(divide="ignore", invalid="ignore"):
        sev_ltv = np.where(ltv_breach_od, ltv_od / loans.max_ltv[od] - 1.0, 0.0)
        sev_cov = np.where(
            cov_breach[overdue], loans.min_coverage[od] / np.maximum(cov_od, 1e-9) - 1.0, 0.0
        )
    severity = np.maximum(sev_ltv, sev_cov)
    waive = lender_rules.respond_to_breaches(m, od, severity)
    # one event per overdue breach, in loan order: a waiver, or an acceleration whose parents add
    # the fire sales that set today's marks (the lender decides at them)
    borrower, lender = loans.borrower[od], loans.lender[od]
    breach_event = loans.breach_event[od].tolist()
    causes = ["ltv" if x else "coverage" for x in ltv_breach_od.tolist()]
    marks = _mark_parents(m, t, od, ltv_breach_od & ~waive)
    event_ids = m.events.add_many(
        t,
        ["waiver" if w else "acceleration" for w in waive.tolist()],
        lender.tolist(),
        borrower.tolist(),
        [[p, *mk] for p, mk in zip(breach_event, marks, strict=True)],
        loans.principal_usd[od].tolist(),
        cause=causes,
    )
    # waived breaches are repriced and the covenant reset to where the loan stands
    waived = od[waive]
    loans.breach_months[waived] = 0
    loans.spread[waived] += 0.01
    # (np.where in the argument order of Python's max(old, new) / min(old, new): the same result)
    reset_ltv, reset_cov = waive & ltv_breach_od, waive & ~ltv_breach_od
    old_ltv, new_ltv = loans.max_ltv[od[reset_ltv]], ltv_od[reset_ltv] * 1.05
    loans.max_ltv[od[reset_ltv]] = np.where(new_ltv > old_ltv, new_ltv, old_ltv)
    old_cov, new_cov = loans.min_coverage[od[reset_cov]], cov_od[reset_cov] * 0.95
    loans.min_coverage[od[reset_cov]] = np.where(new_cov < old_cov, new_cov, old_cov)
    # accelerations, one at a time: repaying one loan uses the cash another could have used
    accelerated = np.flatnonzero(~waive)
    repaid = _repay_in_full_many(m, od[accelerated])
    for k, ok in zip(accelerated.tolist(), repaid, strict=True):
        b = int(borrower[k])
        if ok or b in defaults:
            continue
        parent = breach_event[k]
        breach_parents = [int(p) for p in m.events.rows[parent - 1][7].split(";") if p]
        defaults[b] = (causes[k], [event_ids[k], parent, *marks[k]] + breach_parents)


def _report_breaches(
    m, t: int, loan_rows: np.ndarray, ltv_breach: np.ndarray, ltv: np.ndarray
) -> None:
    """Log the new covenant breaches (one event each, in loan order) and remember their event ids.

    An LTV breach's parents are the fire sales that set the marks (:func:`_mark_parents`); a coverage
    breach's parent is the lease its borrower lost in the last year, if any."""
    if len(loan_rows) == 0:
        return
    loans = m.loans
    borrower = loans.borrower[loan_rows]
    parents = _mark_parents(m, t, loan_rows, ltv_breach)
    lost_lease = m.lost_revenue_event[borrower].tolist()
    for k, is_ltv in enumerate(ltv_breach.tolist()):
        if not is_ltv and lost_lease[k] > 0:
            parents[k].append(lost_lease[k])
    loans.breach_event[loan_rows] = m.events.add_many(
        t,
        "covenant_breach",
        borrower.tolist(),
        loans.lender[loan_rows].tolist(),
        parents,
        loans.principal_usd[loan_rows].tolist(),
        prices=np.where(np.isfinite(ltv), ltv, 0.0).tolist(),
        cause=["ltv" if x else "coverage" for x in ltv_breach.tolist()],
    )


def _borrowing_base_sweep(
    m,
    rows: np.ndarray,
    coll: np.ndarray,
    ltv_breach: np.ndarray,
    columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Equity cures, decided by all borrowers at once: a borrower whose loans sit above their LTV
    covenant prepays them to 5 % under it when its cash above the buffer covers all of them (the
    breach is then cured within the test period and never reported). Returns the cured mask.
    ``columns``: the loans' current (borrower, principal, max LTV) when the caller has them."""
    loans = m.loans
    if not m.cfg["credit"]["equity_cures"]:
        return np.zeros(len(rows), dtype=bool)
    if columns is None:
        columns = loans.borrower[rows], loans.principal_usd[rows], loans.max_ltv[rows]
    borrower, principal, max_ltv = columns
    cure = np.where(
        ltv_breach & np.isfinite(coll) & (coll > 0),
        principal - 0.95 * max_ltv * coll,
        0.0,
    )
    cure = np.maximum(cure, 0.0)
    # cash down to half the investment buffer is available; each borrower cures its smallest
    # breaches first, as many as that cash covers (cumulative sum within borrower)
    buffer = 0.5 * m.cfg["neoclouds"]["cash_buffer_months"] * np.maximum(m.monthly_outflow_usd, 0.0)
    spare = np.maximum(m.acct.cash - buffer, 0.0)
    cand = np.flatnonzero(cure > 0)
    cured = np.zeros(len(rows), dtype=bool)
    if len(cand):
        order = cand[_by_borrower_then_value(borrower[cand], cure[cand], m.n)]
        b_sorted = borrower[order]
        running = np.cumsum(cure[order])
        first = np.empty(len(order), dtype=bool)
        first[0] = True
        np.not_equal(b_sorted[1:], b_sorted[:-1], out=first[1:])
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        shifted = np.empty(len(order) + 1)  # np.r_[0.0, running]
        shifted[0] = 0.0
        shifted[1:] = running
        cured[order] = (running - shifted[group_start]) <= spare[b_sorted]
        done = np.flatnonzero(cured)  # the cured positions, ascending (boolean-mask order)
        if len(done):
            paid, cured_rows = cure[done], rows[done]
            m.acct.transfer(borrower[done], loans.lender[cured_rows], paid)
            loans.principal_usd[cured_rows] -= paid
            m.month_cures += len(done)
            m.month_cure_usd += float(paid.sum())
    return cured


def _by_borrower_then_value(borrower: np.ndarray, value: np.ndarray, n_agents: int) -> np.ndarray:
    """``np.lexsort((value, borrower))``: the same permutation (both sorts stable), with the
    borrower pass as a radix sort on 16-bit keys when the agent indices fit."""
    if n_agents > 65535 or len(borrower) < 512:
        return np.lexsort((value, borrower))
    by_value = np.argsort(value, kind="stable")
    return by_value[np.argsort(borrower[by_value].astype(np.uint16), kind="stable")]


def _cash_drains(m, b: int, t: int) -> list[int]:
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
        raise_cash_from_btc(m, int(b), 0.0)
    short = [b for b in short if m.acct.cash[b] < -1e-6]
    for b in short:
        if m.lost_revenue_event[b] > 0:
            resolution.default_borrower(
                m, int(b), t, "counterparty", [int(m.lost_revenue_event[b])]
            )
        else:
            resolution.default_borrower(m, int(b), t, "payment", _cash_drains(m, int(b), t))
    if short:
        resolution.distribute_all_estates(m, t)
    return bool(short)
