"""Publication figures of one run folder (what ``abm run --out DIR`` writes).

Everything here reads the files of a run folder only; nothing is re-simulated.

>>> run = load_run("results/correlated_crash-seed2")        # doctest: +SKIP
>>> market_figure(run).savefig("market.pdf")                # doctest: +SKIP
>>> plot_run("results/correlated_crash-seed2")              # doctest: +SKIP

Figures (each builder returns a :class:`matplotlib.figure.Figure`; none uses pyplot's global state):

* :func:`market_figure`: BTC price, spot rents per GPU generation, secondary clearing price against
  fundamental value and mark per traded generation, fire-sale volume.
* :func:`defaults_figure`: cumulative defaults stacked by agent type and by cause.
* :func:`capital_figure`: each lender's equity against its start, and the lender sector's capital,
  realised losses and lending capacity.
* :func:`network_figure` (:mod:`abm.viz.network_view`): the lending network at one month.
* :func:`cascade_tree_figure`: the default genealogy, edges coloured by contagion channel.
* :func:`animate_network` (:mod:`abm.viz.animation`): one network frame per month (GIF / MP4).
* :func:`plot_run`: all of the above as PNG and PDF (written atomically) into ``RUN_DIR/figures``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import matplotlib.animation
import matplotlib.colors
import matplotlib.dates as mdates
import matplotlib.ticker
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from abm.analysis import CHANNELS
from abm.events import CAUSES
from abm.io import write_atomic
from abm.viz.animation import animate_network
from abm.viz.network_view import network_figure, network_layout
from abm.viz.run_data import RunData, RunDirError, default_month, load_run
from abm.viz.style import (
    AGENT_TYPE_COLOURS,
    AGENT_TYPE_MARKERS,
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
    usd_bn,
    usd_short,
)

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
    "cascade_tree_figure",
    "default_month",
    "defaults_figure",
    "ffmpeg_available",
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
# Lender capital
# --------------------------------------------------------------------------------------------------


def lender_equity_index(run: RunData) -> pd.DataFrame:
    """Each lender's equity (at market marks) as % of its equity in the first month (month x id)."""
    a = run.agents
    eq = a[a["agent_type"] == "lender"].pivot(
        index="month", columns="agent_id", values="equity_usd"
    )
    eq = eq.reindex(run.months)
    start = eq.iloc[0].where(eq.iloc[0].abs() > 0)
    return 100.0 * eq / start


def lender_capital_index(run: RunData) -> tuple[pd.DataFrame, bool]:
    """Each lender's capital ratio (equity / assets, agents.csv) as % of its start ratio (the
    ``capital_ratio_start`` node attribute of network.graphml), month x lender id, and True.

    The model's thresholds are multiples of that start ratio (``credit.min_capital_ratio_multiple``,
    ``target_capital_ratio_multiple``), so they are horizontal lines on this scale. Runs written
    before ``assets_usd`` existed fall back to :func:`lender_equity_index` (and False)."""
    a = run.agents
    lend = a[a["agent_type"] == "lender"]
    start = {int(n): d.get("capital_ratio_start") for n, d in run.graph.nodes(data=True)}
    ids = sorted(lend["agent_id"].unique())
    if "assets_usd" not in a or not all(start.get(int(i)) for i in ids):
        return lender_equity_index(run), False
    ratio = lend["equity_usd"] / lend["assets_usd"].where(lend["assets_usd"] > 0)
    piv = (
        lend.assign(ratio=ratio)
        .pivot(index="month", columns="agent_id", values="ratio")
        .reindex(run.months)
    )
    base = pd.Series({i: float(start[int(i)]) for i in piv.columns})
    return 100.0 * piv / base, True


@styled
def capital_figure(run: RunData) -> Figure:
    """Lender capital.

    (a) Each lender's capital ratio at market marks (agents.csv ``equity_usd / assets_usd``) as % of
    its start ratio (:func:`lender_capital_index`), with the model's thresholds, which are multiples
    of that start ratio: the target (``credit.target_capital_ratio_multiple``: below it lending
    appetite falls below 1), the floor (``credit.min_capital_ratio_multiple``: at or below it a
    lender has no room for new loans) and 0 % (negative equity: the lender fails). Failed lenders are drawn in black with an X
    at the month they fail. Runs without ``assets_usd`` show equity as % of first-month equity.
    (b) The lender sector: total equity (timeseries ``lender_capital_usd``), cumulative realised
    losses (``lender_losses_usd``) and lending capacity (``credit_supply_usd``), USD billion.
    """
    idx, ratios = lender_capital_index(run)
    credit = run.config.get("credit", {})
    target = 100.0 * float(credit.get("target_capital_ratio_multiple", 1.0)) if ratios else 100.0
    floor = 100.0 * float(credit["min_capital_ratio_multiple"]) if ratios and credit else None
    what = "capital ratio (equity / assets)" if ratios else "equity"
    unit = "% of start ratio" if ratios else "% of first-month equity"
    dates = run.dates
    status = run.status_panel()
    a = run.agents
    start_eq = (
        a[(a["agent_type"] == "lender") & (a["month"] == run.months[0])]
        .set_index("agent_id")["equity_usd"]
        .reindex(idx.columns)
    )
    order = list(start_eq.sort_values(ascending=False, kind="stable").index)
    n = len(order)
    small_multiples = 0 < n <= 16
    ncols = 4 if n > 9 else 3
    nrows = int(np.ceil(n / ncols)) if small_multiples else 1
    fig = new_figure(figsize=(12, max(4.6, 1.55 * nrows + 1.3)))
    left, right = fig.subfigures(1, 2, width_ratios=[2.2 if small_multiples else 1.3, 1])
    lender_colour = AGENT_TYPE_COLOURS["lender"]
    ylo = min(-10.0, float(np.nanmin(idx.to_numpy())) - 10.0) if n else -10.0
    yhi = max(150.0, float(np.nanmax(idx.to_numpy())) + 10.0) if n else 150.0
    lender_axes = []

    def failed_month(lid):
        col = status[lid] if lid in status else pd.Series(dtype=object)
        hit = col.index[col == "failed"]
        return int(hit[0]) if len(hit) else None

    def draw(ax, lid, label_line: bool):
        y = idx[lid].to_numpy(dtype=float)
        fm = failed_month(lid)
        colour = "k" if fm is not None else lender_colour
        (line,) = ax.plot(dates, y, color=colour, lw=1.5,
                          label=f"lender {lid}" if label_line else None)  # fmt: skip
        line.set_gid(f"lender-equity:{lid}")
        if fm is not None:
            k = run.month_index(fm)
            ax.plot(dates[k], y[k], marker="X", ms=9, color="k", mec="white", ls="none",
                    label="lender fails" if label_line else None)  # fmt: skip
        return fm

    if small_multiples:
        grid = left.add_gridspec(nrows, ncols)
        for k, lid in enumerate(order):
            ax = left.add_subplot(grid[k // ncols, k % ncols],
                                 sharex=lender_axes[0] if lender_axes else None,
                                 sharey=lender_axes[0] if lender_axes else None)  # fmt: skip
            lender_axes.append(ax)
            shade_stress(ax, run)
            ax.axhline(target, color="0.5", lw=0.8, ls=":")
            if floor is not None:
                ax.axhline(floor, color="#E69F00", lw=1.0, ls="-.")
            ax.axhline(0, color="#D55E00", lw=1.1, ls="--")
            fm = draw(ax, lid, False)
            tag = " — FAILED" if fm is not None else ""
            ax.set_title(f"lender {lid} (E₀ {usd_short(start_eq[lid])}){tag}",
                         fontsize=8, fontweight="normal", loc="left")  # fmt: skip
            ax.set_ylim(ylo, yhi)
            ax.tick_params(labelsize=7)
            if k % ncols:
                ax.tick_params(labelleft=False)
            if k // ncols < nrows - 1 and k + ncols < n:
                ax.tick_params(labelbottom=False)
        for ax in lender_axes[::ncols]:
            ax.set_ylabel(unit, fontsize=7.5)
        handles = [
            Line2D([], [], color=lender_colour, lw=1.5, label=f"{what} at market marks"),
            Line2D([], [], color="0.5", lw=0.8, ls=":",
                   label=f"{target:.0f} %: " + ("target (appetite 1)" if ratios
                                               else "first-month equity")),
            *([Line2D([], [], color="#E69F00", lw=1.0, ls="-.",
                      label=f"{floor:.0f} %: floor, no room for new loans")] if floor is not None else []),
            Line2D([], [], color="#D55E00", lw=1.1, ls="--",
                   label="0 %: negative equity ⇒ lender fails"),
            Line2D([], [], color="k", marker="X", mec="white", ms=8, lw=1.5,
                   label="failed lender (X: month of failure)"),
        ]  # fmt: skip
        left.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7.5)
        left.suptitle(f"(a) Each lender's {what} relative to its start", fontsize=10,
                      fontweight="bold")  # fmt: skip
    else:
        ax = left.add_subplot()
        lender_axes.append(ax)
        shade_stress(ax, run)
        if n:
            arr = idx.to_numpy(dtype=float)
            lo, med, hi = np.nanpercentile(arr, [10, 50, 90], axis=1)
            ax.fill_between(dates, lo, hi, color=lender_colour, alpha=0.25,
                            label="10th-90th percentile")  # fmt: skip
            ax.plot(dates, med, color=lender_colour, label="median lender")
            for lid in order:
                if failed_month(lid) is not None:
                    draw(ax, lid, True)
        ax.axhline(target, color="0.5", lw=0.8, ls=":")
        if floor is not None:
            ax.axhline(floor, color="#E69F00", lw=1.0, ls="-.", label=f"{floor:.0f} %: floor")
        ax.axhline(0, color="#D55E00", lw=1.1, ls="--", label="0 %: negative equity, fails")
        ax.set_title(f"(a) {what.capitalize()} of {n} lenders relative to their start")
        ax.set_ylabel(f"{what} at market marks, {unit}")
        ax.legend(loc="best")
    ax2 = right.add_subplot()

    ts = run.timeseries
    shade_stress(ax2, run)
    ax2.plot(dates, usd_bn(ts["lender_capital_usd"]), color=AGENT_TYPE_COLOURS["lender"],
             label="sector equity (capital)")  # fmt: skip
    ax2.plot(dates, usd_bn(ts["lender_losses_usd"]), color="#D55E00",
             label="cumulative realised losses")  # fmt: skip
    ax2.plot(dates, usd_bn(ts["credit_supply_usd"]), color="#0072B2", ls="--",
             label="lending capacity (credit supply)")  # fmt: skip
    ax2.set_title("(b) Lender sector")
    ax2.set_ylabel("USD billion")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="best")
    for ax in (*lender_axes, ax2):
        date_axis(ax, run)
    suptitle(fig, run, "Lender capital")
    return fig


# --------------------------------------------------------------------------------------------------
# Cascade tree
# --------------------------------------------------------------------------------------------------


def cascade_rows(tree: nx.DiGraph) -> dict[int, int]:
    """Vertical order of the genealogy: depth-first from the roots (by month, then event id), so
    that every default sits just below the default that first pushed it."""

    def key(n):
        return (tree.nodes[n].get("month", 0), n)

    row: dict[int, int] = {}
    roots = sorted((n for n in tree if tree.in_degree(n) == 0), key=key)
    stack = list(reversed(roots))
    while stack:
        n = stack.pop()
        if n in row:
            continue
        row[n] = len(row)
        stack.extend(sorted(tree.successors(n), key=key, reverse=True))
    for n in sorted(tree, key=key):  # cycles cannot happen, but never drop a node
        row.setdefault(n, len(row))
    return row


@styled
def cascade_tree_figure(run: RunData) -> Figure:
    """The default genealogy (abm.analysis.cascade_tree of events.csv).

    One marker per default at its month (x), shaped and coloured by agent type and labelled with
    agent id and cause; an arrow A -> B says default A pushed default B, coloured by the contagion
    channel. Rows follow the tree depth-first from its roots (defaults no earlier default pushed).
    A run without defaults gives a figure saying so.
    """
    tree = run.cascade
    n = tree.number_of_nodes()
    height = min(max(3.2, 0.32 * n + 1.8), 24.0)
    fig = new_figure(figsize=(10, height))
    ax = fig.add_subplot()
    if n == 0:
        ax.set_axis_off()
        ax.text(0.5, 0.55, "No defaults in this run", ha="center", va="center", fontsize=14,
                transform=ax.transAxes)  # fmt: skip
        ax.text(0.5, 0.38, "the default genealogy is empty", ha="center", va="center",
                fontsize=9, color="0.4", transform=ax.transAxes)  # fmt: skip
        suptitle(fig, run, "Default genealogy")
        return fig
    row = cascade_rows(tree)
    month_date = dict(zip(run.months, run.dates, strict=True))
    pos = {v: (mdates.date2num(month_date[tree.nodes[v]["month"]]), -row[v]) for v in tree}
    counts = {c: 0 for c in CHANNELS}
    for u, v, data in sorted(tree.edges(data=True)):
        ch = data.get("channel", "")
        counts[ch] = counts.get(ch, 0) + 1
        (x0, y0), (x1, y1) = pos[u], pos[v]
        # elbow: down from the parent, then right into the child (labels sit right of nodes)
        style = "angle,angleA=-90,angleB=180,rad=5" if x1 > x0 else "arc3,rad=0.4"
        arrow = FancyArrowPatch(
            (x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10, lw=1.4,
            color=CHANNEL_COLOURS.get(ch, "0.5"), connectionstyle=style,
            shrinkA=6, shrinkB=6, zorder=2,
        )  # fmt: skip
        arrow.set_gid(f"cascade-edge:{u}:{v}:{ch}")
        ax.add_patch(arrow)
    labels = n <= 80
    for t in AGENT_TYPE_MARKERS:
        nodes = [v for v in tree if tree.nodes[v].get("agent_type") == t]
        if not nodes:
            continue
        xy = np.array([pos[v] for v in nodes])
        roots = np.array([tree.in_degree(v) == 0 for v in nodes])
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=60, marker=AGENT_TYPE_MARKERS[t],
                        c=AGENT_TYPE_COLOURS[t], edgecolors=np.where(roots, "k", "white"),
                        linewidths=np.where(roots, 1.4, 0.6), zorder=3)  # fmt: skip
        sc.set_gid(f"cascade-nodes:{t}")
        if labels:
            for v, (x, y) in zip(nodes, xy, strict=True):
                d = tree.nodes[v]
                ax.annotate(f"{t} {d['agent_id']} \u00b7 {str(d['cause']).replace('_', ' ')}",
                            (x, y), xytext=(7, 0), textcoords="offset points", va="center",
                            fontsize=7.5, color="0.15")  # fmt: skip
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.grid(axis="y", visible=False)
    ax.set_ylim(-n + 0.4, 0.7)
    xs = [p[0] for p in pos.values()]
    span = max(max(xs) - min(xs), 60.0)
    ax.set_xlim(min(xs) - 0.05 * span, max(xs) + (0.3 if labels else 0.05) * span)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("month of default")
    chan_handles = [
        Line2D([], [], color=CHANNEL_COLOURS[c], lw=2, label=f"{c.replace('_', ' ')} ({counts[c]})")
        for c in CHANNELS
    ]
    type_handles = [
        Line2D(
            [],
            [],
            ls="none",
            marker=AGENT_TYPE_MARKERS[t],
            color=AGENT_TYPE_COLOURS[t],
            mec="white",
            ms=8,
            label=t,
        )  # fmt: skip
        for t in DEFAULTING_TYPES
        if any(tree.nodes[v].get("agent_type") == t for v in tree)
    ]
    type_handles.append(
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            mfc="white",
            mec="k",
            mew=1.4,
            ms=8,
            label="root (no earlier default pushed it)",
        )  # fmt: skip
    )
    leg = ax.legend(handles=chan_handles, title="channel of the push (edges)", loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), title_fontsize=8)  # fmt: skip
    ax.add_artist(leg)
    ax.legend(handles=type_handles, title="defaulted agent", loc="upper left",
              bbox_to_anchor=(1.01, 0.55), title_fontsize=8)  # fmt: skip
    depth = nx.dag_longest_path_length(tree) + 1 if n else 0
    roots = sum(1 for v in tree if tree.in_degree(v) == 0)
    ax.set_title(
        f"{n} defaults, {tree.number_of_edges()} pushes, {roots} roots, longest chain {depth}",
        fontweight="normal",
    )
    suptitle(fig, run, "Default genealogy")
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
    animation has its own modest dpi). Each file is written atomically.
    Raises :class:`RunDirError` for a folder that is not a readable run.
    """
    run = load_run(run_dir)
    formats = tuple(f.lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise ValueError(f"formats: {', '.join(bad)} not supported (png, pdf, svg)")
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "figures"
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
    return written
