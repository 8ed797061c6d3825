"""Fast paths of operations, covenants, maturities, investment and collection against the slow code
they replaced (kept here as references), bit for bit.

Each comparison could fail: the reference is the code as it was before issue 16's third pass, run
on the same states (hypothesis-drawn sequences, or whole runs side by side), and every figure is
compared with ``==`` / ``np.array_equal``, not within a tolerance.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from twins import assert_same_run, run_tables

import abm
from abm.agents.base import ACTIVE
from abm.finance import site_assets
from abm.finance.site_assets import SiteAssets


# --------------------------------------------------------------------------- site assets
class SiteAssetsByConcatenation:
    """The depreciation schedules as they were: columns re-concatenated at every capitalisation,
    every row tested every month, spent rows dropped once they are more than half."""

    def __init__(self, n_agents: int) -> None:
        self.n = n_agents
        self.owner = np.empty(0, dtype=np.int64)
        self.left_usd = np.empty(0)
        self.per_month_usd = np.empty(0)
        self.start_month = np.empty(0, dtype=np.int64)
        self.is_asic = np.empty(0, dtype=bool)
        self.depreciated_usd = 0.0
        self.written_off_usd = 0.0

    def capitalise(self, idx, amount_usd, life_months, month, asic) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        amount = np.broadcast_to(np.asarray(amount_usd, dtype=float), idx.shape)
        new = amount > 0
        if not new.any():
            return
        idx, amount = idx[new], amount[new]
        life = max(float(life_months), 1e-9)
        self.owner = np.concatenate((self.owner, idx))
        self.left_usd = np.concatenate((self.left_usd, amount))
        self.per_month_usd = np.concatenate((self.per_month_usd, amount / life))
        self.start_month = np.concatenate(
            (self.start_month, np.full(len(idx), month + 1, dtype=np.int64))
        )
        self.is_asic = np.concatenate((self.is_asic, np.full(len(idx), asic)))

    def depreciate(self, m, t: int) -> np.ndarray:
        gone = m.status[self.owner] != ACTIVE
        self.left_usd[gone] = 0.0
        due = np.flatnonzero((self.start_month <= t) & (self.left_usd > 0))
        step = np.minimum(self.per_month_usd[due], self.left_usd[due])
        self.left_usd[due] -= step
        dep = np.bincount(self.owner[due], weights=step, minlength=self.n)
        m.site_value_usd -= dep
        self.depreciated_usd += float(dep.sum())
        spent = self.left_usd <= 0
        if spent.size and spent.mean() > 0.5:
            keep = ~spent
            for name in ("owner", "left_usd", "per_month_usd", "start_month", "is_asic"):
                setattr(self, name, getattr(self, name)[keep])
        return dep

    def retire_asic_share(self, m, idx, share, t: int) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        by_agent = np.zeros(self.n)
        by_agent[idx] = share
        rows = np.flatnonzero(self.is_asic & (by_agent[self.owner] > 0))
        cut = by_agent[self.owner[rows]]
        written = self.left_usd[rows] * cut
        self.left_usd[rows] -= written
        self.per_month_usd[rows] *= 1.0 - cut
        amount = np.bincount(self.owner[rows], weights=written, minlength=self.n)[idx]
        np.subtract.at(m.site_value_usd, idx, amount)
        self.written_off_usd += float(amount.sum())
        return amount

    def book_value(self, t=None) -> np.ndarray:
        return np.bincount(self.owner, weights=self.left_usd, minlength=self.n)


class _Owners:
    """The two attributes of the model the schedules read and write."""

    def __init__(self, n: int) -> None:
        self.status = np.full(n, ACTIVE)
        self.site_value_usd = np.zeros(n)


_step = st.one_of(
    st.tuples(
        st.just("capitalise"),
        st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),
        st.lists(st.sampled_from([0.0, 1.0, 3.3e6, 7.25e7, 1e-3]), min_size=6, max_size=6),
        st.sampled_from([1.0, 2.5, 7.0, 36.0, 0.3]),
        st.booleans(),
    ),
    st.tuples(st.just("depreciate")),
    st.tuples(st.just("fail"), st.integers(0, 5)),
    st.tuples(st.just("revive"), st.integers(0, 5)),
    st.tuples(
        st.just("convert"),
        st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
        st.sampled_from([0.1, 0.5, 1.0, 0.25]),
    ),
    st.tuples(st.just("back_in_time")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_step, min_size=1, max_size=40))
def test_buffered_site_schedules_equal_the_concatenated_ones_bit_for_bit(steps):
    """Any sequence of capitalisations (including months out of order), depreciations, miners
    failing and coming back and conversions gives the same site values, depreciation, write-offs
    and book values, to the last bit, as the schedules re-concatenated every time."""
    fast, slow = SiteAssets(6), SiteAssetsByConcatenation(6)
    mf, ms = _Owners(6), _Owners(6)
    t = 0
    for step in steps:
        kind = step[0]
        if kind == "capitalise":
            _, idx, amounts, life, asic = step
            for sa, m in ((fast, mf), (slow, ms)):
                m.site_value_usd[idx] += amounts[: len(idx)]
                sa.capitalise(np.array(idx), np.array(amounts[: len(idx)]), life, t, asic)
        elif kind == "depreciate":
            dep = [sa.depreciate(m, t) for sa, m in ((fast, mf), (slow, ms))]
            assert np.array_equal(dep[0], dep[1])
            t += 1
        elif kind in ("fail", "revive"):
            for m in (mf, ms):
                m.status[step[1]] = ACTIVE if kind == "revive" else ACTIVE + 1
        elif kind == "convert":
            idx, share = np.array(step[1]), np.full(len(step[1]), step[2])
            out = [sa.retire_asic_share(m, idx, share, t) for sa, m in ((fast, mf), (slow, ms))]
            assert np.array_equal(out[0], out[1])
        else:  # a capitalisation dated before the last one: the schedules are no longer in order
            for sa, m in ((fast, mf), (slow, ms)):
                m.site_value_usd[0] += 5e5
                sa.capitalise(np.array([0]), np.array([5e5]), 4.0, max(t - 3, -1), True)
        assert np.array_equal(mf.site_value_usd, ms.site_value_usd)
        assert np.array_equal(fast.book_value(), slow.book_value())
        assert fast.depreciated_usd == slow.depreciated_usd
        assert fast.written_off_usd == slow.written_off_usd


def test_buffered_site_schedules_give_the_runs_of_the_concatenated_ones(monkeypatch):
    """Whole runs (asic_2022: miners default and their sites are cleared; large_network: ~1,000
    vintages a month, dropped in bulk) are identical with the reference schedules."""
    import abm.model

    for scenario, seed, months in (("asic_2022", 0, None), ("large_network", 0, 40)):
        fast = run_tables(scenario, seed, months)
        monkeypatch.setattr(abm.model, "SiteAssets", SiteAssetsByConcatenation)
        slow = run_tables(scenario, seed, months)
        monkeypatch.setattr(abm.model, "SiteAssets", site_assets.SiteAssets)
        assert_same_run(fast, slow)


# --------------------------------------------------------------------------- contracts in force
def _contracts_in_force_by_mask(m) -> np.ndarray:
    ct = m.contracts
    return np.flatnonzero(ct.active & (m.status.take(ct.provider) == ACTIVE))


def _contract_usage_by_where(m, act, owned):
    """``operations._contract_usage`` as it was (np.where over a division everywhere)."""
    c, ct = m.cfg["compute"], m.contracts
    n, G = m.n, m.G
    cell = ct.gen.take(act) * n + ct.provider.take(act)
    contracted = np.bincount(cell, weights=ct.units.take(act), minlength=G * n).reshape(G, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(contracted > 0, np.minimum(1.0, owned / contracted), 0.0)
    reserved_perf = float((np.minimum(contracted, owned) * m.perf[:, None]).sum())
    if reserved_perf <= 0:
        return contracted, scale, float(c["utilisation_max"])
    usage = min(c["utilisation_max"], m.compute.demand_perf_units / reserved_perf)
    return contracted, scale, float(usage)


def test_contract_rows_tables_and_usage_equal_the_masked_versions_month_by_month():
    """Over a large_network run (contracts cut, renewed and providers defaulting), the contracts in
    force found from the active rows, the contracted table, the in-service scale and the usage
    equal the versions computed over the whole book, each month, for the rows in force and for a
    random half of them (and no rows at all: the empty tables are integer zeros)."""
    from abm.model import AIComputeCreditModel
    from abm.phases import operations

    m = AIComputeCreditModel(abm.load_scenario("large_network"), rng=0, months=36)
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(36):
        act = operations._contracts_in_force(m)
        assert np.array_equal(act, _contracts_in_force_by_mask(m))
        ended += len(m.contracts.active) - len(act)
        live = m.in_service_lots()
        lots = m.lots
        owned = operations._table(
            lots.owner.take(live), lots.gen.take(live), lots.units.take(live), m.n, m.G
        )
        for rows in (act, np.sort(rng.choice(act, len(act) // 2, replace=False)), act[:0]):
            fast, slow = (
                operations._contract_usage(m, rows, owned),
                _contract_usage_by_where(m, rows, owned),
            )
            assert np.array_equal(fast[0], slow[0]) and fast[0].dtype == slow[0].dtype
            assert np.array_equal(fast[1], slow[1]) and fast[1].dtype == slow[1].dtype
            assert fast[2] == slow[2]
            table = operations._contracted_table(m, rows)
            assert operations._usage(m, table, owned) == slow[2]
        m.step()
    assert ended > 0  # contracts ended or lost their provider: the subset differed from the book


# --------------------------------------------------------------------------- whole runs
def _sign_contracts_one_add_per_grade(m, t, idx, g, units):
    """``investment._sign_contracts`` as it was: the whole contract book masked for the live
    contracts, one ``add`` per grade."""
    from abm.phases.investment import TRANCHE_MONTHS

    c = m.cfg["compute"]
    ct = m.contracts
    contracted = np.floor(units * m.contracted_share[idx]).astype(np.int64)
    live = ct.active & (m.status.take(ct.provider) == ACTIVE)
    reserved_perf = float((ct.units[live] * m.perf.take(ct.gen[live])).sum())
    headroom = max(m.compute.demand_perf_units / c["utilisation_max"] - reserved_perf, 0.0)
    asked = float(contracted.sum()) * m.perf[g]
    if asked > headroom:
        contracted = np.floor(contracted * (headroom / asked)).astype(np.int64)
    anchor = np.floor(contracted * m.anchor_share[idx]).astype(np.int64)
    ig = np.floor((contracted - anchor) * m.ig_share[idx]).astype(np.int64)
    rent = m.compute.rent_spot[g] * (1.0 + c["contract_premium"])
    tenor = c["contract_tenor_months"]
    for grade, n_units in ((2, anchor), (1, ig), (0, contracted - anchor - ig)):
        ok = n_units > 0
        if not ok.any():
            continue
        b, u = idx[ok], n_units[ok]
        prepay = c["prepayment_share"] * u * rent * c["hours_per_month"] * tenor
        m.acct.from_sector("compute_customers", b, prepay)
        rows = m.contract_row[b, grade]
        join = rows >= 0
        r = rows[join]
        join[join] = (
            ct.active[r]
            & (ct.gen[r] == g)
            & (t - m.contract_opened[b[join], grade] < TRANCHE_MONTHS)
            & (ct.end_month[r] > t)
        )
        if join.any():
            r, uj = rows[join], u[join]
            units_r = ct.units[r]
            total = units_r + uj
            ct.rent_per_gpu_hour[r] = (ct.rent_per_gpu_hour[r] * units_r + rent * uj) / total
            ct.end_month[r] = np.rint((ct.end_month[r] * units_r + (t + tenor) * uj) / total)
            ct.units[r] = total
            ct.prepaid_usd[r] += prepay[join]
        fresh = ~join
        if fresh.any():
            new = ct.add(
                provider=b[fresh],
                gen=g,
                units=u[fresh],
                rent_per_gpu_hour=rent,
                end_month=t + tenor,
                take_or_pay_share=c["take_or_pay_share"],
                prepaid_usd=prepay[fresh],
                prepay_release_share=c["prepayment_share"],
                investment_grade=grade == 1,
                anchor=m.anchor_of[b[fresh]] if grade == 2 else -1,
            )
            m.contract_row[b[fresh], grade] = new
            m.contract_opened[b[fresh], grade] = t


def _borrowing_base_sweep_all_rows(m, rows, coll, ltv_breach, columns=None, t=None):
    """``covenants._borrowing_base_sweep`` as it was: cure rights and cure amounts for every
    loan tested."""
    from abm.phases.covenants import _by_borrower_then_value, cure_liquidity_floor_usd

    loans = m.loans
    credit = m.cfg["credit"]
    if not credit["equity_cures"]:
        return np.zeros(len(rows), dtype=bool)
    t = m.month if t is None else t
    if columns is None:
        columns = loans.borrower[rows], loans.principal_usd[rows], loans.max_ltv[rows]
    borrower, principal, max_ltv = columns
    allowed = loans.cures_allowed(
        rows, t, credit["cure_max_per_year"], credit["cure_max_per_facility"]
    )
    cure = np.where(
        ltv_breach & allowed & np.isfinite(coll) & (coll > 0),
        principal - credit["cure_target_ltv_share"] * max_ltv * coll,
        0.0,
    )
    cure = np.maximum(cure, 0.0)
    spare = np.maximum(m.acct.cash - cure_liquidity_floor_usd(m), 0.0)
    cand = np.flatnonzero(cure > 0)
    cured = np.zeros(len(rows), dtype=bool)
    if len(cand):
        order = cand[_by_borrower_then_value(borrower[cand], cure[cand], m.n)]
        b_sorted = borrower[order]
        running = np.cumsum(cure[order])
        first = np.empty(len(order), dtype=bool)
        first[0] = True
        np.not_equal(b_sorted[1:], b_sorted[:-1], out=first[1:])
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        shifted = np.empty(len(order) + 1)
        shifted[0] = 0.0
        shifted[1:] = running
        cured[order] = (running - shifted[group_start]) <= spare[b_sorted]
        done = np.flatnonzero(cured)
        if len(done):
            paid, cured_rows = cure[done], rows[done]
            m.acct.transfer(borrower[done], loans.lender[cured_rows], paid)
            loans.principal_usd[cured_rows] -= paid
            loans.record_cures(cured_rows, t)
            m.this_month.cures += len(done)
            m.this_month.cure_usd += float(paid.sum())
    return cured


def test_contracts_signed_in_one_add_and_cures_of_curable_rows_give_the_runs_of_the_old_code(
    monkeypatch,
):
    """Whole runs (large_network, 30 months: ~1,000 neoclouds signing contracts of three grades
    and ~50 equity cures a month; correlated_crash seed 5) are identical with the old contract
    signing and the old borrowing-base sweep swapped back in, and the new code did the work."""
    from abm.phases import covenants, investment

    cures = []
    for scenario, seed, months in (("large_network", 0, 30), ("correlated_crash", 5, None)):
        fast = run_tables(scenario, seed, months)
        cures.append(int(fast[0]["equity_cures"].sum()))
        with monkeypatch.context() as patch:
            patch.setattr(investment, "_sign_contracts", _sign_contracts_one_add_per_grade)
            patch.setattr(covenants, "_borrowing_base_sweep", _borrowing_base_sweep_all_rows)
            slow = run_tables(scenario, seed, months)
        assert_same_run(fast, slow)
    assert cures[0] > 100  # the sweep cured breaches (so a drift in it would show)
