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
        salvage value (:meth:`abm.markets.compute.ComputeMarket.retiring`), is retired whole.
        Lenders holding seized GPUs, buyers and estates decide this way (a GPU worth only its
        salvage value is worth more sold for parts than kept); neoclouds keep GPUs under contract
        (:meth:`abm.agents.neocloud.Neoclouds.retire_uneconomic_lots`). The operations phase
        settles the sales."""
        m = self.model
        lots = m.lots
        mine = m.type.take(lots.owner) == self.type_code
        rows = np.flatnonzero(mine & (lots.units > 0) & retiring_gen.take(lots.gen))
        return rows, lots.units[rows].copy()
