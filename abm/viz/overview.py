"""The overview figure of one run (``overview.png``): prices against fundamental value, BTC and
rents, defaults, and the network at the end.

Drawn on every ``abm run``, so it is kept cheap (about 0.3 s): dated month axes, one legend per
panel naming every line, bar and shading (BTC on the right-hand axis, the stress regime), a
sentence instead of an empty axis when a run had no fire sales or no defaults, and the agents
outside the main lending network (buyers, lenders without open loans) on an outer ring of the
network panel, so that they do not squash it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from abm.viz.overview_inputs import drawn_edge
from abm.viz.style import STYLE, date_axis, new_figure, shade_stress, stress_handle, styled
from abm.vocabulary import AGENT_TYPE_COLOURS as TYPE_COLOURS

STATUS_EDGE = {"active": "white", "defaulted": "#d55e00", "failed": "#d55e00"}
FIRE_SALE_BAR = {"color": "0.6", "alpha": 0.35}
NO_EVENT_TEXT = {"ha": "center", "va": "center", "fontsize": 11, "color": "0.35"}
MARGINS = {"left": 0.06, "right": 0.94, "bottom": 0.06, "top": 0.92, "wspace": 0.3, "hspace": 0.25}
RING_GAP = 1.25  # outer ring radius / radius of the lending network's layout
# Titles at the top of their axes (y = 1), where matplotlib's automatic placement puts them
# anyway (no ticks on top); the automatic placement measures every tick label of the axes and
# its twin to find that out (~10 % of the drawing time). The PNG is byte-identical either way
FAST_LAYOUT = {"axes.titley": 1.0}
HEADROOM = 0.4  # share of a time panel's y span left free above the data for its legend


def _main_generations(ts, k: int = 3) -> list[str]:
    gens = [
        c[len("fundamental_value_") :] for c in ts.columns if c.startswith("fundamental_value_")
    ]
    present = [g for g in gens if ts[f"fundamental_value_{g}"].notna().any()]
    return present[1 : 1 + k] if len(present) > k else present


def month_dates(ts: pd.DataFrame) -> pd.DatetimeIndex:
    """The first day of each month of a timeseries (its ``date`` column, 'YYYY-MM')."""
    return pd.DatetimeIndex(pd.to_datetime(ts["date"].astype(str), format="%Y-%m"))


@styled
def overview_figure(result, path: str | Path, seed: int = 0):
    """Four panels: GPU prices vs fundamental value with fire-sale volume, BTC and spot rents
    with the stress regime, cumulative defaults by type, and the lending network at the end.

    ``result`` is an :class:`abm.RunResult`; ``seed`` seeds the network layout. Returns the
    matplotlib Figure (also saved to ``path``). The axes carry labels ``prices``, ``btc_rents``,
    ``defaults`` and ``network`` (``Axes.get_label``). Drawn outside pyplot, so writing it needs
    no backend and leaves the process's backend alone.
    """
    with matplotlib.rc_context(FAST_LAYOUT):
        return _overview(result, path, seed)


@contextlib.contextmanager
def prepared_overview():
    """The overview's empty figure and axes, made before a run's data exist (the figure process
    makes them while the parent still runs the model: ~10 % of the drawing); yields
    ``draw(result, path, seed=0)``, which draws the panels into them and saves, with the same
    bytes as :func:`overview_figure`. ``draw`` is called at most once, inside the block."""
    with matplotlib.rc_context(STYLE), matplotlib.rc_context(FAST_LAYOUT):
        fig, axes = _frame()
        yield lambda result, path, seed=0: _panels(fig, axes, result, path, seed)


def _overview(result, path, seed):
    fig, axes = _frame()
    return _panels(fig, axes, result, path, seed)


def _frame():
    """The figure and its 2 x 2 axes, labelled: nothing here depends on the run."""
    # fixed margins: constrained layout measures every tick label twice and costs ~40 % of the time
    fig = new_figure(figsize=(13, 9), layout=None)
    fig.subplots_adjust(**MARGINS)
    axes = fig.subplots(2, 2)
    for ax, label in zip(axes.flat, ("prices", "btc_rents", "defaults", "network"), strict=True):
        ax.set_label(label)
    return fig, axes


def _panels(fig, axes, result, path, seed):
    ts = result.timeseries
    dates = month_dates(ts)
    run = SimpleNamespace(timeseries=ts, dates=dates)
    gens = _main_generations(ts)
    _prices_panel(axes[0, 0], ts, dates, gens)
    _btc_panel(axes[0, 1], ts, dates, gens, run)
    _defaults_panel(axes[1, 0], ts, dates)
    for ax in axes.flat[:3]:
        date_axis(ax, run)
    ax = axes[1, 1]
    note = _draw_network(ax, result.network, seed)
    ax.set_title(f"Lending network at the end ({ts['date'].iloc[-1]})")
    if note:
        ax.text(0.5, -0.02, note, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    fig.suptitle(
        f"{result.config.get('name', '')}  seed {result.seed}  "
        f"({ts['date'].iloc[0]} to {ts['date'].iloc[-1]})",
        fontsize=11,
        fontweight="bold",
    )
    fig.savefig(path, dpi=110)
    return fig


def _prices_panel(ax, ts, dates, gens) -> None:
    handles = []
    for g, colour in zip(gens, ("C0", "C1", "C2"), strict=False):
        (line,) = ax.plot(dates, ts[f"fundamental_value_{g}"], color=colour)
        line.set_label(f"{g} fundamental")
        (mark,) = ax.plot(dates, ts[f"mark_{g}"], color=colour, ls=":", label=f"{g} mark")
        handles += [line, mark]
        cleared = ts[f"secondary_price_{g}"]
        if cleared.notna().any():
            handles.append(
                ax.scatter(dates, cleared, color=colour, marker="v", s=18, label=f"{g} cleared")
            )
    ax.set_title("GPU value per unit: fundamental, mark, fire-sale clearing price")
    ax.set_ylabel("USD per GPU")
    units = ts["fire_sale_units"].to_numpy(dtype=float)
    if np.nansum(units) > 0:
        twin = ax.twinx()
        twin.bar(dates, units, width=25, **FIRE_SALE_BAR)
        twin.set_ylabel("fire-sale units / month")
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        handles.append(Patch(label="fire-sale units (right axis)", **FIRE_SALE_BAR))
        ax.set_zorder(twin.get_zorder() + 1)  # lines over the bars
        ax.patch.set_visible(False)
        _headroom(twin)
    else:  # a legend line instead of an empty bar axis
        handles.append(Line2D([], [], ls="", label="no fire sales in this run"))
    _headroom(ax)
    ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper center")


def _btc_panel(ax, ts, dates, gens, run) -> None:
    (btc,) = ax.plot(dates, ts["btc_price"], color="k", label="BTC price (left axis)")
    ax.set_ylabel("USD per BTC")
    ax.set_title("BTC price and spot rents")
    rents = ax.twinx()
    rents.grid(False)
    rents.spines["right"].set_visible(True)
    handles = [btc]
    for g, colour in zip(gens, ("C0", "C1", "C2"), strict=False):
        handles += rents.plot(
            dates, ts[f"rent_spot_{g}"], color=colour, label=f"{g} spot rent (right axis)"
        )
    rents.set_ylabel("USD per GPU-hour")
    if shade_stress(ax, run):
        handles.append(stress_handle())
    _headroom(ax)
    _headroom(rents)
    rents.legend(handles=handles, fontsize=7, ncol=2, loc="upper center")


def _headroom(ax, share: float = HEADROOM) -> None:
    """Raise the top of the y axis by ``share`` of its span: a free band for the legend."""
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + share * (high - low))


def _defaults_panel(ax, ts, dates) -> None:
    ax.set_title("Cumulative defaults by agent type")
    columns = (
        ("defaults_miner", TYPE_COLOURS["miner"]),
        ("defaults_neocloud", TYPE_COLOURS["neocloud"]),
        ("defaults_lender", TYPE_COLOURS["lender"]),
    )
    if not any(ts[col].iloc[-1] > 0 for col, _ in columns):
        ax.text(0.5, 0.5, "no defaults in this run", transform=ax.transAxes, **NO_EVENT_TEXT)
        ax.set_yticks([])
        ax.grid(False)
        return
    for col, colour in columns:
        ax.step(dates, ts[col], where="post", color=colour, label=col.replace("defaults_", ""))
    ax.set_ylabel("defaults")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")


def network_positions(graph: nx.Graph, seed: int = 0) -> tuple[dict, list]:
    """Node positions: a seeded spring layout of the largest connected part of the network
    (agents linked by open loans and funding), scaled to radius 1, and every other agent evenly
    on a ring of radius ``RING_GAP`` around it, grouped by connected part (a lender pair sits
    side by side), then type and id. Returns (positions, the agents on the ring)."""
    parts = sorted(nx.connected_components(graph), key=len, reverse=True) if len(graph) else []
    main = parts[0] if parts and len(parts[0]) > 1 else set()

    def order(n):
        return (str(graph.nodes[n].get("agent_type", "")), str(n))

    ring = [n for part in parts if part is not main for n in sorted(part, key=order)]
    pos = nx.spring_layout(graph.subgraph(main), seed=seed) if main else {}
    if pos:
        xy = np.array(list(pos.values()))
        centre = xy.mean(axis=0)
        radius = max(float(np.max(np.linalg.norm(xy - centre, axis=1))), 1e-9)
        pos = {n: (p - centre) / radius for n, p in pos.items()}
    for k, n in enumerate(ring):
        angle = 2 * np.pi * k / len(ring) + np.pi / 2
        pos[n] = np.array([np.cos(angle), np.sin(angle)]) * (RING_GAP if main else 1.0)
    return pos, ring


def _draw_edges(ax, graph: nx.Graph, pos: dict) -> None:
    """The edges as one LineCollection, as ``nx.draw_networkx_edges(graph, pos, alpha=0.2,
    width=0.5)`` draws them (same artist, z-order and view limits, so the same pixels), without
    the pyplot import networkx's drawing functions make (~50 ms of ``abm run``)."""
    edges = list(graph.edges)
    if not edges:
        return
    if any(u == v for u, v in edges):  # a self-loop: networkx draws it as an arrow patch
        nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.2, width=0.5)
        return
    segments = np.asarray([(pos[u], pos[v]) for u, v in edges])
    lines = LineCollection(
        segments, colors="k", linewidths=0.5, antialiaseds=(1,), linestyle="solid", alpha=0.2
    )
    lines.set_zorder(1)  # behind the nodes
    ax.add_collection(lines)
    low, high = segments.min(axis=(0, 1)), segments.max(axis=(0, 1))
    pad = 0.05 * (high - low)  # networkx's 5 % margin around the edges
    ax.update_datalim((low - pad, high + pad))
    ax.autoscale_view()


def _draw_network(ax, graph: nx.MultiDiGraph, seed: int) -> str:
    simple = nx.Graph()
    simple.add_nodes_from(graph.nodes(data=True))
    for u, v, data in graph.edges(data=True):
        if drawn_edge(data):
            simple.add_edge(u, v)
    pos, isolated = network_positions(simple, seed)
    nodes = list(simple.nodes)
    types = [simple.nodes[n].get("agent_type", "buyer") for n in nodes]
    status = [simple.nodes[n].get("status", "active") for n in nodes]
    debt = np.array([simple.nodes[n].get("debt_usd", 0.0) for n in nodes])
    size = 20 + 200 * np.sqrt(debt / max(debt.max(), 1.0))
    _draw_edges(ax, simple, pos)
    if nodes:
        nodes_drawn = ax.scatter(
            *np.asarray([pos[n] for n in nodes]).T,
            s=size,
            c=[TYPE_COLOURS.get(t, "grey") for t in types],
            linewidths=[2.0 if s != "active" else 0.5 for s in status],
            edgecolors=[STATUS_EDGE.get(s, "white") for s in status],
        )
        nodes_drawn.set_zorder(2)  # over the edges
    handles = [
        Line2D([], [], ls="", marker="o", color=colour, label=t)
        for t, colour in TYPE_COLOURS.items()
    ]
    handles.append(
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="white",
            mec=STATUS_EDGE["defaulted"],
            mew=2,
            label="defaulted/failed",
        )  # fmt: skip
    )
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(-0.02, 1.0))
    ax.set_aspect("equal")
    ax.set_axis_off()
    if not isolated:
        return ""
    counts = pd.Series([simple.nodes[n].get("agent_type", "?") for n in isolated]).value_counts()
    listed = ", ".join(f"{n} {t}s" if n > 1 else f"1 {t}" for t, n in counts.items())
    return f"outer ring: agents outside the main lending network ({listed})"
