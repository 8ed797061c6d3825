"""The month's counters: what the time series reports per month, zeroed in one place.

:class:`MonthCounters` is a component of the model (``model.this_month``). The phases add to it as
events happen; :func:`abm.phases.collect.collect` reads it into the month's time-series row;
:meth:`MonthCounters.reset` zeroes it once a month, after the month's markets have cleared and
before operations start (:func:`abm.phases.environment.shocks_and_markets`).
"""

from __future__ import annotations

import numpy as np


class MonthCounters:
    """Counters of one month (USD amounts, event counts; per-generation arrays of length G)."""

    __slots__ = (
        "n_generations",
        "loss_usd",
        "cures",
        "cure_usd",
        "contract_cuts",
        "rollovers",
        "renegotiations",
        "renegotiated_usd",
        "anchor_distress",
        "idle_take_or_pay_usd",
        "retired_units",
        "min_discount",
        "trade_units",
        "trade_price",
    )

    def __init__(self, n_generations: int) -> None:
        self.n_generations = n_generations
        self.reset()

    def reset(self) -> None:
        """Zero every counter (the start of a month)."""
        self.loss_usd = 0.0  # lenders' losses recognised (write-offs, losses on seized-lot sales)
        self.cures = 0  # equity cures of LTV breaches (borrowing-base sweeps)
        self.cure_usd = 0.0  # principal prepaid by those cures
        self.contract_cuts = 0  # customer contracts cut short
        self.rollovers = 0  # maturing loans rolled
        self.renegotiations = 0  # customer contracts renegotiated down
        self.renegotiated_usd = 0.0  # monthly revenue given up in those renegotiations
        self.anchor_distress = 0  # anchor customers in distress (all their contracts cut)
        self.idle_take_or_pay_usd = 0.0  # take-or-pay paid by customers for reserved GPUs left idle
        G = self.n_generations
        self.min_discount = np.full(G, np.nan)  # lowest clearing price / fundamental value
        self.trade_units = np.zeros(G, dtype=np.int64)  # GPUs sold in the secondary market
        self.trade_price = np.full(G, np.nan)  # last clearing price (USD per GPU)
        self.retired_units = np.zeros(G, dtype=np.int64)  # GPUs retired, sold to salvage buyers
