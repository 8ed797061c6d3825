"""The calibration report (``abm calibration``): extractors, pass/fail, the table, the folder, and
(slow) every target inside its tolerance over the declared seeds.

Targets the model misses today are strict expected failures, each with the reason (measured on
the model with issue 12's revenue, valuation, retirement and cure changes merged; re-run the
report after a model change and update ``MISSED_TODAY``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import abm
from abm.calibration_report import (
    DEFAULT_SEEDS,
    TABLE_COLUMNS,
    check_seeds,
    format_markdown,
    run_targets,
    select_targets,
    summarise,
    write_report,
)
from abm.calibration_targets import (
    TARGETS,
    TARGETS_BY_ID,
    RunObservation,
    Target,
    _neocloud_default_rate,
    _resale_at_age,
    probe_month,
)
from abm.config import ConfigError
from abm.io import check_destination, owned_output

# plausible magnitude of a value in each unit: catches a statistic in the wrong unit (USD for
# USD million, a share for a percentage, per month for per year) without judging calibration
UNIT_RANGES = {
    "USD/GPU-hour": (0.05, 50.0),
    "USD/GPU": (100.0, 500_000.0),
    "share of list": (0.0, 3.0),
    "share": (0.0, 1.0),
    "USD million/MW-year": (0.5, 200.0),
    "x": (-50.0, 50.0),
    "USD/PH-day": (1.0, 1_000.0),
    "USD/BTC": (1_000.0, 1_000_000.0),
    "USD billion": (0.01, 1_000.0),
    "% per year": (0.0, 100.0),
}


@pytest.fixture(scope="module")
def one_run_values() -> pd.DataFrame:
    return run_targets(TARGETS, [0])


def test_every_target_is_well_formed():
    for t in TARGETS:
        assert t.unit in UNIT_RANGES, t.id
        assert t.low < t.high, t.id
        assert t.statistic in ("median", "mean"), t.id
        assert t.scenario in abm.packaged_scenarios(), t.id
        assert t.source and t.tolerance_basis and t.target, t.id
        assert "shared" not in t.source.lower() and "CALIBRATION.md" not in t.source, t.id


def test_extractors_return_finite_values_in_their_unit(one_run_values):
    assert sorted(one_run_values["id"]) == sorted(TARGETS_BY_ID)
    for row in one_run_values.itertuples():
        lo, hi = UNIT_RANGES[TARGETS_BY_ID[row.id].unit]
        assert math.isfinite(row.value), row.id
        assert lo <= row.value <= hi, f"{row.id}: {row.value} outside [{lo}, {hi}]"


def test_extractors_read_the_month_they_name(one_run_values):
    """Two extractors recomputed by hand from the run's time series (baseline, seed 0)."""
    ts = abm.run("baseline", seed=0).timeseries
    values = one_run_values.set_index("id")["value"]
    # 2025-11 is month 10, 2026-03 month 14
    assert values["hashprice_2025_11"] == pytest.approx(ts.loc[10, "hashprice_usd_per_ph_day"])
    assert values["h100_contract_rent_2026_03"] == pytest.approx(ts.loc[14, "rent_spot_H100"] * 1.1)


def test_probe_reads_without_changing_the_run():
    """The monthly probe is read-only: a run with it is identical to one without."""
    probes: list[dict] = []
    seen = abm.run(
        "baseline", seed=3, months=8, observe=lambda m, t: probes.append(probe_month(m, t))
    )
    plain = abm.run("baseline", seed=3, months=8)
    pd.testing.assert_frame_equal(seen.timeseries, plain.timeseries)
    pd.testing.assert_frame_equal(seen.agents, plain.agents)
    assert [p["month"] for p in probes] == list(range(8))
    assert all(p["neocloud_it_mw"] > 0 and p["mining_btc"] > 0 for p in probes)


def _fake_run(timeseries: pd.DataFrame, config: dict) -> RunObservation:
    class Result:
        pass

    result = Result()
    result.timeseries, result.config = timeseries, config
    return RunObservation(result, pd.DataFrame({"month": timeseries["month"]}))


def test_default_rate_is_defaults_per_neocloud_year():
    ts = pd.DataFrame({"month": range(60), "defaults_neocloud": [0] * 59 + [2]})
    run = _fake_run(ts, {"run": {"start": "2025-01"}, "neoclouds": {"count": 6}})
    assert _neocloud_default_rate(run) == pytest.approx(100 * 2 / 30)  # 2 in 6 x 5 years


def test_resale_share_averages_generations_at_that_age():
    config = {
        "run": {"start": "2025-01"},
        "generations": {
            "A": {"release": "2024-01", "list_price_usd": 100.0},  # age 2 at month 12
            "B": {"release": "2025-01", "list_price_usd": 200.0},  # age 2 at month 24
            "C": {"release": "2026-06", "list_price_usd": 50.0},  # age 2 after the run
        },
    }
    ts = pd.DataFrame({"month": range(30)})
    ts["mark_A"], ts["mark_B"], ts["mark_C"] = 0.0, 0.0, 0.0
    ts.loc[12, "mark_A"], ts.loc[24, "mark_B"] = 60.0, 80.0
    assert _resale_at_age(2)(_fake_run(ts, config)) == pytest.approx((0.6 + 0.4) / 2)
    assert math.isnan(_resale_at_age(4)(_fake_run(ts, config)))


def _target(**kw) -> Target:
    base = dict(
        id="t",
        description="d",
        source="s (F)",
        unit="x",
        scenario="baseline",
        months="2025-01",
        target="1",
        low=1.0,
        high=2.0,
        tolerance_basis="b",
        extract=lambda run: 0.0,
    )
    return Target(**{**base, **kw})


def test_pass_is_inside_the_band_inclusive_and_nan_fails():
    t = _target()
    assert [t.passes(v) for v in (0.99, 1.0, 1.5, 2.0, 2.01)] == [False, True, True, True, False]
    assert not t.passes(float("nan")) and not t.passes(float("inf"))


def test_summary_median_mean_range_and_pass():
    level, freq = _target(id="level"), _target(id="freq", statistic="mean", low=0.5, high=0.9)
    values = pd.DataFrame(
        {
            "id": ["level"] * 5 + ["freq"] * 4,
            "value": [1.0, 1.2, 5.0, 1.1, np.nan, 0.0, 0.0, 0.0, 4.0],
        }
    )
    table = summarise([level, freq], values).set_index("id")
    assert list(table.reset_index().columns) == list(TABLE_COLUMNS)
    assert table.loc["level", "model"] == pytest.approx(1.15)  # median of the 4 finite values
    assert table.loc["level", "runs"] == 4 and bool(table.loc["level", "passes"])
    assert table.loc["level", "p90"] == pytest.approx(np.percentile([1.0, 1.2, 5.0, 1.1], 90))
    assert table.loc["freq", "model"] == pytest.approx(1.0)  # pooled mean, not the median 0
    assert not bool(table.loc["freq", "passes"])


def test_markdown_table_has_one_row_per_target_and_marks_failures():
    t1, t2 = _target(id="ok_one"), _target(id="bad_one", low=5.0, high=6.0)
    values = pd.DataFrame({"id": ["ok_one", "bad_one"], "value": [1.5, 1.5]})
    text = format_markdown(summarise([t1, t2], values), [0])
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and all(r.count(" | ") == 8 for r in rows)
    assert rows[0].endswith("| pass |") and rows[1].endswith("| **fail** |")
    assert "1 of 2 targets inside their tolerance." in text


def test_bad_seeds_and_targets_name_the_field():
    for bad in (0, -1, 1001, True, "3", 2.0):
        with pytest.raises(ConfigError, match="^--seeds: "):
            check_seeds(bad)
    assert check_seeds(3) == [0, 1, 2]
    with pytest.raises(ConfigError, match="^--target: unknown target 'nope'"):
        select_targets(["hashprice_2025_11", "nope"])
    assert [t.id for t in select_targets(["neocloud_default_rate", "hashprice_2025_11"])] == [
        "hashprice_2025_11",
        "neocloud_default_rate",
    ]


def test_report_folder_is_owned_replaced_and_not_confused_with_a_run(tmp_path):
    t = _target(id="only")
    values = pd.DataFrame({"id": ["only"], "seed": [0], "value": [1.5]})
    table = summarise([t], values)
    out = tmp_path / "calib"
    write_report(table, values, [0], out, {"runtime_s": 0.1})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "abm-calibration" and manifest["seeds"] == [0]
    assert set(manifest["files"]) == {"calibration.csv", "calibration.md", "runs.csv"}
    assert owned_output(out) == "calibration"
    write_report(table, values, [0, 1], out)  # an earlier report is replaced
    assert json.loads((out / "manifest.json").read_text())["seeds"] == [0, 1]
    with pytest.raises(ConfigError, match="not an abm run result"):
        check_destination(out)  # abm run never replaces a report ...
    (out / "calibration.md").write_text("edited by hand")
    with pytest.raises(ConfigError, match="was changed after abm wrote it"):
        write_report(table, values, [0], out)  # ... and a report edited by hand is kept
    assert (out / "calibration.md").read_text() == "edited by hand"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]  # no temp folder left


def test_cli_writes_the_report(tmp_path, capsys):
    from abm.cli import main

    out = tmp_path / "c"
    assert (
        main(["calibration", "--seeds", "1", "--target", "hashprice_2025_11", "--out", str(out)])
        == 0
    )
    table = pd.read_csv(out / "calibration.csv")
    assert list(table["id"]) == ["hashprice_2025_11"] and table.loc[0, "runs"] == 1
    assert "hashprice_2025_11" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the report (slow)

# Missed after the recalibration from sources (starting demand from the contract book; Blackwell and
# later rent at 0.6 of performance parity; network hashrate growth 0.35/yr; baseline, seeds 0-11;
# docs/calibration.md, "Calibration report"). Strict: a target that starts passing must be moved
# out of this list.
MISSED_TODAY = {
    "resale_share_age_1y": "0.55 of list (band 0.585-0.975): the generations reaching age 1 inside "
    "the run are B200, B300, Rubin and RubinUltra, which rent at 0.6 of performance parity "
    "(sourced B200 rents) against sourced list prices, so their marks sit lower against list than "
    "the eBay-anchored (H100-era) curve",
    "resale_share_age_2y": "0.448 of list (band 0.45-0.75): same cause as age 1 (Blackwell and "
    "later rent below performance parity)",
    "resale_share_age_4y": "0.260 of list (band 0.262-0.438): same cause, and rents deflate ~22 %/yr",
    "neocloud_revenue_per_mw_year_2025": "~$17.5M per IT-MW-year: an H100 at $2.3-2.6/h busy ~95 % "
    "on 1.3 kW earns ~$16-17M per IT-MW-year; CoreWeave's $10-12M is per energized MW (facility "
    "power, ramping capacity), a rent-per-kW and definition gap, not demand",
    "neocloud_debt_to_ebitda_2025_12": "~1.1x: capacity-constrained rents (utilisation near 0.95 "
    "once new Blackwell capacity no longer clears the investment hurdle) and a ~75 % EBITDA margin "
    "against CoreWeave's ~60 %; debt per MW at origination is not recalibrated (no sourced "
    "origination rule built)",
    "mining_cash_cost_per_btc_2025_q2": "~$58.6k: inputs unchanged (20 J/TH fleet, $0.045/kWh, "
    "site opex and overheads); with them the model is near large low-cost miners' own reported "
    "costs, below CoinShares' sector-wide weighted figure",
}


@pytest.fixture(scope="module")
def report_table() -> pd.DataFrame:
    targets = select_targets(None)
    return summarise(targets, run_targets(targets, check_seeds(DEFAULT_SEEDS))).set_index("id")


@pytest.mark.slow
@pytest.mark.parametrize(
    "target_id",
    [
        pytest.param(
            t.id,
            marks=[pytest.mark.xfail(strict=True, reason=MISSED_TODAY[t.id])]
            if t.id in MISSED_TODAY
            else [],
        )
        for t in TARGETS
    ],
)
def test_target_inside_its_tolerance(report_table, target_id):
    row = report_table.loc[target_id]
    assert row["runs"] == DEFAULT_SEEDS
    assert bool(row["passes"]), (
        f"{target_id}: model {row['model']:.4g} outside [{row['low']}, {row['high']}]"
    )
