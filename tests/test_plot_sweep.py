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
