"""The forced sale of seized equipment after a run: which part of a lender's funding need is kept
for the secondary-market round instead of being met by loan sales.

A lender of a kind with ``lenders.kinds.*.sells_seized_before_loans`` (crypto lenders in the
packaged scenarios: Celsius, BlockFi and the other 2022 crypto lenders met withdrawals by selling
what they held, rigs included, while their bilateral loans to miners had no buyers; docs/
calibration.md, equipment lenders) that is short of funding keeps for its seized lots (GPU lots or
rigs it took from defaulted borrowers; generic over lots) the part of its need they would raise at
today's best bids; only the rest goes to loan sales (abm/finance/loan_sales.py). The kept part stays
in ``model.funding_need_usd``, so in the next market round the lender offers those lots at any price
(:meth:`abm.agents.lender.Lenders.offer_seized_lots`), and the trades carry the event that created
the need (its ``depositor_run``; :func:`need_parents`).

A month whose need is covered by such inventory does not count towards the lender's illiquidity
grace (its depositors wait for the sale; a need not covered does).
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, LENDER


def inventory_at_best_bids_usd(m, lenders: np.ndarray) -> np.ndarray:
    """USD each of ``lenders`` (agent rows) would raise selling all its seized lots at the best bid
    of each lot's generation in the next round: the highest valuation of an active buyer
    (:meth:`abm.agents.buyer.Buyers.valuations`; buyers' budgets and MW are monthly and refresh
    before that round, so this month's spending does not count; 0 without a bidder)."""
    lots = m.lots
    held = np.flatnonzero((lots.units > 0) & (m.type.take(lots.owner) == LENDER))
    if len(held) == 0:
        return np.zeros(len(lenders))
    able = m.status[m.buyer_idx] == ACTIVE
    if not able.any():
        return np.zeros(len(lenders))
    best_bid = m.populations.buyers.valuations()[:, able].max(axis=1)
    value = lots.units[held] * best_bid[lots.gen[held]]
    return np.bincount(lots.owner[held], weights=value, minlength=m.n)[lenders]


def need_kept_for_inventory_usd(m, lenders: np.ndarray, need_usd: np.ndarray) -> np.ndarray:
    """The part of each lender's funding need (``need_usd``, USD aligned with ``lenders``) kept for
    the sale of its seized lots: ``min(need - overdraft, inventory at best bids)`` for kinds with
    ``sells_seized_before_loans``, 0 otherwise. An overdraft (negative cash) is never kept: a
    lender that cannot pay this month fails now (abm/finance/funding.py, step 6)."""
    kept = np.zeros(len(lenders))
    first = (m.lk["sells_seized_before_loans"][lenders] > 0) & (need_usd > 1.0)
    if not first.any():
        return kept
    overdraft = np.maximum(-m.acct.cash[lenders], 0.0)
    value = inventory_at_best_bids_usd(m, lenders[first])
    kept[first] = np.clip(np.minimum(need_usd[first] - overdraft[first], value), 0.0, None)
    return kept


def need_parents(m, sellers: np.ndarray) -> list[int]:
    """Per seller of a trade (agent rows): the event behind its funding need (a ``depositor_run``,
    ``redemption`` or ``funding_margin_call``; ``FundingState.need_event``) when it is a lender that
    sells with a funding need, else -1. Called before the sale's cash is set against the need."""
    fs = m.funding_state
    forced = (m.type[sellers] == LENDER) & (m.funding_need_usd[sellers] > 1.0)
    return np.where(forced, fs.need_event[sellers], -1).tolist()
