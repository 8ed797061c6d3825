"""Accounting identities hold every month, in every packaged scenario and under random parameters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abm
from abm import invariants
from abm.agents.base import LENDER
from abm.model import AIComputeCreditModel


def _step_and_check(model, months=None):
    for _ in range(months or model.months):
        model.step()
        problems = invariants.check(model)
        assert problems == [], f"month {model.month}: {problems}"


@pytest.mark.parametrize(
    "scenario", ["baseline", "correlated_crash", "buyer_vacuum", "rubin_shock"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_identities_hold_every_month(scenario, seed):
    model = AIComputeCreditModel(abm.load_scenario(scenario), rng=seed)
    _step_and_check(model)


def test_gpu_units_total_matches_holdings_and_flows(run_cache):
    moved = 0
    for seed in range(4):
        moved += _check_gpu_totals(run_cache("correlated_crash", seed))
    assert moved > 0  # the crash really moved GPUs between balance sheets


def _check_gpu_totals(res) -> int:
    ts, agents = res.timeseries, res.agents
    held = agents.groupby("month")["gpu_units"].sum().to_numpy()
    assert np.array_equal(held, ts["gpu_units_total"].to_numpy())
    initial = res.model.initial_gpu_units
    expected = initial + ts["gpu_units_delivered"] - ts["gpu_units_scrapped"]
    assert np.array_equal(ts["gpu_units_total"].to_numpy(), expected.to_numpy())
    return int(ts["fire_sale_units_cum"].iloc[-1])


def test_each_loan_is_one_lenders_asset_and_one_borrowers_liability(run_cache):
    """The loan book, the exported network and the agent panel agree loan by loan and agent by
    agent. (Summing the open principals by lender and by borrower gives the same total by
    construction, so the check compares the two exports, written by different code.)"""
    res = run_cache("correlated_crash", 1)
    m = res.model
    loans = m.loans
    assert np.all(m.type[loans.lender] == LENDER)
    assert not np.any(loans.lender == loans.borrower)
    # every loan edge of the exported network carries the same amount as the loan book
    owed: dict[int, float] = {}
    for u, v, key, data in res.network.edges(keys=True, data=True):
        if data["edge_type"] in ("loan", "funding"):
            row = int(key[len("loan") :])
            assert data["principal_usd"] == pytest.approx(loans.principal_usd[row])
            assert u == m.agent_ids[loans.lender[row]] and v == m.agent_ids[loans.borrower[row]]
            if data.get("status") != "closed":
                owed[v] = owed.get(v, 0.0) + data["principal_usd"]
    # each agent's debt in agents.csv (last month) is what the network says it owes its lenders
    last = res.agents[res.agents["month"] == res.agents["month"].max()].set_index("agent_id")
    np.testing.assert_allclose(
        [owed.get(int(a), 0.0) for a in last.index], last["debt_usd"], rtol=1e-12, atol=1e-6
    )
    assert sum(owed.values()) > 0 and (last["debt_usd"] == 0).any()  # both cases occur


def test_cash_moves_only_between_balance_sheets_and_named_sectors(run_cache):
    res = run_cache("buyer_vacuum", 2)
    m = res.model
    assert set(m.acct.sector_cash_in) == set(abm.accounts.SECTORS)
    total_in = sum(m.acct.sector_cash_in.values())
    assert m.acct.cash.sum() == pytest.approx(m.initial_cash_usd + total_in, rel=1e-9)


def test_no_negative_holdings_without_default(run_cache):
    res = run_cache("correlated_crash", 2)
    a = res.agents
    assert (a["gpu_units"] >= 0).all()
    assert (a["btc"] >= -1e-9).all()
    borrowers = a[a["agent_type"].isin(["miner", "neocloud"])]
    negative = borrowers[borrowers["cash_usd"] < -1e-6]
    assert (negative["status"] != "active").all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    deflation=st.floats(0.0, 0.6),
    demand_growth=st.floats(-0.3, 1.0),
    p_stress=st.floats(0.0, 0.3),
    neoclouds=st.integers(1, 8),
    miners=st.integers(0, 8),
    impact=st.floats(0.0, 0.2),
)
def test_identities_hold_under_random_parameters(
    seed, deflation, demand_growth, p_stress, neoclouds, miners, impact
):
    cfg = abm.load_scenario(
        "baseline",
        {
            "compute.rent_deflation_per_year": deflation,
            "compute.demand_growth_per_year": demand_growth,
            "shocks.p_calm_to_stress": p_stress,
            "neoclouds.count": neoclouds,
            "miners.count": miners,
            "crypto.price_impact_per_10k_btc": impact,
        },
    )
    model = AIComputeCreditModel(cfg, rng=seed, months=24)
    _step_and_check(model, 24)


def test_agents_are_mesa_agent_sets_matching_the_books():
    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    assert len(model.miners) == model.cfg["miners"]["count"]
    assert len(model.neoclouds) == model.cfg["neoclouds"]["count"]
    assert len(model.lenders) == sum(model.cfg["lenders"]["mix"].values())
    units = model.gpu_units_by_agent()
    for agent in model.neoclouds:
        assert agent.gpu_units == units[agent.idx] > 0
        assert agent.cell.coordinate == agent.idx  # placed on its node of the network space
    # every loan edge connects the lender's cell to the borrower's cell in the Mesa network space
    for lender, borrower in zip(model.loans.lender, model.loans.borrower, strict=True):
        assert (
            model.grid._cells[int(borrower)] in model.grid._cells[int(lender)].connections.values()
        )


def _edges(g):
    return [(u, v, k, dict(d)) for u, v, k, d in g.edges(keys=True, data=True)]


def test_batched_loan_edges_equal_add_edge(monkeypatch):
    """The fast edge writer (straight into networkx's adjacency dicts) builds exactly the graph,
    edge order and Mesa cell links that one ``add_edge`` per loan builds."""
    from abm import network

    def run(fast: bool):
        if not fast:
            monkeypatch.setattr(network, "_CLEAR_CACHE", None)
        model = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=3)
        model.loans_at_start = model.loans.n
        for _ in range(36):
            model.step()
        monkeypatch.undo()
        links = {i: sorted(c.connections) for i, c in model.grid._cells.items()}
        return model, _edges(model.graph), [list(model.graph.pred[v]) for v in model.graph], links

    fast_model, *fast = run(True)
    slow_model, *slow = run(False)
    assert fast_model.loans.n > fast_model.loans_at_start  # new loans went through the writer
    assert fast == slow
    assert fast_model.graph.number_of_edges() == slow_model.graph.number_of_edges()


def test_collateral_of_btc_loans_alone_is_not_rounded():
    """Valuing only BTC loans (no pledged GPU lots) keeps cents: bincount of nothing is int64."""
    from abm.finance.instruments import BTC_LOAN

    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    rows = np.flatnonzero(model.loans.kind == BTC_LOAN)
    assert len(rows) > 0
    value = model.collateral_value_of(rows)
    expected = model.loans.collateral_btc[rows] * model.crypto.price_usd
    assert value.dtype == np.float64
    np.testing.assert_array_equal(value, expected)
    assert np.any(expected != np.floor(expected))  # the test would see a cut to whole dollars


def test_agent_panel_assets_match_the_balance_sheets():
    """agents.csv ``assets_usd`` is each agent's total assets; liabilities (assets - equity) hold at
    least the debt, and a lender's capital ratio equity / assets can be read from the panel."""
    model = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=1)
    for _ in range(model.months):
        model.step()
    from abm.results import _panel_frame

    panel = _panel_frame(model)
    last = panel[panel["month"] == panel["month"].max()].set_index("agent_id")
    sheets = model.balance_sheets()
    ids = list(model.agent_ids)
    np.testing.assert_allclose(last.loc[ids, "assets_usd"], sheets["assets"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(last.loc[ids, "debt_usd"], sheets["debt"], rtol=0, atol=1e-6)
    liabilities = panel["assets_usd"] - panel["equity_usd"]
    assert (liabilities >= panel["debt_usd"] - 1e-6 * np.maximum(panel["assets_usd"], 1.0)).all()
    first = panel[panel["month"] == 0].set_index("agent_id").loc[ids]
    rows = np.flatnonzero(model.type == LENDER)
    ratio = (first["equity_usd"] / first["assets_usd"]).to_numpy()[rows]
    # after one month, each lender's capital ratio is still near its kind's calibrated start ratio
    np.testing.assert_allclose(ratio, model.lk["capital_ratio"][rows], rtol=0, atol=0.02)


def test_collateral_values_keep_cents_without_any_pledged_lot():
    """With every GPU lot released, the full collateral valuation still values BTC loans in float."""
    from abm.finance.instruments import BTC_LOAN

    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    model.lots.loan = -1  # no lot pledged (the cache of pledged lots is rebuilt from the column)
    model._pledged_cache = None
    rows = np.flatnonzero(model.loans.kind == BTC_LOAN)
    value = model.collateral_value()
    assert value.dtype == np.float64
    np.testing.assert_array_equal(
        value[rows], model.loans.collateral_btc[rows] * model.crypto.price_usd
    )


def test_the_inventory_loss_identity_tolerates_rounding_of_large_sums_only():
    """The inventory loss is booked sale by sale; ``book out - proceeds`` is a difference of two
    large sums. At $7e14 of each (a schema-wide property example: GPUs listed at $1e7 in fleets of
    1e8) the two agree to ~0.1 USD, which the identity accepts; a loss off by $1,000 is caught."""
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    lender = int(m.lender_idx[0])
    m.inventory_book_out_usd[lender] = 697261709827444.5
    m.inventory_proceeds_usd[lender] = 697261710000000.0
    m.inventory_loss_usd[
        lender
    ] = -172555.4375  # booked sale by sale: 0.0625 USD off the difference
    m.lender_losses_usd = float(m.written_off_usd.sum() + m.inventory_loss_usd.sum())
    problems = [p for p in invariants.loss_problems(m) if "inventory losses differ" in p]
    assert problems == []
    m.inventory_loss_usd[lender] -= 1000.0
    m.lender_losses_usd -= 1000.0
    assert any("inventory losses differ" in p for p in invariants.loss_problems(m))


def test_a_failed_lenders_equity_is_judged_against_its_rounding():
    """A failed lender whose creditors are still written down must show no equity: 128 USD of
    equity on 9.4e17 USD of assets (a schema-wide example; float rounding of assets - liabilities)
    passes, while equity of 1e-9 of its assets above the residual is caught."""
    from abm.agents.base import FAILED

    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    lender = int(m.lender_idx[0])
    m.status[lender] = FAILED
    m.funding_written_down_usd[lender] = 1e6  # its outside funders are still written down
    assets = 9.4e17  # the example's scale
    m.lender_assets = lambda parts=None: np.full(len(m.lender_idx), assets)
    equity = np.zeros(m.n)
    equity[lender] = 128.0  # rounding of assets - liabilities
    assert not any("keep equity" in p for p in invariants.loss_problems(m, equity))
    equity[lender] = 1e-9 * assets + 2.0
    assert any("keep equity" in p for p in invariants.loss_problems(m, equity))
