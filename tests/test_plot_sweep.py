"""abm plot SWEEP_DIR: the figures hold the sweep's numbers, not just pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from abm.cli import main
from abm.sweep import load_experiment, run_sweep
from abm.viz import sweep_figures as sf

EXPERIMENT = {
    "name": "plot_tiny",
    "scenario": "correlated_crash",
    "months": 14,
    "master_seed": 5,
    "replications": 2,
    "parameters": [
        {"name": "rent_deflation", "path": "compute.rent_deflation_per_year", "values": [0.1, 0.3]},
        {
            "name": "ltv_scale",
            "path": "lenders.kinds.*.origination_ltv",
            "mode": "scale",
            "values": [0.8, 1.0, 1.3],
        },
    ],
    "outputs": {"timeseries": True},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    run_sweep(load_experiment(EXPERIMENT), out, executor="serial", progress=False)
    return out


def test_phase_diagram_cells_are_replicate_means(sweep):
    runs = pd.read_parquet(sweep / "runs.parquet")
    fig = sf.phase_diagram(runs, "rent_deflation", "ltv_scale", "lender_loss_rate")
    image = fig.axes[0].get_images()[0].get_array()
    expected = runs.groupby(["ltv_scale", "rent_deflation"])["lender_loss_rate"].mean()
    assert image.shape == (3, 2)
    for i, ltv in enumerate([0.8, 1.0, 1.3]):
        for j, d in enumerate([0.1, 0.3]):
            assert image[i, j] == pytest.approx(expected[(ltv, d)])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "rent_deflation" and ax.get_ylabel() == "ltv_scale"


def test_ccdf_of_known_values():
    x, p = sf.ccdf(np.array([0.0, 1.0, 1.0, 3.0, np.nan]))
    assert list(x) == [1.0, 3.0]
    assert list(p) == [0.75, 0.25]


def test_cascade_ccdf_figure_is_log_log():
    sizes = [0, 0, 1, 1, 2, 3, 5, 8, 13, 40]
    runs = pd.DataFrame({"run_id": range(10), "status": "ok", "defaults": sizes})
    fig = sf.cascade_ccdf(runs, "defaults")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    x, p = sf.ccdf(runs["defaults"].to_numpy(dtype=float))
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == list(x) and list(line.get_ydata()) == list(p)


def test_fan_chart_median_is_the_median_across_runs(sweep):
    runs = pd.read_parquet(sweep / "runs.parquet")
    ts = pd.read_parquet(sweep / "timeseries.parquet")
    fig = sf.fan_chart(ts, runs, "btc_price")
    line = fig.axes[0].get_lines()[0]
    expected = ts.groupby("month")["btc_price"].median()
    assert np.allclose(line.get_ydata(), expected.to_numpy())
    assert len(fig.axes[0].collections) == 2  # the 50 % and 90 % bands


def test_sobol_figure_bars_are_the_indices():
    sobol = pd.DataFrame(
        {
            "metric": ["m"] * 2,
            "parameter": ["a", "b"],
            "S1": [0.6, 0.1],
            "S1_conf": [0.05, 0.02],
            "ST": [0.7, 0.3],
            "ST_conf": [0.05, 0.05],
        }
    )
    fig = sf.sobol_figure(sobol)
    widths = [round(b.get_width(), 6) for b in fig.axes[0].patches]
    assert widths == [0.6, 0.1, 0.7, 0.3]


def test_plot_sweep_command_writes_png_and_pdf(sweep, capsys):
    assert main(["plot", str(sweep)]) == 0
    names = {p.name for p in (sweep / "figures").iterdir()}
    for stem in ("phase_diagram", "response", "cascade_ccdf", "fan_btc_price"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert (sweep / "figures" / "phase_diagram.png").read_bytes()[:4] == b"\x89PNG"
    assert (sweep / "figures" / "phase_diagram.pdf").read_bytes()[:4] == b"%PDF"


def test_plot_run_dir_through_the_cli(tmp_path, capsys):
    import abm
    from abm.io import write_run

    run_dir = tmp_path / "run"
    write_run(abm.run("correlated_crash", seed=1, months=12), run_dir, figure=False)
    assert main(["plot", str(run_dir), "--no-animation", "--month", "6"]) == 0
    names = {p.name for p in (run_dir / "figures").iterdir()}
    assert {"market.png", "market.pdf", "cascade_tree.pdf", "network_2025-07.png"} <= names
    assert main(["plot", str(run_dir), "--month", "99", "--no-animation"]) == 2
    assert "month" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "nothing").exists()


# --- a 2 x 2 design with known effects (a synthetic runs table, no model runs) ---------------

REPLICATES = 6
DEVIATIONS = np.array([-0.03, -0.02, -0.01, 0.01, 0.02, 0.03])  # sum 0: group means are exact


def _known_mean(a: float, policy: str) -> float:
    return 0.1 * a + (0.2 if policy == "market" else 0.0)


@pytest.fixture(scope="module")
def design_2x2():
    rows, series = [], []
    run_id = 0
    for point, (a, policy) in enumerate([(1.0, "market"), (1.0, "appraisal"), (2.0, "market"),
                                         (2.0, "appraisal")]):  # fmt: skip
        for rep in range(REPLICATES):
            defaults = (rep + 1) * (2 if policy == "market" else 1) if a == 2.0 else 0
            rows.append({"run_id": run_id, "point": point, "replicate": rep, "status": "ok",
                         "a": a, "policy": policy, "defaults": float(defaults),
                         "lender_loss_rate": _known_mean(a, policy) + DEVIATIONS[rep],
                         "default_share_borrowers": 0.5 if rep == 0 and a == 2.0 else 0.0})  # fmt: skip
            for month in range(3):
                series.append({"run_id": run_id, "month": month,
                               "btc_price": 100 * a + month + rep})  # fmt: skip
            run_id += 1
    return pd.DataFrame(rows), pd.DataFrame(series)


def _series(ax) -> dict:
    """label -> (x, y) of each errorbar series of a panel."""
    return {
        c.get_label(): (np.asarray(c.lines[0].get_xdata(), float), c.lines[0].get_ydata())
        for c in ax.containers
    }


def test_response_numeric_x_one_line_per_level_of_the_other_factor(design_2x2):
    runs, _ = design_2x2
    fig = sf.response_figure(runs, ["a", "policy"], ["lender_loss_rate", "default_share_borrowers"])
    ax = fig.axes[0]
    series = _series(ax)
    assert set(series) == {"policy = market", "policy = appraisal"}
    for policy in ("market", "appraisal"):
        x, y = series[f"policy = {policy}"]
        assert np.allclose(x, [1.0, 2.0], atol=0.05)  # dodged by a few % of the x range
        assert np.allclose(y, [_known_mean(1.0, policy), _known_mean(2.0, policy)])
    assert all(c.lines[0].get_linestyle() == "-" for c in ax.containers)  # numeric: joined
    title = fig.get_suptitle()
    assert "Mean over 6 replicates per design point" in title
    assert "bootstrap percentile" in ax.get_title()
    # the share's error bars never reach below 0 (a t-interval here would: mean 0.083, n 6)
    share = fig.axes[1]
    for c in share.containers:
        for seg in c.lines[2][0].get_segments():
            assert seg[:, 1].min() >= 0.0


def test_response_categorical_x_is_points_on_a_categorical_axis(design_2x2):
    runs, _ = design_2x2
    fig = sf.response_figure(runs, ["policy", "a"], ["lender_loss_rate"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["market", "appraisal"]
    series = _series(ax)
    assert set(series) == {"a = 1", "a = 2"}
    for a in (1.0, 2.0):
        x, y = series[f"a = {a:g}"]
        assert np.allclose(np.round(x), [0, 1])  # category positions, dodged per series
        assert np.allclose(y, [_known_mean(a, "market"), _known_mean(a, "appraisal")])
    assert all(c.lines[0].get_linestyle() == "None" for c in ax.containers)  # never joined


def test_fan_and_ccdf_facet_by_the_other_factor(design_2x2):
    runs, ts = design_2x2
    fig = sf.fan_chart(ts, runs, "btc_price", ["a", "policy"])
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["policy = market", "policy = appraisal"]
    for ax in panels:
        lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        assert set(lines) == {"a = 1 (n=6)", "a = 2 (n=6)"}  # one design point per line
        for a in (1.0, 2.0):  # median over replicates of 100 a + month + rep, rep 0..5
            assert np.allclose(lines[f"a = {a:g} (n=6)"], 100 * a + np.arange(3) + 2.5)
    fig = sf.cascade_ccdf(runs, "defaults", ["a", "policy"])
    market, appraisal = fig.axes[:2]
    assert market.get_title() == "policy = market"
    steps = {line.get_label(): line for line in market.get_lines() if line.get_label()[0] != "_"}
    assert list(steps["a = 2 (n=6)"].get_xdata()) == [2, 4, 6, 8, 10, 12]
    assert np.allclose(steps["a = 2 (n=6)"].get_ydata(), np.arange(6, 0, -1) / 6)
    assert "a = 1 (n=6): all zero" in [line.get_label() for line in market.get_lines()]
    steps = {line.get_label(): line for line in appraisal.get_lines()}
    assert list(steps["a = 2 (n=6)"].get_xdata()) == [1, 2, 3, 4, 5, 6]


def test_phase_diagram_panels_per_level_of_a_third_factor(design_2x2):
    runs, _ = design_2x2
    runs = pd.concat([runs.assign(b=0.0), runs.assign(b=1.0, point=runs["point"] + 4)])
    runs["lender_loss_rate"] += runs["b"]
    fig = sf.phase_diagram(runs, "a", "b", "lender_loss_rate", others=["policy"])
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["policy = market", "policy = appraisal"]
    for ax, policy in zip(panels, ("market", "appraisal"), strict=True):
        image = ax.get_images()[0].get_array()
        for i, b in enumerate((0.0, 1.0)):
            for j, a in enumerate((1.0, 2.0)):
                assert image[i, j] == pytest.approx(_known_mean(a, policy) + b)


def test_ccdf_without_any_cascade_says_so_on_linear_axes(tmp_path):
    runs = pd.DataFrame({"run_id": range(4), "point": 0, "status": "ok", "defaults": 0.0})
    fig = sf.cascade_ccdf(runs, "defaults")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.texts] == ["no run with defaults > 0"]
    fig.savefig(tmp_path / "ccdf.png")  # a log axis without positive data would raise here


def test_series_left_out_are_said_in_the_title():
    runs = pd.DataFrame(
        {
            "run_id": range(8),
            "point": range(8),
            "status": "ok",
            "a": np.arange(8.0),
            "defaults": np.arange(8.0),
        }  # fmt: skip
    )
    fig = sf.cascade_ccdf(runs, "defaults", ["a"])
    labels = [line.get_label() for line in fig.axes[0].get_lines() if line.get_label()[0] != "_"]
    assert len(labels) == sf.MOST_SERIES
    assert "(2 levels of a not shown)" in fig.get_suptitle()
