"""The loop's second-wave fast paths against the code they replaced (a1d5c5d).

Pure functions (``Lenders.hold_value_per_gpu``) are compared with their slow twin at every call of
a whole run (bit for bit). Paths that write the model's state (``estate_sale.hand_over_unsold``)
are compared over whole runs: once as shipped, once with every slow twin swapped in, every output
table identical. The twins are kept here as they were. Each test also requires that the path was
used with non-trivial input, so that the comparison could fail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from twins import run_tables

import abm
from abm.agents.lender import Lenders
from abm.finance import estate_sale
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED


def _hold_value_per_gpu_as_it_was(self, lenders, gens):
    """``Lenders.hold_value_per_gpu`` at a1d5c5d: the unique of one rounded rate per pair."""
    m = self.model
    rates = self.hold_rate(lenders)
    out = np.zeros(len(lenders))
    if len(lenders) == 0:
        return out
    unique, inverse = np.unique(np.round(rates, 6), return_inverse=True)
    values = m.compute.value_per_gpu(
        m.month, unique, rent_share=1.0 - m.cfg["credit"]["servicer_fee_share"]
    )
    return values[gens, inverse.reshape(-1)]


def _hand_over_unsold_as_it_was(m, t):
    """``estate_sale.hand_over_unsold`` at a1d5c5d: the due estates with open claims picked in a
    Python comprehension over every open estate."""
    months = m.cfg["credit"]["estate_sale_months"]
    estates = np.array(sorted(m.open_estates), dtype=np.int64)
    due = estates[t - m.default_month[estates] >= months].tolist()
    if not due:
        return set()
    loans = m.loans
    open_claim = (loans.status == LOAN_DEFAULTED) & (loans.principal_usd > 0)
    has_claim = np.zeros(m.n, dtype=bool)
    has_claim[loans.borrower[open_claim]] = True
    due = [b for b in due if has_claim[b]]
    if not due:
        return set()
    lots = m.lots
    first_new_row = len(lots)
    wanted = np.zeros(m.n + 1, dtype=bool)
    wanted[due] = True
    rows = np.flatnonzero(wanted[lots.owner])
    rows = rows[np.argsort(lots.owner[rows], kind="stable")]
    owners = lots.owner[rows]
    lo = np.searchsorted(owners, due, side="left").tolist()
    hi = np.searchsorted(owners, due, side="right").tolist()
    handed = set()
    for b, a, z in zip(due, lo, hi, strict=True):
        owned = rows[a:z]
        if len(lots) > first_new_row:
            new = first_new_row + np.flatnonzero(lots.owner[first_new_row:] == b)
            owned = np.concatenate((owned, new)) if len(new) else owned
        if estate_sale._hand_over(m, b, t, owned):
            handed.add(b)
    return handed


SLOW_TWINS = [(estate_sale, "hand_over_unsold", _hand_over_unsold_as_it_was)]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_hold_value_per_gpu_equals_its_twin_at_every_call(monkeypatch):
    fast = Lenders.hold_value_per_gpu
    seen = {"calls": 0, "pairs": 0, "lenders": 0}

    def checked(self, lenders, gens):
        out = fast(self, lenders, gens)
        slow = _hold_value_per_gpu_as_it_was(self, lenders, gens)
        assert _same_bits(out, slow)
        seen["calls"] += 1
        seen["pairs"] = max(seen["pairs"], len(lenders))
        seen["lenders"] = max(seen["lenders"], len(np.unique(lenders)))
        return out

    monkeypatch.setattr(Lenders, "hold_value_per_gpu", checked)
    abm.run("large_network", seed=0, months=30)
    # many calls, with thousands of lots held by many lenders (distinct rates to gather)
    assert seen["calls"] > 30
    assert seen["pairs"] > 1000
    assert seen["lenders"] > 10


def test_whole_run_with_every_slow_twin_is_identical(monkeypatch):
    handed = []
    fast_hand_over = estate_sale.hand_over_unsold

    def counted(m, t):
        out = fast_hand_over(m, t)
        handed.append(len(out))
        return out

    monkeypatch.setattr(estate_sale, "hand_over_unsold", counted)
    fast = run_tables("large_network", 0, 40)
    # estates handed GPUs over in kind in several months of the fast run
    assert sum(1 for k in handed if k > 0) >= 3
    for owner, name, twin in SLOW_TWINS:
        monkeypatch.setattr(owner, name, twin)
    slow = run_tables("large_network", 0, 40)
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
