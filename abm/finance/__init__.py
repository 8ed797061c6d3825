"""Financial machinery: instruments (books), recovery, clearing of the funding network, DebtRank."""

from abm.finance.clearing import eisenberg_noe, rogers_veraart
from abm.finance.debtrank import debtrank, debtrank_value

__all__ = ["debtrank", "debtrank_value", "eisenberg_noe", "rogers_veraart"]
