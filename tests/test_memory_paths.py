"""Memory-saving paths against the code they replaced (outputs must not change).

* the agent panel filled month by month from the slices, releasing them
  (``abm.results._panel_frame(release=True)``), against the panel concatenated from all slices
  (the f60d5e3 code, kept below as ``_panel_by_concatenation``);
* the cascade tree over positional lists (event ids 1, 2, ...) against the tree found through a
  dict of ids (any other numbering of the events).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import abm
import abm.results as results
from abm.agents.base import STATUS_NAMES, TYPE_NAMES
from abm.analysis import cascade_tree
from abm.model import AIComputeCreditModel
from abm.results import PANEL_COLUMNS


def _panel_by_concatenation(model) -> pd.DataFrame:
    """``_panel_frame`` as it was at f60d5e3: each column concatenated from all slices."""
    rows = model.panel_rows
    columns = {}
    for j, name in enumerate(PANEL_COLUMNS):
        col = np.concatenate([p[:, j] for p in rows]) if rows else np.empty(0)
        if name in ("month", "agent_id", "gpu_units"):
            col = col.astype(np.int64)
        elif name in ("agent_type", "status"):
            names = TYPE_NAMES if name == "agent_type" else STATUS_NAMES
            col = np.array(names, dtype=object)[col.astype(int)]
        columns[name] = col
    return pd.DataFrame(columns, copy=False)


@pytest.fixture(scope="module")
def crash_model():
    model = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=2, months=18)
    for _ in range(model.months):
        model.step()
    return model


def test_the_released_panel_equals_the_concatenated_panel(crash_model, monkeypatch):
    """Same values and dtypes; with ``release`` the slices leave the model as they are copied
    (the freed memory handed back every 6 months: forced here with a row limit of 0)."""
    expected = _panel_by_concatenation(crash_model)
    kept = results._panel_frame(crash_model)
    pd.testing.assert_frame_equal(kept, expected)
    assert len(crash_model.panel_rows) == 18  # without release the slices stay
    trims = []
    monkeypatch.setattr(results, "RELEASE_MIN_ROWS", 0)
    monkeypatch.setattr(results, "_return_freed_memory", lambda: trims.append(1))
    slices = list(crash_model.panel_rows)
    try:
        released = results._panel_frame(crash_model, release=True)
        assert crash_model.panel_rows == [] and len(trims) == 18 // 6 + 1
    finally:
        crash_model.panel_rows[:] = slices
    pd.testing.assert_frame_equal(released, expected)
    assert list(released.dtypes) == list(expected.dtypes)
    assert expected["agent_type"].dtype == object and expected["gpu_units"].dtype == np.int64


def test_an_empty_panel_has_the_columns_and_dtypes_it_had():
    class NoMonths:
        panel_rows: list = []

    pd.testing.assert_frame_equal(
        results._panel_frame(NoMonths()), _panel_by_concatenation(NoMonths())
    )


def test_freed_memory_is_handed_back_without_error():
    results._return_freed_memory()  # glibc: malloc_trim; elsewhere nothing, and no exception


def _tree_facts(tree: nx.DiGraph):
    return (
        sorted(tree.nodes(data=True)),
        sorted((u, v, d["channel"]) for u, v, d in tree.edges(data=True)),
    )


@pytest.mark.parametrize(("scenario", "seed"), [("correlated_crash", 5), ("asic_2022", 0)])
def test_the_cascade_tree_is_the_same_whatever_the_row_order(scenario, seed):
    """The model's ids 1, 2, ... take the positional path; the same events in reverse row order
    take the dict path, and give the same tree (nodes, attributes, edges and channels)."""
    events = abm.run(scenario, seed=seed).events
    tree = cascade_tree(events)
    assert tree.number_of_edges() > 0
    reversed_rows = events.iloc[::-1].reset_index(drop=True)
    assert _tree_facts(cascade_tree(reversed_rows)) == _tree_facts(tree)


def test_the_exported_graph_shares_key_dicts_and_attributes_with_the_model_graph():
    """No copy per pair or per edge: each pair's key dict in the export is the model graph's
    (the content equals ``nx.relabel_nodes``: tests/test_fast_paths.py)."""
    result = abm.run("correlated_crash", seed=2, months=12)
    model, out = result.model, result.network
    ids = [int(i) for i in model.agent_ids]
    pairs = [(u, v) for u, nbrs in model.graph._succ.items() for v in nbrs]
    assert len(pairs) > 50
    for u, v in pairs:
        assert out._succ[ids[u]][ids[v]] is model.graph._succ[u][v]
        assert out._pred[ids[v]][ids[u]] is model.graph._succ[u][v]


@pytest.mark.parametrize(
    ("scenario", "seed", "months"),
    [("correlated_crash", 5, None), ("asic_2022", 0, None), ("rubin_shock", 0, None)],
)
def test_the_cascade_counts_equal_the_tree_s(scenario, seed, months, monkeypatch):
    """cascade_metrics counts pushes, roots and depth in one pass over the walk; the same
    numbers as from the DiGraph (``_cascade_counts`` forced to decline), and it declines when
    the defaults are not in ascending id order."""
    import abm.analysis as analysis

    result = abm.run(scenario, seed=seed, months=months)
    lean = analysis.cascade_metrics(result)
    assert analysis._cascade_counts(result.events) is not None
    assert analysis._cascade_counts(result.events.iloc[::-1]) is None
    monkeypatch.setattr(analysis, "_cascade_counts", lambda events: None)
    assert analysis.cascade_metrics(result) == lean
    assert list(analysis.cascade_metrics(result)["pushes_by_channel"]) == list(
        lean["pushes_by_channel"]
    )
    assert lean["cascade_depth"] >= 1 and sum(lean["pushes_by_channel"].values()) > 0
