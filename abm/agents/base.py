"""Common base of all agents: a Mesa agent on the lending network that owns one balance sheet row."""

from __future__ import annotations

import numpy as np
from mesa.discrete_space import FixedAgent

MINER, NEOCLOUD, LENDER, BUYER = range(4)
TYPE_NAMES = ("miner", "neocloud", "lender", "buyer")

# agent status
ACTIVE, DEFAULTED, FAILED = range(3)
STATUS_NAMES = ("active", "defaulted", "failed")


class BalanceSheetAgent(FixedAgent):
    """An agent whose holdings live in the model's vectorised books at row ``idx``.

    The properties read the books, so the agent object, the panel output and the network export all
    see one balance sheet.
    """

    type_code = -1

    def __init__(self, model, idx: int, cell) -> None:
        super().__init__(model)
        self.idx = idx
        self.cell = cell

    @property
    def agent_type(self) -> str:
        return TYPE_NAMES[self.type_code]

    @property
    def status(self) -> str:
        return STATUS_NAMES[int(self.model.status[self.idx])]

    @property
    def cash_usd(self) -> float:
        return float(self.model.acct.cash[self.idx])

    def balance_sheet(self) -> dict:
        """Assets, liabilities and equity (USD) at current marks."""
        return self.model.balance_sheet(self.idx)


class Population:
    """All agents of one type as one object, in the pattern of Mesa's AgentSet and mesa-frames: the
    agents' state lives in the model's struct-of-arrays books (rows ``model.<type>_idx``) and the
    type's decision rules are methods vectorised over those rows. The Mesa agent objects
    (:class:`BalanceSheetAgent`) are per-agent views of the same state."""

    type_code = -1  # the agent type whose rows the population holds

    def __init__(self, model) -> None:
        self.model = model

    def retire_uneconomic_lots(self, retiring_gen) -> tuple[np.ndarray, np.ndarray]:
        """GPUs this population's agents retire this month: (lot rows ascending, units of each).
        Every lot with units of a generation in ``retiring_gen`` (boolean array over generations),
        i.e. one whose expected rents no longer cover its power and colocation by more than its
        salvage value (:meth:`abm.markets.compute.ComputeMarket.retiring`), is retired, except the
        units its owner's active customer contracts on that generation still pay for (take-or-pay
        rent is owed while the contract runs, whatever spot rents do): a rule by owner, whatever
        its type. Kept units are taken from the owner's lots in row order. Lenders holding seized
        GPUs, buyers and estates have no active contracts, so they retire whole lots (a GPU worth
        only its salvage value is worth more sold for parts than kept); neoclouds and GPU-owning
        miners keep their contracted units. The operations phase settles the sales."""
        m = self.model
        lots = m.lots
        mine = m.type.take(lots.owner) == self.type_code
        rows = np.flatnonzero(mine & (lots.units > 0) & retiring_gen.take(lots.gen))
        units = lots.units[rows].copy()
        if len(rows) == 0:
            return rows, units
        ct = m.contracts
        act = np.flatnonzero(ct.active & (m.status.take(ct.provider) == ACTIVE))
        if len(act) == 0:
            return rows, units
        cell = ct.gen.take(act) * m.n + ct.provider.take(act)  # (generation, provider) cells
        contracted = np.bincount(cell, weights=ct.units.take(act), minlength=m.G * m.n)
        key = lots.gen.take(rows) * m.n + lots.owner.take(rows)
        order = np.argsort(key, kind="stable")  # rows grouped by cell, ascending within a cell
        k, u = key[order], units[order]
        before = np.cumsum(u) - u  # units of earlier rows (all cells)
        first = np.r_[True, k[1:] != k[:-1]]
        start = np.maximum.accumulate(np.where(first, before, 0))  # units before the cell
        keep_left = np.maximum(contracted.take(k) - (before - start), 0.0)
        retire = np.empty_like(units)
        retire[order] = u - np.minimum(u, keep_left).astype(units.dtype)
        some = retire > 0
        return rows[some], retire[some]
