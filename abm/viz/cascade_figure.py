"""The default genealogy of a run folder: :func:`cascade_tree_figure`.

An arrow A -> B says default A pushed default B (abm.analysis.cascade_tree of events.csv), coloured
by the contagion channel the push travelled through.
"""

from __future__ import annotations

import matplotlib.dates as mdates
import networkx as nx
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from abm.viz.run_data import RunData
from abm.viz.style import (
    AGENT_TYPE_COLOURS,
    AGENT_TYPE_MARKERS,
    CHANNEL_COLOURS,
    DEFAULTING_TYPES,
    new_figure,
    styled,
    suptitle,
)
from abm.vocabulary import CHANNELS


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
