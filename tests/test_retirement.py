"""GPUs retire on economics, not at a fixed age; miners' sites and conversions depreciate (issue 12,
items 2-3)."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm import invariants
from abm.agents.base import ACTIVE
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.model import AIComputeCreditModel
from abm.phases import operations

#: declared seed set of the frequency statements below
SEEDS = range(4)


@pytest.mark.parametrize("seed", SEEDS)
def test_old_generations_keep_renting_while_they_cover_their_costs(run_cache, seed):
    """No scrapping cliff: A100s (released 2020-06) still rent in 2026, as they do at $0.80-3.00
    an hour, and no month of a calm run scraps more than a few per cent of the fleet (before issue
    12 every A100 went in 2026-06 and every H100 in 2029-01, ~290k-377k GPUs in one month).
    Measured over calm seeds 0-11: at most 17,364 GPUs in a month."""
    ts = run_cache("calm", seed).timeseries
    in_2026 = ts[ts["date"].str.startswith("2026")]
    assert in_2026["rent_spot_A100"].notna().all()
    assert (in_2026["fundamental_value_A100"] > 0).all()
    scrapped = ts["gpu_units_scrapped"].diff().fillna(ts["gpu_units_scrapped"])
    assert float((scrapped / ts["gpu_units_total"].shift(1).fillna(np.inf)).max()) < 0.05


def _run_with_checks(scenario: str, seed: int):
    model = AIComputeCreditModel(abm.load_scenario(scenario), rng=seed)
    rows = []
    for _ in range(model.months):
        salvage_in = model.acct.sector_cash_in["salvage_buyers"]
        model.step()
        assert invariants.check(model) == []
        rows.append(
            (
                model.this_month.retired_units.copy(),
                model.acct.sector_cash_in["salvage_buyers"] - salvage_in,
                model.compute.retiring().copy(),
            )
        )
    return model, rows


def test_retirement_is_an_owners_sale_to_salvage_buyers():
    """In rubin_shock (rents -40 %/yr) owners retire generations when their rents no longer beat
    the salvage value: the salvage buyers pay exactly salvage x units retired, retired units count
    as scrapped, and of a retiring generation only units under customer contracts stay."""
    model, rows = _run_with_checks("rubin_shock", 0)
    retired = sum(int(r[0].sum()) for r in rows)
    assert retired > 100_000  # measured: 310k GPUs retired in seed 0
    salvage = model.compute.salvage_usd_per_gpu
    for units, paid, retiring in rows:
        assert np.all(units[~retiring] == 0)  # only generations worth no more than salvage
        assert paid == pytest.approx(float((units * salvage).sum()), rel=1e-12, abs=1e-6)
    # what is left of a retiring generation is what active customer contracts still pay for
    left = np.bincount(model.lots.gen, weights=model.lots.units, minlength=model.G)
    assert np.all(left[rows[-1][2]] <= _contracted_units(model)[rows[-1][2]])


def _contracted_units(model) -> np.ndarray:
    """Units under active contracts of active providers, per generation."""
    ct = model.contracts
    act = ct.active & (model.status[ct.provider] == ACTIVE)
    return np.bincount(ct.gen[act], weights=ct.units[act], minlength=model.G)


def test_proceeds_of_pledged_gpus_prepay_their_loan():
    """A retired pledged lot is a collateral disposal: its salvage proceeds go to the loan's
    lender and reduce the principal; free lots' proceeds stay with the owner."""
    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    model.step()
    lots, loans = model.lots, model.loans
    g = model.gen_names.index("A100")
    pledged = np.flatnonzero(
        (lots.gen == g) & (lots.units > 0) & (lots.loan >= 0) & (model.status[lots.owner] == ACTIVE)
    )
    assert len(pledged)
    loan_rows = np.unique(lots.loan[pledged])
    loan_rows = loan_rows[loans.status[loan_rows] == LOAN_ACTIVE]
    principal = loans.principal_usd[loan_rows].copy()
    lenders = np.unique(loans.lender[loan_rows])
    lender_cash = model.acct.cash[lenders].copy()
    before = lots.units.copy()
    model.compute.fundamental_value[g] = model.compute.salvage_usd_per_gpu[g]  # A100 retires now
    scrapped = model.gpu_scrapped
    operations._retire(model, 1)
    retired = before - lots.units[: len(before)]
    assert retired[pledged].sum() > 0
    units_of_loan = np.bincount(lots.loan[pledged], weights=retired[pledged], minlength=loans.n)[
        loan_rows
    ]
    expected = np.minimum(units_of_loan * model.compute.salvage_usd_per_gpu[g], principal)
    np.testing.assert_allclose(principal - loans.principal_usd[loan_rows], expected)
    assert model.acct.cash[lenders].sum() == pytest.approx(lender_cash.sum() + expected.sum())
    assert model.gpu_scrapped - scrapped == int(retired.sum())
    # neoclouds keep the A100s their customers' contracts still pay for, and retire the rest
    owned = np.bincount(
        lots.owner[lots.gen == g], weights=lots.units[lots.gen == g], minlength=model.n
    )
    ct = model.contracts
    act = ct.active & (ct.gen == g) & (model.status[ct.provider] == ACTIVE)
    contracted = np.bincount(ct.provider[act], weights=ct.units[act], minlength=model.n)
    nc = model.neocloud_idx
    np.testing.assert_array_equal(
        owned[nc], np.minimum(contracted[nc], _before_owned(model, before, g)[nc])
    )
    assert invariants.check(model) == []


def _before_owned(model, before, g) -> np.ndarray:
    lots = model.lots
    mine = lots.gen[: len(before)] == g
    return np.bincount(lots.owner[: len(before)][mine], weights=before[mine], minlength=model.n)


def test_sites_depreciate_straight_line_and_the_invariant_catches_a_phantom_value():
    """Miners' site values fall by their depreciation schedules (ASICs 3 years, sites 15, AI
    conversions 12, the 2025 stock half-way through): in calm seed 0 from $8.4B to about $4.9B over
    five years, where they used to grow to $11.6B (about $2.2B with the network hashrate growing
    0.15/yr; at the sourced 0.35/yr miners refresh more ASICs to keep their share of the network,
    and that capex is capitalised). Depreciation is no cash flow (the cash identity
    holds) and the site book always equals what is left to depreciate; a site value that appears
    from nowhere breaks the invariant."""
    model = AIComputeCreditModel(abm.load_scenario("calm"), rng=0)
    start = float(model.site_value_usd[model.miner_idx].sum())
    model.step()
    dep = model.site_assets.depreciated_usd
    assert dep > 0
    assert invariants.check(model) == []
    for _ in range(model.months - 1):
        model.step()
    end = float(model.site_value_usd[model.miner_idx].sum())
    assert end < start  # the book falls: depreciation outpaces refresh capex
    assert invariants.check(model) == []
    i = int(model.miner_idx[model.status[model.miner_idx] == ACTIVE][0])
    model.site_value_usd[i] += 1e6
    assert any("site value" in p for p in invariants.check(model))


def test_a_conversion_books_its_capex_and_writes_off_the_converted_asics_once():
    """A conversion adds its capex to the site value (depreciated over the conversion's life) and
    writes off the converted MW's share of the ASICs: the site value changes by capex - write-off,
    and the schedules still hold the whole book."""
    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    model.step()
    sa = model.site_assets
    i = int(model.miner_idx[0])
    share = 0.25
    before = model.site_value_usd[i]
    asic_left = sa.left_usd[sa.is_asic & (sa.owner == i)].sum()
    capex = 1e7
    model.site_value_usd[i] += capex
    sa.capitalise(np.array([i]), np.array([capex]), 144, 0, asic=False)
    written = sa.retire_asic_share(model, np.array([i]), np.array([share]), 0)
    assert written[0] == pytest.approx(share * asic_left)
    assert model.site_value_usd[i] == pytest.approx(before + capex - share * asic_left)
    assert model.site_value_usd[i] == pytest.approx(sa.book_value(0)[i])
