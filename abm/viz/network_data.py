"""What the network drawing needs from a run folder, derived once and cached on the RunData.

Credit relationships and leases from network.graphml, debt by month from agents.csv, seizures and
trades from events.csv, the reconstructed exposure on each credit edge, and the seeded layout (see
:mod:`abm.viz.network_view` for what is exact and what is reconstructed).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from abm.viz.run_data import RunData

CREDIT_EDGES = ("loan", "funding")
SEIZURE_EVENTS = ("seizure", "btc_liquidation")


def agent_types(run: RunData) -> dict[int, str]:
    """Agent id -> agent type, from agents.csv (and the graph for agents missing from it)."""
    a = run.agents
    first = a.drop_duplicates("agent_id")
    types = dict(zip(first["agent_id"].astype(int), first["agent_type"], strict=True))
    for n, d in run.graph.nodes(data=True):
        types.setdefault(int(n), d.get("agent_type", "buyer"))
    return types


def credit_pairs(run: RunData) -> pd.DataFrame:
    """One row per (lender, borrower) credit relationship of the run, from network.graphml:
    ``lender``, ``borrower``, ``edge_type`` (loan / funding), ``contracts`` (number of loans),
    ``share`` (this lender's share of the borrower's contracts), ``principal_end_usd``."""
    if "credit_pairs" in run._cache:
        return run._cache["credit_pairs"]
    rows = {}
    for u, v, data in run.graph.edges(data=True):
        kind = data.get("edge_type")
        if kind not in CREDIT_EDGES or u == v:
            continue
        key = (int(u), int(v))
        row = rows.setdefault(key, {"edge_type": kind, "contracts": 0, "principal_end_usd": 0.0})
        row["contracts"] += 1
        row["principal_end_usd"] += float(data.get("principal_usd", 0.0) or 0.0)
        if kind == "loan":
            row["edge_type"] = "loan"
    df = pd.DataFrame(
        [{"lender": u, "borrower": v, **r} for (u, v), r in sorted(rows.items())],
        columns=["lender", "borrower", "edge_type", "contracts", "principal_end_usd"],
    )
    total = df.groupby("borrower")["contracts"].transform("sum") if len(df) else df["contracts"]
    df["share"] = df["contracts"] / total if len(df) else []
    run._cache["credit_pairs"] = df
    return df


def lease_pairs(run: RunData) -> list[tuple[int, int]]:
    """(tenant, host) pairs of every site lease of the run (sorted, distinct)."""
    pairs = {
        (int(u), int(v))
        for u, v, d in run.graph.edges(data=True)
        if d.get("edge_type") == "lease" and u != v
    }
    return sorted(pairs)


def debt_panel(run: RunData) -> pd.DataFrame:
    """debt_usd, month x agent_id (cached)."""
    if "debt" not in run._cache:
        a = run.agents
        run._cache["debt"] = (
            a.pivot(index="month", columns="agent_id", values="debt_usd")
            .reindex(run.months)
            .fillna(0.0)
            .clip(lower=0.0)
        )
    return run._cache["debt"]


def edge_exposures(run: RunData) -> np.ndarray:
    """Reconstructed exposure (USD) on each credit pair (columns, credit_pairs order) by month
    (rows): the borrower's debt_usd at the month times the lender's share of its contracts."""
    if "exposure" not in run._cache:
        pairs = credit_pairs(run)
        debt = debt_panel(run)
        if len(pairs):
            cols = debt.reindex(columns=pairs["borrower"].to_numpy(), fill_value=0.0).to_numpy()
            run._cache["exposure"] = cols * pairs["share"].to_numpy()[None, :]
        else:
            run._cache["exposure"] = np.zeros((len(run.months), 0))
    return run._cache["exposure"]


def first_seizure_month(run: RunData) -> dict[int, int]:
    """Borrower agent id -> first month a lender seized its GPUs or liquidated its BTC."""
    ev = run.events
    s = ev[ev["event"].isin(SEIZURE_EVENTS) & (ev["counterparty_id"] >= 0)]
    return {int(b): int(m) for b, m in s.groupby("counterparty_id")["month"].min().items()}


def trades_in_month(run: RunData, month: int) -> list[tuple[int, int]]:
    """(seller, buyer) pairs with a secondary-market trade in ``month`` (sorted)."""
    if "trades" not in run._cache:
        ev = run.events
        t = ev[(ev["event"] == "trade") & (ev["counterparty_id"] >= 0)]
        by_month: dict[int, list[tuple[int, int]]] = {}
        for m, u, v in sorted(set(zip(t["month"].astype(int), t["agent_id"].astype(int),
                                      t["counterparty_id"].astype(int), strict=True))):  # fmt: skip
            by_month.setdefault(m, []).append((u, v))
        run._cache["trades"] = by_month
    return run._cache["trades"].get(int(month), [])


def network_layout(run: RunData, seed: int = 0) -> dict[int, np.ndarray]:
    """Node positions (agent id -> (x, y), x in [-1, 1], y in [-1, 1]), computed once per run and seed.

    The largest connected component of the whole-run graph (credit relationships weight 1, leases
    0.6, fire-sale trading relationships seller - buyer 0.3, so buyers sit near the sellers they
    bought from) gets a seeded spring layout in the upper part of the box; agents outside it (e.g.
    lenders without borrowers, buyers that never traded) sit in a row along the bottom, grouped by
    component. Nodes and edges are added in sorted order, so the same run and seed always give the
    same positions.
    """
    key = ("layout", int(seed))
    if key in run._cache:
        return run._cache[key]
    types = agent_types(run)
    g = nx.Graph()
    g.add_nodes_from(sorted(types))
    weights: dict[tuple[int, int], float] = {}

    def add(u, v, w):
        if u == v or u not in types or v not in types:
            return
        k = (min(u, v), max(u, v))
        weights[k] = weights.get(k, 0.0) + w

    for row in credit_pairs(run).itertuples():
        add(int(row.lender), int(row.borrower), 1.0)
    for u, v in lease_pairs(run):
        add(u, v, 0.6)
    ev = run.events
    trades = ev[(ev["event"] == "trade") & (ev["counterparty_id"] >= 0)]
    for u, v in sorted(set(zip(trades["agent_id"].astype(int), trades["counterparty_id"].astype(int),
                               strict=True))):  # fmt: skip
        add(u, v, 0.3)
    for (u, v), w in sorted(weights.items()):
        g.add_edge(u, v, weight=min(w, 3.0))
    comps = sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: (-len(c), c[0]))
    main = comps[0] if comps and len(comps[0]) > 1 else []
    rest = [n for c in comps if c is not main for n in c]
    out: dict[int, np.ndarray] = {}
    if main:
        sub = g.subgraph(main)
        k = 1.6 / np.sqrt(len(main))
        pos = nx.spring_layout(sub, seed=int(seed), k=k, iterations=300, weight="weight")
        xy = np.array([pos[v] for v in main])
        xy = xy - (xy.max(axis=0) + xy.min(axis=0)) / 2.0
        xy = xy / max(np.abs(xy).max(axis=0).max(), 1e-9)
        top, bottom = 1.0, (-0.72 if rest else -1.0)
        xy[:, 1] = bottom + (xy[:, 1] + 1.0) / 2.0 * (top - bottom)
        out.update({v: xy[i] for i, v in enumerate(main)})
    if rest:
        xs = np.linspace(-1.0, 1.0, len(rest)) if len(rest) > 1 else np.zeros(1)
        out.update({v: np.array([xs[i], -1.0]) for i, v in enumerate(rest)})
    out = {v: out[v] for v in sorted(out)}
    run._cache[key] = out
    return out
