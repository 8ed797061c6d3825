"""The four agent types. Each type has a Mesa agent class (a per-agent view of the books, e.g.
:class:`Lender`) and a population class holding the type's decision rules as verbs vectorised over its
rows (e.g. :meth:`Lenders.decide_rollovers`); the model holds the populations as ``model.populations``."""

from dataclasses import dataclass

from abm.agents.base import (
    BUYER,
    LENDER,
    MINER,
    NEOCLOUD,
    TYPE_NAMES,
    BalanceSheetAgent,
    Population,
)
from abm.agents.buyer import Buyers, SecondaryBuyer
from abm.agents.lender import Lender, Lenders
from abm.agents.miner import Miner, Miners
from abm.agents.neocloud import Neocloud, Neoclouds


@dataclass(frozen=True)
class Populations:
    """The model's four populations, one per agent type (``model.populations``)."""

    miners: Miners
    neoclouds: Neoclouds
    lenders: Lenders
    buyers: Buyers

    @classmethod
    def of(cls, model) -> "Populations":
        """The four populations of ``model``."""
        return cls(Miners(model), Neoclouds(model), Lenders(model), Buyers(model))


__all__ = [
    "Buyers",
    "Lenders",
    "Miners",
    "Neoclouds",
    "Population",
    "Populations",
    "BUYER",
    "LENDER",
    "MINER",
    "NEOCLOUD",
    "TYPE_NAMES",
    "BalanceSheetAgent",
    "Lender",
    "Miner",
    "Neocloud",
    "SecondaryBuyer",
]
