"""Scale (issue 16): the 100,000-borrower scenario, the agent panel in Parquet when it is large, and
the bulk world build at a size where one-row-at-a-time code would be quadratic."""

from __future__ import annotations

import pandas as pd
import pytest

import abm
from abm import invariants, io
from abm.finance.instruments import GPU_TERM
from abm.model import AIComputeCreditModel


def test_huge_network_has_100000_borrowers():
    cfg = abm.load_scenario("huge_network")
    assert cfg["neoclouds"]["count"] + cfg["miners"]["count"] == 100_000
    assert sum(cfg["lenders"]["mix"].values()) == 1_000


@pytest.fixture(scope="module")
def short_run():
    return abm.run("baseline", seed=0, months=3)


def test_agent_panel_is_csv_up_to_the_row_limit(short_run, tmp_path):
    out = io.write_run(short_run, tmp_path / "run")
    assert (out / "agents.csv").exists() and not (out / "agents.parquet").exists()


def test_agent_panel_is_parquet_above_the_row_limit(short_run, tmp_path, monkeypatch):
    """Above AGENTS_CSV_MAX_ROWS agent-months the panel is agents.parquet, with the same table, and
    the folder is still a complete abm run (its manifest lists the file)."""
    monkeypatch.setattr(io, "AGENTS_CSV_MAX_ROWS", len(short_run.agents) - 1)
    out = io.write_run(short_run, tmp_path / "run")
    assert not (out / "agents.csv").exists()
    back = pd.read_parquet(out / "agents.parquet")
    pd.testing.assert_frame_equal(back, short_run.agents)
    assert io.owned_output(out) == "run"


@pytest.mark.slow
def test_a_tenth_of_huge_network_builds_and_steps_with_its_books_consistent():
    """10,000 borrowers of huge_network (a tenth, ~4 s): every neocloud owns GPUs, every GPU term
    loan is secured by lots, and two months keep the invariants (books, indexes, balance sheets)."""
    cfg = abm.load_scenario(
        "huge_network", overrides={"neoclouds.count": 5_000, "miners.count": 5_000}
    )
    m = AIComputeCreditModel(cfg, rng=3)
    owners = set(m.lots.owner.tolist())
    assert all(int(i) in owners for i in m.neocloud_idx)
    pledged = set(m.lots.loan[m.lots.loan >= 0].tolist())
    gpu_loans = set((m.loans.kind == GPU_TERM).nonzero()[0].tolist())
    assert gpu_loans == pledged
    for _ in range(2):
        m.step()
        assert invariants.check(m) == []


def test_streamed_graphml_is_networkx_graphml_byte_for_byte(short_run, tmp_path):
    """abm.network.write_graphml writes what nx.write_graphml writes (None attributes left out),
    on a run's network and on a graph with escapes, empty strings, booleans and NumPy floats."""
    import networkx as nx
    import numpy as np

    from abm.network import _without_none, write_graphml

    odd = nx.MultiDiGraph()
    odd.add_node(1, a=1, b="x&y<z>", c=True, d=None, e=np.float64(0.5), f="")
    odd.add_node(2)
    odd.add_node('q"u', a=2.5)
    odd.add_edge(1, 2, key="loan1", edge_type="loan", w=3, ok=False, n=None)
    odd.add_edge(1, 2, key="loan2")
    odd.add_edge(2, 'q"u', key="lease\t3", mw=1.0, s="a\nb")
    odd.graph.update(month=3, date="2025-04")
    for k, graph in enumerate((short_run.network, odd)):
        ours, theirs = tmp_path / f"ours{k}.graphml", tmp_path / f"theirs{k}.graphml"
        write_graphml(graph, ours)
        nx.write_graphml(_without_none(graph), theirs)
        assert ours.read_bytes() == theirs.read_bytes()
        assert not list(tmp_path.glob("*.body"))


def test_sparse_start_debtrank_equals_the_dense_one(monkeypatch):
    """Above DENSE_DEBTRANK_MAX_AGENTS the start DebtRank runs on the loan list (a 100k x 100k
    matrix would take 76 GB): the same value as the dense computation, up to rounding."""
    from abm import analysis

    for scenario, seed in (("large_network", 0), ("correlated_crash", 1), ("baseline", 2)):
        model = AIComputeCreditModel(abm.load_scenario(scenario), rng=seed)
        dense = analysis.start_debtrank(model)
        monkeypatch.setattr(analysis, "DENSE_DEBTRANK_MAX_AGENTS", 1)
        sparse = analysis.start_debtrank(model)
        monkeypatch.undo()
        assert sparse == pytest.approx(dense, rel=1e-9, abs=1e-12)
        assert dense > 0
