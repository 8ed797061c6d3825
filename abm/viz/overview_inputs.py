"""What the overview figure reads of a run, to hand to the figure process
(:mod:`abm.viz.overview_process`) without importing matplotlib in the process that runs the model.

Kept apart from :mod:`abm.viz.overview` (which imports matplotlib) and used by it for the rule of
which edges the network panel draws, so that the rule and the hand-over cannot drift apart.
"""

from __future__ import annotations

from types import SimpleNamespace

DRAWN_NODE_KEYS = ("agent_type", "status", "debt_usd")  # what abm.viz.overview reads of a node


def drawn_edge(data: dict) -> bool:
    """Whether the overview's network panel draws an edge with attributes ``data``: open loans
    and funding lines."""
    return data.get("edge_type") in ("loan", "funding") and data.get("status") != "closed"


def overview_inputs(result) -> SimpleNamespace:
    """Exactly what :func:`abm.viz.overview.overview_figure` reads of ``result``, small enough to
    pickle quickly at any scale: ``timeseries``, ``config`` (its ``name``), ``seed``, and a
    ``network`` with every node (same order, with the attributes the panel reads:
    ``DRAWN_NODE_KEYS``) but only the edges the panel draws (:func:`drawn_edge`, same order),
    each with its ``edge_type`` and ``status``."""
    import networkx as nx

    graph = result.network
    network = nx.MultiDiGraph()
    network.add_nodes_from(
        (node, {key: data[key] for key in DRAWN_NODE_KEYS if key in data})
        for node, data in graph.nodes(data=True)
    )
    network.add_edges_from(
        (u, v, {"edge_type": data.get("edge_type"), "status": data.get("status")})
        for u, v, data in graph.edges(data=True)
        if drawn_edge(data)
    )
    return SimpleNamespace(
        timeseries=result.timeseries,
        network=network,
        config={"name": result.config.get("name", "")},
        seed=result.seed,
    )
