"""Appraisal beliefs by lender kind (``lenders.kinds.*.appraisal_haircut``, ``appraisal_lag_months``):
what each kind's appraisal lenders mark GPU collateral at, and where those marks are used."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm.model import AIComputeCreditModel
from abm.phases import debt_service
from abm.phases.environment import appraisal_marks_by_kind

# (read after the model's import: importing abm.finance.instruments first is circular)
GPU_TERM, LOAN_ACTIVE = abm.finance.instruments.GPU_TERM, abm.finance.instruments.ACTIVE


def _model(overrides: dict | None = None, months: int = 60) -> AIComputeCreditModel:
    return AIComputeCreditModel(
        abm.load_scenario("baseline", overrides or {}), rng=0, months=months
    )


def _ltv_of_bank_loans(model: AIComputeCreditModel) -> tuple[np.ndarray, np.ndarray]:
    """(rows, principal / collateral value) of the active GPU term loans held by banks."""
    loans = model.loans
    bank = model.lender_kind_names.index("bank")
    rows = np.flatnonzero(
        (loans.kind == GPU_TERM)
        & (loans.status == LOAN_ACTIVE)
        & (model.lender_kind[loans.lender] == bank)
    )
    return rows, loans.principal_usd[rows] / model.collateral_value()[rows]


def test_baseline_kinds_share_the_market_wide_appraisal_mark():
    m = _model()
    assert (m.appraisal_lag_months_by_kind == m.cfg["compute"]["appraisal_lag_months"]).all()
    for _ in range(3):
        m.step()
        for k in range(len(m.lender_kind_names)):
            np.testing.assert_array_equal(m.mark_appraisal_by_kind[k], m.mark_appraisal)
    # an appraisal lender marks by appraisal, a market lender by the market
    bank = m.lender_idx[m.lender_kind[m.lender_idx] == m.lender_kind_names.index("bank")][0]
    fund = m.lender_idx[m.market_policy[m.lender_idx]][0]
    np.testing.assert_array_equal(m.lender_marks_usd(bank, np.arange(m.G)), m.mark_appraisal)
    np.testing.assert_array_equal(m.lender_marks_usd(fund, np.arange(m.G)), m.mark_market)


def test_a_haircut_divides_the_kinds_ltv_by_one_less_the_haircut():
    """The same loans (the haircut is applied after sizing: the marks are changed in place) are
    tested at (1 - h) x the appraisal mark: their LTV is the default one / (1 - h)."""
    h = 0.3
    m = _model()
    m.step()
    rows, ltv = _ltv_of_bank_loans(m)
    assert len(rows) > 0
    m.appraisal_haircut_by_kind[m.lender_kind_names.index("bank")] = h
    m.mark_appraisal_by_kind = appraisal_marks_by_kind(m)
    rows_h, ltv_h = _ltv_of_bank_loans(m)
    np.testing.assert_array_equal(rows_h, rows)
    np.testing.assert_allclose(ltv_h, ltv / (1.0 - h), rtol=1e-12)
    # market-marking kinds do not move
    fund = m.lender_idx[m.market_policy[m.lender_idx]][0]
    np.testing.assert_array_equal(m.lender_marks_usd(fund, np.arange(m.G)), m.mark_market)


def test_a_haircut_set_in_the_scenario_sizes_smaller_initial_bank_loans():
    """The initial bank loans start at a cap proportional to the lender's mark (docs/calibration.md):
    with a haircut the cap, hence the principal, is lower; the LTV the bank sees is unchanged."""
    base = _model()
    cut = _model({"lenders.kinds.bank.appraisal_haircut": 0.3})
    rows, ltv = _ltv_of_bank_loans(base)
    rows_c, ltv_c = _ltv_of_bank_loans(cut)
    np.testing.assert_array_equal(rows_c, rows)
    assert (cut.loans.principal_usd[rows] < base.loans.principal_usd[rows]).all()
    np.testing.assert_allclose(ltv_c, ltv, rtol=1e-9)


def test_a_longer_lag_keeps_the_kinds_appraisal_higher_in_a_crash():
    """A GPU-demand crash pushes market marks down; a bank averaging 24 months of marks sits above
    one averaging the default 12 once the fall is under way, and both above the market."""
    crash = {
        "shocks.pinned": [
            {
                "variable": "ai_demand",
                "start": "2025-04",
                "end": "2025-12",
                "total_change": -0.7,
                "force_stress": False,
            }
        ],
        "lenders.kinds.bank.appraisal_lag_months": 24,
    }
    m = _model(crash, months=18)
    bank = m.lender_kind_names.index("bank")
    vendor = m.lender_kind_names.index("vendor_finance")  # default lag (12 months)
    h100 = m.gen_names.index("H100")
    for _ in range(18):
        m.step()
    long_lag = m.mark_appraisal_by_kind[bank, h100]
    short_lag = m.mark_appraisal_by_kind[vendor, h100]
    np.testing.assert_array_equal(m.mark_appraisal_by_kind[vendor], m.mark_appraisal)
    history = np.array(m.index_history)[:, h100]
    assert history[-1] < history[0]  # the crash did move market marks down
    assert m.mark_market[h100] < short_lag < long_lag
    assert long_lag == pytest.approx(history[-24:].mean(), rel=1e-12)


def test_amortisation_does_not_take_principal_already_in_arrears():
    """A loan whose principal is partly past due amortises only the rest, so paying its arrears
    afterwards takes it to zero, not below (found by the schema-wide invariant test)."""
    m = _model()
    loans = m.loans
    row = int(np.flatnonzero(loans.kind == GPU_TERM)[0])
    b = loans.borrower[row]
    loans.principal_usd[row] = 1_000_000.0
    loans.arrears_principal_usd[row] = 400_000.0
    loans.arrears_usd[row] = 400_000.0
    loans.amort_usd_per_month[row] = 5_000_000.0  # more than is left
    m.acct.cash[b] += 1e12  # cash for everything
    debt_service.service(m, 0, np.zeros(m.n))
    assert loans.principal_usd[row] == pytest.approx(400_000.0)
    debt_service.settle_arrears(m)
    assert loans.principal_usd[row] == pytest.approx(0.0, abs=1e-6)
