"""Property tests of the loan book's verbs and of the one remaining fast/slow valuation pair.

Each test draws a model state (scenario, seed, months run) and a subset of loans, and checks that
two ways of computing the same thing agree exactly: the valuation of all loans' collateral read at
some rows and the valuation of only those rows; the serviced-loan mask over all loans and over a
subset; repaying a batch of loans at once and repaying them one by one.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abm
from abm.finance.instruments import ACTIVE, REPAID, Book
from abm.model import AIComputeCreditModel

SCENARIOS = ("baseline", "correlated_crash", "buyer_vacuum")


@lru_cache(maxsize=32)
def _model(scenario: str, seed: int, months: int) -> AIComputeCreditModel:
    model = AIComputeCreditModel(abm.load_scenario(scenario), rng=seed)
    for _ in range(months):
        model.step()
    return model


states = st.tuples(st.sampled_from(SCENARIOS), st.integers(0, 2), st.integers(0, 18))
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _subset(n: int, data) -> np.ndarray:
    """Distinct ascending or shuffled rows of ``0..n-1`` drawn by hypothesis."""
    rows = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=60))
    return np.array(rows, dtype=np.int64)


def _clone(book: Book) -> Book:
    """An independent copy of a book (columns and indexes), its views rebuilt."""
    new = type(book).__new__(type(book))
    object.__setattr__(new, "n", book.n)
    object.__setattr__(new, "_data", {k: v.copy() for k, v in book._data.items()})
    object.__setattr__(new, "_capacity", book._capacity)
    object.__setattr__(new, "_index", copy.deepcopy(book._index))
    new._refresh_views()
    return new


@PROPERTY
@given(state=states, data=st.data())
def test_collateral_value_of_rows_equals_the_full_valuation_at_those_rows(state, data):
    model = _model(*state)
    rows = _subset(model.loans.n, data)
    np.testing.assert_array_equal(model.collateral_value_of(rows), model.collateral_value()[rows])


@PROPERTY
@given(state=states, data=st.data())
def test_in_service_over_a_subset_equals_the_full_mask_at_those_rows(state, data):
    model = _model(*state)
    rows = _subset(model.loans.n, data)
    full = model.loans.in_service(model.status)
    np.testing.assert_array_equal(model.loans.in_service(model.status, rows), full[rows])
    assert full.dtype == bool and len(full) == model.loans.n


@PROPERTY
@given(state=states, data=st.data(), cash_scale=st.sampled_from([0.0, 0.3, 1.0, 3.0]))
def test_repaying_a_batch_equals_repaying_loan_by_loan(state, data, cash_scale):
    """The batch verb takes the same decisions and leaves the same cash, BTC, loans and lots as
    repaying the loans one at a time in the same order (cash scaled so that some fail)."""
    model = _model(*state)
    active = np.flatnonzero(model.loans.status == ACTIVE)
    if len(active) == 0:
        return
    picks = data.draw(st.lists(st.sampled_from(active.tolist()), unique=True, max_size=30))
    rows = np.array(picks, dtype=np.int64)
    cash0 = model.acct.cash * cash_scale
    results = []
    for batch in (True, False):
        loans, lots = _clone(model.loans), _clone(model.lots)
        cash, btc = cash0.copy(), model.acct.btc.copy()
        if batch:
            ok = loans.repay_in_full(rows, cash, lots, btc)
        else:
            ok = [
                loans.repay_in_full(rows[k : k + 1], cash, lots, btc)[0] for k in range(len(rows))
            ]
        results.append((ok, cash, btc, loans, lots))
    (ok_a, cash_a, btc_a, loans_a, lots_a), (ok_b, cash_b, btc_b, loans_b, lots_b) = results
    assert ok_a == ok_b
    np.testing.assert_array_equal(cash_a, cash_b)
    np.testing.assert_array_equal(btc_a, btc_b)
    for column in loans_a._data:
        np.testing.assert_array_equal(getattr(loans_a, column), getattr(loans_b, column))
    np.testing.assert_array_equal(lots_a.loan, lots_b.loan)
    repaid = rows[np.array(ok_a, dtype=bool)] if len(rows) else rows
    assert (loans_a.status[repaid] == REPAID).all()
    assert not np.isin(lots_a.loan, repaid).any()  # their collateral is released


def test_a_repaid_loan_moves_exactly_what_it_owed():
    """One loan repaid in full: its borrower's cash falls and its lender's rises by the amount owed."""
    model = _model("baseline", 0, 6)
    loans, lots = _clone(model.loans), _clone(model.lots)
    row = int(np.flatnonzero((loans.status == ACTIVE) & (loans.lender != loans.borrower))[0])
    b, lender = int(loans.borrower[row]), int(loans.lender[row])
    owed = float(loans.owed_usd(row))
    cash = model.acct.cash.copy()
    cash[b] = owed + 1.0
    before_lender = cash[lender]
    assert loans.repay_in_full(np.array([row]), cash, lots, model.acct.btc.copy()) == [True]
    assert cash[b] == 1.0 and cash[lender] == before_lender + owed
    assert loans.principal_usd[row] == 0.0 and loans.status[row] == REPAID


def test_event_parents_are_stored_as_ids_and_formatted_as_events_csv_text():
    """Parents are kept as distinct ascending ids (ids <= 0 dropped), extended in place, and only
    the frame formats them as the ``;``-joined text of events.csv."""
    from abm.events import EventLog, parse_parent_ids

    log = EventLog([10, 11, 12], ["miner", "lender", "buyer"])
    first = log.add(0, "default", 0, cause="payment")
    second = log.add(0, "seizure", 1, counterparty=0, parents=[first, 0, -1, first])
    third = log.add_many(1, "write_off", [1, 1], [0, 2], [[second, first], []], [1.0, 2.0])
    assert log.parents(second) == (first,)
    assert log.parents(third[0]) == (first, second) and log.parents(third[1]) == ()
    log.add_parents(first, [third[1], second, second])
    assert log.parents(first) == (second, third[1])
    texts = log.frame()["parent_event_ids"].tolist()
    assert texts == [f"{second};{third[1]}", f"{first}", f"{first};{second}", ""]
    assert [parse_parent_ids(t) for t in texts] == [list(log.parents(i)) for i in (1, 2, 3, 4)]


@PROPERTY
@given(state=states, data=st.data())
def test_the_lot_index_finds_the_same_lots_as_a_scan(state, data):
    """``rows_of_loan`` / ``rows_of_loans`` (index or full-scan path, by how many loans are asked)
    equal scanning the ``loan`` column; ``rows_of_borrower`` equals scanning ``borrower``."""
    model = _model(*state)
    lots, loans = model.lots, model.loans
    asked = _subset(loans.n, data)
    if data.draw(st.booleans()):  # also ask for more loans than the index path serves
        asked = np.unique(np.concatenate((asked, np.arange(0, loans.n, 3))))
    np.testing.assert_array_equal(
        lots.rows_of_loans(asked), np.flatnonzero(np.isin(lots.loan, asked))
    )
    for loan in asked[:10].tolist():
        np.testing.assert_array_equal(lots.rows_of_loan(loan), np.flatnonzero(lots.loan == loan))
    for b in data.draw(st.lists(st.integers(0, model.n - 1), max_size=5)):
        np.testing.assert_array_equal(
            loans.rows_of_borrower(b), np.flatnonzero(loans.borrower == b)
        )


@PROPERTY
@given(state=states)
def test_the_contract_and_lease_indexes_find_the_same_rows_as_a_scan(state):
    """``rows_of_provider`` equals scanning the contracts' ``provider`` column and
    ``rows_of_tenant`` the leases' ``tenant`` column, for every agent, after defaults have
    ended contracts and leases (and, with the counterparty channel off, replaced tenants)."""
    model = _model(*state)
    ct, ls = model.contracts, model.leases
    for b in range(-1, model.n):
        np.testing.assert_array_equal(ct.rows_of_provider(b), np.flatnonzero(ct.provider == b))
        if b >= 0:
            np.testing.assert_array_equal(ls.rows_of_tenant(b), np.flatnonzero(ls.tenant == b))


def test_the_lease_index_drops_a_tenant_replaced_by_an_outside_one():
    """With the counterparty channel off a defaulted tenant's leases pass to an outside tenant
    (-1): the index no longer returns them for the old tenant."""
    model = AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    ls = model.leases
    tenant = int(ls.tenant[ls.tenant >= 0][0])
    before = ls.rows_of_tenant(tenant)
    assert len(before) > 0
    ls.tenant[before[:1]] = -1
    np.testing.assert_array_equal(ls.rows_of_tenant(tenant), before[1:])
    np.testing.assert_array_equal(ls.rows_of_tenant(tenant), np.flatnonzero(ls.tenant == tenant))


@pytest.mark.parametrize("book", ["lots", "loans", "contracts", "leases"])
def test_index_problems_name_a_row_missing_from_the_index_or_listed_under_another_key(book):
    """The invariant on every book's look-up index (``Book.index_problems``) holds on a run and
    fails when a row is dropped from the index or its key column points elsewhere."""
    model = _model("correlated_crash", 1, 12)
    fresh = _clone(getattr(model, book))
    assert fresh.index_problems() == []
    key = fresh.INDEX_BY
    listed_key, rows = next((k, r) for k, r in fresh._index.items() if r)
    dropped = _clone(fresh)
    dropped._index[listed_key] = rows[1:]  # the first row is no longer found by its key
    assert f"rows [{rows[0]}] missing" in dropped.index_problems()[0]
    moved = _clone(fresh)
    other = int(getattr(moved, key).max()) + 1
    getattr(moved, key)[rows[0]] = other  # the column says another key than the index
    (problem,) = moved.index_problems()
    assert f"[{rows[0]}] listed under another key" in problem and f"rows [{rows[0]}]" in problem


@settings(max_examples=60, deadline=None)
@given(
    n_agents=st.sampled_from([50, 4000, 70000]),
    size=st.integers(0, 2000),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_radix_sort_by_borrower_then_value_equals_lexsort(n_agents, size, seed):
    """The covenant cures' sort (radix path for many rows and agent ids below 65536) is
    ``np.lexsort((value, borrower))``, ties included."""
    from abm.phases.covenants import _by_borrower_then_value

    rng = np.random.default_rng(seed)
    borrower = rng.integers(0, n_agents, size)
    value = rng.choice([0.5, 1.0, 2.0, 3.25], size) * rng.integers(1, 4, size)  # many ties
    np.testing.assert_array_equal(
        _by_borrower_then_value(borrower, value, n_agents), np.lexsort((value, borrower))
    )


# ----------------------------------------------------------------------------- bulk world building


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    weights=st.lists(st.floats(1e-6, 1e3), min_size=1, max_size=60),
    k=st.integers(0, 6),
)
def test_weighted_sample_makes_the_draws_of_generator_choice(seed, weights, k):
    """abm.sampling.weighted_sample returns what rng.choice(replace=False, p) returns and leaves the
    generator in the same state (the world's draws, and every later draw, are unchanged)."""
    from abm.sampling import weighted_sample

    p = np.array(weights) / np.sum(weights)
    k = min(k, len(p))
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    expected = a.choice(len(p), size=k, replace=False, p=p)
    got = weighted_sample(b, p.copy(), k)
    assert got.tolist() == expected.tolist()
    assert a.random() == b.random()


def test_sums_by_key_equal_masked_sums_bit_for_bit():
    from abm.finance.book import sums_by_key

    rng = np.random.default_rng(3)
    values = rng.lognormal(10, 3, 5000)
    key = rng.integers(0, 300, 5000)
    keys = np.arange(-1, 301)  # -1 and 300: no rows, sum 0.0
    expected = [float(values[key == k].sum()) for k in keys]
    assert sums_by_key(values, key, keys).tolist() == expected


def test_pending_rows_write_the_rows_of_one_add_per_row():
    """PendingRows collects rows (cells not given take the column's fill) and adds them at once:
    the same book as adding them one at a time."""
    from abm.finance.book import PendingRows
    from abm.finance.instruments import LoanBook

    rows = [
        {"lender": 5, "borrower": 1, "principal_usd": 1.5, "floating": True},
        {"lender": 6, "borrower": 2, "fixed_rate": 0.07, "max_ltv": 0.8},
        {"lender": 5, "borrower": 1, "collateral_btc": 3.0},
    ]
    one_by_one, bulk = LoanBook(4), LoanBook(4)
    pending = PendingRows(bulk)
    for row in rows:
        one_by_one.add(**row)
        pending.append(**row)
    pending.flush()
    for name in LoanBook.COLUMNS:
        assert getattr(bulk, name).tolist() == getattr(one_by_one, name).tolist(), name
    assert bulk.rows_of_borrower(1).tolist() == [0, 2]


def _seize_lots_loan_by_loan(loans, rows, lots, marks, mark_row, t):
    """``LoanBook.seize_lots`` as it was: one index look-up and one read of units and marks per
    loan (the slow twin of the batched reads)."""
    import math

    split = {"owner": [], "gen": [], "units": [], "acquired_month": [], "cost_usd_per_unit": []}
    seized = ([], [], [], [], [], [])
    for loan in rows.tolist():
        lot_rows = lots.rows_of_loan(loan)
        lot_rows = lot_rows[lots.units[lot_rows] > 0]
        if len(lot_rows) == 0:
            continue
        lender = int(loans.lender[loan])
        claim = float(loans.principal_usd[loan])
        unit_marks = marks[mark_row[lender]][lots.gen[lot_rows]]
        for row, mark, units in zip(
            lot_rows.tolist(), unit_marks.tolist(), lots.units[lot_rows].tolist(), strict=True
        ):
            if claim <= 1e-6:
                break
            take = units if mark <= 0 else min(units, math.ceil(claim / mark))
            if take <= 0:
                continue
            if take < units:
                for column, values in split.items():
                    values.append(units - take if column == "units" else getattr(lots, column)[row])
                lots.units[row] = take
            lots.owner[row] = lender
            lots.loan[row] = -1
            lots.book_value_usd_per_unit[row] = mark
            lots.acquired_month[row] = t
            value = take * mark
            for column, x in zip(
                seized, (row, lender, int(loans.borrower[loan]), value, take, mark), strict=True
            ):
                column.append(x)
            claim -= min(claim, value)
        loans.principal_usd[loan] = max(claim, 0.0)
    if split["units"]:
        lots.add(**{column: np.array(values) for column, values in split.items()})
    return seized


@PROPERTY
@given(state=states, data=st.data(), scale=st.sampled_from([0.01, 0.5, 1.0, 3.0]))
def test_seizing_with_one_read_of_all_pledged_lots_equals_seizing_loan_by_loan(state, data, scale):
    """``seize_lots`` (pledged lots, units and marks read for all loans at once) takes the same
    units, splits the same lots and leaves the same books as the loan-by-loan version, for
    claims scaled so that some loans take part of a lot and some all of it."""
    model = _model(*state)
    pledged = np.unique(model.lots.loan[model.lots.loan >= 0])
    if data.draw(st.booleans()):  # also loans without collateral, in a shuffled order
        pledged = np.concatenate((pledged, _subset(model.loans.n, data)))
    rows = np.array(
        data.draw(st.permutations(pledged.tolist()))[: data.draw(st.integers(1, 40))],
        dtype=np.int64,
    )
    rows = rows[np.sort(np.unique(rows, return_index=True)[1])]  # distinct, drawn order kept
    marks, mark_row = model.mark_table(), model.lender_mark_row
    books = []
    for seize in (None, _seize_lots_loan_by_loan):
        loans, lots = _clone(model.loans), _clone(model.lots)
        loans.principal_usd[rows] *= scale
        if seize is None:
            out = loans.seize_lots(rows, lots, marks, mark_row, model.steps)
        else:
            out = seize(loans, rows, lots, marks, mark_row, model.steps)
        books.append((out, loans, lots))
    (out_a, loans_a, lots_a), (out_b, loans_b, lots_b) = books
    assert out_a == out_b
    for a, b in ((loans_a, loans_b), (lots_a, lots_b)):
        assert a.n == b.n
        for column in a.COLUMNS:
            np.testing.assert_array_equal(getattr(a, column), getattr(b, column))


def test_seizing_at_a_subnormal_mark_takes_every_pledged_unit():
    """A mark so small that claim / mark overflows to infinity (a salvage value of 2e-311 USD per
    GPU, drawn by the schema-wide property test) takes every pledged unit instead of failing
    to convert infinity to an integer (regression: OverflowError in ``seize_lots``)."""
    model = _model("baseline", 0, 0)
    rows = np.unique(model.lots.loan[model.lots.loan >= 0])
    marks = np.full_like(model.mark_table(), 2.225073858507e-311)
    loans, lots = _clone(model.loans), _clone(model.lots)
    pledged = lots.units[lots.loan >= 0].sum()
    out = loans.seize_lots(rows, lots, marks, model.lender_mark_row, model.steps)
    assert sum(out[4]) == pledged
    assert (lots.loan < 0).all()


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_contracts_booked_in_one_call_on_arrays_equal_one_call_per_contract(data):
    """``world.add_initial_contracts`` on aligned arrays (the miners' GPU halls book theirs so)
    writes the same rows, bit for bit, as one call per contract with scalars."""
    from abm.world import add_initial_contracts

    model = _model("baseline", 0, 0)
    n = data.draw(st.integers(1, 12))
    args = [
        (
            data.draw(st.integers(0, model.n - 1)),
            data.draw(st.integers(0, model.G - 1)),
            data.draw(st.integers(1, 5000)),
            data.draw(st.integers(1, 60)),
            data.draw(st.booleans()),
            data.draw(st.integers(-1, 3)),
        )
        for _ in range(n)
    ]
    books = []
    for batched in (True, False):
        original = model.contracts
        model.contracts = _clone(original)
        try:
            if batched:
                add_initial_contracts(model, *(np.array(c) for c in zip(*args, strict=True)))
            else:
                for row in args:
                    add_initial_contracts(model, *row)
            books.append(model.contracts)
        finally:
            model.contracts = original
    for column in books[0].COLUMNS:
        np.testing.assert_array_equal(getattr(books[0], column), getattr(books[1], column))
