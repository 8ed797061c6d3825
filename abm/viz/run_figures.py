"""Publication figures of one run folder (what ``abm run --out DIR`` writes).

Everything here reads the files of a run folder only; nothing is re-simulated.

>>> run = load_run("results/correlated_crash-seed2")        # doctest: +SKIP
>>> market_figure(run).savefig("market.pdf")                # doctest: +SKIP
>>> plot_run("results/correlated_crash-seed2")              # doctest: +SKIP

Figures (each builder returns a :class:`matplotlib.figure.Figure`; none uses pyplot's global state):

* :func:`market_figure`: BTC price, spot rents per GPU generation, secondary clearing price against
  fundamental value and mark per traded generation, fire-sale volume.
* :func:`defaults_figure`: cumulative defaults stacked by agent type and by cause.
* :func:`capital_figure` (:mod:`abm.viz.capital_figure`): each lender's equity against its start,
  and the lender sector's capital, realised losses and lending capacity.
* :func:`network_figure` (:mod:`abm.viz.network_view`): the lending network at one month.
* :func:`cascade_tree_figure` (:mod:`abm.viz.cascade_figure`): the default genealogy, edges coloured
  by contagion channel.
* :func:`animate_network` (:mod:`abm.viz.animation`): one network frame per month (GIF / MP4).
* :func:`plot_run`: all of the above as PNG and PDF (written atomically) into ``RUN_DIR/figures``.

Reading the folder is :mod:`abm.viz.run_data`; palettes, style and axis helpers are
:mod:`abm.viz.style`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import matplotlib.animation
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from abm.io import check_figures_destination, record_figures, write_atomic
from abm.viz.animation import animate_network
from abm.viz.capital_figure import capital_figure, lender_capital_index, lender_equity_index
from abm.viz.cascade_figure import cascade_rows, cascade_tree_figure
from abm.viz.network_view import network_figure, network_layout
from abm.viz.run_data import RunData, RunDirError, default_month, load_run
from abm.viz.style import (
    AGENT_TYPE_COLOURS,
    CAUSE_COLOURS,
    CHANNEL_COLOURS,
    DEFAULTING_TYPES,
    STATUS_COLOURS,
    date_axis,
    generation_colours,
    new_figure,
    shade_stress,
    stress_handle,
    styled,
    suptitle,
)
from abm.vocabulary import CAUSES

#: The figures plot_run writes (the network file name carries its month).
FIGURE_NAMES = ("market", "defaults", "capital", "network", "cascade_tree")

__all__ = [  # the figure API of a run folder (several names are re-exported from their modules)
    "AGENT_TYPE_COLOURS",
    "CAUSE_COLOURS",
    "CHANNEL_COLOURS",
    "FIGURE_NAMES",
    "STATUS_COLOURS",
    "RunData",
    "RunDirError",
    "animate_network",
    "capital_figure",
    "cascade_rows",
    "cascade_tree_figure",
    "default_month",
    "defaults_figure",
    "ffmpeg_available",
    "lender_capital_index",
    "lender_equity_index",
    "load_run",
    "market_figure",
    "network_figure",
    "network_layout",
    "plot_run",
    "save_figure",
]

# --------------------------------------------------------------------------------------------------
# Market
# --------------------------------------------------------------------------------------------------


def traded_generations(run: RunData, k: int = 4) -> list[str]:
    """Generations with secondary trades, the ``k`` with most trading months (release order)."""
    ts = run.timeseries
    counts = {
        g: int(ts[f"secondary_price_{g}"].notna().sum())
        for g in run.generations
        if f"secondary_price_{g}" in ts
    }
    traded = [g for g in run.generations if counts.get(g, 0) > 0]
    if len(traded) > k:
        keep = set(sorted(traded, key=lambda g: -counts[g])[:k])
        traded = [g for g in traded if g in keep]
    return traded


@styled
def market_figure(run: RunData) -> Figure:
    """Markets of the run.

    Panels: (a) BTC price (USD/BTC); (b) spot rent per GPU generation (USD per GPU-hour);
    (c..) one panel per traded generation (up to four, most trading months): fundamental value (DCF
    of expected rents), the collateral mark, and the secondary market's uniform clearing price in
    months with trades (USD per GPU); (last) fire-sale volume (GPUs sold per month, bars).
    Stress-regime months are shaded grey.
    """
    ts = run.timeseries
    dates = run.dates
    gens = run.generations
    gcol = generation_colours(gens)
    traded = traded_generations(run)
    ncols = max(len(traded), 2)
    fig = new_figure(figsize=(11, 9.5))
    gs = fig.add_gridspec(3, 1, height_ratios=[1.0, 1.05, 0.55])
    top = gs[0].subgridspec(1, 2)
    ax_btc = fig.add_subplot(top[0])
    ax_rent = fig.add_subplot(top[1], sharex=ax_btc)

    ax_btc.plot(dates, ts["btc_price"].to_numpy(dtype=float) / 1e3, color="k", label="BTC price")
    ax_btc.set_title("(a) Bitcoin price")
    ax_btc.set_ylabel("USD thousand per BTC")
    stress = shade_stress(ax_btc, run)
    if stress:
        ax_btc.legend(handles=[*ax_btc.get_lines(), stress_handle()], loc="best")

    for g in gens:
        y = ts[f"rent_spot_{g}"].to_numpy(dtype=float)
        if np.isfinite(y).any():
            ax_rent.plot(dates, y, color=gcol[g], label=g)
    shade_stress(ax_rent, run)
    ax_rent.set_title("(b) Spot rent per GPU generation")
    ax_rent.set_ylabel("USD per GPU-hour")
    ax_rent.set_yscale("log")
    ax_rent.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_rent.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax_rent.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax_rent.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="generation",
                   title_fontsize=8, fontsize=7.5)  # fmt: skip

    mid = gs[1].subgridspec(1, ncols)
    value_axes = []
    if traded:
        for k, g in enumerate(traded):
            ax = fig.add_subplot(mid[k], sharex=ax_btc)
            value_axes.append(ax)
            fv = ts[f"fundamental_value_{g}"].to_numpy(dtype=float) / 1e3
            mark = ts[f"mark_{g}"].to_numpy(dtype=float) / 1e3
            px = ts[f"secondary_price_{g}"].to_numpy(dtype=float) / 1e3
            shade_stress(ax, run)
            ax.plot(dates, fv, color=gcol[g], label="fundamental value")
            ax.plot(dates, mark, color=gcol[g], ls="--", lw=1.0, label="collateral mark")
            ax.plot(dates, px, ls="none", marker="o", ms=3.5, mfc="white", mec="#D55E00",
                    mew=1.1, label="clearing price")  # fmt: skip
            ax.set_title(f"({chr(ord('c') + k)}) {g}: secondary market")
            ax.set_ylim(bottom=0)
            if k == 0:
                ax.set_ylabel("USD thousand per GPU")
        value_axes[0].legend(loc="upper right")
    else:
        ax = fig.add_subplot(mid[:])
        value_axes.append(ax)
        for g in gens:
            fv = ts[f"fundamental_value_{g}"].to_numpy(dtype=float) / 1e3
            if np.isfinite(fv).any():
                ax.plot(dates, fv, color=gcol[g], label=g)
        ax.set_title(
            "(c) Fundamental value per generation (no secondary-market trades in this run)"
        )
        ax.set_ylabel("USD thousand per GPU")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="generation",
                  title_fontsize=8, fontsize=7.5)  # fmt: skip

    ax_fs = fig.add_subplot(gs[2], sharex=ax_btc)
    letter = chr(ord("c") + max(len(traded), 1))
    units = ts["fire_sale_units"].to_numpy(dtype=float)
    ax_fs.bar(dates, units, width=24, color="#D55E00", alpha=0.85, label="fire-sale units")
    shade_stress(ax_fs, run)
    ax_fs.set_title(f"({letter}) Fire-sale volume (seized and distressed GPUs sold)")
    ax_fs.set_ylabel("GPUs per month")
    if units.max(initial=0.0) > 0:
        ax_fs.set_ylim(0, units.max() * 1.08)
        ax_fs.yaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    else:
        ax_fs.set_ylim(0, 1)
        ax_fs.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([0, 1]))
        ax_fs.text(0.5, 0.5, "no fire sales in this run", transform=ax_fs.transAxes,
                   ha="center", va="center", color="0.3")  # fmt: skip
    for ax in (ax_btc, ax_rent, *value_axes, ax_fs):
        date_axis(ax, run)
    suptitle(fig, run, "GPU and bitcoin markets")
    return fig


# --------------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------------


def defaults_by_cause(run: RunData) -> pd.DataFrame:
    """Cumulative defaults per month (rows: run months) by cause (columns, CAUSES order + others)."""
    ev = run.events
    d = ev[ev["event"] == "default"]
    causes = list(CAUSES) + sorted(set(d["cause"]) - set(CAUSES))
    counts = pd.DataFrame(0, index=pd.Index(run.months, name="month"), columns=causes)
    if len(d):
        table = d.groupby(["month", "cause"]).size().unstack(fill_value=0)
        counts = counts.add(table.reindex(index=counts.index, columns=causes), fill_value=0)
    return counts.fillna(0).astype(int).cumsum()


def defaults_by_type(run: RunData) -> pd.DataFrame:
    """Cumulative defaults per month by agent type (the timeseries' defaults_<type> counters)."""
    ts = run.timeseries
    return pd.DataFrame(
        {t: ts[f"defaults_{t}"].to_numpy(dtype=int) for t in DEFAULTING_TYPES}, index=run.months
    )


def _stacked_bars(ax, run: RunData, table: pd.DataFrame, colours: dict[str, str]) -> None:
    bottom = np.zeros(len(table))
    dates = run.dates
    for col in table.columns:
        h = table[col].to_numpy(dtype=float)
        if not h.any():
            continue
        ax.bar(dates, h, bottom=bottom, width=24, color=colours.get(col, "0.6"),
               label=col.replace("_", " "), edgecolor="white", linewidth=0.3)  # fmt: skip
        bottom += h
    ax.set_ylim(0, max(bottom.max() * 1.12, 1))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if bottom.any():
        ax.legend(loc="upper left", ncol=1)
    else:
        ax.text(0.5, 0.5, "no defaults in this run", transform=ax.transAxes, ha="center",
                va="center", color="0.3")  # fmt: skip


@styled
def defaults_figure(run: RunData) -> Figure:
    """Cumulative defaults over time as stacked bars: (a) by agent type (lenders: failures), from the
    timeseries counters; (b) by cause, from the default events of events.csv."""
    fig = new_figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2, sharex=True, sharey=True)
    _stacked_bars(ax1, run, defaults_by_type(run), AGENT_TYPE_COLOURS)
    ax1.set_title("(a) Cumulative defaults by agent type")
    _stacked_bars(ax2, run, defaults_by_cause(run), CAUSE_COLOURS)
    ax2.set_title("(b) Cumulative defaults by cause")
    ax1.set_ylabel("agents in default (cumulative count)")
    ax2.tick_params(labelleft=True)
    for ax in (ax1, ax2):
        shade_stress(ax, run)
        date_axis(ax, run)
    suptitle(fig, run, "Defaults")
    return fig


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: Path, dpi: int = 200) -> Path:
    """Save atomically; PDF and PNG metadata carry no timestamp (same run -> same bytes)."""
    fmt = path.suffix.lstrip(".").lower()
    meta = {"CreationDate": None, "ModDate": None} if fmt == "pdf" else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(
        path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta), suffix=path.suffix
    )


def ffmpeg_available() -> bool:
    return matplotlib.animation.writers.is_available("ffmpeg") or shutil.which("ffmpeg") is not None


def plot_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    month=None,
    formats: Iterable[str] = ("png", "pdf"),
    animate: bool = True,
    fps: float = 4,
    dpi: int = 200,
) -> list[Path]:
    """Write every figure of a run folder; returns the written paths.

    Files (in ``out_dir``, default ``run_dir/figures``): ``market``, ``defaults``, ``capital``,
    ``network_<YYYY-MM>`` and ``cascade_tree`` in each of ``formats``, and with ``animate`` the
    network animation ``network.gif`` (plus ``network.mp4`` when ffmpeg is available). ``month`` (a
    model month or 'YYYY-MM') picks the network snapshot; the default is the month with most agents in
    default (the earliest such month), else the last month. ``dpi`` applies to raster formats (the
    animation has its own modest dpi). Each file is written atomically. ``out_dir`` must be new,
    empty or a figures folder abm plot wrote (:func:`abm.io.check_figures_destination`); its
    ``manifest.json`` lists the figures (:func:`abm.io.record_figures`).
    Raises :class:`RunDirError` for a folder that is not a readable run.
    """
    run = load_run(run_dir)
    formats = tuple(f.lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise ValueError(f"formats: {', '.join(bad)} not supported (png, pdf, svg)")
    out = check_figures_destination(
        Path(out_dir) if out_dir is not None else Path(run_dir) / "figures"
    )
    month = run.resolve_month(month)
    label = str(run.timeseries["date"].iloc[run.month_index(month)])
    builders = (
        ("market", lambda: market_figure(run)),
        ("defaults", lambda: defaults_figure(run)),
        ("capital", lambda: capital_figure(run)),
        (f"network_{label}", lambda: network_figure(run, month)),
        ("cascade_tree", lambda: cascade_tree_figure(run)),
    )
    written: list[Path] = []
    for name, build in builders:
        fig = build()
        for k, fmt in enumerate(formats):
            written.append(save_figure(fig, out / f"{name}.{fmt}", dpi=dpi))
            if k == 0:  # the layout is solved once; later formats reuse it (it is dpi-independent)
                fig.set_layout_engine("none")
    if animate:
        targets = [out / "network.gif"]
        if ffmpeg_available():
            targets.append(out / "network.mp4")
        for target in targets:
            write_atomic(
                target, lambda tmp: animate_network(run, tmp, fps=fps), suffix=target.suffix
            )
            written.append(target)
    # the folder's manifest lists what abm plot wrote, so an abm run may later replace the run
    # folder holding it, and a later abm plot may overwrite these files, but nobody else's
    record_figures(out, written, source={"run": str(run_dir)})
    return written
