"""Figures of a run folder (abm.viz.run_figures): panels, plotted data = table data, network marks,
deterministic layout, one animation frame per month, files written, bad folders refused."""

from __future__ import annotations

import json
import shutil

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from forced_options import THIN_LENDERS
from matplotlib.container import BarContainer
from PIL import Image

import abm
from abm.io import write_run
from abm.viz import run_figures as rf
from abm.viz.network_view import network_layout, positions_to_agents

#: The figures are tested on a run with every kind of default. On the merged issue-13 model no packaged
#: scenario has a lender failure in seeds 0-11 (correlated_crash seeds 0-23 have none: lenders hold
#: and lease out seized GPUs, sell loans to meet runs, and capacity is scarce at the sourced rents), so
#: the run is correlated_crash seed 4 with every lender kind thinly capitalised (capital ratio 0.05):
#: within this run's 48 months lenders fail from month 11 (nine of them), neoclouds default from
#: month 11 and miners from month 27.
#: The figures are about drawing defaults, not about whether failures emerge.
CRASH_MONTHS = 48


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "crash"
    write_run(
        abm.run("correlated_crash", seed=4, months=CRASH_MONTHS, overrides=THIN_LENDERS),
        out,
        figure=False,
    )
    return out


@pytest.fixture(scope="module")
def calm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "calm"
    # calm seed 1: no default and no trade in 12 months on issue 13's model (seed 0, quiet on issue
    # 12's, now has a neocloud default within the year)
    write_run(abm.run("calm", seed=1, months=12), out, figure=False)
    return out


@pytest.fixture(scope="module")
def crash(crash_dir):
    return rf.load_run(crash_dir)


@pytest.fixture(scope="module")
def calm(calm_dir):
    return rf.load_run(calm_dir)


def _hex(colour) -> str:
    return mcolors.to_hex(colour).lower()


# ---- loading --------------------------------------------------------------------------------------


def test_load_run_reads_the_tables(crash, crash_dir):
    ts = pd.read_csv(crash_dir / "timeseries.csv")
    assert len(crash.timeseries) == len(ts) == CRASH_MONTHS
    assert len(crash.agents) == len(pd.read_csv(crash_dir / "agents.csv"))
    assert all(isinstance(n, int) for n in crash.graph.nodes)
    n_defaults = int((crash.events["event"] == "default").sum())
    assert n_defaults > 0
    assert crash.cascade.number_of_nodes() == n_defaults
    # parent ids are kept as text, so single-parent links survive (a float 40.0 would be dropped)
    assert crash.cascade.number_of_edges() >= 1
    assert crash.scenario == "correlated_crash" and crash.seed == 4


@pytest.mark.parametrize(
    "missing", ["manifest.json", "agents.csv", "events.csv", "network.graphml"]
)
def test_missing_file_raises_naming_it(crash_dir, tmp_path, missing):
    broken = tmp_path / "broken"
    shutil.copytree(crash_dir, broken)
    (broken / missing).unlink()
    with pytest.raises(rf.RunDirError, match=missing.replace(".", r"\.")) as err:
        rf.load_run(broken)
    assert isinstance(err.value, ValueError)
    assert err.value.path.name == missing


def test_foreign_or_absent_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="no such run folder"):
        rf.load_run(tmp_path / "nope")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a run")
    with pytest.raises(rf.RunDirError, match="manifest.json"):
        rf.load_run(foreign)
    with pytest.raises(rf.RunDirError):
        rf.plot_run(foreign, out_dir=tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


def test_malformed_table_raises_naming_it(crash_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(crash_dir, broken)
    (broken / "timeseries.csv").write_text("a,b\n1,2\n")
    with pytest.raises(rf.RunDirError, match=r"timeseries\.csv.*missing column"):
        rf.load_run(broken)


# ---- market ---------------------------------------------------------------------------------------


def test_market_figure_panels_and_data(crash):
    fig = rf.market_figure(crash)
    ts = crash.timeseries
    traded = rf.traded_generations(crash)
    assert traded, "the crash run has secondary-market trades"
    axes = fig.axes
    assert len(axes) == 2 + len(traded) + 1
    titles = [ax.get_title() for ax in axes]
    assert "Bitcoin" in titles[0] and "Spot rent" in titles[1] and "Fire-sale" in titles[-1]
    for g, title in zip(traded, titles[2:-1], strict=True):
        assert g in title
    assert "USD" in axes[0].get_ylabel() and "GPU-hour" in axes[1].get_ylabel()

    (btc,) = [ln for ln in axes[0].get_lines() if ln.get_label() == "BTC price"]
    np.testing.assert_allclose(np.asarray(btc.get_ydata()) * 1e3, ts["btc_price"].to_numpy())
    assert len(btc.get_xdata()) == len(ts)

    rents = {ln.get_label(): ln for ln in axes[1].get_lines()}
    for g in crash.generations:
        y = ts[f"rent_spot_{g}"].to_numpy(dtype=float)
        if np.isfinite(y).any():
            np.testing.assert_allclose(rents[g].get_ydata(), y)

    for g, ax in zip(traded, axes[2:-1], strict=True):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        np.testing.assert_allclose(
            np.asarray(lines["clearing price"].get_ydata()) * 1e3,
            ts[f"secondary_price_{g}"].to_numpy(dtype=float),
        )
        np.testing.assert_allclose(
            np.asarray(lines["fundamental value"].get_ydata()) * 1e3,
            ts[f"fundamental_value_{g}"].to_numpy(dtype=float),
        )

    (bars,) = [c for c in axes[-1].containers if isinstance(c, BarContainer)]
    heights = [p.get_height() for p in bars.patches]
    np.testing.assert_allclose(heights, ts["fire_sale_units"].to_numpy())


def test_market_figure_without_trades(calm):
    fig = rf.market_figure(calm)
    assert len(fig.axes) == 4
    assert "no secondary-market trades" in fig.axes[2].get_title()


# ---- defaults -------------------------------------------------------------------------------------


def _stack_totals(ax) -> np.ndarray:
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert bars
    return np.sum([[p.get_height() for p in c.patches] for c in bars], axis=0)


def test_defaults_figure_stacks_sum_to_cumulative_defaults(crash):
    fig = rf.defaults_figure(crash)
    ax_type, ax_cause = fig.axes
    assert "agent type" in ax_type.get_title() and "cause" in ax_cause.get_title()
    ts = crash.timeseries
    cumulative = ts[["defaults_miner", "defaults_neocloud", "defaults_lender"]].sum(axis=1)
    np.testing.assert_array_equal(_stack_totals(ax_type), cumulative.to_numpy())
    ev = crash.events
    per_month = ev[ev["event"] == "default"].groupby("month").size()
    from_events = per_month.reindex(crash.months, fill_value=0).cumsum().to_numpy()
    np.testing.assert_array_equal(_stack_totals(ax_cause), from_events)
    labels = {t.get_text() for t in ax_type.get_legend().get_texts()}
    assert labels == {"miner", "neocloud", "lender"}  # the crash run has all three
    colours = {c.get_label(): _hex(c.patches[0].get_facecolor()) for c in ax_type.containers}
    assert colours["miner"] == rf.AGENT_TYPE_COLOURS["miner"].lower()


def test_defaults_figure_without_defaults(calm):
    fig = rf.defaults_figure(calm)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("no defaults in this run") == 2


# ---- capital --------------------------------------------------------------------------------------


def test_capital_figure_plots_capital_ratios_and_sector_totals(crash):
    fig = rf.capital_figure(crash)
    idx, ratios = rf.lender_capital_index(crash)
    assert ratios  # the run has assets_usd and the lenders' start ratios
    # % of the start ratio: near 100 in the first month, and equity / assets / start by hand
    assert np.nanmax(np.abs(idx.iloc[0].to_numpy() - 100.0)) < 20.0
    a = crash.agents
    row = a[(a["agent_id"] == idx.columns[0]) & (a["month"] == crash.months[-1])].iloc[0]
    start = crash.graph.nodes[int(idx.columns[0])]["capital_ratio_start"]
    expected = 100.0 * row["equity_usd"] / row["assets_usd"] / start
    assert idx.iloc[-1, 0] == pytest.approx(expected, rel=1e-12)
    floor = 100.0 * crash.config["credit"]["min_capital_ratio_multiple"]
    lender_axes = fig.axes[:-1]
    sector = fig.axes[-1]
    assert len(lender_axes) == idx.shape[1]  # one small panel per lender
    failed = crash.agents_with_status(crash.months[-1], "failed")
    # (measured on the model merged this session: nine lenders fail from month 11; the thin crypto
    # lenders 25 and 26, which failed on the loan-sale branch alone, survive on the merged model)
    assert failed == {17, 19, 20, 21, 22, 23, 24, 27, 28}
    for ax in lender_axes:
        title = ax.get_title(loc="left")
        lid = int(title.split()[1])
        (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"lender-equity:{lid}"]
        ydata = line.get_ydata()
        np.testing.assert_allclose(ydata, idx[lid].to_numpy())
        assert ("FAILED" in title) == (lid in failed)
        zero = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [0, 0]]
        assert zero, "the failure threshold (0 %) is drawn"
        assert [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [floor, floor]]
    ts = crash.timeseries
    lines = {ln.get_label(): ln for ln in sector.get_lines()}
    np.testing.assert_allclose(
        np.asarray(lines["sector equity (capital)"].get_ydata()) * 1e9, ts["lender_capital_usd"]
    )
    # the timeseries' sector capital is the sum of the lenders' equity in agents.csv
    a = crash.agents
    by_month = a[a["agent_type"] == "lender"].groupby("month")["equity_usd"].sum()
    np.testing.assert_allclose(by_month.to_numpy(), ts["lender_capital_usd"].to_numpy(), rtol=1e-9)


def test_capital_figure_falls_back_for_runs_without_assets(crash):
    """Run folders written before agents.csv had assets_usd still plot (equity index)."""
    import dataclasses

    old = dataclasses.replace(crash, agents=crash.agents.drop(columns="assets_usd"), _cache={})
    idx, ratios = rf.lender_capital_index(old)
    assert not ratios
    pd.testing.assert_frame_equal(idx, rf.lender_equity_index(old))
    fig = rf.capital_figure(old)
    assert any("first-month equity" in ax.get_ylabel() for ax in fig.axes)


# ---- network --------------------------------------------------------------------------------------


def test_network_marks_exactly_the_agents_in_default(crash):
    months = sorted({0, 15, 16, 17, 20, int(crash.months[-1])})
    seen_default = seen_failed = False
    for month in months:
        fig = rf.network_figure(crash, month)
        view = fig.network_view
        defaulted = crash.agents_with_status(month, "defaulted")
        failed = crash.agents_with_status(month, "failed")
        assert view.drawn_agents("defaulted") == defaulted, month
        assert view.drawn_agents("failed") == failed, month
        # node face colours agree: vermillion = defaulted, black = failed
        by_colour = {"defaulted": set(), "failed": set()}
        for rows, sc in view.node_sets.values():
            faces = [_hex(c) for c in sc.get_facecolors()]
            for row, face in zip(rows, faces, strict=True):
                for status in by_colour:
                    if face == rf.STATUS_COLOURS[status].lower():
                        by_colour[status].add(int(view.ids[row]))
        assert by_colour["defaulted"] == defaulted
        assert by_colour["failed"] == failed
        assert f"{len(defaulted)} in default" in view.title.get_text()
        seen_default |= bool(defaulted)
        seen_failed |= bool(failed)
    assert seen_default and seen_failed


def test_network_seizure_rings_follow_events(crash):
    fig = rf.network_figure(crash, crash.months[-1])
    ev = crash.events
    seized = ev[ev["event"].isin(("seizure", "btc_liquidation"))]["counterparty_id"]
    assert fig.network_view.drawn_agents("seized") == set(int(x) for x in seized)


def test_layout_is_deterministic_and_shared_by_all_months(crash_dir):
    a = network_layout(rf.load_run(crash_dir))
    b = network_layout(rf.load_run(crash_dir))
    assert a.keys() == b.keys()
    for n in a:
        np.testing.assert_array_equal(a[n], b[n])
    run = rf.load_run(crash_dir)
    offsets = []
    for month in (0, int(run.months[-1])):
        view = rf.network_figure(run, month).network_view
        (_, miners) = view.node_sets["miner"]
        offsets.append(np.asarray(miners.get_offsets()))
        assert positions_to_agents(miners.get_offsets(), a) == {
            int(i) for i, t in view.types.items() if t == "miner"
        }
    np.testing.assert_array_equal(offsets[0], offsets[1])


def test_default_month_is_the_busiest_or_last(crash, calm):
    m = rf.default_month(crash)
    counts = (
        crash.agents[crash.agents["status"] != "active"].groupby("month").size()
    )  # absorbing statuses: the count never falls
    assert counts[m] == counts.max() and (counts.loc[:m] < counts.max()).sum() == len(
        counts.loc[: m - 1]
    )
    assert rf.default_month(calm) == int(calm.months[-1])
    assert crash.resolve_month(str(crash.timeseries["date"].iloc[3])) == 3
    with pytest.raises(ValueError):
        crash.resolve_month(999)


# ---- cascade tree ---------------------------------------------------------------------------------


def test_cascade_tree_edges_coloured_by_channel(crash):
    fig = rf.cascade_tree_figure(crash)
    (ax,) = fig.axes
    patches = [p for p in ax.patches if (p.get_gid() or "").startswith("cascade-edge:")]
    tree = crash.cascade
    assert len(patches) == tree.number_of_edges() > 0
    for p in patches:
        _, u, v, channel = p.get_gid().split(":")
        assert tree.edges[int(u), int(v)]["channel"] == channel
        assert _hex(p.get_edgecolor()) == rf.CHANNEL_COLOURS[channel].lower()
    legend_texts = " ".join(t.get_text() for leg in ax.findobj(lambda o: hasattr(o, "get_texts"))
                            for t in leg.get_texts())  # fmt: skip
    for channel in rf.CHANNEL_COLOURS:
        assert channel.replace("_", " ") in legend_texts
    n_nodes = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_nodes == tree.number_of_nodes()


def test_cascade_tree_without_defaults(calm):
    fig = rf.cascade_tree_figure(calm)
    assert any("No defaults" in t.get_text() for t in fig.axes[0].texts)


# ---- animation and files --------------------------------------------------------------------------


def test_animation_has_one_frame_per_month(crash, tmp_path):
    path = tmp_path / "net.gif"
    n = rf.animate_network(crash, path, fps=6)
    assert n == len(crash.months) == CRASH_MONTHS
    with Image.open(path) as im:
        assert im.n_frames == CRASH_MONTHS


@pytest.mark.skipif(not rf.ffmpeg_available(), reason="ffmpeg not installed")
def test_animation_mp4(calm, tmp_path):
    path = tmp_path / "net.mp4"
    assert rf.animate_network(calm, path) == len(calm.months)
    assert path.stat().st_size > 1000


def test_plot_run_writes_png_and_pdf(calm_dir):
    written = rf.plot_run(calm_dir, animate=False, dpi=60)
    out = calm_dir / "figures"
    names = {p.name for p in written}
    assert names == {f"{s}.{fmt}" for s in ("market", "defaults", "capital", "network_2025-12",
                                            "cascade_tree") for fmt in ("png", "pdf")}  # fmt: skip
    for p in written:
        assert p.parent == out and p.stat().st_size > 0
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")
    # no temp files left behind; the manifest lists exactly the figures
    assert sorted(q.name for q in out.iterdir()) == sorted([*names, "manifest.json"])
    assert set(json.loads((out / "manifest.json").read_text())["files"]) == set(names)


def test_plot_run_with_animation_and_month(crash_dir, tmp_path):
    written = rf.plot_run(crash_dir, out_dir=tmp_path / "figs", month=16, formats=("png",), dpi=60)
    names = {p.name for p in written}
    assert "network_2026-05.png" in names and "network.gif" in names
    with Image.open(tmp_path / "figs" / "network.gif") as im:
        assert im.n_frames == CRASH_MONTHS
    assert all(not q.name.startswith(".") for q in (tmp_path / "figs").iterdir())
