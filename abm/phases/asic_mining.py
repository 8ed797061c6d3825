"""Phase 3, ASIC lots: mining revenue, power and site costs of the in-service ASIC machines.

Called from :func:`abm.phases.operations.run` (one hook) with the month's in-service units by
(generation, agent). Does nothing in scenarios without ASIC generations.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import MINER


def mine_asic_lots(m, owned: np.ndarray, revenue: np.ndarray, opex: np.ndarray) -> np.ndarray:
    """The month's mining by ASIC lots. Returns the BTC mined by each miner's lots (per agent,
    BTC; zeros without ASICs): the miners' mining step (``operations._mining``) receives it from
    the network with their base fleet's BTC, sells ``btc_sell_share`` of it and books the revenue.

    Rules (``owned``: in-service units, G x n; ``revenue``/``opex``: per-agent USD, added to):

    * A generation runs this month if a machine's hashprice revenue covers its power
      (:meth:`~abm.markets.asic.AsicEconomics.running`); running machines earn
      ``th_per_unit x 1e-6`` EH/s x ``crypto.btc_mined_per_eh_month()`` BTC a month each and pay
      ``kW x hours x miners.power_price_usd_per_kwh`` to ``power_and_sites``.
    * Miners also pay ``miners.site_opex_usd_per_mw_month`` on the MW of all their installed
      machines (their sites), running or not.
    * Other owners (a lender holding seized machines, leased out through a servicer; a buyer) are
      paid the USD value of their machines' BTC at the month's price by the network through the
      servicer (``btc_network``); hosting is their colocation, booked with the GPUs' in
      operations, and a lender's servicer keeps its fee share of the revenue.
    """
    btc_out = np.zeros(m.n)
    rows = m.asic.rows
    if len(rows) == 0:
        return btc_out
    mc = m.cfg["miners"]
    hours = m.cfg["compute"]["hours_per_month"]
    running = m.asic.running()[rows].astype(float)
    units = owned[rows]  # ASIC gens x agents
    eh = (units * (m.th_per_unit[rows] * running)[:, None]).sum(axis=0) / 1e6
    btc = eh * m.crypto.btc_mined_per_eh_month()
    power = (units * (m.asic.power_usd_per_unit_hour[rows] * running * hours)[:, None]).sum(axis=0)
    installed_mw = (units * (m.kw[rows] / 1000.0)[:, None]).sum(axis=0)
    miner = m.type == MINER
    site = np.where(miner, installed_mw * mc["site_opex_usd_per_mw_month"], 0.0)
    cost = power + site
    opex += cost
    m.acct.from_sector_all("power_and_sites", -cost)
    btc_out[miner] = btc[miner]
    other = np.flatnonzero(~miner & (btc > 0))
    usd = btc[other] * m.crypto.price_usd
    revenue[other] += usd
    m.acct.from_sector("btc_network", other, usd)
    return btc_out
