"""Compute revenue follows demand: take-or-pay, spot utilisation on the demand left, renewals on
today's demand and spot, anchor customers, and the demand identity (abm/phases/operations.py)."""

from __future__ import annotations

import numpy as np

import abm
from abm.invariants import demand_problems
from abm.model import AIComputeCreditModel
from abm.phases import operations


def _model(overrides=None, scenario="calm"):
    return AIComputeCreditModel(abm.load_scenario(scenario, overrides), rng=0)


def _owned(m):
    lots, live = m.lots, m.in_service_lots()
    return operations._table(
        lots.owner.take(live), lots.gen.take(live), lots.units.take(live), m.n, m.G
    )


def test_paid_compute_tracks_demand_in_calm(run_cache):
    # before issue 12 contracts were paid at ~99 % usage whatever demand was: seed 0 month 12 paid
    # 1.475M H100-equivalents against 1.149M demanded (+28 %)
    ts = run_cache("calm", 0).timeseries
    row = ts.iloc[12]
    paid, demand = row["paid_compute_perf_units"], row["ai_demand_perf_units"]
    assert paid <= demand + row["idle_take_or_pay_perf_units"] + 1e-6 * demand
    assert paid < 1.02 * demand


def test_reserved_gpus_earn_take_or_pay_only_when_demand_collapses():
    m = _model()
    m.compute.demand_perf_units = 1.0  # almost no demand this month
    operations.run(m, 0)
    ct = m.contracts
    act = np.flatnonzero(ct.active)
    reserved_rent = float(
        (ct.units[act] * ct.rent_per_gpu_hour[act]).sum() * m.cfg["compute"]["hours_per_month"]
    )
    top = m.cfg["compute"]["take_or_pay_share"]
    assert m.spot_utilisation < 1e-12
    assert m.contract_usage < 1e-5
    # customers pay the take-or-pay share of every reserved GPU-hour, almost all of it idle
    assert np.isclose(m.this_month.idle_take_or_pay_usd, reserved_rent * top, rtol=1e-3)
    # paid = used (the one H100-equivalent demanded) + idle take-or-pay
    assert np.isclose(m.paid_compute_perf_units, m.idle_take_or_pay_perf_units + 1.0, rtol=1e-9)
    assert demand_problems(m) == []


def test_demand_identity_fails_when_more_is_paid_than_demanded_or_obliged():
    m = _model({"run.months": 1})
    m.step()
    assert demand_problems(m) == []
    m.paid_compute_perf_units = (
        m.compute.demand_perf_units + m.idle_take_or_pay_perf_units + 10_000.0
    )
    assert any("paid compute" in p for p in demand_problems(m))


def test_renewal_keeps_the_used_share_at_todays_spot_and_premium():
    m = _model({"shocks.customer_defaults": False})  # no contract cut before the renewal
    c, ct = m.cfg["compute"], m.contracts
    owned = _owned(m)
    act = np.flatnonzero(ct.active)
    reserved = operations._contract_usage(m, act, owned)
    reserved_perf = float((np.minimum(reserved[0], owned) * m.perf[:, None]).sum())
    # demand that uses half of the reserved capacity's maximum
    m.compute.demand_perf_units = 0.5 * c["utilisation_max"] * reserved_perf
    row = act[ct.units[act] % 2 == 0][0]  # an even count: half of it is a whole number
    units_before = int(ct.units[row])
    ct.end_month[row] = 0
    operations._renew_and_cut_contracts(m, 0, owned)
    assert ct.units[row] == np.rint(units_before * 0.5)
    spot = m.compute.rent_spot[ct.gen[row]]
    assert np.isclose(ct.rent_per_gpu_hour[row], spot * (1.0 + c["contract_premium"]))
    assert ct.end_month[row] == c["contract_tenor_months"]


def test_each_neocloud_has_one_anchor_holding_its_share_of_contracts():
    m = _model()
    ct = m.contracts
    lo, hi = m.cfg["neoclouds"]["anchor_customer_share"]
    for i in m.neocloud_idx:
        rows = np.flatnonzero(ct.provider == i)
        anchors = set(ct.anchor[rows][ct.anchor[rows] >= 0].tolist())
        assert anchors == {int(m.anchor_of[i])}
        share = ct.units[rows][ct.anchor[rows] >= 0].sum() / ct.units[rows].sum()
        assert lo - 0.02 <= share <= hi + 0.02


def test_anchor_distress_cuts_its_contracts_at_every_provider_the_same_month():
    # small customers never default; anchors in distress with certainty (stress probability 1
    # reached through a fully idle take-or-pay)
    m = _model(
        {
            "compute.customer_default_prob_per_year": 0.0,
            "compute.customer_default_prob_per_year_stress": 1.0,
            "compute.ig_customer_default_prob_per_year": 0.0,
        }
    )
    ct = m.contracts
    anchor_rows = np.flatnonzero(ct.active & (ct.anchor >= 0))
    small_ig = np.flatnonzero(ct.active & (ct.anchor < 0) & ct.investment_grade)
    # every provider (neoclouds and GPU-owning miners) has an anchor customer
    assert set(ct.provider[anchor_rows].tolist()) == set(ct.provider[ct.active].tolist())
    m.contract_usage = 0.0  # last month's reserved capacity fully idle
    operations._renew_and_cut_contracts(m, 0, _owned(m))
    assert not ct.active[anchor_rows].any()
    assert ct.active[small_ig].all()
    assert m.this_month.anchor_distress == len(set(ct.anchor[anchor_rows].tolist()))


def test_customers_paying_no_idle_capacity_are_not_stressed():
    m = _model(
        {
            "compute.customer_default_prob_per_year": 0.0,
            "compute.customer_default_prob_per_year_stress": 1.0,
            "compute.ig_customer_default_prob_per_year": 0.0,
        }
    )
    ct = m.contracts
    active = np.flatnonzero(ct.active)
    m.contract_usage = m.cfg["compute"]["take_or_pay_share"]  # every reserved hour paid is used
    operations._renew_and_cut_contracts(m, 0, _owned(m))
    assert ct.active[active].all()
    assert m.this_month.contract_cuts == 0


def test_starting_demand_puts_spot_gpus_at_the_reference_utilisation():
    """ODD section 5: the demand base is reserved capacity at utilisation_max plus the rest of the
    in-service supply at utilisation_ref, so spot GPUs start at utilisation_ref however much of the
    fleet is contracted (before issue 12 the base was supply x utilisation_ref: calm seed 0 started
    with spot GPUs idle). Checked for baseline seeds 0-3."""
    for seed in range(4):
        m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=seed)
        c = m.cfg["compute"]
        reserved, supply = operations.reserved_perf_units(m), m.in_service_perf_units()
        assert 0.0 < reserved < supply
        demand = m.compute.demand_perf_units
        assert np.isclose(
            demand, c["utilisation_max"] * reserved + c["utilisation_ref"] * (supply - reserved)
        )
        spot_util = (demand - c["utilisation_max"] * reserved) / (supply - reserved)
        assert np.isclose(spot_util, c["utilisation_ref"])
        assert np.isclose(m.compute.spot_factor, 1.0)  # the spot market starts at balance
        assert np.isclose(m.compute.valued_utilisation(), c["utilisation_ref"])


def test_rents_by_generation_follow_performance_times_the_rent_multiple():
    """A generation's spot rent is perf x rent_per_perf_multiple x the market price per H100-hour."""
    m = _model(scenario="baseline")
    gens = m.cfg["generations"]
    h = m.gen_names.index("H100")
    for k, g in enumerate(m.gen_names):
        expected = gens[g]["perf"] * gens[g]["rent_per_perf_multiple"] * m.compute.rent_spot[h]
        assert np.isclose(m.compute.rent_spot[k], expected), g
    b = m.gen_names.index("B200")
    assert m.compute.rent_spot[b] < gens["B200"]["perf"] * m.compute.rent_spot[h]  # below parity


def test_a_balance_utilisation_outside_its_range_is_reported():
    """The invariant on the balance utilisation fails when it leaves [utilisation_ref, max]."""
    from abm.invariants import price_problems

    m = _model()
    assert price_problems(m) == []
    m.compute.next_balance_utilisation = 0.5 * m.cfg["compute"]["utilisation_ref"]
    assert any("next_balance_utilisation" in p for p in price_problems(m))
