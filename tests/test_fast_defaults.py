"""The default path's fast code against the code it replaced (f60d5e3), over whole runs.

``default_borrower`` (seizure on Python lists with the lots' columns written once, the pledged
lots found once, the default's later events logged in one ``add_many``), the estates' payments in
Python floats and ``LotBook.pledged_lots`` from flat lists: each test runs a scenario once as
shipped and once with the slow twin swapped in (kept here as it was), checks that every output
table is identical, and that the run used the path in question (so that the comparison could fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from twins import assert_same_run, run_tables

import abm
from abm.agents.base import ACTIVE, DEFAULTED, MINER, TYPE_NAMES
from abm.finance import book, resolution
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import (
    BTC_LOAN,
    INTERBANK,
    REPAID,
    SENIOR_SECURED,
    SENIOR_UNSECURED,
    LoanBook,
)
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.losses import book_seizures
from abm.markets.btc_sales import sell_btc
from abm.model import AIComputeCreditModel

# seizures, split lots, terminated leases (correlated_crash 5, rubin_shock), BTC collateral sold
# on default (correlated_crash 1, asic_2022) and hundreds of defaults (large_network)
RUNS = [
    ("correlated_crash", 1, None),
    ("correlated_crash", 5, None),
    ("asic_2022", 0, None),
    ("rubin_shock", 0, None),
    ("large_network", 0, 30),
]


def _pledged_lots_as_it_was(lots, loans):
    """``LotBook.pledged_lots`` at f60d5e3: a list of (position, lot row) pairs."""
    loans = np.asarray(loans, dtype=np.int64)
    index = lots._index
    pairs = [(k, row) for k, ln in enumerate(loans.tolist()) for row in index.get(ln, ())]
    if not pairs:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pos, rows = np.array(pairs, dtype=np.int64).T
    keep = lots.loan[rows] == loans[pos]
    return pos[keep], rows[keep]


def _seize_lots_as_it_was(self, rows, lots, marks, mark_row, t):
    """``LoanBook.seize_lots`` at f60d5e3 (``self``: the loan book)."""
    split = {"owner": [], "gen": [], "units": [], "acquired_month": [], "cost_usd_per_unit": []}
    seized = ([], [], [], [], [], [])
    # every loan's pledged lots with units, their marks and units, read once before the loop
    # (a lot is pledged to one loan: seizing one loan's lots leaves the others' as they were)
    rows = np.asarray(rows, dtype=np.int64)
    at, lot_rows_all = _pledged_lots_as_it_was(lots, rows)
    live = lots.units[lot_rows_all] > 0
    at, lot_rows_all = at[live], lot_rows_all[live]
    if len(at) == 0:
        return seized
    lot_marks = marks[np.asarray(mark_row)[self.lender[rows[at]]], lots.gen[lot_rows_all]]
    lot_rows_all, lot_marks = lot_rows_all.tolist(), lot_marks.tolist()
    lot_units = lots.units[lot_rows_all].tolist()
    first = np.searchsorted(at, np.arange(len(rows)), side="left").tolist()
    last = np.searchsorted(at, np.arange(len(rows)), side="right").tolist()
    for loan, lo, hi in zip(rows.tolist(), first, last, strict=True):
        if lo == hi:
            continue
        lender = int(self.lender[loan])
        claim = float(self.principal_usd[loan])
        for row, mark, units in zip(
            lot_rows_all[lo:hi], lot_marks[lo:hi], lot_units[lo:hi], strict=True
        ):
            if claim <= 1e-6:
                break
            # (a subnormal mark makes claim / mark infinite: then every unit is taken)
            ratio = claim / mark if mark > 0 else math.inf
            take = math.ceil(ratio) if ratio < units else units
            if take <= 0:
                continue
            if take < units:  # split the lot: the rest stays in the estate
                for column, values in split.items():
                    values.append(units - take if column == "units" else getattr(lots, column)[row])
                lots.units[row] = take
            lots.owner[row] = lender
            lots.loan[row] = -1
            # carried at the value the claim was reduced by
            lots.book_value_usd_per_unit[row] = mark
            lots.acquired_month[row] = t
            value = take * mark
            for column, x in zip(
                seized, (row, lender, int(self.borrower[loan]), value, take, mark), strict=True
            ):
                column.append(x)
            claim -= min(claim, value)
        self.principal_usd[loan] = max(claim, 0.0)
    if split["units"]:
        lots.add(**{column: np.array(values) for column, values in split.items()})
    return seized


def _default_borrower_as_it_was(m, b, t, cause, parents):
    """``resolution.default_borrower`` at f60d5e3, with the code it called then."""
    loans, lots = m.loans, m.lots
    if m.status[b] != ACTIVE:
        return int(m.default_event[b])
    mine = loans.rows_of_borrower(b)
    mine = mine[(loans.status[mine] == LOAN_ACTIVE) & (loans.kind[mine] != INTERBANK)]
    debt = float(loans.principal_usd[mine].sum())
    eid = m.events.add(t, "default", b, cause=cause, parents=parents, amount=debt)
    m.default_event[b] = eid
    m.default_month[b] = t
    m.open_estates.add(b)
    m.status[b] = DEFAULTED
    m.defaults[TYPE_NAMES[m.type[b]]] += 1
    loans.capitalise_arrears(mine)  # accrued arrears become part of the claim
    btc_loan = loans.kind[mine] == BTC_LOAN
    btc_rows = mine[btc_loan & (loans.collateral_btc[mine] > 0)]
    _seize_as_it_was(m, t, mine[~btc_loan], eid)
    if len(btc_rows):
        _sell_btc_as_it_was(m, t, btc_rows, eid)
    loans.status[mine] = np.where(loans.principal_usd[mine] > 1e-6, LOAN_DEFAULTED, REPAID)
    loans.seniority[mine] = np.where(
        loans.seniority[mine] == SENIOR_SECURED, SENIOR_UNSECURED, loans.seniority[mine]
    )
    lots.loan[np.flatnonzero(np.isin(lots.loan, mine))] = -1  # excess collateral joins the estate
    _end_contracts_as_it_was(m, b, t, eid)
    return eid


def _seize_as_it_was(m, t, loan_rows, eid):
    """``resolution._seize_lots`` at f60d5e3."""
    seized_rows, lenders, borrowers, amounts, units_taken, prices = _seize_lots_as_it_was(
        m.loans, loan_rows, m.lots, m.mark_table(), m.lender_mark_row, t
    )
    if seized_rows:
        book_seizures(m, lenders, amounts)  # carried at the value the claims fell by
        event_ids = m.events.add_many(
            t,
            "seizure",
            lenders,
            borrowers,
            [[eid]] * len(seized_rows),
            amounts,
            units=units_taken,
            prices=prices,
        )
        m.lot_origin_event.update(zip(seized_rows, event_ids, strict=True))


def _sell_btc_as_it_was(m, t, rows, eid):
    loans = m.loans
    btc = loans.collateral_btc[rows].copy()
    borrower = int(loans.borrower[rows[0]])
    # the collateral is sold for the borrower's estate, proceeds go first to the secured lender
    m.acct.btc[borrower] += btc.sum()
    loans.collateral_btc[rows] = 0.0
    price = sell_btc(m.crypto, m.acct, np.array([borrower]), np.array([btc.sum()]))
    for k, loan in enumerate(rows):
        proceeds = btc[k] * price
        pay = min(proceeds, float(loans.principal_usd[loan]))
        m.acct.transfer(borrower, int(loans.lender[loan]), pay)
        loans.principal_usd[loan] -= pay
        ev = m.events.add(
            t,
            "btc_liquidation",
            int(loans.lender[loan]),
            counterparty=borrower,
            parents=[eid],
            amount=proceeds,
            price=price,
        )
        m.btc_sale_events.append(ev)


def _end_contracts_as_it_was(m, b, t, eid):
    ct, ls = m.contracts, m.leases
    provided = ct.rows_of_provider(b)  # book indexes, not a scan of every contract and lease
    ct.active[provided] = False
    ct.prepaid_usd[provided] = 0.0  # customers lose prepayments
    as_tenant = ls.rows_of_tenant(b)
    as_tenant = as_tenant[ls.active[as_tenant]]
    if not m.cfg["channels"]["counterparty"]:
        ls.tenant[as_tenant] = -1  # channel off: an outside tenant takes the lease over and pays
        as_tenant = as_tenant[:0]
    for row in as_tenant:
        host = int(ls.host[row])
        ls.active[row] = False
        if host >= 0 and m.status[host] == ACTIVE:
            lost = float(ls.mw[row] * 1000.0 * ls.rate_usd_per_kw_month[row])
            m.lost_revenue_month[host] = t
            m.lost_revenue_event[host] = m.events.add(
                t,
                "lease_terminated",
                host,
                cause="counterparty",
                counterparty=b,
                parents=[eid],
                amount=lost,
            )
    if m.type[b] == MINER:
        # the site (and its leases) is sold to an outside infrastructure buyer
        price = m.cfg["miners"]["site_recovery_share"] * m.site_value_usd[b]
        m.acct.from_sector("infrastructure_buyers", b, price)
        m.site_value_usd[b] = 0.0
        m.hashrate_eh[b] = m.mining_mw[b] = m.hosting_mw[b] = m.gpu_mw[b] = 0.0
        ls.host = np.where(ls.host == b, -1, ls.host)
        m.conversions.active = np.where(m.conversions.miner == b, False, m.conversions.active)


def _pay_lenders_as_it_was(cash, b, lenders, pay):
    """The estate's payments as ``acct.transfer(np.full(len(lenders), b), lenders, pay)`` did
    them at f60d5e3."""
    np.subtract.at(cash, np.full(len(lenders), b), pay)
    np.add.at(cash, lenders, pay)


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_the_default_path_equals_the_code_it_replaced(monkeypatch, scenario, seed, months):
    used = {"defaults": 0, "seized": 0, "payments": 0}
    fast_default, fast_seize = resolution.default_borrower, LoanBook.seize_lots
    fast_pay = resolution._pay_lenders

    def counting_default(m, *args):
        used["defaults"] += 1
        return fast_default(m, *args)

    def counting_seize(self, *args):
        seized = fast_seize(self, *args)
        used["seized"] += len(seized[0])
        return seized

    def counting_pay(cash, b, lenders, pay):
        used["payments"] += len(pay)
        fast_pay(cash, b, lenders, pay)

    monkeypatch.setattr(resolution, "default_borrower", counting_default)
    monkeypatch.setattr(LoanBook, "seize_lots", counting_seize)
    monkeypatch.setattr(resolution, "_pay_lenders", counting_pay)
    fast = run_tables(scenario, seed, months)
    assert used["defaults"] > 0 and used["seized"] > 0 and used["payments"] > 0
    monkeypatch.setattr(resolution, "default_borrower", _default_borrower_as_it_was)
    monkeypatch.setattr(resolution, "_pay_lenders", _pay_lenders_as_it_was)
    assert_same_run(fast, run_tables(scenario, seed, months))


def test_btc_collateral_is_sold_on_default_in_the_compared_runs(monkeypatch):
    """The runs above include defaults with BTC-backed loans (the ``btc_loan.any()`` branch of
    ``default_borrower``), so that branch was compared too."""
    sold = []
    fast = resolution._sell_btc_collateral
    monkeypatch.setattr(
        resolution,
        "_sell_btc_collateral",
        lambda m, t, rows, *a: sold.append(len(rows)) or fast(m, t, rows, *a),
    )
    for scenario, seed, months in RUNS[:3]:
        abm.run(scenario, seed=seed, months=months)
    assert sum(sold) > 0


@pytest.mark.parametrize(("scenario", "seed", "months"), [("large_network", 0, 24)])
def test_pledged_lots_from_flat_lists_equals_the_pairs(scenario, seed, months):
    """Every borrower's loans (and all loans at once) give the same positions and lot rows, in the
    same order, after a run has seized, split and released lots."""
    cfg = abm.load_scenario(scenario, overrides={"run.months": months})
    m = AIComputeCreditModel(cfg, rng=seed)
    for _ in range(m.months):
        m.step()
    lots, loans = m.lots, m.loans
    released = sum(
        int(lots.loan[row] != loan) for loan, rows in lots._index.items() for row in rows
    )
    assert released > 0  # some indexed lots are no longer pledged (the filter is exercised)
    groups = [loans.rows_of_borrower(b) for b in np.unique(loans.borrower).tolist()]
    for rows in [*groups, np.arange(loans.n)]:
        fast, slow = lots.pledged_lots(rows), _pledged_lots_as_it_was(lots, rows)
        for a, z in zip(fast, slow, strict=True):
            np.testing.assert_array_equal(a, z)


def _index_rows_as_it_was(index, keys, rows):
    """``book._index_rows`` at f60d5e3 (``setdefault`` per row)."""
    for row, key in zip(rows.tolist(), np.broadcast_to(keys, rows.shape).tolist(), strict=True):
        if key >= 0:
            index.setdefault(key, []).append(row)


@pytest.mark.parametrize("seed", range(5))
def test_index_rows_equals_setdefault_per_row(seed):
    """The same keys, in the same insertion order, with the same row lists, after batches of
    array keys (repeated, new and -1) and scalar keys added to a non-empty index."""
    rng = np.random.default_rng(seed)
    fast, slow = {}, {}
    start = 0
    for _ in range(6):
        count = int(rng.integers(1, 50))
        rows = np.arange(start, start + count)
        keys = rng.integers(-1, 30, count) if rng.random() < 0.7 else int(rng.integers(-1, 30))
        book._index_rows(fast, keys, rows)
        _index_rows_as_it_was(slow, keys, rows)
        start += count
    assert list(fast.items()) == list(slow.items())
    assert sum(len(v) for v in fast.values()) > 0


def _cures_allowed_as_it_was(loans, rows, t, per_year, per_life):
    """``LoanBook.cures_allowed`` at f60d5e3: every facility's whole cure history read."""
    recent = np.zeros(len(rows), dtype=np.int64)
    for k in range(4):
        recent += getattr(loans, f"cure_month_{k}")[rows] > t - 12
    return (recent < per_year) & (loans.cures_total[rows] < per_life)


def test_cures_allowed_from_the_recently_cured_equals_reading_every_history():
    """After 30 months of large_network (hundreds of facilities cured, some several times), the
    mask is the same for every serviced loan, for months around the run's and several limits."""
    cfg = abm.load_scenario("large_network", overrides={"run.months": 30})
    m = AIComputeCreditModel(cfg, rng=0)
    for _ in range(m.months):
        m.step()
    loans = m.loans
    rows = np.flatnonzero(loans.in_service(m.status))
    assert (loans.cure_month_1[rows] > 18).sum() > 0  # facilities cured twice within a year
    refused = 0
    for t in range(15, 45):
        for per_year, per_life in [(1, 5), (2, 3), (4, 10)]:
            fast = loans.cures_allowed(rows, t, per_year, per_life)
            slow = _cures_allowed_as_it_was(loans, rows, t, per_year, per_life)
            np.testing.assert_array_equal(fast, slow)
            refused += int((~fast).sum())
    assert refused > 0  # some facilities were out of cures (the limits were exercised)
