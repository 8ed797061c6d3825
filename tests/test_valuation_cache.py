"""Fast valuation paths against the code they replaced (abm/valuation.py, abm/finance/loan_marks.py,
abm/finance/funding.py, abm/phases/lenders.py).

* The claims and GPU values are cached for the state of their inputs (``Valuation.claims_parts``):
  every call over whole runs is compared bit for bit with the slow twin kept here, and each input,
  changed in place between two calls, must change the answer the cache gives (never a stale one).
* The parents of lenders' funding events and failures come from one pass over the loans for all
  lenders (``funding.borrower_default_events``): every call over whole runs is compared with the
  scan per lender they replaced.
* Loan sales find each seller's loans from one sort by holder (``loan_sales.sell_loans``): a run
  with sales is the same with the scan per seller it replaced.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import abm
from abm import network as netmod
from abm.agents.base import ACTIVE
from abm.finance import funding, loan_marks, loan_sales
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import CLOSED as LOAN_CLOSED
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.instruments import INTERBANK
from abm.model import AIComputeCreditModel
from abm.phases import lenders as lender_phase

# correlated_crash seed 5 has loan sales (marks below par) and runs; asic_2022 seed 0 two lender
# failures (a crypto lender and its chain); large_network many defaulted estates
RUNS = [("correlated_crash", 5, None), ("asic_2022", 0, None), ("large_network", 0, 30)]


# ---------------------------------------------------------------- the slow twins (as at f60d5e3)
def slow_carrying_factor(m) -> np.ndarray:
    state, loans = m.loan_marks, m.loans
    cls = loan_marks.CLASS_OF_KIND[loans.kind]
    marked = state.marks_to_market[loans.lender] & (cls >= 0)
    return np.where(marked, state.mark[np.maximum(cls, 0)], 1.0)


def slow_gpu_value_by_agent(m) -> np.ndarray:
    value = m.lots.units * m.mark_market[m.lots.gen]
    return np.bincount(m.lots.owner, weights=value, minlength=m.n)


def slow_estate_recoveries(m, claims: np.ndarray, gpu_value: np.ndarray) -> np.ndarray:
    loans = m.loans
    cost = m.cfg["credit"]["workout_cost_share"]
    borrower = loans.borrower[claims]
    estate_value = (
        np.maximum(m.acct.cash, 0.0)
        + np.maximum(m.acct.btc, 0.0) * m.crypto.price_usd
        + gpu_value * (1.0 - cost)
    )
    owed = loans.principal_usd[claims]
    key = borrower * 4 + loans.seniority[claims]
    classes, of_class = np.unique(key, return_inverse=True)
    class_owed = np.bincount(of_class, weights=owed, minlength=len(classes))
    class_estate = classes // 4
    running = np.cumsum(class_owed)
    first = np.ones(len(classes), dtype=bool)
    first[1:] = class_estate[1:] != class_estate[:-1]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(classes)), 0))
    senior_owed = running - class_owed - (running[group_start] - class_owed[group_start])
    left = np.maximum(estate_value[class_estate] - senior_owed, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(class_owed > 0, np.minimum(1.0, left / class_owed), 0.0)
    return owed * share[of_class]


def slow_claims_and_inventory(m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(claims value per loan, claims by holder, GPUs by owner), recomputed from scratch."""
    loans = m.loans
    gpu_value = slow_gpu_value_by_agent(m)
    value = np.where(
        loans.status == LOAN_ACTIVE, loans.principal_usd * slow_carrying_factor(m), 0.0
    )
    dflt = np.flatnonzero(loans.status == LOAN_DEFAULTED)
    if len(dflt):
        value[dflt] = slow_estate_recoveries(m, dflt, gpu_value)
    claims = np.bincount(loans.lender, weights=value, minlength=m.n)
    return value, claims, gpu_value


def slow_default_parents(m, lender: int) -> list[int]:
    loans = m.loans
    borrowers = np.unique(loans.borrower[(loans.lender == lender) & (loans.kind != INTERBANK)])
    events = [int(m.default_event[b]) for b in borrowers if m.default_event[b] > 0]
    return sorted(events)[-20:]


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


def _assert_fresh(m) -> None:
    value, claims, gpu_value = slow_claims_and_inventory(m)
    fast_claims, fast_gpu = m.claims_and_inventory()
    assert _bits(fast_claims) == _bits(claims)
    assert _bits(fast_gpu) == _bits(gpu_value)
    assert _bits(m.claims_value()) == _bits(value)


# ---------------------------------------------------------------- whole runs
@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_every_cached_valuation_of_a_run_equals_the_slow_computation(
    monkeypatch, scenario, seed, months
):
    calls = {"n": 0, "hits": 0, "below_par": 0}
    fast_parts = AIComputeCreditModel.claims_parts

    def checked(self):
        before = (self._claims_cache or {}).get("parts")
        out = fast_parts(self)
        calls["n"] += 1
        calls["hits"] += out is before
        calls["below_par"] += bool((self.loan_marks.mark < 1.0).any())
        value, claims, gpu_value = slow_claims_and_inventory(self)
        assert _bits(out[0]) == _bits(value)
        assert _bits(out[1]) == _bits(gpu_value)
        assert _bits(out[2]) == _bits(claims)
        return out

    monkeypatch.setattr(AIComputeCreditModel, "claims_parts", checked)
    m = AIComputeCreditModel(abm.load_scenario(scenario), rng=seed, months=months)
    m.run()
    # the cache served some calls and missed others, and (crash) the marks left par
    assert 0 < calls["hits"] < calls["n"]
    if scenario == "correlated_crash":
        assert calls["below_par"] > 0
    assert (m.loans.status == LOAN_DEFAULTED).any()


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_funding_and_failure_parents_equal_one_scan_per_lender(monkeypatch, scenario, seed, months):
    seen = {"funding": 0, "failures": 0, "nonempty": 0}
    fast_recent, fast_borrower = funding._recent_default_parents, lender_phase._borrower_parents

    def recent(m, lender, by_lender=None):
        out = fast_recent(m, lender, by_lender)
        want = slow_default_parents(m, lender) + loan_marks.recent_mark_parents(m, lender)
        assert out == want
        seen["funding"] += 1
        seen["nonempty"] += bool(out)
        return out

    def borrower(m, lender, by_lender=None):
        out = fast_borrower(m, lender, by_lender)
        assert out == slow_default_parents(m, lender)
        seen["failures"] += 1
        return out

    monkeypatch.setattr(funding, "_recent_default_parents", recent)
    monkeypatch.setattr(lender_phase, "_borrower_parents", borrower)
    AIComputeCreditModel(abm.load_scenario(scenario), rng=seed, months=months).run()
    assert seen["funding"] > 0 and seen["nonempty"] > 0
    if scenario == "asic_2022":
        assert seen["failures"] > 0


# ---------------------------------------------------------------- never a stale value
@pytest.fixture(scope="module")
def crashed():
    """correlated_crash seed 0 after 25 of its months: 14 defaulted claims, loan marks below par."""
    m = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=0)
    for _ in range(25):
        m.step()
    assert (m.loans.status == LOAN_DEFAULTED).sum() > 0 and (m.loan_marks.mark < 1.0).any()
    return m


def _estate_borrower(m) -> int:
    dflt = np.flatnonzero(m.loans.status == LOAN_DEFAULTED)
    return int(m.loans.borrower[dflt[0]])


def _active_loan(m) -> int:
    return int(np.flatnonzero(m.loans.status == LOAN_ACTIVE)[0])


def _marked_loan(m) -> int:
    lm = m.loan_marks
    rows = np.flatnonzero(
        (m.loans.status == LOAN_ACTIVE)
        & lm.marks_to_market[m.loans.lender]
        & (loan_marks.CLASS_OF_KIND[m.loans.kind] >= 0)
    )
    return int(rows[0])


def _other_lender(m) -> int:
    """A lender other than the holder of :func:`_marked_loan`, marking at amortised cost."""
    holder = m.loans.lender[_marked_loan(m)]
    others = m.lender_idx[(m.lender_idx != holder) & ~m.loan_marks.marks_to_market[m.lender_idx]]
    return int(others[0])


def _prepare(m) -> None:
    """Marks below par and some BTC in an estate, so that each input below moves a value."""
    m.loan_marks.mark = np.minimum(m.loan_marks.mark, 0.9)
    m.acct.btc[_estate_borrower(m)] = 100.0


# each changes one input of the claims and GPU values in place (as the phases do)
MUTATIONS = {
    "estate cash": lambda m: m.acct.cash.__setitem__(_estate_borrower(m), 3.0e8),
    "estate BTC": lambda m: m.acct.btc.__setitem__(_estate_borrower(m), 500.0),
    "BTC price": lambda m: setattr(m.crypto, "price_usd", m.crypto.price_usd * 0.5),
    "workout cost": lambda m: m.cfg["credit"].__setitem__("workout_cost_share", 0.5),
    "principal": lambda m: m.loans.principal_usd.__setitem__(_active_loan(m), 1.0e7),
    "status": lambda m: m.loans.status.__setitem__(_marked_loan(m), LOAN_CLOSED),
    "default": lambda m: m.loans.status.__setitem__(_marked_loan(m), LOAN_DEFAULTED),
    "seniority": lambda m: m.loans.seniority.__setitem__(
        np.flatnonzero(m.loans.status == LOAN_DEFAULTED),
        (m.loans.seniority[m.loans.status == LOAN_DEFAULTED] + 1) % 3,
    ),
    "lender": lambda m: m.loans.lender.__setitem__(_marked_loan(m), _other_lender(m)),
    "loan kind": lambda m: m.loans.kind.__setitem__(_marked_loan(m), INTERBANK),
    "loan mark": lambda m: m.loan_marks.mark.__setitem__(slice(None), 0.7),
    "marks to market": lambda m: m.loan_marks.marks_to_market.__setitem__(
        m.loans.lender[_marked_loan(m)], False
    ),
    "GPU units": lambda m: m.lots.units.__setitem__(np.argmax(m.lots.units), 1),
    "GPU owner": lambda m: m.lots.owner.__setitem__(np.argmax(m.lots.units), _estate_borrower(m)),
    "GPU generation": lambda m: m.lots.gen.__setitem__(
        np.argmax(m.lots.units), (m.lots.gen[np.argmax(m.lots.units)] + 1) % m.G
    ),
    "market mark": lambda m: m.mark_market.__setitem__(slice(None), m.mark_market * 0.5),
}


@pytest.mark.parametrize("change", sorted(MUTATIONS))
def test_a_changed_input_is_never_served_from_the_cache(crashed, change):
    m = copy.deepcopy(crashed)
    _prepare(m)
    _assert_fresh(m)
    before = m.claims_and_inventory()
    again = m.claims_and_inventory()
    assert again[0] is before[0]  # unchanged state: served from the cache
    MUTATIONS[change](m)
    after = m.claims_and_inventory()
    assert after[0] is not before[0]
    _assert_fresh(m)  # and the recomputed values are the ones of the changed state
    value, claims, gpu = slow_claims_and_inventory(m)
    assert _bits(claims) != _bits(before[0]) or _bits(gpu) != _bits(before[1])


def test_cached_values_are_read_only(crashed):
    claims, gpu_value = crashed.claims_and_inventory()
    for a in (claims, gpu_value, crashed.claims_value()):
        with pytest.raises(ValueError):
            a[0] = 1.0


def test_lenders_cash_does_not_invalidate_the_claims(crashed):
    """Only estates' cash enters the claims: paying a lender leaves the cached values in use."""
    m = copy.deepcopy(crashed)
    before = m.claims_and_inventory()
    m.acct.cash[m.lender_idx] += 1.0e6
    assert m.claims_and_inventory()[0] is before[0]
    _assert_fresh(m)


def test_changes_in_sequence_are_each_seen(crashed):
    """One model, every change above one after the other (the kept copies are overwritten in
    place from the second change of an input on): each call gives the values of its state."""
    m = copy.deepcopy(crashed)
    _prepare(m)
    for change in sorted(MUTATIONS) * 2:
        MUTATIONS[change](m)
        _assert_fresh(m)


# ---------------------------------------------------------------- loan sales
def slow_sell_loans(
    m, t: int, sellers: np.ndarray, need_usd: np.ndarray, parents: np.ndarray
) -> None:
    """loan_sales.sell_loans as at f60d5e3: one scan of the performing loans per seller."""
    loans, fs, lm = m.loans, m.funding_state, m.loan_marks
    f = m.cfg["funding"]
    cls_of = loan_marks.loan_classes(loans)
    performing = np.flatnonzero((loans.status == LOAN_ACTIVE) & (cls_of >= 0))
    # a borrower's open GPU tranche stays with the lender that draws it down
    performing = performing[~np.isin(performing, m.tranche_row[m.tranche_row >= 0])]
    lenders = m.lender_idx
    is_seller = np.zeros(m.n, dtype=bool)
    is_seller[sellers] = True
    buyers = lenders[
        (m.status[lenders] == ACTIVE) & ~is_seller[lenders] & (m.funding_need_usd[lenders] <= 1.0)
    ]
    budget = np.zeros(m.n)
    budget[buyers] = np.maximum(m.acct.cash[buyers], 0.0) * m.appetite[buyers]
    n_cls = len(loan_marks.LOAN_CLASSES)
    # saleable principal by (seller, class), shape (k, C)
    saleable = np.bincount(
        loans.lender[performing] * n_cls + cls_of[performing],
        weights=loans.principal_usd[performing],
        minlength=m.n * n_cls,
    ).reshape(m.n, n_cls)[sellers]
    total = saleable.sum(axis=1)
    if budget.sum() <= 0 or total.sum() <= 0:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(total[:, None] > 0, need_usd[:, None] * saleable / total[:, None], 0.0)
    depth = budget.sum() * want.sum(axis=0) / max(want.sum(), 1e-300)
    price = np.full(n_cls, np.nan)
    plan = np.zeros_like(want)
    for c in np.flatnonzero(want.sum(axis=0) > 0):
        price[c], plan[:, c] = loan_sales.clearing_price(
            want[:, c], saleable[:, c], float(depth[c]), f["loan_sale_price_impact"],
            f["loan_sale_discount"],
        )  # fmt: skip
    for k, seller in enumerate(sellers):
        mine = performing[loans.lender[performing] == seller]
        extra = loan_marks.recent_mark_parents(m, int(seller))
        for c in np.flatnonzero(plan[k] > 0):
            rows = mine[cls_of[mine] == c]
            rows = rows[np.argsort(loans.principal_usd[rows], kind="stable")]
            raised = sold = 0.0
            first_buyer = -1
            for row in rows:
                if sold >= plan[k, c] - 1.0:
                    break
                pay = price[c] * float(loans.principal_usd[row])
                buyer = int(np.argmax(budget))
                if budget[buyer] < pay:
                    break
                budget[buyer] -= pay
                m.acct.transfer(buyer, int(seller), pay)
                lm.purchase_cost_usd[buyer] += pay
                loans.lender[row] = buyer
                netmod.move_loan_edge(m, int(row), int(seller))
                raised += pay
                sold += float(loans.principal_usd[row])
                first_buyer = buyer if first_buyer < 0 else first_buyer
            if sold > 0:
                fs.loan_sale_discount_usd[seller] += sold - raised
                fs.loans_sold_usd[seller] += sold
                lm.sale_proceeds_usd[seller] += raised
                eid = m.events.add(
                    t, "loan_sale", int(seller), cause="funding_need", counterparty=first_buyer,
                    parents=[int(parents[k]), *extra], amount=sold, price=float(price[c]),
                )  # fmt: skip
                lm.month_price[c] = price[c]
                lm.month_sale_events[c].append(eid)
    if any(lm.month_sale_events):
        m.forget_pledged_keys()  # sold loans' lots are now valued at their buyers' marks


def test_loan_sales_from_one_sort_by_holder_equal_one_scan_per_seller(monkeypatch):
    """correlated_crash seed 5 sells loans (runs): the run is the same with the old verb."""
    sold = []
    fast = loan_sales.sell_loans

    def counting(m, t, sellers, need_usd, parents):
        sold.append(len(sellers))
        return fast(m, t, sellers, need_usd, parents)

    monkeypatch.setattr(loan_sales, "sell_loans", counting)
    result = abm.run("correlated_crash", seed=5)
    assert sum(sold) > 0
    monkeypatch.setattr(loan_sales, "sell_loans", slow_sell_loans)
    slow = abm.run("correlated_crash", seed=5)
    for a, b in zip(
        (result.timeseries, result.agents, result.events),
        (slow.timeseries, slow.agents, slow.events),
        strict=True,
    ):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_computation_that_raises_leaves_no_stale_part(crashed, monkeypatch):
    """The kept inputs are updated only with the parts computed from them: if valuing the
    performing loans raises, the next call still sees the principal as changed."""
    m = copy.deepcopy(crashed)
    _prepare(m)
    m.claims_and_inventory()
    MUTATIONS["principal"](m)

    def failing(model):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(loan_marks, "carrying_factor", failing)
    with pytest.raises(RuntimeError):
        m.claims_and_inventory()
    monkeypatch.undo()
    _assert_fresh(m)
