"""Cash, BTC and GPU movements between balance sheets and named outside sectors.

Every flow goes through these functions, so the identities the tests check hold by construction and are
measured: agents' total cash changes only by what outside sectors paid in or took out.
"""

from __future__ import annotations

import numpy as np

SECTORS = (
    "gpu_vendor",  # sells new GPUs
    "asic_vendor",  # sells new bitcoin-mining hardware
    "power_and_sites",  # power utility, colocation, site services, conversion contractors
    "compute_customers",  # rent GPUs, prepay contracts
    "btc_market",  # buys and sells BTC against cash
    "btc_network",  # issues newly mined BTC (block subsidy and fees)
    "salvage_buyers",  # buy retired GPUs for parts and recycling
    "equity_investors",  # owners: fund buyers' budgets and losses, receive their surplus
    "staff_and_suppliers",  # overheads (SG&A)
    "outside_funders",  # depositors and fund investors of lenders
    "money_market",  # pays the base rate on lenders' cash (T-bills, reserves)
    "infrastructure_buyers",  # buy the sites of defaulted miners
    "insolvency_administrators",  # receive a failed lender's default costs (Rogers-Veraart)
    "policy_authority",  # funds the buyer of last resort (abm/policy.py), when that lever is on
    "fund_investors",  # investors of HY and private-credit funds: receive redemptions at NAV
    "gpu_servicers",  # lease out lenders' seized GPUs for a share of the rent
    "crypto_borrowers",  # owe crypto lenders their loans outside the modelled world (interest)
)


def _as_float_array(amount, shape: tuple) -> np.ndarray:
    """``amount`` as a float array of ``shape`` (scalars broadcast); a float array that already has
    the shape is used as it is (the common case: no broadcasting overhead)."""
    if isinstance(amount, np.ndarray) and amount.dtype == np.float64 and amount.shape == shape:
        return amount
    return np.broadcast_to(np.asarray(amount, dtype=float), shape)


class Accounts:
    """Cash and BTC of every agent plus cumulative net flows to/from each outside sector."""

    def __init__(self, n_agents: int):
        self.cash = np.zeros(n_agents)
        self.btc = np.zeros(n_agents)  # free (unpledged) BTC
        self.sector_cash_in = dict.fromkeys(
            SECTORS, 0.0
        )  # cumulative cash paid by sector to agents
        self.sector_btc_in = dict.fromkeys(SECTORS, 0.0)

    def from_sector(self, sector: str, idx, amount) -> None:
        """The sector pays ``amount`` USD to agents ``idx`` (arrays or scalars; negative = agent pays)."""
        idx = np.asarray(idx)
        amount = _as_float_array(amount, idx.shape)
        np.add.at(self.cash, idx, amount)
        self.sector_cash_in[sector] += float(amount.sum())

    def from_sector_all(self, sector: str, amount: np.ndarray) -> None:
        """The sector pays ``amount[i]`` USD to every agent i (fast path for economy-wide flows)."""
        self.cash += amount
        self.sector_cash_in[sector] += float(amount.sum())

    def to_sector(self, sector: str, idx, amount) -> None:
        self.from_sector(sector, idx, -np.asarray(amount, dtype=float))

    def transfer(self, payer, payee, amount) -> None:
        """Move USD from ``payer`` to ``payee`` (agent indices, element-wise)."""
        if np.ndim(payer) == 0 and np.ndim(payee) == 0 and np.ndim(amount) == 0:
            self.cash[payer] -= amount  # one payment: plain indexing is much cheaper
            self.cash[payee] += amount
            return
        payer = np.asarray(payer)
        payee = np.asarray(payee)
        shape = payer.shape if payer.shape == payee.shape else np.broadcast(payer, payee).shape
        amount = _as_float_array(amount, shape)
        np.subtract.at(self.cash, payer, amount)
        np.add.at(self.cash, payee, amount)

    def btc_from_sector(self, sector: str, idx, btc) -> None:
        idx = np.asarray(idx)
        btc = _as_float_array(btc, idx.shape)
        np.add.at(self.btc, idx, btc)
        self.sector_btc_in[sector] += float(btc.sum())

    def cash_identity_gap(self, initial_total: float) -> float:
        """Total cash now minus (initial cash + net sector inflows); zero up to rounding."""
        return float(self.cash.sum() - initial_total - sum(self.sector_cash_in.values()))
