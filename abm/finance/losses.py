"""Lenders' realised losses, booked once each.

:func:`record_loss` books a loss (a write-off, a funding write-down, a realised loss on inventory)
into one per-lender ledger and into the cumulative ``lender_losses_usd``.

Lenders' GPU inventory is a ledger: every seized unit enters at a carrying value and leaves once,
by a sale or by leaving the world (scrapped, retired, abandoned), and the difference between its
carrying value and what it brought is booked as the lender's realised loss (a gain is a negative
loss), exactly once.

Per agent (USD, arrays on the model): ``inventory_seized_usd`` (carrying value of units seized),
``inventory_book_out_usd`` (carrying value of units that left), ``inventory_proceeds_usd`` (cash they
brought) and ``inventory_loss_usd`` (book out - proceeds). ``abm.invariants`` checks that what
entered less what left is the carrying value still held.

The loss on units still held (their cost above the market marks) is an unrealised write-down,
measured monthly by :mod:`abm.finance.impairment` and released here when the units leave.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import LENDER
from abm.finance import impairment


def book_seizures(m, lenders: list[int], values_usd: list[float]) -> None:
    """Seized units enter the lenders' inventory at ``values_usd`` (their carrying value, the
    amount the claim was reduced by), one entry per seized lot."""
    if lenders:
        np.add.at(m.inventory_seized_usd, np.asarray(lenders), np.asarray(values_usd))


def book_sales(
    m, seller: np.ndarray, lot_rows: np.ndarray, units: np.ndarray, price_usd: float
) -> None:
    """Units of ``lot_rows`` sold by ``seller`` (one entry per sale, aligned) at ``price_usd`` per
    unit: for lender sellers the carrying value leaves the inventory and the difference to the
    proceeds is a realised loss (negative: a gain)."""
    is_lender = m.type[seller] == LENDER
    if not is_lender.any():
        return
    who, rows, q = seller[is_lender], lot_rows[is_lender], units[is_lender]
    book = q * m.lots.book_value_usd_per_unit[rows]
    proceeds = q * price_usd
    np.add.at(m.inventory_book_out_usd, who, book)
    np.add.at(m.inventory_proceeds_usd, who, proceeds)
    impairment.release(m, who, rows, q)  # the unrealised write-down becomes realised here
    record_losses(m, who, book - proceeds, m.inventory_loss_usd)


def retire_units(
    m, lot_rows: np.ndarray, units: np.ndarray, proceeds_usd: np.ndarray | None = None
) -> None:
    """``units`` of each lot of ``lot_rows`` (distinct rows, aligned) leave the world: failed
    beyond repair, retired or abandoned. They are counted in ``gpu_scrapped``. ``proceeds_usd``
    (aligned, USD; default none) is what the units brought (salvage sold to an outside sector, paid
    by the caller): a lender holding them books their carrying value out and the proceeds in, and
    the difference as its realised loss. Every path by which units leave the model goes through
    here."""
    units = np.asarray(units, dtype=np.int64)
    keep = units > 0
    if not keep.any():
        return
    rows, units = np.asarray(lot_rows)[keep], units[keep]
    proceeds = (
        np.zeros(len(rows)) if proceeds_usd is None else np.asarray(proceeds_usd, float)[keep]
    )
    m.lots.units[rows] -= units
    m.gpu_scrapped += int(units.sum())
    owner = m.lots.owner[rows]
    is_lender = m.type[owner] == LENDER
    if is_lender.any():
        who = owner[is_lender]
        book = units[is_lender] * m.lots.book_value_usd_per_unit[rows[is_lender]]
        np.add.at(m.inventory_book_out_usd, who, book)
        np.add.at(m.inventory_proceeds_usd, who, proceeds[is_lender])
        impairment.release(m, who, rows[is_lender], units[is_lender])
        record_losses(m, who, book - proceeds[is_lender], m.inventory_loss_usd)


def record_loss(m, lender: int, amount: float, ledger: np.ndarray | None = None) -> None:
    """Book a realised loss of ``amount`` USD (negative: a recovery) of ``lender``: into its
    ``ledger`` (per agent; ``m.written_off_usd``, claims written off and funding written down, by
    default) and into the cumulative ``lender_losses_usd`` and the month's losses."""
    (m.written_off_usd if ledger is None else ledger)[lender] += amount
    m.lender_losses_usd += amount
    m.this_month.loss_usd += amount


def record_losses(
    m, lenders: np.ndarray, amounts: np.ndarray, ledger: np.ndarray | None = None
) -> None:
    """:func:`record_loss` for each (lender, amount) pair, accumulated in the same order."""
    ledger = m.written_off_usd if ledger is None else ledger
    np.add.at(ledger, lenders, amounts)  # unbuffered: repeated lenders add in order
    total_usd, month_usd = m.lender_losses_usd, m.this_month.loss_usd
    for amount in amounts.tolist():
        total_usd += amount
        month_usd += amount
    m.lender_losses_usd, m.this_month.loss_usd = total_usd, month_usd
