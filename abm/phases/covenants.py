"""Covenant tests of GPU term loans (phase 5) and the lenders' answers to overdue breaches (phase 6).

Tests run on all GPU term loans at once from the same marks: a loan-to-value above the covenant
(collateral at the lender's marks) or a trailing debt-service coverage below it is a breach; a
borrower with cash above its liquidity floor cures LTV breaches at once, within the cure rights
of the facility (:func:`_borrowing_base_sweep`); a breach still
open after the cure period is waived and repriced or the loan is accelerated
(:meth:`abm.agents.lender.Lenders.respond_to_breaches`). An accelerated loan the borrower cannot repay makes
it default, the cause "ltv" or "coverage" with the breach, the acceleration and the fire sales that
set the marks as parents (:func:`mark_parents`).
"""

from __future__ import annotations

import numpy as np

from abm import policy
from abm.finance.instruments import GPU_TERM


def repay_in_full(m, rows: np.ndarray) -> list[bool]:
    """The borrowers of ``rows`` repay them in full now where their cash allows
    (:meth:`~abm.finance.instruments.LoanBook.repay_in_full`); whether each was repaid."""
    return m.loans.repay_in_full(rows, m.acct.cash, m.lots, m.acct.btc)


def _moved_generations(m, t: int) -> np.ndarray:
    """(K + 1, G) booleans: whether a recent clearing of generation g pulled its market mark below
    the used-market index (the mark a calm market would give), as seen by an appraisal lender of
    kind k (row k) and a market-marking lender (row K): the rows of the mark table
    (``lender_mark_row``). Appraisal marks average market marks, so for an appraisal lender a trade
    counts for its kind's appraisal lag too."""
    c = m.cfg["compute"]
    index = m.compute.fundamental_value * (1.0 - c["calm_market_discount"])
    moved = (m.last_trade_price < index) & (m.last_trade_weight > 0.1)
    age_months = t - m.last_trade_month
    window = c["mark_window_months"]
    lags = np.append(m.appraisal_lag_months_by_kind, 0)  # the market row has no lag
    return moved & (age_months < window + lags[:, None])


def mark_parents(m, t: int, loan_rows: np.ndarray, wanted: np.ndarray) -> list[list[int]]:
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
    mark_rows = m.lender_mark_row[m.loans.lender[loan_rows[k]]]
    hit = moved[mark_rows, gen]
    pairs = np.unique(k[hit] * m.G + gen[hit])  # each (loan, generation) once
    borrower = m.loans.borrower[loan_rows].tolist()
    for kk, g in zip((pairs // m.G).tolist(), (pairs % m.G).tolist(), strict=True):
        if borrower[kk] not in m.last_trade_sellers[g]:
            out[kk].extend(m.last_trade_events[g][:20])
    return out


def check_covenants(m, t: int, rnd: int, defaults: dict) -> None:
    loans = m.loans
    rows = m.loan_rows_of_kind(GPU_TERM)  # (ascending; a loan's kind never changes)
    rows = rows[loans.in_service(m.status, rows)]
    if len(rows) == 0:
        return
    coll = m.collateral_value()[rows]
    borrower_rows, principal, max_ltv = (
        loans.borrower[rows],
        loans.principal_usd[rows],
        loans.max_ltv[rows],
    )
    ltv = np.full(len(rows), np.inf)  # principal / collateral where there is collateral
    np.divide(principal, coll, out=ltv, where=coll > 0)
    cov = m.coverage()[borrower_rows]
    ltv_breach = ltv > max_ltv
    cured = _borrowing_base_sweep(m, rows, coll, ltv_breach, (borrower_rows, principal, max_ltv), t)
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
    overdue &= not policy.covenant_holiday(m, t)  # a forbearance holiday: nothing is enforced
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
    waive = m.populations.lenders.respond_to_breaches(od, severity)
    # one event per overdue breach, in loan order: a waiver, or an acceleration whose parents add
    # the fire sales that set today's marks (the lender decides at them)
    borrower, lender = loans.borrower[od], loans.lender[od]
    breach_event = loans.breach_event[od].tolist()
    causes = ["ltv" if x else "coverage" for x in ltv_breach_od.tolist()]
    marks = mark_parents(m, t, od, ltv_breach_od & ~waive)
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
    m.populations.lenders.reprice_waivers(od, waive, ltv_breach_od, ltv_od, cov_od)
    # accelerations, one at a time: repaying one loan uses the cash another could have used
    accelerated = np.flatnonzero(~waive)
    repaid = repay_in_full(m, od[accelerated])
    for k, ok in zip(accelerated.tolist(), repaid, strict=True):
        b = int(borrower[k])
        if ok or b in defaults:
            continue
        parent = breach_event[k]
        breach_parents = list(m.events.parents(parent))
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
    parents = mark_parents(m, t, loan_rows, ltv_breach)
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
    t: int | None = None,
) -> np.ndarray:
    """Equity cures as credit agreements allow them, decided by all borrowers at once. A loan above
    its LTV covenant is cured by the prepayment that brings it to ``cure_target_ltv_share`` of the
    covenant (the breach is then never reported) when

    * the facility still has a cure right: fewer than ``cure_max_per_year`` cures in the last 12
      months and fewer than ``cure_max_per_facility`` over its life
      (:meth:`~abm.finance.loans.LoanBook.cures_allowed`), and
    * the borrower's unrestricted cash covers it: cash above a liquidity floor of
      ``cure_floor_debt_service_months`` months of scheduled debt service plus
      ``cure_floor_opex_months`` months of operating costs (USD, last month's rates). Each borrower
      cures its smallest breaches first, as many as that cash covers.

    A breach that cannot be cured goes on to the lender's response. Returns the cured mask (aligned
    with ``rows``). ``columns``: the loans' current (borrower, principal, max LTV) when the caller
    has them; ``t``: the month (``m.month`` when omitted)."""
    loans = m.loans
    credit = m.cfg["credit"]
    if not credit["equity_cures"]:
        return np.zeros(len(rows), dtype=bool)
    t = m.month if t is None else t
    if columns is None:
        columns = loans.borrower[rows], loans.principal_usd[rows], loans.max_ltv[rows]
    borrower, principal, max_ltv = columns
    cured = np.zeros(len(rows), dtype=bool)
    # the cure rights are looked up for the curable breaches only (the rest cure nothing)
    cand = np.flatnonzero(ltv_breach & np.isfinite(coll) & (coll > 0))
    if len(cand) == 0:
        return cured
    cand = cand[
        loans.cures_allowed(
            rows[cand], t, credit["cure_max_per_year"], credit["cure_max_per_facility"]
        )
    ]
    cure = np.zeros(len(rows))
    cure[cand] = np.maximum(
        principal[cand] - credit["cure_target_ltv_share"] * max_ltv[cand] * coll[cand], 0.0
    )
    cand = cand[cure[cand] > 0]
    if len(cand):
        spare = np.maximum(m.acct.cash - cure_liquidity_floor_usd(m), 0.0)
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
            loans.record_cures(cured_rows, t)
            m.this_month.cures += len(done)
            m.this_month.cure_usd += float(paid.sum())
    return cured


def cure_liquidity_floor_usd(m) -> np.ndarray:
    """Per agent: the cash a borrower must keep before it may spend any on an equity cure (USD):
    ``cure_floor_debt_service_months`` x last month's scheduled debt service +
    ``cure_floor_opex_months`` x last month's operating costs."""
    credit = m.cfg["credit"]
    opex = np.maximum(m.monthly_opex_usd, 0.0)
    service = np.maximum(m.monthly_outflow_usd - m.monthly_opex_usd, 0.0)
    return (
        credit["cure_floor_debt_service_months"] * service + credit["cure_floor_opex_months"] * opex
    )


def _by_borrower_then_value(borrower: np.ndarray, value: np.ndarray, n_agents: int) -> np.ndarray:
    """``np.lexsort((value, borrower))``: the same permutation (both sorts stable), with the
    borrower pass as a radix sort on 16-bit keys when the agent indices fit."""
    if n_agents > 65535 or len(borrower) < 512:
        return np.lexsort((value, borrower))
    by_value = np.argsort(value, kind="stable")
    return by_value[np.argsort(borrower[by_value].astype(np.uint16), kind="stable")]
