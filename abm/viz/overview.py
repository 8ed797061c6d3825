"""The overview figure of one run: prices against fundamental value, defaults, and the network."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np

from abm.viz.style import new_figure
from abm.vocabulary import AGENT_TYPE_COLOURS as TYPE_COLOURS

STATUS_EDGE = {"active": "white", "defaulted": "#d55e00", "failed": "#d55e00"}


def _main_generations(ts, k: int = 3) -> list[str]:
    gens = [
        c[len("fundamental_value_") :] for c in ts.columns if c.startswith("fundamental_value_")
    ]
    present = [g for g in gens if ts[f"fundamental_value_{g}"].notna().any()]
    return present[1 : 1 + k] if len(present) > k else present


def overview_figure(result, path: str | Path, seed: int = 0):
    """Four panels: secondary prices vs fundamentals, BTC and rents, cumulative defaults, network.

    Returns the matplotlib Figure (also saved to ``path``); drawn outside pyplot, so writing it needs
    no backend and leaves the process's backend alone.
    """
    ts = result.timeseries
    x = np.arange(len(ts))
    fig = new_figure(figsize=(13, 9))
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    for g, colour in zip(_main_generations(ts), ("C0", "C1", "C2"), strict=False):
        ax.plot(x, ts[f"fundamental_value_{g}"], color=colour, label=f"{g} fundamental")
        ax.plot(x, ts[f"mark_{g}"], color=colour, ls=":", label=f"{g} mark")
        ax.scatter(
            x, ts[f"secondary_price_{g}"], color=colour, marker="v", s=18, label=f"{g} cleared"
        )
    ax.set_title("GPU value per unit: fundamental, mark, fire-sale clearing price")
    ax.set_ylabel("USD per GPU")
    ax.legend(fontsize=7, ncol=3)
    ax2 = ax.twinx()
    ax2.bar(x, ts["fire_sale_units"], color="grey", alpha=0.25, width=0.9)
    ax2.set_ylabel("fire-sale units / month")

    ax = axes[0, 1]
    ax.plot(x, ts["btc_price"], color="k", label="BTC price")
    ax.set_ylabel("USD per BTC")
    ax.set_title("BTC price and spot rents")
    ax3 = ax.twinx()
    for g in _main_generations(ts):
        ax3.plot(x, ts[f"rent_spot_{g}"], label=f"{g} spot rent")
    ax3.set_ylabel("USD per GPU-hour")
    ax3.legend(fontsize=7, loc="upper right")
    stress = (ts["regime"] == "stress").to_numpy()
    for i in np.flatnonzero(stress):
        ax.axvspan(i - 0.5, i + 0.5, color="red", alpha=0.08, lw=0)

    ax = axes[1, 0]
    for col, colour in (
        ("defaults_miner", TYPE_COLOURS["miner"]),
        ("defaults_neocloud", TYPE_COLOURS["neocloud"]),
        ("defaults_lender", TYPE_COLOURS["lender"]),
    ):
        ax.step(x, ts[col], where="post", color=colour, label=col.replace("defaults_", ""))
    ax.set_title("Cumulative defaults by agent type")
    ax.set_xlabel("month")
    ax.set_ylabel("defaults")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    _draw_network(ax, result.network, seed)
    ax.set_title(f"Lending network at the end ({ts['date'].iloc[-1]})")
    for a in axes.flat[:3]:
        a.set_xlim(-0.5, len(ts) - 0.5)
    fig.suptitle(f"{result.config.get('name', '')}  seed {result.seed}")
    fig.savefig(path, dpi=110)
    return fig


def _draw_network(ax, graph: nx.MultiDiGraph, seed: int) -> None:
    simple = nx.Graph()
    simple.add_nodes_from(graph.nodes(data=True))
    for u, v, data in graph.edges(data=True):
        if data.get("edge_type") in ("loan", "funding") and data.get("status") != "closed":
            simple.add_edge(u, v)
    pos = nx.spring_layout(simple, seed=seed)
    nodes = list(simple.nodes)
    types = [simple.nodes[n].get("agent_type", "buyer") for n in nodes]
    status = [simple.nodes[n].get("status", "active") for n in nodes]
    debt = np.array([simple.nodes[n].get("debt_usd", 0.0) for n in nodes])
    size = 20 + 200 * np.sqrt(debt / max(debt.max(), 1.0))
    nx.draw_networkx_edges(simple, pos, ax=ax, alpha=0.2, width=0.5)
    nx.draw_networkx_nodes(
        simple,
        pos,
        ax=ax,
        nodelist=nodes,
        node_size=size,
        node_color=[TYPE_COLOURS.get(t, "grey") for t in types],
        edgecolors=[STATUS_EDGE.get(s, "white") for s in status],
        linewidths=[2.0 if s != "active" else 0.5 for s in status],
    )
    for t, colour in TYPE_COLOURS.items():
        ax.scatter([], [], color=colour, label=t)
    ax.scatter([], [], color="white", edgecolors=STATUS_EDGE["defaulted"], label="defaulted/failed")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_axis_off()
