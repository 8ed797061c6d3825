"""Sales of agents' free BTC into the BTC market: one clearing per batch of sellers.

The forced-sale impact is the BTC market's (:meth:`abm.markets.crypto.CryptoMarket.clear_sales`);
this module moves the coins and the cash through the accounts (:class:`abm.accounts.Accounts`).
"""

from __future__ import annotations

import numpy as np


def sell_btc(crypto, acct, sellers: np.ndarray, btc: np.ndarray) -> float:
    """Sell ``btc[k]`` BTC of agent ``sellers[k]`` in one clearing; all get the post-impact price
    (USD per BTC), which is returned. Nothing to sell: the current price, no clearing."""
    total = float(btc.sum())
    if total <= 0:
        return crypto.price_usd
    price = crypto.clear_sales(total)
    acct.btc_from_sector("btc_market", sellers, -btc)
    acct.from_sector("btc_market", sellers, btc * price)
    return price


def raise_cash_from_btc(
    crypto, acct, b: int, target_usd: float, cover_multiple: float, rounds: int = 4
) -> None:
    """Agent ``b`` sells free BTC until its cash reaches ``target_usd`` or its BTC runs out.

    Each sale moves the price (forced-sale impact), so the seller keeps selling what is still
    missing, at most ``rounds`` times, selling ``cover_multiple`` x the shortfall at the current
    price (``miners.btc_raise_cash_multiple``)."""
    for _ in range(rounds):
        short = target_usd - acct.cash[b]
        if short <= 0 or acct.btc[b] <= 1e-12:
            return
        need = short * cover_multiple / crypto.price_usd
        sell_btc(crypto, acct, np.array([b]), np.array([min(need, acct.btc[b])]))
