"""Cascade measurement: the default genealogy and summary metrics of a run.

The event log links every default to the events that pushed it (``parent_event_ids``). Walking those
links back to the nearest earlier defaults gives the cascade tree: an edge A -> B says default A
pushed default B, labelled by the channel the push travelled through (the kinds of events on the way).
"""

from __future__ import annotations

import itertools
from collections import deque

import networkx as nx
import numpy as np
import pandas as pd

from abm.events import parse_parent_ids
from abm.finance.debtrank import debtrank, debtrank_value
from abm.vocabulary import CHANNELS, DEFAULTING_TYPES, EVENT_CHANNEL

__all__ = [
    "CHANNELS",
    "EVENT_CHANNEL",
    "cascade_depth",
    "cascade_metrics",
    "cascade_tree",
    "run_sale_chains",
]


_parents = parse_parent_ids  # the parents of an events.csv row (abm.events.parse_parent_ids)


def _edge_channel(
    path_events: list[str], parent_type: str, child_type: str, child_cause: str
) -> str:
    """The channel of a push from one default to another, from the events between them."""
    for event in path_events:
        if event in EVENT_CHANNEL:
            return EVENT_CHANNEL[event]
    if parent_type == "lender":
        # a failed lender hurts its funders (funding network) or its borrowers (no rollover)
        return "funding" if child_type == "lender" else "credit_crunch"
    if child_type == "lender":
        return "counterparty"  # a lender's losses on its defaulted borrowers
    return "counterparty" if child_cause == "counterparty" else "fire_sale"


def cascade_tree(events: pd.DataFrame) -> nx.DiGraph:
    """The default genealogy as a DiGraph (parent default -> child default, ``channel`` on edges).

    Nodes are the ``event_id`` of default events with attributes month, agent_id, agent_type and
    cause. A default with no earlier default among its ancestors is a root (an exogenous first
    domino).
    """
    rows = _default_rows(events)
    tree = nx.DiGraph()
    for eid, month, agent_id, agent_type, cause, _ in rows:
        tree.add_node(int(eid), month=int(month), agent_id=int(agent_id),
                      agent_type=agent_type, cause=cause)  # fmt: skip
    for parent, child, channel in _pushes(events, rows):
        if not tree.has_edge(parent, child):
            tree.add_edge(parent, child, channel=channel)
    return tree


def _default_rows(events: pd.DataFrame) -> list[tuple]:
    """(event_id, month, agent_id, agent_type, cause, parent_event_ids) of each default, in row
    order."""
    defaults = events[events["event"] == "default"]
    return list(
        zip(
            defaults["event_id"].tolist(),
            defaults["month"].tolist(),
            defaults["agent_id"].tolist(),
            defaults["agent_type"].tolist(),
            defaults["cause"].tolist(),
            defaults["parent_event_ids"].tolist(),
            strict=True,
        )
    )


def _pushes(events: pd.DataFrame, rows: list[tuple]):
    """The genealogy's edges as (parent default id, child default id, channel), child by child in
    the order of ``rows`` (:func:`_default_rows`), each parent once per child: a breadth-first
    walk back along the parent links from each default, stopping at the nearest defaults."""
    # the log's columns as lists, read once: the walk visits each default's ancestors, and a
    # DataFrame look-up per visited event cost most of writing a large run (862k ``.at`` calls at
    # 10,000 borrowers). Event ``i`` sits at position ``i - 1`` when the ids are 1, 2, ... (as
    # the model writes them); otherwise a dict finds the position (the last row of a repeated id).
    ids = events["event_id"].to_numpy()
    kinds = events["event"].tolist()
    types = events["agent_type"].tolist()
    parent_texts = events["parent_event_ids"].tolist()
    count = len(ids)
    position = None
    if not (ids.dtype.kind in "iu" and np.array_equal(ids, np.arange(1, count + 1))):
        position = {i: k for k, i in enumerate(ids.tolist())}
    for eid, _, _, agent_type, cause, parent_text in rows:
        frontier = deque((p, []) for p in _parents(parent_text))
        seen = set()
        while frontier:
            node, path = frontier.popleft()
            if node in seen:
                continue
            if position is None:
                if not 1 <= node <= count:
                    continue
                at = node - 1
            else:
                at = position.get(node)
                if at is None:
                    continue
            seen.add(node)
            kind = kinds[at]
            if kind == "default":
                if node != eid:
                    yield int(node), int(eid), _edge_channel(path, types[at], agent_type, cause)
                continue
            frontier.extend((p, [*path, kind]) for p in _parents(parent_texts[at]))


def _cascade_counts(events: pd.DataFrame) -> tuple[dict, int, int] | None:
    """(pushes by channel, roots, depth) of :func:`cascade_tree` without building it: at
    ``huge_network`` the tree has over a million edges (~0.3 GB as a DiGraph, the run's memory
    peak while cascade.json is written). The depth is found in one pass, so this needs the
    defaults in ascending id order and every push from a lower id to a higher one (as the model
    logs them); otherwise None (then build the tree)."""
    rows = _default_rows(events)
    ids = [int(r[0]) for r in rows]
    if any(a >= b for a, b in itertools.pairwise(ids)):
        return None
    by_channel = {c: 0 for c in CHANNELS}
    chain = dict.fromkeys(ids, 1)  # defaults on the longest chain ending at each default
    pushed = set()
    for parent, child, channel in _pushes(events, rows):
        if parent >= child:
            return None
        by_channel[channel] = by_channel.get(channel, 0) + 1
        pushed.add(child)
        chain[child] = max(chain[child], chain[parent] + 1)
    return by_channel, len(ids) - len(pushed), max(chain.values(), default=0)


#: Columns of :func:`run_sale_chains`.
CHAIN_COLUMNS = (
    "run_event",
    "lender_id",
    "run_month",
    "trade_event",
    "trade_month",
    "remark_event",
    "default_event",
    "defaulter_id",
    "defaulter_type",
    "default_month",
    "cause",
)


def run_sale_chains(events: pd.DataFrame) -> pd.DataFrame:
    """Celsius-style chains in an events frame: a depositor run at a lender -> that lender's forced
    sale of seized lots -> collateral re-marked by the sale -> another borrower's default.

    One row per (run, trade, re-mark, default) with the columns :data:`CHAIN_COLUMNS` (event ids
    and months; ``remark_event`` is the covenant breach or acceleration whose parents name the
    trade among the fire sales that set its marks, ``abm/phases/covenants.py::mark_parents``).
    The links are the stored parents: the ``trade`` names the ``depositor_run`` (the event behind
    its seller's funding need, abm/finance/seized_sale.py) and is sold by the running lender; the
    re-mark event names the trade; the ``default`` names the re-mark event, of a borrower other
    than the running lender. Empty frame (same columns) when there is none."""
    ev = events.set_index("event_id")
    kind = ev["event"]
    parents = {int(i): _parents(p) for i, p in ev["parent_event_ids"].items()}
    runs = set(ev.index[kind == "depositor_run"].tolist())
    agent = ev["agent_id"]
    forced = {
        int(i): r
        for i in ev.index[kind == "trade"].tolist()
        for r in parents[int(i)]
        if r in runs and agent[r] == agent[i]
    }
    remarks = {}
    for i in ev.index[kind.isin(["covenant_breach", "acceleration"])].tolist():
        hit = [p for p in parents[int(i)] if p in forced]
        if hit:
            remarks[int(i)] = hit
    rows = []
    for d in ev.index[kind == "default"].tolist():
        for e in parents[int(d)]:
            for tr in remarks.get(e, []):
                r = forced[tr]
                if agent[d] == agent[r]:
                    continue
                rows.append((r, int(agent[r]), int(ev.at[r, "month"]), tr, int(ev.at[tr, "month"]),
                             e, int(d), int(agent[d]), ev.at[d, "agent_type"],
                             int(ev.at[d, "month"]), ev.at[d, "cause"]))  # fmt: skip
    return pd.DataFrame(rows, columns=list(CHAIN_COLUMNS)).drop_duplicates()


def cascade_depth(tree: nx.DiGraph) -> int:
    """Number of defaults on the longest chain (0 without defaults, 1 when none pushed another)."""
    if tree.number_of_nodes() == 0:
        return 0
    return nx.dag_longest_path_length(tree) + 1


DENSE_DEBTRANK_MAX_AGENTS = 5_000  # above: the n x n exposure matrix would not fit (76 GB at 100k)


def start_debtrank(model, shock: float = 0.2) -> float:
    """DebtRank (single-hit) of the lending network at the start when every borrower loses ``shock``
    of its equity: the extra distress, weighted by total assets, that the network adds.

    Up to ``DENSE_DEBTRANK_MAX_AGENTS`` agents on the dense exposure matrix
    (:func:`abm.finance.debtrank.debtrank`); above, the same propagation over the loans themselves
    (:func:`_sparse_single_hit`), equal up to floating-point rounding (sums in another order)."""
    snap = model.start_snapshot
    n = model.n
    equity = np.maximum(snap["equity_usd"], 1.0)
    h0 = np.where(np.isin(np.arange(n), model.borrower_idx), shock, 0.0)
    weights = snap["assets_usd"] / max(snap["assets_usd"].sum(), 1.0)
    if n > DENSE_DEBTRANK_MAX_AGENTS:
        h = _sparse_single_hit(snap["lender"], snap["borrower"], snap["principal_usd"], equity, h0)
        return float(debtrank_value(h, h0, weights))
    exposures = np.zeros((n, n))
    np.add.at(exposures, (snap["lender"], snap["borrower"]), snap["principal_usd"])
    np.fill_diagonal(exposures, 0.0)
    h = debtrank(exposures, equity, h0, value_weights=weights, variant="single_hit")
    return float(debtrank_value(h, h0, weights))


def _sparse_single_hit(lender, borrower, principal_usd, equity, h0) -> np.ndarray:
    """Single-hit DebtRank on the exposure list: each (lender, borrower) pair's summed principal is
    one entry of the impact matrix ``W = min(1, exposure / lender equity)``; a lender's distress
    grows by the impacts of the borrowers distressed in the previous round, each once."""
    n = len(equity)
    off_diagonal = lender != borrower
    pair = lender[off_diagonal] * n + borrower[off_diagonal]
    pairs, inverse = np.unique(pair, return_inverse=True)
    exposure = np.bincount(inverse, weights=principal_usd[off_diagonal], minlength=len(pairs))
    i, j = pairs // n, pairs % n
    impact = np.minimum(1.0, exposure / equity[i])
    h = h0.copy()
    distressed = h > 0
    inactive = np.zeros(n, dtype=bool)
    for _ in range(n + 1):
        if not distressed.any():
            break
        hit = distressed[j]
        h_new = np.minimum(
            1.0, h + np.bincount(i[hit], weights=impact[hit] * h[j[hit]], minlength=n)
        )
        inactive |= distressed
        distressed = (h_new > 0) & ~inactive
        h = h_new
    return h


def cascade_metrics(result) -> dict:
    """Headline contagion measurements of one run (see README for definitions).

    An undefined measurement is None (``first_default_month`` without defaults,
    ``min_price_to_fundamental`` without a secondary trade, ``debtrank_start`` without the model),
    as JSON has no NaN; ``abm.sweep.metrics.run_metrics`` turns each None into NaN."""
    events, ts, agents = result.events, result.timeseries, result.agents
    counts = _cascade_counts(events)
    if counts is None:
        tree = cascade_tree(events)
        by_channel = {c: 0 for c in CHANNELS}
        for *_, data in tree.edges(data=True):
            by_channel[data["channel"]] = by_channel.get(data["channel"], 0) + 1
        counts = by_channel, sum(1 for n in tree if tree.in_degree(n) == 0), cascade_depth(tree)
    by_channel, roots, depth = counts
    defaults = events[events["event"] == "default"]
    first = agents[agents["month"] == agents["month"].min()]
    agents_by_type = first["agent_type"].value_counts().to_dict()
    by_type = defaults["agent_type"].value_counts().to_dict()
    disc = ts["min_discount"]
    model = getattr(result, "model", None)
    return {
        "defaults": int(len(defaults)),
        "defaults_by_type": {t: int(by_type.get(t, 0)) for t in DEFAULTING_TYPES},
        "default_share_by_type": {
            t: (by_type.get(t, 0) / agents_by_type[t]) if agents_by_type.get(t) else 0.0
            for t in DEFAULTING_TYPES
        },
        "defaults_by_cause": {str(k): int(v) for k, v in defaults["cause"].value_counts().items()},
        "pushes_by_channel": by_channel,
        "cascade_roots": int(roots),
        "cascade_depth": int(depth),
        "first_default_month": int(defaults["month"].min()) if len(defaults) else None,
        "lender_losses_usd": float(ts["lender_losses_usd"].iloc[-1]),
        "lender_unrealised_inventory_loss_usd": float(
            ts["lender_unrealised_inventory_loss_usd"].iloc[-1]
        ),
        "lender_losses_incl_unrealised_usd": float(
            ts["lender_losses_incl_unrealised_usd"].iloc[-1]
        ),
        "min_price_to_fundamental": float(np.nanmin(disc)) if disc.notna().any() else None,
        "debtrank_start": start_debtrank(model) if model is not None else None,
    }
