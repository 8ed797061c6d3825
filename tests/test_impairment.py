"""Lenders' unrealised loss on the seized lots they hold: lower of cost or market, booked once.

Facts checked: a lot carried above its market mark is written down by exactly the difference and
one below it not at all; a recovery of the mark reverses the write-down, never above cost; units
sold release their write-down and the realised loss takes the whole loss (realised + unrealised
is the same before and after the sale); units that leave without releasing their write-down break
the ledger invariant; over correlated_crash seeds 0-3 every month's invariants hold and the
time series' loss columns add up.
"""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm import invariants
from abm.finance import impairment, losses
from abm.model import AIComputeCreditModel


def _model_with_lender_lot(book_usd_per_unit: float):
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    m.step()
    lender = int(m.lender_idx[0])
    row = int(
        m.lots.add(
            owner=lender,
            gen=1,
            units=10,
            acquired_month=0,
            book_value_usd_per_unit=book_usd_per_unit,
        )[0]
    )
    losses.book_seizures(m, [lender], [10 * book_usd_per_unit])
    m.initial_gpu_units += 10  # (units created by the test, not by a delivery)
    return m, row, lender


def test_a_lot_above_its_mark_is_written_down_by_the_difference_and_reversed_up_to_cost():
    m, row, lender = _model_with_lender_lot(5_000.0)
    before = m.inventory_impairment_usd[lender]
    m.mark_market[1] = 3_000.0
    impairment.remeasure(m)
    assert m.lots.impairment_usd_per_unit[row] == pytest.approx(2_000.0)
    assert m.inventory_impairment_usd[lender] - before == pytest.approx(10 * 2_000.0)
    assert invariants.impairment_problems(m) == []
    m.mark_market[1] = 4_500.0  # the mark recovers part of the way
    impairment.remeasure(m)
    assert m.inventory_impairment_usd[lender] - before == pytest.approx(10 * 500.0)
    m.mark_market[1] = 9_000.0  # above cost: no write-up
    impairment.remeasure(m)
    assert m.lots.impairment_usd_per_unit[row] == 0.0
    assert m.inventory_impairment_usd[lender] == pytest.approx(before)
    assert invariants.loss_problems(m) == []


def test_a_sale_turns_the_write_down_into_a_realised_loss_without_counting_it_twice():
    m, row, lender = _model_with_lender_lot(5_000.0)
    m.mark_market[1] = 3_000.0
    impairment.remeasure(m)
    total_before = m.lender_losses_usd + impairment.unrealised_loss_usd(m)
    # 4 units sold at the mark: 4 x 2,000 realised, 4 x 2,000 of write-down released
    losses.book_sales(m, np.array([lender]), np.array([row]), np.array([4]), 3_000.0)
    m.lots.units[row] -= 4
    assert m.inventory_impairment_released_usd[lender] == pytest.approx(4 * 2_000.0)
    total_after = m.lender_losses_usd + impairment.unrealised_loss_usd(m)
    assert total_after == pytest.approx(total_before)
    # 2 more retired for salvage at the mark: same, the loss moves from unrealised to realised
    losses.retire_units(m, np.array([row]), np.array([2]), np.array([2 * 3_000.0]))
    assert m.lender_losses_usd + impairment.unrealised_loss_usd(m) == pytest.approx(total_before)
    # the last 4 scrapped for nothing: the loss grows by the mark value destroyed (4 x 3,000)
    losses.retire_units(m, np.array([row]), np.array([4]))
    total_end = m.lender_losses_usd + impairment.unrealised_loss_usd(m)
    assert total_end - total_before == pytest.approx(4 * 3_000.0)
    assert invariants.loss_problems(m) == []


def test_units_that_leave_without_releasing_their_write_down_break_the_ledger():
    m, row, lender = _model_with_lender_lot(5_000.0)
    m.mark_market[1] = 3_000.0
    impairment.remeasure(m)
    m.lots.units[row] -= 3  # gone without passing through book_sales or retire_units
    m.inventory_book_out_usd[lender] += 3 * 5_000.0  # (keeps the older ledger identity intact)
    m.inventory_loss_usd[lender] += 3 * 5_000.0
    m.written_off_usd[lender] -= 3 * 5_000.0
    problems = invariants.loss_problems(m)
    assert any("without their write-down being released" in p for p in problems)


def test_a_stale_write_down_breaks_lower_of_cost_or_market():
    m, row, _ = _model_with_lender_lot(5_000.0)
    m.mark_market[1] = 3_000.0
    impairment.remeasure(m)
    m.mark_market[1] = 2_000.0  # marks moved, no remeasurement
    assert invariants.impairment_problems(m) != []


@pytest.mark.parametrize("seed", range(4))
def test_crash_runs_keep_the_write_down_ledger_and_the_loss_columns_add_up(seed):
    """correlated_crash seeds 0-3: every month's invariants hold; the time series' total is
    realised + unrealised; the unrealised loss is never negative and, at the end of each of these
    run some month shows a write-down (when written, all four end the run with one: 4.03 B, 2.12 B,
    1.2 M and 0.4 M USD)."""
    m = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=seed, months=60)
    written_down = []
    while m.running:
        m.step()
        assert invariants.all_problems(m) == [], m.month
        row = m.current_row
        assert row["lender_unrealised_inventory_loss_usd"] >= 0.0
        assert row["lender_losses_incl_unrealised_usd"] == pytest.approx(
            row["lender_losses_usd"] + row["lender_unrealised_inventory_loss_usd"]
        )
        written_down.append(row["lender_unrealised_inventory_loss_usd"])
    assert max(written_down) > 0.0
