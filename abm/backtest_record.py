"""The historical record of the 2021-22 ASIC crisis backtest (issue 14), read from ``abm/data``.

:func:`record` loads the monthly rows (2021-11 .. 2023-12) and the episode's dated facts; every
number's source and confidence (filed / reported / derived) is in the files and in
docs/validation.md. :func:`record_beside_measures` states the record beside each measure of
:data:`abm.backtest.RUN_MEASURES`. The model side is :mod:`abm.backtest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

MONTHS: tuple[str, ...] = tuple(str(p) for p in pd.period_range("2021-11", "2023-12", freq="M"))
TIERS: tuple[str, ...] = ("new", "mid", "old")
#: Tier bounds (J/TH): new < 38 <= mid <= 68 < old (Hashrate Index ASIC Price Index).
TIER_BOUNDS_J_PER_TH = (38.0, 68.0)
MONTHLY_COLUMNS: tuple[str, ...] = (
    "month",  # 'YYYY-MM'
    "btc_close_usd",  # month-end close, USD
    "hashrate_eh_mean",  # network hashrate, monthly mean, EH/s
    "hashprice_usd_per_ph_day",  # derived: 900 BTC/day * close / hashrate (PH/s); fees excluded
    "miner_revenue_usd_per_day",  # derived: 900 BTC/day * close, all miners; fees excluded
    *(f"asic_{t}_usd_per_th" for t in TIERS),  # ASIC price index by tier, USD/TH (NaN: none)
    *(f"asic_{t}_basis" for t in TIERS),  # source | chart | interpolated | none
)
EPISODE_COLUMNS: tuple[str, ...] = (
    "fact_id",
    "month",
    "category",
    "entity",
    "measure",
    "value",
    "low",
    "high",
    "unit",
    "source",
    "confidence",  # filed | reported | derived
    "note",
)
#: Block subsidy per day before the April 2024 halving (6.25 BTC x 144 blocks), BTC.
SUBSIDY_BTC_PER_DAY = 900.0
TROUGH_MONTH = "2022-12"  # the month of the record's -87 / -89 / -91 % ASIC price falls


@dataclass(frozen=True)
class Record:
    """The historical record: ``monthly`` (one row per month of :data:`MONTHS`, columns
    :data:`MONTHLY_COLUMNS`) and ``episode`` (one row per fact, columns :data:`EPISODE_COLUMNS`)."""

    monthly: pd.DataFrame
    episode: pd.DataFrame

    def fact(self, fact_id: str) -> pd.Series:
        """The episode row ``fact_id`` (KeyError if there is none)."""
        rows = self.episode[self.episode["fact_id"] == fact_id]
        if rows.empty:
            raise KeyError(f"no episode fact {fact_id!r}")
        return rows.iloc[0]


def record() -> Record:
    """Load the packaged record of the 2021-22 ASIC crisis (``abm/data``)."""
    data = resources.files("abm.data")
    with data.joinpath("asic_2022_monthly.csv").open() as f:
        monthly = pd.read_csv(f, dtype={"month": str})
    with data.joinpath("asic_2022_episode.csv").open() as f:
        episode = pd.read_csv(f, dtype={"month": str})
    return Record(monthly=monthly, episode=episode)


def tier_of(j_per_th: float) -> str:
    """The efficiency tier of a machine of ``j_per_th`` (J/TH): 'new', 'mid' or 'old'."""
    low, high = TIER_BOUNDS_J_PER_TH
    return "new" if j_per_th < low else ("mid" if j_per_th <= high else "old")


def _record_change_pct(rec: Record, column: str, since: str = MONTHS[0]) -> float:
    monthly = rec.monthly.set_index("month")[column]
    return 100.0 * (float(monthly[TROUGH_MONTH]) / float(monthly[since]) - 1.0)


def record_beside_measures(rec: Record) -> dict[str, tuple[str, float, float, str]]:
    """The record beside each run measure: (text, low, high, basis)."""

    def fact(fid: str, fmt: str = "{:.0f}", scale: float = 1.0) -> tuple[str, float, float, str]:
        f = rec.fact(fid)
        value, low, high = (float(f[c]) * scale for c in ("value", "low", "high"))
        text = fmt.format(value)
        if np.isfinite(low) and np.isfinite(high):
            text += f" ({fmt.format(low)} to {fmt.format(high)})"
        return (
            text,
            low if np.isfinite(low) else value,
            high if np.isfinite(high) else value,
            (f"{fid} ({f['confidence']})"),
        )

    rows = {}
    for t in TIERS:
        since = _record_change_pct(rec, f"asic_{t}_usd_per_th")
        peak = rec.fact(f"asic_{t}_decline_peak_dec2022")
        rows[f"asic_{t}_change_pct"] = (
            f"{since:.0f} (from Nov 2021, approx.); {peak['value']:.1f} from the May 2021 peak",
            since,
            float(peak["value"]),
            f"monthly asic_{t}_usd_per_th (Nov 2021 a chart reading); {peak['fact_id']}",
        )
    first, last = (
        float(rec.monthly.set_index("month")["miner_revenue_usd_per_day"][m]) / 1e6
        for m in (MONTHS[0], TROUGH_MONTH)
    )
    rows["revenue_first_usd_m_per_day"] = (
        f"{first:.1f} all miners (63.5 on the month's high day)",
        first,
        63.5,
        "monthly miner_revenue_usd_per_day (derived); miner_revenue_nov2021 (reported)",
    )
    rows["revenue_trough_usd_m_per_day"] = (
        f"{last:.1f} all miners (16.4 reported)",
        last,
        16.4,
        "monthly (derived); miner_revenue_dec2022 (reported)",
    )
    rows["revenue_change_pct"] = (
        f"{100 * (last / first - 1):.0f} (month-end closes); {100 * (16.4 / 63.5 - 1):.0f} reported",
        100 * (16.4 / 63.5 - 1),
        100 * (last / first - 1),
        "monthly (derived); miner_revenue_nov2021, miner_revenue_dec2022",
    )
    hp = float(rec.monthly.set_index("month")["hashprice_usd_per_ph_day"][TROUGH_MONTH])
    rows["hashprice_trough_usd_per_ph_day"] = (
        f"{hp:.0f} (derived, fees excluded); 55.94 the Nov 2022 low",
        55.94,
        hp,
        "monthly (derived); hashprice_low_nov2022 (reported)",
    )
    rows["miner_defaults"] = fact("miner_defaults_2022")
    rows["first_default_month"] = (
        "8 (Jul 2022: Celsius Mining)",
        8.0,
        8.0,
        "first_miner_default (derived)",
    )
    rows["median_default_month"] = (
        "12 (Nov 2022: median month of the 7 episodes, Jul-Dec 2022)",
        12.0,
        12.0,
        "derived from the default and seizure facts",
    )
    rows["machines_seized"] = (
        ">= 53,603 (two filed cases)",
        53603.0,
        np.nan,
        "machines_handed_to_lenders (derived)",
    )
    rows["machines_sold_by_lenders"] = ("not public", np.nan, np.nan, "-")
    rows["machines_traded"] = (
        ">= 11,000 in one forced auction (Celsius Mining)",
        11000.0,
        np.nan,
        "celsius_auction_jun2022 (reported)",
    )
    rows["deepest_discount_to_fundamental_pct"] = fact("celsius_auction_discount")
    rows["mean_discount_to_fundamental_pct"] = fact("calm_discount_jun2023", "{:.1f}")
    rows["deepest_discount_to_prior_mark_pct"] = fact("celsius_auction_discount")
    rows["recovery_share_of_principal_pct"] = fact("recovery_share_of_principal")
    rows["recovery_share_of_2021_value_pct"] = fact("recovery_share_of_2021_value")
    rows["machine_loans_defaulted_share_pct"] = fact("defaulted_share_of_book", "{:.1f}")
    return rows
