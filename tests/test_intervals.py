"""abm analyze's intervals stay inside each metric's range, name their method, flag small n."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.sweep.analyze import summarize
from abm.sweep.intervals import (
    MIN_REPLICATES,
    bootstrap_interval,
    interval_seed,
    mean_interval,
    wilson_interval,
)
from abm.sweep.metrics import CATALOGUE, metric_bounds

SHARES = st.lists(
    st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)), min_size=MIN_REPLICATES, max_size=9
)


@settings(max_examples=150, deadline=None)
@given(SHARES, st.sampled_from([0.5, 0.8, 0.95, 0.99]))
def test_bootstrap_interval_of_a_share_stays_in_0_1(values, confidence):
    x = np.array(values)
    lo, hi, method = mean_interval(x, "continuous", confidence, interval_seed(1, 0, "m"), (0, 1))
    assert method == "bootstrap_percentile"
    assert 0.0 <= lo <= hi <= 1.0
    assert x.min() <= lo and hi <= x.max()  # inside the hull of the replicates


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=MIN_REPLICATES, max_size=30))
def test_wilson_interval_of_a_frequency_stays_in_0_1(values):
    x = np.array(values)
    lo, hi, method = mean_interval(x, "binary", 0.95, interval_seed(1, 0, "m"), (0, 1))
    assert method == "wilson"
    assert 0.0 <= lo <= x.mean() <= hi <= 1.0
    assert hi - lo > 0  # never degenerate, even for all-zero and all-one


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_all_zero_and_all_one_bootstrap_is_the_point(value):
    x = np.full(6, value)
    lo, hi = bootstrap_interval(x, 0.95, np.random.default_rng(0))
    assert lo == hi == value


def test_wilson_known_values():
    # 0 of 10 at 95 %: upper bound z^2 / (n + z^2) = 3.8415 / 13.8415
    lo, hi = wilson_interval(0, 10, 0.95)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-5)
    lo, hi = wilson_interval(5, 10, 0.95)  # textbook value [0.2366, 0.7634]
    assert lo == pytest.approx(0.23659, abs=1e-5) and hi == pytest.approx(0.76341, abs=1e-5)


def _runs(values: dict[str, list[float]], points: int = 1) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame(
        {
            "run_id": range(n * points),
            "point": np.repeat(np.arange(points), n),
            "status": "ok",
            **{k: np.tile(v, points) for k, v in values.items()},
        }
    )


def test_summary_flags_points_with_too_few_replicates():
    few = summarize(_runs({"default_share_borrowers": [0.0, 0.5, 1.0, 0.2]}), [])
    row = few.iloc[0]
    assert row["too_few_replicates"] and row["ci_method"] == "none"
    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
    assert row["mean"] == pytest.approx(0.425)  # the mean is still reported
    enough = summarize(_runs({"default_share_borrowers": [0.0, 0.5, 1.0, 0.2, 0.1]}), [])
    row = enough.iloc[0]
    assert not row["too_few_replicates"] and row["ci_method"] == "bootstrap_percentile"
    assert 0.0 <= row["ci_low"] < row["mean"] < row["ci_high"] <= 1.0


def test_summary_methods_per_metric_and_seeded():
    values = {
        "default_share_borrowers": [0.0, 0.0, 0.0, 0.9, 0.0, 0.0],
        "run_had_default": [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        "first_default_month": [23.0, 22.0, np.nan, 23.0, 23.0, 21.0],
        "lender_loss_rate": [0.1, 0.3, 0.2, 0.5, 0.05, 0.4],
    }
    a = summarize(_runs(values, points=2), [], master_seed=7, months=24).set_index(
        ["point", "metric"]
    )
    b = summarize(_runs(values, points=2), [], master_seed=7, months=24).set_index(
        ["point", "metric"]
    )
    pd.testing.assert_frame_equal(a, b)  # seeded: same table every time
    assert a.loc[(0, "run_had_default"), "ci_method"] == "wilson"
    assert a.loc[(0, "default_share_borrowers"), "ci_method"] == "bootstrap_percentile"
    # a Student-t interval would reach below 0 here (mean 0.15, sd 0.37, n 6)
    assert a.loc[(0, "default_share_borrowers"), "ci_low"] >= 0.0
    assert a.loc[(0, "first_default_month"), "ci_high"] <= 24
    assert a.loc[(0, "first_default_month"), "n"] == 5  # NaN (no default) is not a month
    # the seed of a (point, metric) comes from the master seed: another one resamples anew
    x = np.random.default_rng(0).uniform(0, 1, 12)
    one = mean_interval(x, "continuous", 0.95, interval_seed(7, 0, "lender_loss_rate"))
    again = mean_interval(x, "continuous", 0.95, interval_seed(7, 0, "lender_loss_rate"))
    other = mean_interval(x, "continuous", 0.95, interval_seed(8, 0, "lender_loss_rate"))
    assert one == again and one != other


def test_every_interval_of_a_random_table_is_inside_the_declared_range():
    rng = np.random.default_rng(3)
    values = {}
    for name, m in CATALOGUE.items():
        low, high = metric_bounds(name, months=24)
        low = 0.0 if not np.isfinite(low) else low
        high = low + 10.0 if not np.isfinite(high) else high
        draw = rng.uniform(low, high, 8)
        values[name] = np.round(draw) if m.kind == "binary" else draw
    table = summarize(_runs(values, points=3), [], master_seed=1, months=24)
    for name in CATALOGUE:
        low, high = metric_bounds(name, months=24)
        rows = table[table["metric"] == name]
        assert ((rows["ci_low"] >= low) & (rows["ci_high"] <= high)).all(), name
