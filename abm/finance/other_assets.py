"""The rest of a crypto lender's balance sheet: assets held outside the modelled world.

A 2022 crypto lender lent to miners with a small part of its balance sheet: Celsius reported about
$12B of customer assets in mid-2022 against roughly $1-2B of mining-related exposure (its own
mining subsidiary plus loans to miners); BlockFi was of a similar scale. The rest were loans to
institutions and retail borrowers, staked and DeFi positions - assets the model does not trade. A
kind with ``lenders.kinds.*.other_assets_to_mining_book`` > 0 starts with such assets worth that
multiple of its loans to miners (``model.other_assets_usd``, USD per agent), funded like the rest of
its balance sheet (its capital ratio; deposits for the remainder, abm/world.py::build_lender_funding),
so its depositors' balances are sized from the whole balance sheet, not from its mining book alone.

Rules (docs/ODD.md, funding; docs/calibration.md, asic_2022):

- carried at par (no losses are booked on them: the model has no price for them, and a loss would
  be a number set by hand);
- they earn the kind's loan rate (base rate + ``loan_spread``), paid monthly by the
  ``crypto_borrowers`` sector, so holding them neither drains nor feeds the lender against the
  funding it pays on the deposits behind them;
- they are **illiquid within a run**: they are not sold and not repaid during the run (Celsius
  paused withdrawals on 12 June 2022, a month after its run began, because staked ETH, DeFi
  collateral and term loans could not be turned into cash in time). A run on deposits sized from
  the whole balance sheet is therefore met from cash, loan sales and the seized lots only.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import MINER
from abm.finance.instruments import INTERBANK


def start_other_assets_usd(m) -> np.ndarray:
    """Other assets of each agent at the start (USD, shape (n,)): for lenders, the kind's
    ``other_assets_to_mining_book`` x the principal of its loans to miners (all loan kinds but
    interbank); zero for everyone else."""
    loans = m.loans
    to_miners = (m.type[loans.borrower] == MINER) & (loans.kind != INTERBANK)
    book = np.bincount(loans.lender, weights=loans.principal_usd * to_miners, minlength=m.n)
    out = np.zeros(m.n)
    out[m.lender_idx] = m.lk["other_assets_to_mining_book"][m.lender_idx] * book[m.lender_idx]
    return out


def pay_interest(m) -> None:
    """The month's interest on other assets: ``other_assets_usd`` x (base rate + the kind's
    ``loan_spread``) / 12 paid by the ``crypto_borrowers`` sector to every lender holding them,
    failed or not (a failed lender's estate keeps collecting for its creditors)."""
    lenders = m.lender_idx
    held = m.other_assets_usd[lenders]
    if not held.any():
        return
    rate = m.base_rate + m.lk["loan_spread"][lenders]
    m.acct.from_sector("crypto_borrowers", lenders, held * rate / 12.0)


def other_assets_problems(m) -> list[str]:
    """Invariant: other assets are non-negative and held only by lenders of a kind with
    ``other_assets_to_mining_book`` > 0 (none appear or move by any other rule)."""
    bad = []
    held = m.other_assets_usd
    if (held < 0).any():
        bad.append(f"other assets negative at agents {np.flatnonzero(held < 0)[:5].tolist()}")
    allowed = np.zeros(m.n, dtype=bool)
    allowed[m.lender_idx] = m.lk["other_assets_to_mining_book"][m.lender_idx] > 0
    stray = (held != 0) & ~allowed
    if stray.any():
        bad.append(
            f"other assets held by agents of no such kind: {np.flatnonzero(stray)[:5].tolist()}"
        )
    return bad


__all__ = ["other_assets_problems", "pay_interest", "start_other_assets_usd"]
