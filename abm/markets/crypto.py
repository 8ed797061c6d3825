"""The bitcoin market: price, network hashrate, hashprice, and the price impact of forced sales."""

from __future__ import annotations

import math

import numpy as np


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
        self.subsidy_btc = cfg["block_subsidy_btc"]
        self.halving_month = halving_month
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
        self.price_usd *= math.exp(log_return + recovered)
        self.price_history.append(self.price_usd)
        if month == self.halving_month:
            self.subsidy_btc /= 2.0
        # the network grows along its trend, faster when mining pays more than at the start, and
        # shrinks when it pays much less (unprofitable machines are switched off)
        trend = math.log1p(cfg["hashrate_growth_per_year"]) / 12.0
        response = (
            cfg["hashrate_price_elasticity"]
            / 12.0
            * math.log(max(self.hashprice_usd_per_ph_day(), 1e-9) / self.hashprice_start)
        )
        self.network_hashrate_eh *= math.exp(trend + response)
        self.sold_btc_this_month = 0.0

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
        impact = self.cfg["price_impact_per_10k_btc"] * btc_sold / 10_000.0 * self.depth_channel
        self.impact_log += impact
        self.price_usd *= math.exp(-impact)
        self.price_history[-1] = self.price_usd
        self.sold_btc_this_month += btc_sold
        return self.price_usd
