"""The compute rental market: spot rents, utilisation and fundamental GPU values per generation.

Rents are quoted per GPU-hour. Every generation rents at ``perf_g x rent_per_perf_multiple_g`` times
one market price per unit of performance (the multiple is 1 for H100; observed Blackwell rents are
below performance parity, so it is below 1 for them). That price falls along a deflation trend, steps
down at every release (new supply per unit of performance is cheaper), and responds to utilisation:
demand for compute (in H100-equivalents) against the supply of all GPUs in service, including those
re-deployed by fire-sale buyers, relative to the balance utilisation (contracted GPUs busy at
``utilisation_max``, spot GPUs at ``utilisation_ref``: :meth:`ComputeMarket.set_balance`).
"""

from __future__ import annotations

import numpy as np


class ComputeMarket:
    """Spot rents, utilisation and DCF fundamental values per generation.

    Parameters
    ----------
    cfg:
        The ``compute`` table of a scenario.
    perf, kw_per_gpu:
        Arrays over generations: performance relative to H100 and IT kW per GPU.
    release_month:
        Month index of each generation's release relative to the run start (may be negative).
    salvage_usd_per_gpu:
        What a salvage buyer (parts and recycling) pays for a retired GPU of each generation (USD);
        zero if not given.
    rent_per_perf_multiple:
        Array over generations: rent per unit of performance relative to the market price per
        H100-hour (1 = performance parity); ones if not given.
    """

    def __init__(
        self,
        cfg: dict,
        perf: np.ndarray,
        kw_per_gpu: np.ndarray,
        release_month: np.ndarray,
        salvage_usd_per_gpu: np.ndarray | None = None,
        rent_per_perf_multiple: np.ndarray | None = None,
    ):
        self.cfg = cfg
        self.salvage_usd_per_gpu = (
            np.zeros(len(perf)) if salvage_usd_per_gpu is None else salvage_usd_per_gpu
        )
        self.perf = perf
        # H100-hours of rent one GPU-hour earns: performance x the generation's rent multiple
        self.rent_perf = perf * (
            np.ones(len(perf)) if rent_per_perf_multiple is None else rent_per_perf_multiple
        )
        self.kw_per_gpu = kw_per_gpu
        self.release_month = release_month
        self.hours = cfg["hours_per_month"]
        self.trend_price_per_perf_hour = cfg["rent_per_perf_hour_usd"]
        self.demand_perf_units = 0.0  # H100-equivalents demanded
        self.supply_perf_units = 0.0
        self.utilisation = cfg["utilisation_ref"]
        self.demand_ratio = cfg["utilisation_ref"]  # demand / supply, not capped at utilisation_max
        # the aggregate utilisation at which the spot market is at its reference utilisation
        # (set from the contract book: set_balance); the spot factor is 1 there
        self.balance_utilisation = cfg["utilisation_ref"]
        self.next_balance_utilisation = cfg["utilisation_ref"]  # adopted at the next clear
        self.spot_factor = 1.0
        n = len(perf)
        self.rent_spot = np.zeros(n)  # USD per GPU-hour
        self.fundamental_value = np.zeros(n)  # USD per GPU
        # operating cost per GPU-hour when running: power (with PUE) and colocation
        self.power_cost_per_hour = kw_per_gpu * cfg["pue"] * cfg["power_price_usd_per_kwh"]
        self.colo_cost_per_hour = kw_per_gpu * cfg["colo_usd_per_kw_month"] / self.hours
        self._powers_cache = None  # (monthly decay, horizon, decay powers)
        # ASIC generations' expectations (abm/markets/asic.py::AsicEconomics), None without ASICs
        self.asic = None
        self._discount_cache: dict = {}
        self._cadence_cache = None
        self._value_cache: dict = {}  # value_per_gpu's DCF values by their inputs' bytes

    def released(self, month: int) -> np.ndarray:
        """Boolean mask of generations released by ``month``."""
        return self.release_month <= month

    def step_trend(self, releases_now: int) -> None:
        """Advance the per-performance price one month along the trend and release steps."""
        monthly = (1.0 - self.cfg["rent_deflation_per_year"]) ** (1.0 / 12.0)
        self.trend_price_per_perf_hour *= (
            monthly * (1.0 - self.cfg["release_step_down"]) ** releases_now
        )

    def set_balance(self, reserved_perf_units: float, supply_perf_units: float) -> None:
        """Set the balance utilisation the next :meth:`clear` adopts (so a month's rents and
        values all use one balance) from the contract book: the aggregate utilisation at which
        reserved GPUs (``reserved_perf_units`` of the ``supply_perf_units`` in service, both in
        H100-equivalents) are busy at ``utilisation_max`` and spot GPUs at ``utilisation_ref``:
        ``ref + (max - ref) x reserved / supply``. Demand is served on reserved GPUs first
        (abm/phases/operations.py), so measuring tightness against ``utilisation_ref`` alone would
        read a market whose spot GPUs sit idle as balanced."""
        cfg = self.cfg
        share = (
            min(max(reserved_perf_units / supply_perf_units, 0.0), 1.0)
            if supply_perf_units > 0
            else 0.0
        )
        ref, top = cfg["utilisation_ref"], cfg["utilisation_max"]
        self.next_balance_utilisation = ref + max(top - ref, 0.0) * share

    def valued_utilisation(self) -> float:
        """Today's utilisation of a GPU let on the spot market, as valuations read it:
        ``utilisation_ref x (demand / supply) / balance_utilisation``, at most ``utilisation_max``
        (a function of the same ratio as the spot factor, so the two move together)."""
        cfg = self.cfg
        ref = cfg["utilisation_ref"]
        return min(cfg["utilisation_max"], ref * self.demand_ratio / self.balance_utilisation)

    def clear(self, demand_perf_units: float, supply_perf_units: float) -> None:
        """Set utilisation and spot rents from demand and in-service supply (both in H100-equivalents).
        The spot factor is ``(utilisation / balance_utilisation) ** spot_elasticity``, clipped."""
        cfg = self.cfg
        self.balance_utilisation = self.next_balance_utilisation
        self.demand_perf_units = demand_perf_units
        self.supply_perf_units = supply_perf_units
        ratio = (
            demand_perf_units / supply_perf_units
            if supply_perf_units > 0
            else cfg["utilisation_max"]
        )
        self.demand_ratio = float(ratio)  # demand / supply, not capped
        self.utilisation = float(min(cfg["utilisation_max"], ratio))
        try:
            factor = (max(ratio, 1e-6) / self.balance_utilisation) ** cfg["spot_elasticity"]
        except OverflowError:
            factor = np.inf  # demand beyond float range of supply: the factor is at its cap anyway
        # np.clip(factor, min, max) on one number, without its array dispatch (the same float)
        self.spot_factor = float(min(max(factor, cfg["spot_factor_min"]), cfg["spot_factor_max"]))
        self.rent_spot = self.rent_perf * self.trend_price_per_perf_hour * self.spot_factor

    def running(self) -> np.ndarray:
        """Generations worth running: rent per busy hour covers power (colocation is sunk)."""
        return self.rent_spot > self.power_cost_per_hour

    def value_per_gpu(
        self,
        month: int,
        annual_discount_rate,
        horizon: int | None = None,
        rent_share: float = 1.0,
    ) -> np.ndarray:
        """DCF value of one GPU of each generation (USD): its expected rents net of power and
        colocation until its owner retires it for its salvage value, at the best retirement month.

        Expected rents follow the deflation trend and one release step per ``cadence`` months from
        current spot. The owner keeps the GPU while keeping it is worth more than selling it for
        salvage: the value is ``max over T in 0..horizon`` of (cash of months 1..T + salvage in
        month T), discounted, so it is never below the salvage value (``T = 0``: retire now).
        ``month`` is unused (the value depends on the generation, not on its age) and kept for
        callers. Returns an array over generations (or generations x rates if
        ``annual_discount_rate`` is an array). ``horizon``: months of rent counted (default
        ``compute.valuation_horizon_months``). ``rent_share``: the share of the rent the owner
        keeps (1: all of it; a lender leasing through a servicer keeps 1 - the servicer's fee).
        """
        cfg = self.cfg
        if horizon is None:
            horizon = cfg["valuation_horizon_months"]
        rent, op = self.expected_rent_and_power(horizon)
        rates = np.atleast_1d(np.asarray(annual_discount_rate, dtype=float))
        # the DCF below is a pure function of these inputs: a market round asks for the same
        # buyers' and lenders' values several times a month, so they are remembered by value (the
        # key holds every input's bytes, so a changed rent, cost or rate is a new entry)
        salvage, colo = self.salvage_usd_per_gpu, self.colo_cost_per_hour
        key = (
            rates.tobytes(),
            float(rent_share),
            float(self.hours),
            rent.tobytes(),
            op.tobytes(),
            np.asarray(colo, dtype=float).tobytes(),
            np.asarray(salvage, dtype=float).tobytes(),
        )
        values = self._value_cache.get(key)
        if values is None:
            # one DCF per distinct rate (buyers of a kind share theirs); each rate's column is
            # computed on its own, so the same numbers as over the rates as given
            unique, inverse = (
                np.unique(rates, return_inverse=True) if len(rates) > 1 else (rates, None)
            )
            if len(unique) < len(rates):
                values = self._dcf_values(rent, op, unique, rent_share)[:, inverse.reshape(-1)]
            else:
                values = self._dcf_values(rent, op, rates, rent_share)
            if len(self._value_cache) >= 32:  # bounded: rates and rents move month by month
                self._value_cache.clear()
            self._value_cache[key] = values
        # copies: callers may write into what they get
        return values[:, 0].copy() if np.ndim(annual_discount_rate) == 0 else values.copy()

    def _dcf_values(
        self, rent: np.ndarray, op: np.ndarray, rates: np.ndarray, rent_share: float
    ) -> np.ndarray:
        """The DCF of :meth:`value_per_gpu` (gens x rates, USD per GPU) from the expected rent and
        power (gens x months, :meth:`expected_rent_and_power`) at annual ``rates``."""
        k = np.arange(1, rent.shape[1] + 1)
        # a kept GPU pays colocation every month (as in operations, on all installed kW) and runs
        # only when its rent covers its power; retiring it ends both (the best month is chosen below)
        margin = np.maximum(rent * rent_share - op, 0.0) - self.colo_cost_per_hour[:, None]
        cash = margin * self.hours  # gens x months
        disc = self._discount_factors(rates, k)  # rates x months
        # value of retiring after month T: discounted cash of months 1..T + salvage discounted to T
        kept = np.cumsum(cash[:, None, :] * disc[None, :, :], axis=2)  # gens x rates x months
        kept += self.salvage_usd_per_gpu[:, None, None] * disc[None, :, :]
        return np.maximum(kept.max(axis=2), self.salvage_usd_per_gpu[:, None])  # gens x rates

    def expected_rent_and_power(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """The expectations every DCF uses: rent and power per GPU-hour of installed GPU (both
        scaled by expected utilisation) in each of the next ``horizon`` months, as two
        generations x months arrays (USD per GPU-hour).

        Rents follow the believed deflation trend and one release step per ``cadence`` months.
        The utilisation valued is that of a GPU let on the spot market (what a used GPU earns):
        :meth:`valued_utilisation`, ``utilisation_ref`` at balance. With ``valuation_utilisation = "mean_reverting"`` today's
        deviations of that utilisation and of the spot factor from balance (``utilisation_ref``,
        factor 1) fade by ``valuation_reversion_per_month`` a month; with ``"current"`` they are
        held."""
        cfg = self.cfg
        k = np.arange(1, horizon + 1)
        cadence = self._cadence_months()
        monthly_decay = (1.0 - self.expected_deflation_per_year()) ** (1.0 / 12.0) * (
            1.0 - cfg["release_step_down"]
        ) ** (1.0 / cadence)
        ref, spot_util = cfg["utilisation_ref"], self.valued_utilisation()
        if cfg.get("valuation_utilisation", "current") == "mean_reverting":
            fade = cfg["valuation_reversion_per_month"] ** k
            util = ref + (spot_util - ref) * fade
            factor = 1.0 + (self.spot_factor - 1.0) * fade
            trend_rent = self.rent_perf * self.trend_price_per_perf_hour
            rent = trend_rent[:, None] * self._powers(monthly_decay, k) * (factor * util)[None, :]
            op = self.power_cost_per_hour[:, None] * util[None, :]
        else:  # "current": today's utilisation and spot factor held for the whole horizon
            rent = self.rent_spot[:, None] * self._powers(monthly_decay, k) * spot_util
            op = np.broadcast_to(self.power_cost_per_hour[:, None] * spot_util, rent.shape)
        if self.asic is not None:  # ASIC rows earn hashprice and pay the miners' power
            rent, op = self.asic.overwrite(rent, op)
        return rent, op

    def retiring(self) -> np.ndarray:
        """Generations whose owners retire them now (boolean array over generations): keeping a
        GPU another month is expected to be worth no more than its salvage value, i.e. its
        fundamental value (the best retirement month, at ``fundamental_discount_rate``) is the
        salvage value itself."""
        return self.fundamental_value <= self.salvage_usd_per_gpu * (1.0 + 1e-12)

    def _powers(self, monthly_decay: float, k: np.ndarray) -> np.ndarray:
        """``monthly_decay ** k[None, :]``, remembered for the last decay rate and horizon (the
        same every month unless the release calendar or the deflation belief changes)."""
        cached = self._powers_cache
        if cached is not None and cached[0] == monthly_decay and cached[1] == len(k):
            return cached[2]
        powers = monthly_decay ** k[None, :]
        powers.flags.writeable = False
        self._powers_cache = (monthly_decay, len(k), powers)
        return powers

    def _discount_factors(self, rates: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``(1 + rates[:, None]) ** (-k[None, :] / 12)``, remembered per (rates, horizon): the
        fundamental rate and the buyers' hurdle rates do not change during a run."""
        cache = self._discount_cache
        key = (rates.tobytes(), len(k))
        disc = cache.get(key)
        if disc is None:
            if len(cache) >= 16:  # bounded, should rates ever vary
                cache.clear()
            disc = (1.0 + rates[:, None]) ** (-k[None, :] / 12.0)
            disc.flags.writeable = False
            cache[key] = disc
        return disc

    def expected_deflation_per_year(self) -> float:
        """The rent trend valuations extrapolate: the realised one, or the underwriting belief
        (``compute.valuation_deflation = "underwriting"``: GPUs priced like infrastructure, at
        ``underwriting_deflation_per_year`` whatever rents actually do)."""
        cfg = self.cfg
        if cfg.get("valuation_deflation", "realised") == "underwriting":
            return cfg["underwriting_deflation_per_year"]
        return cfg["rent_deflation_per_year"]

    def update_fundamentals(self, month: int) -> None:
        self.fundamental_value = self.value_per_gpu(month, self.cfg["fundamental_discount_rate"])

    def _cadence_months(self) -> float:
        """Mean months between generation releases (12 without two releases). Remembered for the
        release calendar it was computed from (read on every valuation)."""
        calendar = self.release_month.tobytes()
        cached = self._cadence_cache
        if cached is not None and cached[0] == calendar:
            return cached[1]
        gaps = np.diff(np.sort(self.release_month))
        cadence = float(np.mean(gaps[gaps > 0])) if np.any(gaps > 0) else 12.0
        self._cadence_cache = (calendar, cadence)
        return cadence
