"""The four agent types. Each class holds its decision rules; per-record bookkeeping is vectorised."""

from abm.agents.base import BUYER, LENDER, MINER, NEOCLOUD, TYPE_NAMES, BalanceSheetAgent
from abm.agents.buyer import SecondaryBuyer
from abm.agents.lender import Lender
from abm.agents.miner import Miner
from abm.agents.neocloud import Neocloud

__all__ = [
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
