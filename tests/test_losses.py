"""Cures as credit agreements allow them, and every lender loss booked once (issue 12, items 4-5).

Facts checked: a facility is cured at most ``cure_max_per_year`` times in any 12 months and
``cure_max_per_facility`` times over its life, and only from cash above the liquidity floor;
defaulted claims are carried at their estate's expected recovery (seniority first); seized units
that leave a lender's books are losses; a failed lender's later gains go to its creditors; lenders
book no systematic post-default gains over a declared set of crash seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from forced_options import THIN_LENDERS

import abm
from abm import invariants
from abm.agents.base import FAILED, LENDER
from abm.finance import losses, resolution
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.instruments import GPU_TERM, SENIOR_UNSECURED, SUBORDINATED
from abm.model import AIComputeCreditModel
from abm.phases import covenants, lenders

#: On the merged issue-13 model no packaged scenario has a lender failure in seeds 0-11 (lenders
#: hold and lease out seized GPUs, sell loans to meet runs, and capacity is scarce at the sourced
#: rents). The tests of what happens after a failure therefore run correlated_crash with every
#: lender kind thinly capitalised (capital ratio 0.05), where failures occur from month 12: they
#: test the accounting of a failure, not whether failures emerge.


def _model(scenario="baseline", seed=0, months=1, overrides=None):
    m = AIComputeCreditModel(abm.load_scenario(scenario, overrides), rng=seed)
    for _ in range(months):
        m.step()
    return m


def test_cure_rights_count_a_rolling_year_and_the_life_of_the_facility():
    m = _model(months=0)
    loans = m.loans
    row = np.array([int(np.flatnonzero(loans.kind == GPU_TERM)[0])])
    assert loans.cures_allowed(row, 3, 2, 5).all()
    loans.record_cures(row, 3)
    loans.record_cures(row, 8)
    # two cures in months 3 and 8: none more until month 3 leaves the 12-month window (month 15)
    assert not loans.cures_allowed(row, 14, 2, 5).any()
    assert loans.cures_allowed(row, 15, 2, 5).all()
    for month in (15, 30, 45):
        loans.record_cures(row, month)
    assert int(loans.cures_total[row[0]]) == 5
    # five cures over the life: no sixth, however long ago the last one was
    assert not loans.cures_allowed(row, 200, 2, 5).any()
    assert loans.cures_allowed(row, 200, 2, 6).all()


def _breaching_loan(m):
    """One GPU term loan whose covenant is set so that it breaches now: (rows, collateral,
    breach mask, the prepayment that cures it, its borrower)."""
    loans = m.loans
    rows = np.flatnonzero(
        (loans.kind == GPU_TERM) & (loans.status == 0) & (loans.principal_usd > 0)
    )
    rows = rows[:1]
    coll = m.collateral_value()[rows]
    loans.max_ltv[rows] = 0.5 * loans.principal_usd[rows] / coll  # now LTV = 2 x covenant
    cure = float(
        loans.principal_usd[rows[0]]
        - m.cfg["credit"]["cure_target_ltv_share"] * loans.max_ltv[rows[0]] * coll[0]
    )
    return rows, coll, np.ones(1, dtype=bool), cure, int(loans.borrower[rows[0]])


@pytest.mark.parametrize("cash_above_floor_share", [0.99, 1.01])
def test_cures_come_only_from_cash_above_the_liquidity_floor(cash_above_floor_share):
    m = _model(months=2)
    rows, coll, breach, cure, b = _breaching_loan(m)
    floor = covenants.cure_liquidity_floor_usd(m)[b]
    assert floor > 0
    m.acct.cash[b] = floor + cash_above_floor_share * cure
    principal = float(m.loans.principal_usd[rows[0]])
    cured = covenants._borrowing_base_sweep(m, rows, coll, breach, t=m.month)
    assert bool(cured[0]) == (cash_above_floor_share > 1.0)
    if cured[0]:
        assert m.loans.principal_usd[rows[0]] == pytest.approx(principal - cure)
        assert m.acct.cash[b] == pytest.approx(floor + (cash_above_floor_share - 1.0) * cure)
    else:
        assert m.loans.principal_usd[rows[0]] == principal


def test_a_facility_out_of_cure_rights_is_not_cured_however_rich_the_borrower():
    m = _model(months=2)
    rows, coll, breach, cure, b = _breaching_loan(m)
    m.acct.cash[b] = covenants.cure_liquidity_floor_usd(m)[b] + 10.0 * cure
    t = m.month
    m.loans.record_cures(rows, t - 2)
    m.loans.record_cures(rows, t - 1)  # two cures in the last 12 months
    assert not covenants._borrowing_base_sweep(m, rows, coll, breach, t=t).any()
    # a year later the rolling window has room again
    assert covenants._borrowing_base_sweep(m, rows, coll, breach, t=t + 11).all()


def _calm_cure_counts() -> tuple[int, int]:
    """Over calm seeds 0-11, assert that no facility is cured more than 5 times nor more than twice
    in any 12 months (read from each facility's cure history at the end); return the number of
    facilities cured twice within 12 months and the number that used up their 5 cures."""
    used_up = twice_in_a_year = 0
    for seed in range(24):
        m = _model("calm", seed, months=60)
        loans = m.loans
        assert loans.cures_total.max() <= 5
        months = np.stack([getattr(loans, f"cure_month_{k}") for k in range(4)])
        recorded = months > -(10**5)
        # of a facility's cures, the latest and the one two before it are at least 12 months apart
        both = recorded[0] & recorded[2]
        assert np.all(months[0][both] - months[2][both] >= 12)
        pair = recorded[0] & recorded[1]
        twice_in_a_year += int((months[0][pair] - months[1][pair] < 12).sum())
        used_up += int((loans.cures_total == 5).sum())
    return twice_in_a_year, used_up


def test_calm_cures_respect_the_credit_agreement_limits():
    """Over calm seeds 0-11 the cure limits hold (see ``_calm_cure_counts``) and the yearly limit
    is reached: some facility is cured twice within 12 months.

    Measured on the merged issue-12 model: facilities cured twice within 12 months number 15-57
    per seed; a facility used up its 5 cures in 1 of the 12 seeds (seed 9) before the starting
    demand came from the contract book (next test)."""
    assert _calm_cure_counts()[0] > 0


@pytest.mark.xfail(
    strict=True,
    reason="with starting demand from the contract book and sourced rents by generation, no "
    "facility in calm seeds 0-11 uses up its 5 cures (1 in seed 9 before): fewer LTV breaches "
    "per facility. Missing: a calm path that breaches one facility five times",
)
def test_calm_cures_reach_the_life_limit():
    """Some facility in calm seeds 0-11 uses up its 5 cures (the life limit binds)."""
    assert _calm_cure_counts()[1] > 0


def test_defaulted_claims_are_carried_at_the_estates_recovery_by_seniority():
    m = _model(months=1)
    loans = m.loans
    neocloud = int(loans.borrower[np.flatnonzero(loans.kind == GPU_TERM)[0]])
    lender_a, lender_b = (int(x) for x in m.lender_idx[:2])
    rows = loans.add(
        lender=np.array([lender_a, lender_b]),
        borrower=np.array([neocloud, neocloud]),
        kind=np.array([1, 2]),
        seniority=np.array([SENIOR_UNSECURED, SUBORDINATED]),
        principal_usd=np.array([100.0e6, 50.0e6]),
        status=np.array([LOAN_DEFAULTED, LOAN_DEFAULTED]),
    )
    gpu_value = np.zeros(m.n)
    gpu_value[neocloud] = 100.0e6  # at marks; the work-out costs take their share
    m.acct.cash[neocloud] = 20.0e6
    m.acct.btc[neocloud] = 0.0
    cost = m.cfg["credit"]["workout_cost_share"]
    estate = 20.0e6 + 100.0e6 * (1.0 - cost)
    value = m.claims_value(gpu_value)[rows]
    assert value[0] == pytest.approx(100.0e6)  # the senior class first, in full
    assert value[1] == pytest.approx(estate - 100.0e6)  # the junior class gets the rest
    m.acct.cash[neocloud] = 0.0
    value = m.claims_value(gpu_value)[rows]
    assert value[0] == pytest.approx(100.0e6 * (1.0 - cost))
    assert value[1] == 0.0


def _a_lender_lot(m):
    lots = m.lots
    lender = int(m.lender_idx[0])
    row = int(
        lots.add(owner=lender, gen=1, units=10, acquired_month=0, book_value_usd_per_unit=5_000.0)[
            0
        ]
    )
    losses.book_seizures(m, [lender], [50_000.0])
    m.initial_gpu_units += 10  # (units created by the test, not by a delivery)
    return row, lender


def test_seized_units_scrapped_in_a_lenders_hands_are_a_loss():
    m = _model(months=1)
    row, lender = _a_lender_lot(m)
    before = m.lender_losses_usd
    losses.retire_units(m, np.array([row]), np.array([4]))
    assert m.lots.units[row] == 6
    assert m.lender_losses_usd - before == pytest.approx(4 * 5_000.0)
    assert m.inventory_loss_usd[lender] == pytest.approx(4 * 5_000.0)
    assert invariants.loss_problems(m) == []


def test_units_that_leave_a_lender_unbooked_break_the_loss_invariant():
    m = _model(months=1)
    row, _ = _a_lender_lot(m)
    m.lots.units[row] -= 3  # gone without passing through retire_units
    m.gpu_scrapped += 3
    problems = invariants.check(m)
    assert any("without being booked" in p for p in problems)


def test_a_sale_above_the_carrying_value_is_a_recovery():
    m = _model(months=1)
    row, lender = _a_lender_lot(m)
    before = m.lender_losses_usd
    losses.book_sales(m, np.array([lender]), np.array([row]), np.array([2]), 8_000.0)
    m.lots.units[row] -= 2
    assert m.lender_losses_usd - before == pytest.approx(-2 * 3_000.0)
    assert invariants.loss_problems(m) == []


def test_a_failed_lenders_later_gains_go_to_its_creditors():
    m = _model(months=1)
    j = 0
    lender = int(m.lender_idx[j])
    m.status[lender] = FAILED
    m.funding_written_down_usd[lender] = 30.0e6
    equity = m.lender_equity()
    gain = 20.0e6
    equity_before = float(equity[j])
    funding, funder_losses = m.outside_funding_usd[lender], m.outside_funder_losses_usd
    # the lender shows positive equity (its own capital plus a gain): creditors are restored first
    assert lenders.pass_gains_to_creditors(m, equity + gain - equity_before)
    assert m.outside_funding_usd[lender] - funding == pytest.approx(20.0e6)
    assert m.funding_written_down_usd[lender] == pytest.approx(10.0e6)
    assert funder_losses - m.outside_funder_losses_usd == pytest.approx(20.0e6)


def test_failed_lenders_show_no_equity_while_their_creditors_are_short():
    """correlated_crash seed 0 with thinly capitalised lenders (``THIN_LENDERS``) has lender
    failures from month 12; after a failure the failed lender's equity is passed to its creditors
    every month until they are whole."""
    m = AIComputeCreditModel(abm.load_scenario("correlated_crash", THIN_LENDERS), rng=0)
    failed_months = 0
    for _ in range(m.months):
        m.step()
        failed = m.lender_idx[m.status[m.lender_idx] == FAILED]
        if len(failed) == 0:
            continue
        failed_months += 1
        equity = m.balance_sheets()["equity"][failed]
        down = m.funding_written_down_usd[failed]
        assert np.all((equity <= 1.0) | (down <= 1.0)), m.month
    assert failed_months > 0


def test_lenders_book_no_systematic_post_default_gains(monkeypatch):
    """correlated_crash seeds 0-3: what lenders receive on defaulted claims after default (cash
    paid plus what they still carry at the end) exceeds what they carried at default by less
    than 2 % of those claims (with the old flat 0.40 estimate the gain was +18 %)."""
    carried, principal, received = {}, {}, {}
    original_default, original_write_off = resolution.default_borrower, resolution.write_off

    def default_borrower(m, b, t, cause, parents):
        eid = original_default(m, b, t, cause, parents)
        rows = m.loans.rows_of_borrower(b)
        rows = rows[m.loans.status[rows] == LOAN_DEFAULTED]
        value = m.claims_value()
        for r in rows.tolist():
            carried[r] = float(value[r])
            principal[r] = float(m.loans.principal_usd[r])
        return eid

    def write_off(m, t, loan):
        received.setdefault(loan, principal.get(loan, 0.0) - float(m.loans.principal_usd[loan]))
        return original_write_off(m, t, loan)

    monkeypatch.setattr(resolution, "default_borrower", default_borrower)
    monkeypatch.setattr(resolution, "write_off", write_off)
    gain = total = 0.0
    for seed in range(4):
        for book in (carried, principal, received):
            book.clear()
        m = _model("correlated_crash", seed, months=60)
        value = m.claims_value()
        for r, c in carried.items():
            got = received.get(r, principal[r] - float(m.loans.principal_usd[r]) + float(value[r]))
            gain += got - c
            total += principal[r]
    assert total > 0
    assert gain / total < 0.02


def test_lender_losses_are_write_offs_plus_inventory_losses_in_a_crash():
    m = _model("correlated_crash", 1, months=60)
    assert m.lender_losses_usd > 0
    assert m.inventory_loss_usd.sum() != 0.0  # seized GPUs were sold or scrapped
    assert m.lender_losses_usd == pytest.approx(
        m.written_off_usd.sum() + m.inventory_loss_usd.sum(), rel=1e-9
    )
    assert np.all(m.type[np.flatnonzero(m.inventory_seized_usd)] == LENDER)


def test_rogers_veraart_default_costs_leave_the_system_once():
    """With Rogers-Veraart clearing a failed lender's default costs are paid out in the month it
    fails and never again, and it shows no equity afterwards. correlated_crash seed 0 with thinly
    capitalised lenders (``THIN_LENDERS``) under that clearing has lender failures."""
    m = AIComputeCreditModel(
        abm.load_scenario(
            "correlated_crash", {**THIN_LENDERS, "credit.funding_clearing": "rogers_veraart"}
        ),
        rng=0,
    )
    paid_by_month = []
    insolvent_failure_months = set()
    for month in range(m.months):
        m.step()
        paid_by_month.append(-m.acct.sector_cash_in["insolvency_administrators"])
        causes = {int(r[3]): r[5] for r in m.events.rows if r[2] == "default" and r[4] == "lender"}
        insolvent = [
            i
            for i in m.lender_idx[m.status[m.lender_idx] == FAILED]
            if causes[int(m.agent_ids[i])] != "illiquidity"
        ]
        assert np.all(m.balance_sheets()["equity"][insolvent] <= 1.0)
        if any(
            r[1] == month and r[5] != "illiquidity"
            for r in m.events.rows[-200:]
            if r[2] == "default" and r[4] == "lender"
        ):
            insolvent_failure_months.add(month)
    causes = [r[5] for r in m.events.rows if r[2] == "default" and r[4] == "lender"]
    assert m.defaults["lender"] == len(causes) >= 1
    assert causes.count("illiquidity") < len(causes)  # at least one insolvent failure
    paid = np.array(paid_by_month)
    assert paid[-1] > 0
    charged_months = {int(i) + 1 for i in np.flatnonzero(np.diff(paid))}
    # charged in the failure months only
    assert charged_months == insolvent_failure_months and len(charged_months) >= 1


def test_the_recovery_waterfall_equals_paying_estates_class_by_class():
    """Random estates and claims: the vectorised waterfall gives what paying each estate's classes
    one after the other, senior first, pro rata within a class, gives."""
    m = _model(months=1)
    rng = np.random.default_rng(7)
    borrowers = np.flatnonzero(m.type != LENDER)[:6]
    k = 40
    rows = m.loans.add(
        lender=rng.choice(m.lender_idx, k),
        borrower=rng.choice(borrowers, k),
        kind=np.ones(k, dtype=np.int64),
        seniority=rng.integers(0, 3, k),
        principal_usd=rng.uniform(1e6, 50e6, k),
        status=np.full(k, LOAN_DEFAULTED),
    )
    m.acct.cash[borrowers] = rng.uniform(0, 200e6, len(borrowers))
    m.acct.btc[borrowers] = 0.0
    gpu_value = np.zeros(m.n)
    got = m.estate_recoveries(rows, gpu_value)
    expected = np.zeros(k)
    for b in borrowers.tolist():
        left = float(m.acct.cash[b])
        mine = np.flatnonzero(m.loans.borrower[rows] == b)
        for seniority in range(3):
            cls = mine[m.loans.seniority[rows[mine]] == seniority]
            owed = m.loans.principal_usd[rows[cls]]
            paid = min(1.0, left / owed.sum()) if owed.sum() > 0 else 0.0
            expected[cls] = owed * paid
            left = max(left - owed.sum() * paid, 0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert 0 < got.sum() < m.loans.principal_usd[rows].sum()  # some estates fall short
