"""Calibration targets: observed 2025-26 facts, the model statistic that should reproduce each one,
and the tolerance band taken from the source (not from the model's output).

Each :class:`Target` is data: which scenario it is read from, which month(s), how the statistic is
computed from one run (:class:`RunObservation`: the run's tables plus the monthly probes the
report records while the model runs), the source's value, and the band ``[low, high]`` (inclusive)
the model's statistic over seeds must fall in. ``statistic`` says how per-run values are combined:
``"median"`` (a level), or ``"mean"`` for a frequency, which is then pooled over the seeds (every
run has the same exposure). Sources carry a confidence letter as in ``docs/calibration.md``:
F = primary or reputable secondary report, W = weaker source, D = arithmetic on F/W numbers,
J = a judgement of ours (said so in the tolerance basis).

``abm/calibration_report.py`` runs the scenarios and writes the table; the targets are described
in words in ``docs/calibration.md`` ("Calibration report").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from abm.agents.base import ACTIVE
from abm.config import month_index

START = "2025-01"  # every packaged scenario starts here; targets are dated in calendar months
HOURS_PER_YEAR = 8760.0


@dataclass
class RunObservation:
    """One run as the extractors see it: its :class:`abm.RunResult` and ``probes``, one row per
    month (columns: see :func:`probe_month`)."""

    result: object
    probes: pd.DataFrame

    def month(self, label: str) -> int:
        """Month index of calendar month ``label`` ("YYYY-MM") in this run."""
        return month_index(label, self.result.config["run"]["start"])

    def series(self, column: str, first: str, last: str | None = None) -> pd.Series:
        """Time-series ``column`` over calendar months ``first``..``last`` (inclusive)."""
        ts = self.result.timeseries
        a, b = self.month(first), self.month(last or first)
        return ts.loc[(ts["month"] >= a) & (ts["month"] <= b), column]


def probe_month(model, month: int) -> dict:
    """State of ``model`` after month ``month`` that the tables do not keep (read-only).

    Returns: ``neocloud_revenue_usd`` (this month, active neoclouds: EBITDA + operating costs),
    ``neocloud_ebitda_12m_usd`` (their trailing twelve months), ``neocloud_it_mw`` (IT power of
    their GPUs in service), ``a100_units`` (A100s installed, any owner), ``mining_cash_cost_usd``
    and ``mining_btc`` (active miners' power, site opex and the mining share of their overheads
    this month, and the BTC they mine at this month's network hashrate).
    """
    m = model
    nc = m.neocloud_idx[m.status[m.neocloud_idx] == ACTIVE]
    live = m.in_service_lots()
    owner, gen, units = m.lots.owner[live], m.lots.gen[live], m.lots.units[live]
    it_kw = np.bincount(owner, weights=units * m.kw[gen], minlength=m.n)
    a100 = m.gen_names.index("A100") if "A100" in m.gen_names else -1
    mc, hours = m.cfg["miners"], m.cfg["compute"]["hours_per_month"]
    mi = m.miner_idx[m.status[m.miner_idx] == ACTIVE]
    # the same switch-off rule as abm/phases/operations.py::_mining
    on = m.mining_margin_per_mw_month()[mi] > -mc["site_opex_usd_per_mw_month"]
    mw = m.mining_mw[mi] * on
    total_mw = (m.mining_mw + m.hosting_mw)[mi]
    sga = m.sga_usd[mi] * np.divide(mw, total_mw, out=np.zeros(len(mi)), where=total_mw > 0)
    cost = mw * 1000.0 * hours * mc["power_price_usd_per_kwh"]
    cost += mw * mc["site_opex_usd_per_mw_month"] + sga
    return {
        "month": month,
        "neocloud_revenue_usd": float((m.ebitda_hist[nc, 0] + m.monthly_opex_usd[nc]).sum()),
        "neocloud_ebitda_12m_usd": float(m.ebitda_hist[nc].sum()),
        "neocloud_it_mw": float(it_kw[nc].sum() / 1000.0),
        "a100_units": float(m.lots.units[m.lots.gen == a100].sum()) if a100 >= 0 else 0.0,
        "mining_cash_cost_usd": float(cost.sum()),
        "mining_btc": float((m.hashrate_eh[mi] * on).sum() * m.crypto.btc_mined_per_eh_month()),
    }


@dataclass(frozen=True)
class Target:
    """One calibration target: the observed fact, its source, and the model statistic."""

    id: str  # short, unique; used by --target
    description: str
    source: str  # who published the number, with its confidence letter
    unit: str
    scenario: str  # packaged scenario the statistic is read from
    months: str  # calendar month(s) it is read at, as shown in the table
    target: str  # the source's value as published (text: a point or a range)
    low: float  # tolerance band, inclusive, in ``unit``
    high: float
    tolerance_basis: str  # where the band comes from
    extract: Callable[[RunObservation], float]
    statistic: str = "median"  # "median" (a level) or "mean" (a frequency pooled over seeds)

    def passes(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]`` (a non-finite value fails)."""
        return bool(np.isfinite(value) and self.low <= value <= self.high)


# ----------------------------------------------------------------------------- extractors


def _mean(run: RunObservation, column: str, first: str, last: str | None = None) -> float:
    values = run.series(column, first, last).to_numpy(dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _h100_contract_rent(run: RunObservation) -> float:
    premium = run.result.config["compute"]["contract_premium"]
    return _mean(run, "rent_spot_H100", "2026-03") * (1.0 + premium)


def _resale_at_age(years: int) -> Callable[[RunObservation], float]:
    def extract(run: RunObservation) -> float:
        ts, cfg = run.result.timeseries, run.result.config
        start, ratios = cfg["run"]["start"], []
        for name, gen in cfg["generations"].items():
            at = month_index(gen["release"], start) + 12 * years
            row = ts.loc[ts["month"] == at, f"mark_{name}"]
            if len(row) and np.isfinite(row.iloc[0]):
                ratios.append(float(row.iloc[0]) / gen["list_price_usd"])
        return float(np.mean(ratios)) if ratios else float("nan")

    extract.__name__ = f"resale_at_age_{years}"
    return extract


def _probes(run: RunObservation, first: str, last: str) -> pd.DataFrame:
    p = run.probes
    return p[(p["month"] >= run.month(first)) & (p["month"] <= run.month(last))]


def _neocloud_revenue_per_mw_year(run: RunObservation) -> float:
    p = _probes(run, "2025-01", "2025-12")
    mw = p["neocloud_it_mw"].sum()
    return float(12.0 * p["neocloud_revenue_usd"].sum() / mw / 1e6) if mw > 0 else float("nan")


def _neocloud_debt_to_ebitda(run: RunObservation) -> float:
    at = run.month("2025-12")
    panel = run.result.agents
    rows = panel[
        (panel["month"] == at) & (panel["agent_type"] == "neocloud") & (panel["status"] == "active")
    ]
    ebitda = float(run.probes.loc[run.probes["month"] == at, "neocloud_ebitda_12m_usd"].iloc[0])
    return float(rows["debt_usd"].sum() / ebitda) if ebitda > 0 else float("nan")


def _mining_cash_cost_per_btc(run: RunObservation) -> float:
    p = _probes(run, "2025-04", "2025-06")
    btc = p["mining_btc"].sum()
    return float(p["mining_cash_cost_usd"].sum() / btc) if btc > 0 else float("nan")


def _miner_debt(run: RunObservation) -> float:
    panel = run.result.agents
    rows = panel[(panel["month"] == run.month("2025-10")) & (panel["agent_type"] == "miner")]
    return float(rows["debt_usd"].sum() / 1e9)


def _a100_installed_share(run: RunObservation) -> float:
    p = run.probes.set_index("month")["a100_units"]
    first = p.get(run.month("2025-01"), 0.0)
    return float(p.get(run.month("2026-12"), np.nan) / first) if first > 0 else float("nan")


def _neocloud_default_rate(run: RunObservation) -> float:
    ts, cfg = run.result.timeseries, run.result.config
    years = len(ts) / 12.0
    return float(100.0 * ts["defaults_neocloud"].iloc[-1] / (cfg["neoclouds"]["count"] * years))


# ----------------------------------------------------------------------------- the targets

TARGETS: tuple[Target, ...] = (
    Target(
        "h100_contract_rent_2026_03",
        "H100 contract rent a new contract locks in (spot x (1 + contract premium))",
        "SemiAnalysis; RBC via FT (F)",
        "USD/GPU-hour",
        "baseline",
        "2026-03",
        "2.35",
        1.70,
        2.65,
        "the source's own 2025-26 contract range: trough $1.70 (Oct 2025) to ~$2.65 (Jun 2026)",
        _h100_contract_rent,
    ),
    Target(
        "h100_spot_rent_2026_06",
        "H100 spot rent",
        "SemiAnalysis; Latent Space (F)",
        "USD/GPU-hour",
        "baseline",
        "2026-06",
        "2.42",
        2.00,
        2.99,
        "small providers ~$2 in 2026 (various, W) to the $2.99 on-demand price of Oct 2024 (F)",
        lambda run: _mean(run, "rent_spot_H100", "2026-06"),
    ),
    Target(
        "used_h100_price_2026_q1",
        "H100 used-market mark (the model's used-GPU index), mean of the quarter",
        "resale trackers (W)",
        "USD/GPU",
        "baseline",
        "2026-01..2026-03",
        "22,000-25,000",
        15_000.0,
        28_000.0,
        "the trackers' own range for used H100s in Q1 2026: $15-28k",
        lambda run: _mean(run, "mark_H100", "2026-01", "2026-03"),
    ),
    *(
        Target(
            f"resale_share_age_{k}y",
            f"used-market mark / list price at age {k} years (12 x {k} months after release), "
            "mean over the generations reaching that age in the run",
            "resale valuator, eBay-anchored (W); year 3 ~45 % Silicon Data via WSJ (F)",
            "share of list",
            "baseline",
            f"release + {12 * k} months",
            f"{share:.2f}",
            round(share * 0.75, 3),
            round(share * 1.25, 3),
            "+-25 %: the same source's swing when the next generation ramps (-20..30 %)",
            _resale_at_age(k),
        )
        for k, share in ((1, 0.78), (2, 0.60), (3, 0.46), (4, 0.35))
    ),
    Target(
        "a100_rent_2025_26",
        "A100 spot rent, mean over 2025-26",
        "various rental listings (W)",
        "USD/GPU-hour",
        "baseline",
        "2025-01..2026-12",
        "0.80-3.00",
        0.80,
        3.00,
        "the source's own range",
        lambda run: _mean(run, "rent_spot_A100", "2025-01", "2026-12"),
    ),
    Target(
        "a100_installed_2026_12",
        "A100s still installed in 2026-12 as a share of those in 2025-01",
        "various rental listings (W): A100s still rent at $0.80-3.00 in 2026",
        "share",
        "baseline",
        "2026-12",
        "> 0 (still renting)",
        0.01,
        1.0,
        "J: A100s on offer in 2026 means part of the fleet is still installed; at least 1 %",
        _a100_installed_share,
    ),
    Target(
        "b200_rent_2025_q1",
        "B200 spot rent, mean of the quarter",
        "various rental listings (W)",
        "USD/GPU-hour",
        "baseline",
        "2025-01..2025-03",
        "3.20",
        2.80,
        4.50,
        "the source's ~$2.80 floor to the bottom of its 2026 on-demand band ($4.50-6.50)",
        lambda run: _mean(run, "rent_spot_B200", "2025-01", "2025-03"),
    ),
    Target(
        "neocloud_revenue_per_mw_year_2025",
        "neocloud revenue per MW of IT load of GPUs in service, annualised, over 2025",
        "CoreWeave filings (F)",
        "USD million/MW-year",
        "baseline",
        "2025-01..2025-12",
        "10-12",
        10.0,
        12.0,
        "the source's own range",
        _neocloud_revenue_per_mw_year,
    ),
    Target(
        "neocloud_debt_to_ebitda_2025_12",
        "active neoclouds' debt / their trailing-twelve-month EBITDA",
        "CoreWeave: debt $8.0B end-2024 (filings, F) / 2024 adjusted EBITDA ~$1.2B (S-1, F): 6.6x (D)",
        "x",
        "baseline",
        "2025-12",
        "6.6",
        5.0,
        8.0,
        "J: +-1.5x around the one observation (its end-2025 figures give a similar ratio, D)",
        _neocloud_debt_to_ebitda,
    ),
    Target(
        "hashprice_2025_11",
        "hashprice",
        "Hashrate Index (F)",
        "USD/PH-day",
        "baseline",
        "2025-11",
        "38",
        30.4,
        45.6,
        "J: +-20 % around the published point (the source gives no range)",
        lambda run: _mean(run, "hashprice_usd_per_ph_day", "2025-11"),
    ),
    Target(
        "mining_cash_cost_per_btc_2025_q2",
        "miners' cash cost per BTC mined: power, site opex and the mining share of overheads",
        "CoinShares mining reports (F)",
        "USD/BTC",
        "baseline",
        "2025-04..2025-06",
        "> 70,000",
        70_000.0,
        82_000.0,
        "the source's post-halving figures: > $70k (Q2 2025) to $82k (Q4 2024)",
        _mining_cash_cost_per_btc,
    ),
    Target(
        "miner_sector_debt_2025_10",
        "miners' debt, sum over the model's miners",
        "VanEck (F); converts TheMinerMag (F)",
        "USD billion",
        "baseline",
        "2025-10",
        "12.7",
        11.0,
        14.4,
        "low: the $11B of converts issued Jul 2024-Oct 2025 alone (TheMinerMag); high: as far above",
        _miner_debt,
    ),
    Target(
        "neocloud_default_rate",
        "neocloud defaults per neocloud-year over the whole run, pooled over seeds",
        "S&P annual global corporate default studies, 1981-2023 one-year averages: B+ ~2 %, "
        "B ~3-4 % (W: as we recall the published tables; CoreWeave is rated B+ by S&P, F)",
        "% per year",
        "baseline",
        "2025-01..2029-12",
        "2-3.5 (B+ to B)",
        1.0,
        4.5,
        "B+ to B averages widened by one binomial standard error of 12 seeds x 6 neoclouds x "
        "5 years (360 neocloud-years: ~0.9 point)",
        _neocloud_default_rate,
        statistic="mean",
    ),
)

TARGETS_BY_ID = {t.id: t for t in TARGETS}
assert len(TARGETS_BY_ID) == len(TARGETS), "target ids must be unique"
