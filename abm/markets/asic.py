"""Bitcoin-mining machines (ASICs) as an equipment class beside GPUs (docs/ODD.md, equipment classes).

A generation with ``equipment = "asic"`` is a mining machine: ``th_per_unit`` TH/s at ``j_per_th``
J/TH, so ``kw_per_unit = th_per_unit x j_per_th / 1000``. It earns the hashprice (its share of the
network's block rewards, :class:`~abm.markets.crypto.CryptoMarket`) and pays power at the miners'
power price (``miners.power_price_usd_per_kwh``) whenever it runs; it runs in a month when its
revenue covers its power. It earns no compute rent and is not part of GPU supply, demand or
utilisation (its ``perf`` is 0).

:class:`AsicEconomics` gives the compute market the expectations its DCF values use for ASIC rows
(:meth:`~abm.markets.compute.ComputeMarket.expected_rent_and_power` calls :meth:`AsicEconomics.
overwrite`), so fundamental values, buyers' values, lenders' hold values, marks and economic
retirement are the same code for both classes.
"""

from __future__ import annotations

import numpy as np

# hours in a day: the hashprice is quoted per PH/s per day
HOURS_PER_DAY = 24.0


def generation_arrays(cfg: dict) -> dict[str, np.ndarray]:
    """Per-generation arrays (over ``cfg["generations"]`` in order) of both equipment classes.

    Keys: ``is_asic`` (bool), ``perf`` (relative to H100; 0 for ASICs), ``kw`` (kW per unit: a
    GPU's ``kw_per_gpu``, an ASIC's ``th_per_unit x j_per_th / 1000``), ``liquid`` (bool; False for
    ASICs), ``list_price`` (USD per unit), ``rent_multiple`` (1 for ASICs, unused: their perf is 0),
    ``th_per_unit`` (TH/s per unit; 0 for GPUs)."""
    gens = list(cfg["generations"].values())
    is_asic = np.array([g.get("equipment", "gpu") == "asic" for g in gens], dtype=bool)
    th = np.array(
        [g.get("th_per_unit", 0.0) if a else 0.0 for g, a in zip(gens, is_asic, strict=True)]
    )
    kw = np.array(
        [
            g["th_per_unit"] * g["j_per_th"] / 1000.0 if a else g["kw_per_gpu"]
            for g, a in zip(gens, is_asic, strict=True)
        ]
    )
    return {
        "is_asic": is_asic,
        "perf": np.array([0.0 if a else g["perf"] for g, a in zip(gens, is_asic, strict=True)]),
        "kw": kw,
        "liquid": np.array(
            [False if a else g["liquid_cooling"] for g, a in zip(gens, is_asic, strict=True)]
        ),
        "list_price": np.array([g["list_price_usd"] for g in gens]),
        "rent_multiple": np.array(
            [1.0 if a else g["rent_per_perf_multiple"] for g, a in zip(gens, is_asic, strict=True)]
        ),
        "th_per_unit": th,
    }


class AsicEconomics:
    """Revenue and power of one machine of each ASIC generation, today and expected.

    Parameters
    ----------
    is_asic, th_per_unit, kw_per_unit:
        Arrays over generations (bool, TH/s per unit, kW per unit).
    power_price_usd_per_kwh:
        The miners' power price (USD per kWh); a machine draws its kW whenever it runs.
    crypto:
        The model's :class:`~abm.markets.crypto.CryptoMarket` (hashprice, subsidy, halving, month).
    """

    def __init__(self, is_asic, th_per_unit, kw_per_unit, power_price_usd_per_kwh: float, crypto):
        self.rows = np.flatnonzero(is_asic)
        self.is_asic = is_asic
        self.th_per_unit = th_per_unit
        self.power_usd_per_unit_hour = kw_per_unit * power_price_usd_per_kwh
        self.crypto = crypto

    def attach(self, compute) -> None:
        """Make ``compute`` (the model's :class:`~abm.markets.compute.ComputeMarket`) value ASIC
        rows with these expectations. An ASIC's DCF is its revenue less its power (with the option
        to switch off and to retire): site and hosting costs are those of the site, paid whether
        or not a given machine runs, so its colocation cost per hour in the DCF is 0."""
        compute.asic = self
        compute.colo_cost_per_hour = np.where(self.is_asic, 0.0, compute.colo_cost_per_hour)

    def revenue_usd_per_unit_hour(self) -> np.ndarray:
        """Today's mining revenue of one machine per hour, over generations (USD; 0 for GPUs):
        hashprice (USD per PH/s per day) x TH/s / 1000 / 24."""
        hashprice = self.crypto.hashprice_usd_per_ph_day()
        return self.th_per_unit * hashprice / 1000.0 / HOURS_PER_DAY

    def running(self) -> np.ndarray:
        """ASIC generations worth running this month (bool over generations; False for GPUs):
        revenue per hour above power per hour."""
        return self.is_asic & (self.revenue_usd_per_unit_hour() > self.power_usd_per_unit_hour)

    def expected_hashprice_factor(self, horizon: int) -> np.ndarray:
        """Expected hashprice in each of the next ``horizon`` months relative to today's (length
        ``horizon``): the BTC price held at today's (no drift is assumed), the network growing at
        its trend ``crypto.hashrate_growth_per_year`` and the block subsidy halved from the
        halving month on (fees per block unchanged)."""
        cfg, crypto = self.crypto.cfg, self.crypto
        k = np.arange(1, horizon + 1)
        growth = (1.0 + cfg["hashrate_growth_per_year"]) ** (-k / 12.0)
        fees = cfg["fees_btc_per_block"]
        subsidy_now = crypto.subsidy_btc
        halved = (crypto.month + k >= crypto.halving_month) & (crypto.month < crypto.halving_month)
        subsidy = np.where(halved, subsidy_now / 2.0, subsidy_now)
        per_block_now = subsidy_now + fees
        reward = (subsidy + fees) / per_block_now if per_block_now > 0 else np.zeros(horizon)
        return growth * reward

    def overwrite(self, rent: np.ndarray, op: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The compute market's expected (generations x months) rent and power per unit-hour with
        the ASIC rows replaced: revenue = today's hashprice revenue x the expected hashprice factor,
        power = kW x the miners' power price (a running machine is busy every hour). Returns new
        arrays (the inputs may be read-only)."""
        horizon = rent.shape[1]
        rent = np.array(rent, dtype=float)
        op = np.array(op, dtype=float)
        rows = self.rows
        factor = self.expected_hashprice_factor(horizon)
        rent[rows] = self.revenue_usd_per_unit_hour()[rows, None] * factor[None, :]
        op[rows] = self.power_usd_per_unit_hour[rows, None]
        return rent, op


def check_pinned_paths(cfg: dict, months: int) -> None:
    """A pinned path (``crypto.btc_price_path_usd``, ``crypto.network_hashrate_path_eh``) must
    cover every month run (``months`` may exceed ``run.months`` when given to the model); raises
    :class:`~abm.config.ConfigError` naming the field otherwise."""
    from abm.config import ConfigError

    for key in ("btc_price_path_usd", "network_hashrate_path_eh"):
        path = cfg["crypto"].get(key, [])
        if path and len(path) < months:
            raise ConfigError(
                f"crypto.{key}: has {len(path)} monthly values, fewer than the {months} months run"
            )
