"""Lenders' unrealised losses on the seized equipment they still hold: lower of cost or market.

A lender that keeps seized GPUs (or any other lots it took: the code reads only the lot book's
columns) has lost value that :mod:`abm.finance.losses` books only when the units leave. This module
measures that loss every month, once, as a write-down allowance:

* **Rule**: inventory held for sale is carried at the lower of cost and net realisable value, lot by
  lot (IAS 2 *Inventories*, paras. 9 and 28-33; US GAAP ASC 330-10-35, lower of cost and net
  realisable value). *Cost* is the carrying value the units entered the lender's books at
  (``lots.book_value_usd_per_unit``: the amount the claim fell by at seizure). *Net realisable
  value* is the generation's market mark ``mark_market`` (USD per GPU), the value at which
  :meth:`abm.valuation.Valuation.lender_assets` and the balance sheets already carry the units, so
  the write-down here is exactly the part of the lenders' equity loss that is below cost. (Above
  cost the equity view shows a gain this rule does not book: a write-down is never negative.)
* **Remeasured once a month** (:func:`remeasure`, at the end of the month, at the month's marks):
  the allowance per unit becomes ``max(cost - mark, 0)``; a rise is a charge, a fall a reversal
  (IAS 2.33: reversed when marks recover, never above cost).
* **Released when units leave** (:func:`release`, called by :func:`abm.finance.losses.book_sales`
  and :func:`~abm.finance.losses.retire_units`): the allowance on units sold, scrapped or retired
  goes, and the realised loss (cost - proceeds) books the whole loss on them. So cumulative
  realised losses + the allowance now = the lenders' economic loss, every dollar once.

Per agent (USD, arrays on the model): ``inventory_impairment_usd`` (the allowance now),
``inventory_impairment_charged_usd``, ``inventory_impairment_reversed_usd`` and
``inventory_impairment_released_usd`` (cumulative flows: allowance = charged - reversed -
released); per lot: ``lots.impairment_usd_per_unit``. ``abm.invariants`` checks the identities.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import LENDER


def lender_lot_rows(m) -> np.ndarray:
    """Rows of the lots lenders hold (any lender status; units > 0), ascending."""
    lots = m.lots
    # lender or not per agent, and a last slot (False) that owner -1 (no owner) reads: one
    # gather over the lots instead of a clip, a gather and two masks
    is_lender = np.append(m.type == LENDER, False)
    return np.flatnonzero(is_lender.take(lots.owner) & (lots.units > 0))


def remeasure(m) -> None:
    """Lower of cost or market for every lot lenders hold, at the current market marks: each lot's
    allowance per unit becomes ``max(book_value_usd_per_unit - mark_market[gen], 0)`` (USD per
    unit); the change in each lender's allowance is booked as a charge (a rise) or a reversal (a
    fall)."""
    lots = m.lots
    rows = lender_lot_rows(m)
    new = np.maximum(lots.book_value_usd_per_unit[rows] - m.mark_market[lots.gen[rows]], 0.0)
    delta = lots.units[rows] * (new - lots.impairment_usd_per_unit[rows])
    owner = lots.owner[rows]
    np.add.at(m.inventory_impairment_charged_usd, owner, np.maximum(delta, 0.0))
    np.add.at(m.inventory_impairment_reversed_usd, owner, np.maximum(-delta, 0.0))
    lots.impairment_usd_per_unit[rows] = new
    # the allowance is the sum over the lots (exact, never below zero by rounding); the flows
    # above add up to it within float rounding (abm.invariants checks both)
    m.inventory_impairment_usd[:] = _allowance_by_agent(m, rows)


def _allowance_by_agent(m, rows: np.ndarray) -> np.ndarray:
    """Per agent (USD): units x write-down per unit summed over the lots ``rows``."""
    lots = m.lots
    return np.bincount(
        lots.owner[rows],
        weights=lots.units[rows] * lots.impairment_usd_per_unit[rows],
        minlength=m.n,
    )


def release(m, who: np.ndarray, rows: np.ndarray, units: np.ndarray) -> None:
    """``units`` of lender-held lots ``rows`` (aligned with their holders ``who``) leave the lenders'
    books: their allowance (units x the lot's allowance per unit, USD) is released; the realised
    loss on them is booked by the caller."""
    amount = units * m.lots.impairment_usd_per_unit[rows]
    np.add.at(m.inventory_impairment_released_usd, who, amount)
    np.subtract.at(m.inventory_impairment_usd, who, amount)


def unrealised_loss_usd(m) -> float:
    """Lenders' allowance now: their unrealised loss on the lots they hold (USD, >= 0), summed
    over the lots."""
    return float(_allowance_by_agent(m, lender_lot_rows(m)).sum())
