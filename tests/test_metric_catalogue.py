"""One name per metric: summary(), cascade.json, runs.parquet and docs/metrics.md agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import abm
from abm.cli import main
from abm.sweep import load_experiment, run_sweep
from abm.sweep.metrics import ALIASES, CATALOGUE, METRICS, catalogue_markdown, run_metrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
NOT_METRICS = {"scenario", "seed", "months", "runtime_s", "defaults_by_type_and_cause"}
# nested cascade.json dicts -> the flat names of their entries
NESTED = {
    "defaults_by_type": "defaults_{}",
    "default_share_by_type": "default_share_{}",
    "defaults_by_cause": "defaults_cause_{}",
    "pushes_by_channel": "pushes_{}",
}


def test_docs_metrics_md_is_the_catalogue():
    assert DOC.read_text() == catalogue_markdown(), (
        "docs/metrics.md is stale: write abm.sweep.metrics.catalogue_markdown() to it"
    )


def test_catalogue_declares_unit_range_and_direction():
    assert list(METRICS) == list(CATALOGUE)
    for name, m in CATALOGUE.items():
        assert m.unit and m.worse in ("higher", "lower", ""), name
        assert m.kind in ("continuous", "binary"), name
        if m.unit == "share":
            assert (m.low, m.high) == (0.0, 1.0), name
        if name.endswith("_usd"):
            assert m.unit == "USD" and m.low == 0.0, name
    assert set(ALIASES.values()) <= set(CATALOGUE) and not set(ALIASES) & set(CATALOGUE)


#: First 18 months of correlated_crash (measured with the starting demand from the contract book
#: and the sourced rents by generation): seed 1 has defaults and secondary-market trades, seed 2
#: defaults without a trade (min_price_to_fundamental undefined), seed 4 neither
#: (first_default_month undefined too; seed 0, quiet before, now defaults in month 13).
CRASH_18_MONTHS = {"trades": 1, "defaults_without_trades": 2, "quiet": 4}


@pytest.fixture(scope="module", params=list(CRASH_18_MONTHS))
def crash(request):
    return abm.run("correlated_crash", seed=CRASH_18_MONTHS[request.param], months=18)


def _same_number(flat: float, in_json) -> bool:
    """The rule for "undefined": None in summary() and cascade.json, NaN in runs.parquet."""
    if in_json is None:
        return bool(np.isnan(flat))
    return flat == pytest.approx(in_json)


def test_summary_cascade_and_sweep_use_one_name(crash):
    summary, cascade, flat = crash.summary(), crash.cascade_metrics(), run_metrics(crash)
    names = [k for k in summary if k not in NOT_METRICS]
    for key, value in cascade.items():
        names += [NESTED[key].format(k) for k in value] if key in NESTED else [key]
    unknown = [k for k in names if k not in CATALOGUE]
    assert not unknown, f"not in the metric catalogue: {unknown}"
    # the same name holds the same number wherever it appears, and "undefined" is None in the
    # JSON dicts and NaN in the flat row, never another stand-in
    assert summary["min_price_to_fundamental"] == cascade["min_price_to_fundamental"]
    for name in ("min_price_to_fundamental", "first_default_month", "debtrank_start"):
        assert _same_number(flat[name], cascade[name]), name
    assert flat["lender_losses_usd"] == summary["lender_losses_usd"]
    assert flat["fire_sale_units"] == summary["fire_sale_units"]
    for t, n in cascade["defaults_by_type"].items():
        assert flat[f"defaults_{t}"] == n
    assert flat["run_had_default"] == float(cascade["defaults"] > 0)
    for name, value in flat.items():
        low, high = (CATALOGUE[name].low, CATALOGUE[name].high)
        high = 18 if high == "months" else high
        if np.isfinite(value):
            assert (low is None or value >= low) and (high is None or value <= high), name


def test_the_three_runs_cover_defined_and_undefined_values():
    """The fixture's runs exercise both sides of the rule (so the test above is not vacuous)."""
    seen = {}
    for case, seed in CRASH_18_MONTHS.items():
        cm = abm.run("correlated_crash", seed=seed, months=18).cascade_metrics()
        seen[case] = (cm["min_price_to_fundamental"] is None, cm["first_default_month"] is None)
    assert seen == {
        "trades": (False, False),
        "defaults_without_trades": (True, False),
        "quiet": (True, True),
    }


def test_old_sweep_column_names_still_analyze(tmp_path, capsys):
    exp = load_experiment(
        {
            "name": "old_names",
            "scenario": "correlated_crash",
            "months": 6,
            "master_seed": 1,
            "replications": 1,
            "parameters": [
                {"name": "x", "path": "compute.rent_deflation_per_year", "values": [0.1]}
            ],
            "analysis": {"metrics": ["deepest_price_to_fundamental", "lender_loss_rate"]},
        }
    )
    assert exp.headline_metrics[0] == "min_price_to_fundamental"  # an old name is read as new
    out = tmp_path / "s"
    run_sweep(exp, out, executor="serial", progress=False)
    runs = pd.read_parquet(out / "runs.parquet")
    # a runs table written before the rename
    runs.rename(columns={"min_price_to_fundamental": "deepest_price_to_fundamental"}).to_parquet(
        out / "runs.parquet"
    )
    assert main(["analyze", str(out), "--metric", "deepest_price_to_fundamental"]) == 0
    assert "min_price_to_fundamental" in capsys.readouterr().out
    summary = pd.read_csv(out / "analysis" / "summary_by_point.csv")
    assert "min_price_to_fundamental" in set(summary["metric"])
    assert "deepest_price_to_fundamental" not in set(summary["metric"])
    assert main(["plot", str(out), "--metric", "deepest_price_to_fundamental"]) == 0
    assert (out / "figures" / "response.png").is_file()
    assert main(["plot", str(out), "--metric", "no_such_metric"]) == 2
    assert "allowed: defaults, " in capsys.readouterr().err
