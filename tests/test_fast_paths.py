"""Fast paths of the monthly loop against the slow code they replaced, over whole runs.

Each test runs the same scenario and seed twice: once as shipped, once with a fast path swapped
back for its slow twin (the code it replaced, kept here), and checks that every output table is
identical, and that the run exercised the fast path (so that the comparison could fail).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from twins import assert_same_run, run_tables

import abm
from abm.finance import estate_sale, resolution

# correlated_crash has estates, hand-overs in kind and lender estates; large_network many of each
RUNS = [("correlated_crash", 1, None), ("correlated_crash", 5, None), ("large_network", 0, 30)]


def _hand_over_unsold_scanning(m, t: int) -> set[int]:
    """The hand-over as it was: every open estate past its sale process, one scan of all lots
    each (``_hand_over`` without ``owned``)."""
    months = m.cfg["credit"]["estate_sale_months"]
    return {
        int(b)
        for b in sorted(m.open_estates)
        if t - m.default_month[b] >= months and estate_sale._hand_over(m, int(b), t)
    }


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_hand_over_from_one_pass_over_the_lots_equals_one_scan_per_estate(
    monkeypatch, scenario, seed, months
):
    handed = []
    fast_hand_over = estate_sale.hand_over_unsold

    def counting(m, t):
        out = fast_hand_over(m, t)
        handed.append(len(out))
        return out

    monkeypatch.setattr(estate_sale, "hand_over_unsold", counting)
    fast = run_tables(scenario, seed, months)
    assert sum(handed) > 0  # estates did hand GPUs over in this run
    monkeypatch.setattr(estate_sale, "hand_over_unsold", _hand_over_unsold_scanning)
    assert_same_run(fast, run_tables(scenario, seed, months))


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_skipping_idle_estates_equals_distributing_every_estate(
    monkeypatch, scenario, seed, months
):
    skipped = []
    fast_filter = resolution._estates_that_act

    def counting(m, t, estates, rows, owners):
        acting = fast_filter(m, t, estates, rows, owners)
        skipped.append(int((~acting).sum()))
        return acting

    monkeypatch.setattr(resolution, "_estates_that_act", counting)
    fast = run_tables(scenario, seed, months)
    assert sum(skipped) > 0  # some estates were skipped as idle
    monkeypatch.setattr(
        resolution,
        "_estates_that_act",
        lambda m, t, estates, rows, owners: np.ones(len(estates), dtype=bool),
    )
    assert_same_run(fast, run_tables(scenario, seed, months))


@pytest.mark.parametrize(("borrowers", "paused"), [(16, False), (2_000, True)])
def test_the_collector_is_paused_while_a_large_world_is_built_and_restored_after(
    monkeypatch, borrowers, paused
):
    """Large worlds are built with the cyclic garbage collector off (abm/model.py), small ones
    with it on; either way it is on again once the model exists."""
    import gc

    from abm import world
    from abm.model import AIComputeCreditModel

    seen = []
    build_leases = world.build_leases

    def recording(m):
        seen.append(gc.isenabled())
        build_leases(m)

    monkeypatch.setattr(world, "build_leases", recording)
    half = borrowers // 2
    cfg = abm.load_scenario(
        "large_network", overrides={"neoclouds.count": half, "miners.count": half}
    )
    assert gc.isenabled()
    AIComputeCreditModel(cfg, rng=0)
    assert seen == [not paused]
    assert gc.isenabled()


def _cascade_tree_by_lookups(events: pd.DataFrame):
    """``analysis.cascade_tree`` as it was: a DataFrame look-up (``.at``) per visited event."""
    import networkx as nx

    from abm.analysis import _edge_channel, _parents

    ev = events.set_index("event_id")
    defaults = ev[ev["event"] == "default"]
    tree = nx.DiGraph()
    for eid, row in defaults.iterrows():
        tree.add_node(int(eid), month=int(row["month"]), agent_id=int(row["agent_id"]),
                      agent_type=row["agent_type"], cause=row["cause"])  # fmt: skip
    for eid, row in defaults.iterrows():
        frontier = [(p, []) for p in _parents(row["parent_event_ids"])]
        seen = set()
        while frontier:
            node, path = frontier.pop(0)
            if node in seen or node not in ev.index:
                continue
            seen.add(node)
            kind = ev.at[node, "event"]
            if kind == "default":
                channel = _edge_channel(
                    path, ev.at[node, "agent_type"], row["agent_type"], row["cause"]
                )
                if node != eid and not tree.has_edge(int(node), int(eid)):
                    tree.add_edge(int(node), int(eid), channel=channel)
                continue
            frontier.extend((p, [*path, kind]) for p in _parents(ev.at[node, "parent_event_ids"]))
    return tree


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_the_cascade_tree_from_dicts_equals_the_tree_from_dataframe_lookups(
    tmp_path, scenario, seed, months
):
    """Same nodes, edges, attributes and insertion order, on the run's event table and on the
    same table read back from events.csv (where single parent ids come back as numbers)."""
    import io

    from abm.analysis import cascade_tree

    events = abm.run(scenario, seed=seed, months=months).events
    buffer = io.StringIO()
    events.to_csv(buffer, index=False)
    buffer.seek(0)
    for table in (events, pd.read_csv(buffer)):
        fast, slow = cascade_tree(table), _cascade_tree_by_lookups(table)
        assert fast.number_of_edges() > 0  # defaults pushed other defaults in these runs
        assert list(fast.nodes(data=True)) == list(slow.nodes(data=True))
        assert list(fast.edges(data=True)) == list(slow.edges(data=True))


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_the_exported_graph_equals_networkx_relabel_with_copies(scenario, seed, months):
    """``export_graph`` (edge attribute dicts shared with the model's graph) has the nodes, node
    attributes, edges, keys, edge attributes and adjacency order (successors and predecessors)
    of ``nx.relabel_nodes(copy=True)``."""
    import networkx as nx

    from abm.network import export_graph

    model = abm.run(scenario, seed=seed, months=months).model
    fast = export_graph(model)
    slow = nx.relabel_nodes(model.graph, {i: int(model.agent_ids[i]) for i in range(model.n)})
    slow.graph["month"], slow.graph["date"] = int(model.month), model.date
    assert fast.number_of_edges() == model.graph.number_of_edges() > 0
    assert fast.graph == slow.graph
    assert list(fast.nodes(data=True)) == list(slow.nodes(data=True))
    assert list(fast.edges(keys=True, data=True)) == list(slow.edges(keys=True, data=True))
    for v in slow:
        assert list(fast.pred[v]) == list(slow.pred[v])
        for u in slow.pred[v]:
            assert list(fast.pred[v][u]) == list(slow.pred[v][u])


def test_the_uncopied_agent_panel_writes_the_bytes_of_a_consolidated_frame(tmp_path):
    """The agent panel keeps its column arrays as they are (one block per column, no copy):
    agents.csv and agents.parquet have the same bytes as from a frame consolidated into blocks."""
    agents = abm.run("correlated_crash", seed=1).agents
    consolidated = pd.DataFrame({k: agents[k].to_numpy().copy() for k in agents.columns})
    assert agents._mgr.nblocks > consolidated._mgr.nblocks  # the layouts differ
    for suffix in ("csv", "parquet"):
        paths = []
        for name, frame in (("uncopied", agents), ("consolidated", consolidated)):
            path = tmp_path / f"{name}.{suffix}"
            if suffix == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            paths.append(path)
        assert paths[0].read_bytes() == paths[1].read_bytes()
