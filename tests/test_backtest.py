"""The 2021-22 ASIC backtest's record files and measures (abm.backtest), on hand-built inputs.

The synthetic run below is small enough to compute every expectation by hand (comments show how).
"""

from __future__ import annotations

from importlib import resources
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from abm.backtest import (
    MONTHS,
    RUN_MEASURES,
    ModelSeries,
    comparison_table,
    model_series,
    price_band_figure,
    record,
    tier_of,
)
from abm.backtest_record import EPISODE_COLUMNS, MONTHLY_COLUMNS, SUBSIDY_BTC_PER_DAY
from abm.finance.loans import ACTIVE, CONVERT, DEFAULTED, GPU_TERM

NAN = np.nan
GENS = {  # name: (equipment, th_per_unit, j_per_th, list_price_usd)
    "S9": ("asic", 14.0, 96.0, 2000.0),
    "S17": ("asic", 50.0, 45.0, 5000.0),
    "S19": ("asic", 95.0, 34.0, 9500.0),
    "S19XP": ("asic", 140.0, 21.5, 14000.0),
    "H100": ("gpu", NAN, NAN, 30000.0),
}


def _config() -> dict:
    gens = {}
    for name, (equipment, th, j, price) in GENS.items():
        g = {"equipment": equipment, "list_price_usd": price}
        if equipment == "asic":
            g |= {"th_per_unit": th, "j_per_th": j}
        gens[name] = g
    return {"name": "synthetic", "generations": gens}


def _timeseries() -> pd.DataFrame:
    ts = pd.DataFrame(
        {
            "month": [0, 1, 2],
            "date": ["2022-11", "2022-12", "2023-01"],
            "btc_price": [17000.0, 16500.0, 23000.0],
            "hashprice_usd_per_ph_day": [100.0, 60.0, 70.0],
            # 30 M USD/day over November's 30 days, 15 M USD/day over December's 31 days
            "miner_revenue_usd": [30e6 * 30, 15e6 * 31, 20e6 * 31],
        }
    )
    per_gen = {  # secondary price, mark, fundamental value (USD per machine) by month
        "S9": ([NAN, 28.0, NAN], [140.0, 70.0, 70.0], [200.0, 112.0, 140.0]),
        "S17": ([NAN, NAN, NAN], [500.0, 200.0, 250.0], [600.0, 300.0, 300.0]),
        "S19": ([NAN, 950.0, NAN], [1900.0, 1000.0, 1100.0], [2000.0, 1900.0, 2000.0]),
        "S19XP": ([NAN, NAN, NAN], [2800.0, 1400.0, 1400.0], [3000.0, 3000.0, 3000.0]),
        "H100": ([NAN, NAN, NAN], [20000.0] * 3, [21000.0] * 3),
    }
    for g, (trade, mark, fundamental) in per_gen.items():
        ts[f"secondary_price_{g}"] = trade
        ts[f"mark_{g}"] = mark
        ts[f"fundamental_value_{g}"] = fundamental
    return ts


def _events() -> pd.DataFrame:
    cols = ["event_id", "month", "event", "agent_id", "agent_type", "counterparty_id"]
    cols += ["parent_event_ids", "amount_usd", "units", "price_usd", "cause"]
    rows = [
        (1, 1, "default", 102, "miner", -1, "", 4000.0, 0, NAN, "payment"),
        # the lender seizes 3 S19 at its mark of 1000: the claim falls by 3000
        (2, 1, "seizure", 101, "lender", 102, "1", 3000.0, 3, 1000.0, ""),
        # it sells 2 of them at the clearing price 950; the third it still holds (lot row 5)
        (3, 1, "trade", 101, "lender", 104, "2", 1900.0, 2, 950.0, ""),
        # a miner that did not default sells 5 S9 of its own
        (4, 1, "trade", 103, "miner", 104, "", 140.0, 5, 28.0, ""),
        # 200 written off on the pair, half of whose starting loans are machine-backed
        (5, 2, "write_off", 101, "lender", 102, "1", 200.0, 0, NAN, ""),
    ]
    return pd.DataFrame(rows, columns=cols)


def _model() -> SimpleNamespace:
    gen_names = list(GENS)
    loans = SimpleNamespace(
        lender=np.array([0, 0, 0]),
        borrower=np.array([1, 2, 1]),
        kind=np.array([GPU_TERM, GPU_TERM, CONVERT]),
        status=np.array([DEFAULTED, ACTIVE, DEFAULTED]),
        principal_usd=np.array([900.0, 2800.0, 4000.0]),  # row 0: 900 still claimed
        maturity_month=np.array([24, 24, 36]),
        origination_month=np.array([-6, -6, -12]),
    )
    lots = SimpleNamespace(
        gen=np.array([2, 2, 0, 1, 3, gen_names.index("S19")]),
        owner=np.array([1, 2, 2, 2, 2, 0]),
        units=np.array([0, 10, 20, 5, 4, 1]),
    )
    return SimpleNamespace(
        gen_names=gen_names,
        agent_ids=np.array([101, 102, 103, 104]),  # lender, defaulting miner, miner, buyer
        loans=loans,
        lots=lots,
        lot_origin_event={5: 2},
        start_snapshot={"principal_usd": np.array([5000.0, 3000.0, 5000.0])},
    )


def _run(seed: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        seed=seed, config=_config(), timeseries=_timeseries(), events=_events(), model=_model()
    )


def test_tiers_follow_the_hashrate_index_bounds():
    assert [tier_of(j) for j in (21.5, 34.0, 37.9, 38.0, 45.0, 68.0, 68.1, 96.0)] == [
        "new", "new", "new", "mid", "mid", "mid", "old", "old",
    ]  # fmt: skip


def test_prices_per_th_use_trades_where_they_happened_and_marks_elsewhere():
    series = model_series([_run()])
    gens = series.generations.set_index(["gen", "month"])
    assert set(series.generations["gen"]) == {"S9", "S17", "S19", "S19XP"}  # no GPU generation
    assert gens.loc[("S19", 1), "basis"] == "trade"
    assert gens.loc[("S19", 1), "price_usd_per_th"] == pytest.approx(950 / 95)
    assert gens.loc[("S19", 2), "basis"] == "mark"
    assert gens.loc[("S19", 2), "price_usd_per_th"] == pytest.approx(1100 / 95)
    tiers = series.tiers.set_index(["tier", "month"])
    # new tier: mean of S19 and S19XP USD/TH: month 0 (20 + 20) / 2, month 1 (10 + 10) / 2
    assert tiers.loc[("new", 0), "price_usd_per_th"] == pytest.approx(20.0)
    assert tiers.loc[("new", 1), "index"] == pytest.approx(0.5)
    assert tiers.loc[("new", 1), "trade_share"] == pytest.approx(0.5)
    run = series.runs.iloc[0]
    assert run["asic_new_change_pct"] == pytest.approx(-50.0)
    assert run["asic_mid_change_pct"] == pytest.approx(-60.0)  # 500/50 = 10 -> 200/50 = 4
    assert run["asic_old_change_pct"] == pytest.approx(-80.0)  # 140/14 = 10 -> trade 28/14 = 2


def test_revenue_defaults_trades_and_discounts():
    run = model_series([_run()]).runs.iloc[0]
    assert run["revenue_first_usd_m_per_day"] == pytest.approx(30.0)  # November: 30 days
    assert run["revenue_trough_usd_m_per_day"] == pytest.approx(15.0)  # December: 31 days
    assert run["revenue_change_pct"] == pytest.approx(-50.0)
    assert run["hashprice_trough_usd_per_ph_day"] == pytest.approx(60.0)
    assert (run["miner_defaults"], run["first_default_month"]) == (1.0, 1.0)
    assert run["machines_traded"] == 7.0  # 2 by the lender + 5 by a miner
    # S19 1 - 950/1900 = 50 %, S9 1 - 28/112 = 75 %
    assert run["deepest_discount_to_fundamental_pct"] == pytest.approx(75.0)
    assert run["mean_discount_to_fundamental_pct"] == pytest.approx(62.5)
    # against the previous month's mark: S19 1 - 950/1900 = 50 %, S9 1 - 28/140 = 80 %
    assert run["deepest_discount_to_prior_mark_pct"] == pytest.approx(80.0)


def test_recoveries_on_machine_backed_loans():
    run = model_series([_run()]).runs.iloc[0]
    assert (run["machines_seized"], run["machines_sold_by_lenders"]) == (3.0, 2.0)
    # claim at default: seized 3000 + half of the pair's 200 write-off + 900 still claimed = 4000
    # recovered: 1900 from the sale + 1 unit still held at the last S19 mark 1100 = 3000
    assert run["recovery_share_of_principal_pct"] == pytest.approx(75.0)
    # first-month value of the 3 seized S19: 3 x 1900 = 5700
    assert run["recovery_share_of_2021_value_pct"] == pytest.approx(100 * 3000 / 5700)
    # claims at default 4000 over the starting machine-backed book 5000 + 3000
    assert run["machine_loans_defaulted_share_pct"] == pytest.approx(50.0)


def test_comparison_reports_median_and_10_90_over_runs_with_the_measure():
    runs = pd.DataFrame({m: [NAN] * 6 for m in RUN_MEASURES})
    runs["seed"] = range(6)
    runs["miner_defaults"] = [1.0, 2.0, 3.0, 4.0, 5.0, NAN]  # the last run lacks the measure
    series = ModelSeries(generations=pd.DataFrame(), tiers=pd.DataFrame(), runs=runs)
    table = comparison_table(series).set_index("measure")
    assert list(table.index) == list(RUN_MEASURES)
    row = table.loc["miner_defaults"]
    # linear percentiles of 1..5: position 0.4 -> 1.4, 2 -> 3, 3.6 -> 4.6
    assert (row["model_p10"], row["model_median"], row["model_p90"]) == pytest.approx(
        (1.4, 3.0, 4.6)
    )
    assert row["model_runs"] == 5
    assert (row["record_low"], row["record_high"]) == (4.0, 7.0)
    assert row["overlap"]  # [1.4, 4.6] meets [4, 7]
    assert table.loc["machines_seized", "model_runs"] == 0
    assert np.isnan(table.loc["machines_seized", "model_median"])
    assert not table.loc["machines_seized", "overlap"]  # no model value: nothing to compare
    runs["machines_seized"] = [50_000.0, 60_000.0, 0.0, 0.0, 0.0, 0.0]  # record: at least 53,603
    runs["recovery_share_of_principal_pct"] = [70.0] * 6  # record: 60, a single value
    table = comparison_table(series).set_index("measure")
    assert table.loc["machines_seized", "model_p90"] == pytest.approx(55_000.0)
    assert table.loc["machines_seized", "overlap"]  # a lower bound is open above
    assert not table.loc["recovery_share_of_principal_pct", "overlap"]
    assert (table["unit"] != "").all() and table["record_basis"].str.len().gt(0).all()


def test_price_band_figure_draws_the_model_median_per_tier():
    fig = price_band_figure([_run(0), _run(1)])
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert [a.get_title().split()[0] for a in axes] == ["new", "mid", "old"]
    median = next(line for line in axes[0].lines if line.get_label().startswith("model median"))
    assert np.allclose(median.get_ydata(), [20.0, 10.0, (1100 / 95 + 10.0) / 2])


def test_record_files_are_packaged_with_the_documented_columns_and_every_month():
    data = resources.files("abm.data")
    assert data.joinpath("asic_2022_monthly.csv").is_file()
    rec = record()
    assert tuple(rec.monthly.columns) == MONTHLY_COLUMNS
    assert tuple(rec.episode.columns) == EPISODE_COLUMNS
    assert tuple(rec.monthly["month"]) == MONTHS and len(MONTHS) == 26
    assert rec.monthly[["btc_close_usd", "hashrate_eh_mean"]].notna().all().all()
    # the derived columns are the formula on the sourced ones (fees excluded)
    m = rec.monthly
    assert np.allclose(
        m["hashprice_usd_per_ph_day"],
        SUBSIDY_BTC_PER_DAY * m["btc_close_usd"] / (m["hashrate_eh_mean"] * 1000),
        atol=0.01,
    )
    assert np.allclose(m["miner_revenue_usd_per_day"], SUBSIDY_BTC_PER_DAY * m["btc_close_usd"])
    assert rec.episode["confidence"].isin(["filed", "reported", "derived"]).all()
    assert rec.episode["source"].str.len().gt(0).all() and rec.episode["fact_id"].is_unique


def test_record_tier_prices_match_their_sources():
    rec = record()
    dec = rec.monthly.set_index("month").loc["2022-12"]
    for tier in ("new", "mid", "old"):
        assert dec[f"asic_{tier}_basis"] == "source"
        assert dec[f"asic_{tier}_usd_per_th"] == rec.fact(f"asic_{tier}_dec2022")["value"]
        peak = rec.fact(f"asic_{tier}_peak_2021")["value"]
        change = rec.fact(f"asic_{tier}_decline_peak_dec2022")["value"]
        assert 100 * (dec[f"asic_{tier}_usd_per_th"] / peak - 1) == pytest.approx(change, abs=0.1)
        basis = rec.monthly[f"asic_{tier}_basis"]
        assert basis.isin(["source", "chart", "interpolated", "none"]).all()
        # no value without a basis, no basis without a value
        assert (rec.monthly[f"asic_{tier}_usd_per_th"].isna() == (basis == "none")).all()
