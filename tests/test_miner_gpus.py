"""Miners doubly leveraged (issue 13, item 3): a share of miners own GPU lots on GPU-backed loans
beside their BTC treasury and BTC-backed loans, and those lots go through the neoclouds' code paths
(rent, covenants, seizure, retirement) by owner, not by agent type."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm import invariants
from abm.agents.base import ACTIVE, DEFAULTED
from abm.config import ConfigError
from abm.finance import resolution
from abm.finance.instruments import BTC_LOAN, GPU_TERM
from abm.model import AIComputeCreditModel


def _gpu_miners(m):
    return m.miner_idx[m.gpu_mw[m.miner_idx] > 0]


def test_a_share_of_miners_own_gpus_on_gpu_loans_beside_btc_loans():
    """Baseline: round(0.3 x 10) = 3 miners own GPUs; every lot of theirs is pledged to a GPU term
    loan they owe, their halls came out of their mining MW, and they keep their BTC-backed loans."""
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    owners = _gpu_miners(m)
    assert len(owners) == 3
    loans, lots = m.loans, m.lots
    for i in owners:
        mine = np.flatnonzero(lots.owner == i)
        assert len(mine) > 0
        assert np.all(loans.kind[lots.loan[mine]] == GPU_TERM)
        assert np.all(loans.borrower[lots.loan[mine]] == i)
        assert np.any((loans.borrower == i) & (loans.kind == BTC_LOAN))
        # the GPUs draw no more than the hall (IT kW x PUE)
        assert m.it_kw_of(int(i)) * m.cfg["compute"]["pue"] / 1000.0 <= m.gpu_mw[i]
    others = np.setdiff1d(m.miner_idx, owners)
    assert not np.isin(lots.owner, others).any()
    assert invariants.check(m) == []


def test_no_gpu_owning_miners_when_the_share_is_zero():
    m = AIComputeCreditModel(
        abm.load_scenario("baseline", overrides={"miners.gpu_owner_share": 0.0}), rng=0
    )
    assert len(_gpu_miners(m)) == 0
    assert not np.isin(m.lots.owner, m.miner_idx).any()


def test_a_gpu_miners_lots_earn_rent_from_compute_customers():
    """The miners' lots are in service and earn more rent than their power costs: the same world
    with those lots emptied gives the GPU-owning miners a lower first-month EBITDA (and leaves the
    other miners' EBITDA as it was)."""
    with_gpus = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    without = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    owners = _gpu_miners(with_gpus)
    assert np.all(np.isin(owners, with_gpus.lots.owner[with_gpus.in_service_lots()]))
    without.lots.units[np.isin(without.lots.owner, owners)] = 0
    with_gpus.step()
    without.step()
    assert np.all(with_gpus.ebitda_hist[owners, 0] > without.ebitda_hist[owners, 0])
    others = np.setdiff1d(with_gpus.miner_idx, owners)
    assert np.allclose(with_gpus.ebitda_hist[others, 0], without.ebitda_hist[others, 0], rtol=0.05)


def test_a_defaulting_gpu_miner_has_its_gpus_seized_by_its_gpu_lender():
    """Default resolution is by loan, not by type: the GPU lender seizes the miner's pledged lots,
    the BTC lender sells its BTC, and the hall is gone with the site."""
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    b = int(_gpu_miners(m)[0])
    lots = np.flatnonzero(m.lots.owner == b)
    lenders = m.loans.lender[m.lots.loan[lots]]
    units = m.lots.units[lots].copy()
    resolution.default_borrower(m, b, 0, "payment", [])
    assert m.status[b] == DEFAULTED
    assert m.gpu_mw[b] == 0.0
    for lender, u in zip(lenders, units, strict=True):
        held = m.lots.units[m.lots.owner == lender].sum()
        assert held >= u
    assert m.lots.units[m.lots.owner == b].sum() < units.sum()


def test_a_miner_keeps_contracted_gpus_and_retires_the_rest():
    """Retirement by owner: a GPU-owning miner retires a retiring generation's units beyond those
    its active contracts pay for, as a neocloud does."""
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    owners = _gpu_miners(m)
    retiring = np.ones(m.G, dtype=bool)
    rows, units = m.populations.miners.retire_uneconomic_lots(retiring)
    assert len(rows) > 0
    assert np.all(np.isin(m.lots.owner[rows], owners))
    ct = m.contracts
    for i in owners:
        for g in range(m.G):
            owned = m.lots.units[(m.lots.owner == i) & (m.lots.gen == g)].sum()
            if owned == 0:
                continue
            act = ct.active & (ct.provider == i) & (ct.gen == g) & (m.status[i] == ACTIVE)
            contracted = ct.units[act].sum()
            sel = (m.lots.owner[rows] == i) & (m.lots.gen[rows] == g)
            assert units[sel].sum() == max(owned - contracted, 0)


def test_the_hall_invariant_catches_gpus_beyond_a_miners_hall():
    m = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    b = int(np.setdiff1d(m.miner_idx, _gpu_miners(m))[0])
    m.lots.add(owner=b, gen=1, units=10, acquired_month=0, cost_usd_per_unit=1.0)
    assert invariants.miner_gpu_problems(m)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("miners.gpu_gen_mix", {"Nope": 1.0}, "miners.gpu_gen_mix.Nope"),
        ("miners.gpu_gen_mix", {"Feynman": 1.0}, "miners.gpu_gen_mix.Feynman"),
        ("miners.gpu_owner_share", 1.5, "miners.gpu_owner_share"),
    ],
)
def test_bad_miner_gpu_parameters_name_the_field(key, value, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        abm.load_scenario("baseline", overrides={key: value})
