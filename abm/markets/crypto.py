"""The bitcoin market: price, network hashrate, hashprice, and the price impact of forced sales."""

from __future__ import annotations

import math

import numpy as np

# The BTC price never falls below this (USD per BTC). At 1e-12 USD a satoshi (1e-8 BTC) is worth
# 1e-20 USD and every BTC balance in the model is worth nothing to the cent, so the floor changes no
# economic outcome; it is six orders of magnitude below the lowest starting price the schema allows
# (1e-6). What it buys: the price stays a positive, normal float, so that a long fall (e.g. drift
# -5/yr, vol 5/yr over 600 months) cannot underflow it to 0, and the USD -> BTC conversions that divide
# by it (BTC to sell to raise cash, collateral needed for a margin call) stay finite instead of 0/0.
MIN_BTC_PRICE_USD = 1e-12
# ... and never rises above this. The schema allows starting prices up to 1e9 USD and fat tails
# (Student-t with 2.1 degrees of freedom, jumps), so a valid path can multiply the price by e^700 in a
# few months and overflow float. At 1e15 USD per BTC the 21 million coins would be worth 2e22 USD,
# some 50 million times world wealth: no outcome of the model means anything above it, and the BTC
# holdings the schema allows (1e7 per miner) stay far inside float range when valued at it.
MAX_BTC_PRICE_USD = 1e15
# math.exp overflows above ~709.78; a larger monthly log return takes any price above the cap anyway
MAX_LOG_RETURN = 700.0
# The network hashrate never falls below this (EH/s): 1e-9 EH/s is 1 GH/s, a single hobby miner.
# Mining income per EH/s divides by the network hashrate, which could otherwise shrink towards 0 when
# mining pays nothing for long (a floored BTC price, no subsidy or fees).
MIN_NETWORK_HASHRATE_EH = 1e-9
# Hashprices (USD per PH/s per day) below this count as "mining pays nothing": the network's response
# compares log hashprices, which are defined only above 0 (zero subsidy and fees make it 0 at start).
MIN_HASHPRICE_USD_PER_PH_DAY = 1e-9


class CryptoMarket:
    """BTC price (fat-tailed log returns with jumps), network hashrate and mining revenue.

    Forced BTC sales by miners, estates and lenders are collected within a phase and cleared once
    (``clear_sales``): the quantity moves the log price by ``price_impact_per_10k_btc`` per
    10,000 BTC, and every seller receives the same post-impact price. The impact is transient: it
    reverts with ``impact_half_life_months`` as other holders step in.
    """

    def __init__(self, cfg: dict, halving_month: int, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng
        self.price_usd = cfg["btc_price_usd"]
        self.impact_log = 0.0  # cumulative log price impact of forced sales, decaying
        self.depth_channel = 1.0  # 0 when the margin-call channel is off: forced sales move nothing
        self.network_hashrate_eh = cfg["network_hashrate_eh"]
        # pinned input series (a backtest): the month's price and network hashrate are read from
        # them (from run.start); forced sales move nothing then, since the record already contains
        # their effect. Empty: the stochastic model
        self.price_path_usd = list(cfg.get("btc_price_path_usd", []))
        self.hashrate_path_eh = list(cfg.get("network_hashrate_path_eh", []))
        if self.price_path_usd:
            self.price_usd = float(self.price_path_usd[0])
        if self.hashrate_path_eh:
            self.network_hashrate_eh = float(self.hashrate_path_eh[0])
        self.subsidy_btc = cfg["block_subsidy_btc"]
        self.halving_month = halving_month
        self.month = -1  # the last month stepped (-1 before the first)
        self.price_history = [self.price_usd]
        self.hashprice_start = self.hashprice_usd_per_ph_day()
        self.sold_btc_this_month = 0.0

    def draw_return(self, z: float, stress: bool) -> float:
        """Monthly log return from a standard-normal factor ``z`` (correlated with AI demand).

        ``z`` is scaled to a unit-variance Student-t through the chi-square mixing of the same draw,
        which keeps the cross-correlation structure while fattening the tails.
        """
        cfg = self.cfg
        vol = (cfg["vol_per_year_stress"] if stress else cfg["vol_per_year"]) / math.sqrt(12.0)
        df = cfg["tail_df"]
        mix = math.sqrt(df / self.rng.chisquare(df) * (df - 2.0) / df)
        ret = cfg["drift_per_year"] / 12.0 - 0.5 * vol * vol + vol * z * mix
        if self.rng.random() < cfg["jump_prob_per_month"]:
            ret += self.rng.normal(cfg["jump_mean"], cfg["jump_sd"])
        return ret

    def step(self, month: int, log_return: float) -> None:
        """Move the price, the network hashrate (chasing price with a lag) and the subsidy."""
        cfg = self.cfg
        # forced-sale impact reverts with its half-life: the price recovers part of it each month
        decay = 0.5 ** (1.0 / cfg["impact_half_life_months"])
        recovered = self.impact_log * (1.0 - decay)
        self.impact_log -= recovered
        growth = math.exp(min(log_return + recovered, MAX_LOG_RETURN))
        self.price_usd = min(max(self.price_usd * growth, MIN_BTC_PRICE_USD), MAX_BTC_PRICE_USD)
        if self.price_path_usd:
            self.price_usd = float(self.price_path_usd[month])
        self.price_history.append(self.price_usd)
        self.month = month
        if month == self.halving_month:
            self.subsidy_btc /= 2.0
        # the network grows along its trend, faster when mining pays more than at the start, and
        # shrinks when it pays much less (unprofitable machines are switched off)
        trend = math.log1p(cfg["hashrate_growth_per_year"]) / 12.0
        response = (
            cfg["hashrate_price_elasticity"]
            / 12.0
            * math.log(
                max(self.hashprice_usd_per_ph_day(), MIN_HASHPRICE_USD_PER_PH_DAY)
                / max(self.hashprice_start, MIN_HASHPRICE_USD_PER_PH_DAY)
            )
        )
        self.network_hashrate_eh = max(
            self.network_hashrate_eh * math.exp(trend + response), MIN_NETWORK_HASHRATE_EH
        )
        if self.hashrate_path_eh:
            self.network_hashrate_eh = float(self.hashrate_path_eh[month])
        self.sold_btc_this_month = 0.0

    @property
    def pinned(self) -> bool:
        """True when the BTC price follows a pinned path (forced sales then move nothing)."""
        return bool(self.price_path_usd)

    def btc_mined_per_eh_month(self) -> float:
        """BTC earned per EH/s of hashrate in one month."""
        per_block = self.subsidy_btc + self.cfg["fees_btc_per_block"]
        return self.cfg["blocks_per_month"] * per_block / self.network_hashrate_eh

    def hashprice_usd_per_ph_day(self) -> float:
        return (
            self.btc_mined_per_eh_month()
            * self.price_usd
            / 1000.0
            / (self.cfg["blocks_per_month"] / 144.0)
        )

    def clear_sales(self, btc_sold: float) -> float:
        """Clear ``btc_sold`` (net, BTC) against the market's depth; return the execution price (USD)."""
        if btc_sold <= 0:
            return self.price_usd
        if self.pinned:  # the pinned record already contains forced sellers' impact
            self.sold_btc_this_month += btc_sold
            return self.price_usd
        impact = self.cfg["price_impact_per_10k_btc"] * btc_sold / 10_000.0 * self.depth_channel
        moved = self.price_usd * math.exp(-impact)
        if moved < MIN_BTC_PRICE_USD:
            # the sale takes the price to the floor: only the fall that happened can revert, or a
            # huge sale (impact e^10000) would be followed by a rise of the same size
            impact = math.log(self.price_usd / MIN_BTC_PRICE_USD)
            moved = MIN_BTC_PRICE_USD
        self.impact_log += impact
        self.price_usd = moved
        self.price_history[-1] = self.price_usd
        self.sold_btc_this_month += btc_sold
        return self.price_usd
