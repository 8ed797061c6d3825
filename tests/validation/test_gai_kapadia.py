"""Gai & Kapadia (2010) contagion window reproduced on the model's lender layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from abm.finance.instruments import ACTIVE, INTERBANK
from abm.validation import (
    balance_sheets,
    cascade,
    contagion_window,
    gai_kapadia,
    interbank_book,
)

N = 1000
DRAWS = 40


# --------------------------------------------------------------------------- #
# the contagion window (paper, Fig. 1: capital 4 %, interbank assets 20 %)
# --------------------------------------------------------------------------- #
def test_contagion_rare_below_window():
    res = gai_kapadia(N, 0.5, DRAWS, seed=0)
    assert res.frequency < 0.1
    # no giant component: the mean failure share stays tiny
    assert res.failure_shares.mean() < 0.02


@pytest.mark.parametrize("z", [3.0, 4.0])
def test_contagion_frequent_and_total_inside_window(z):
    res = gai_kapadia(N, z, DRAWS, seed=0)
    assert res.frequency > 0.3
    assert res.conditional_extent > 0.8


def test_contagion_rare_above_window():
    # strict rule: one failure topples only banks with <= 4 claims, the first-order
    # cascade condition z P(Poisson(z) <= 3) > 1 ends at z = 5.76; z = 12 is far outside
    res = gai_kapadia(N, 12.0, DRAWS, seed=0)
    assert res.frequency < 0.1
    assert res.failure_shares.max() < 0.05


def test_equality_counted_as_failure_widens_window():
    # a hair less capital makes "losses == capital" a failure (banks with 5 claims
    # fall after one failed debtor): the upper edge moves out, as in the paper
    strict = gai_kapadia(N, 7.0, DRAWS, seed=0)
    loose = gai_kapadia(N, 7.0, DRAWS, seed=0, capital_ratio=0.04 - 1e-6)
    assert loose.frequency > strict.frequency + 0.2


def test_contagion_window_frame():
    df = contagion_window([0.5, 3.0], n_banks=300, draws=10, seed=0)
    assert isinstance(df, pd.DataFrame)
    assert list(df["mean_degree"]) == [0.5, 3.0]
    assert {"frequency", "conditional_extent", "contagion_draws", "draws"} <= set(df.columns)
    assert df["frequency"].iloc[1] > df["frequency"].iloc[0]
    single = gai_kapadia(300, 3.0, 10, seed=0)
    assert df["frequency"].iloc[1] == single.frequency


def test_clearing_recovery_never_more_failures_than_zero_recovery():
    zero = gai_kapadia(300, 3.0, 10, seed=0)
    clear = gai_kapadia(300, 3.0, 10, seed=0, recovery="clearing")
    # claims valued at Eisenberg-Noe payments are worth >= 0: failure sets shrink draw by draw
    assert np.all(clear.failure_shares <= zero.failure_shares)
    assert zero.frequency > 0.3
    assert clear.frequency < zero.frequency


# --------------------------------------------------------------------------- #
# hand-checked small networks
# --------------------------------------------------------------------------- #
def _chain_book():
    # creditor -> debtor claims (6 banks, capital 0.04, interbank share 0.2):
    #   bank 1: 1 claim  {0}            -> 0.2 each
    #   bank 2: 5 claims {0, 1, 3, 4, 5} -> 0.04 each
    #   bank 3: 2 claims {2, 4}          -> 0.1 each
    #   bank 4: 1 claim  {5}             -> 0.2
    #   banks 0, 5: no claims (external assets only)
    creditors = [1, 2, 2, 2, 2, 2, 3, 3, 4]
    debtors = [0, 0, 1, 3, 4, 5, 2, 4, 5]
    return interbank_book(creditors, debtors, 6, 0.2)


def test_hand_checked_chain_zero_recovery():
    # Bank 0 fails (external assets wiped out).
    # round 1: bank 1 loses 0.2 > 0.04 -> fails; bank 2 loses 0.04 == 0.04 -> survives
    #          (equity exactly 0 is not strictly negative)
    # round 2: bank 2 loses 0.04 + 0.04 = 0.08 > 0.04 -> fails
    # round 3: bank 3 loses 0.1 on bank 2 > 0.04 -> fails
    # round 4: bank 4's only debtor (5) is alive, bank 5 has no claims -> stop.
    book = _chain_book()
    assert np.all(book.kind == INTERBANK) and np.all(book.status == ACTIVE)
    np.testing.assert_allclose(
        book.principal_usd, [0.2, 0.04, 0.04, 0.04, 0.04, 0.04, 0.1, 0.1, 0.2]
    )

    sheets = balance_sheets(book, 6, 0.04)
    np.testing.assert_allclose(sheets.interbank_assets, [0.0, 0.2, 0.2, 0.2, 0.2, 0.0])
    # liabilities: 0 owes 1 (0.2) and 2 (0.04); 4 owes 2 (0.04) and 3 (0.1); 5 owes 2 and 4
    np.testing.assert_allclose(sheets.interbank_liabilities, [0.24, 0.04, 0.1, 0.04, 0.14, 0.24])
    np.testing.assert_allclose(sheets.equity, 0.04)
    np.testing.assert_allclose(sheets.external + sheets.interbank_assets, 1.0)

    res = cascade(book, 6, 0, capital_ratio=0.04)
    assert res.failed.tolist() == [True, True, True, True, False, False]
    assert res.failure_round.tolist() == [0, 1, 2, 3, -1, -1]
    assert res.share_failed == pytest.approx(4 / 6)


def test_hand_checked_chain_equality_boundary():
    # with capital a hair below 0.04, bank 2's loss of exactly 0.04 in round 1 now fails it
    res = cascade(_chain_book(), 6, 0, capital_ratio=0.04 - 1e-6)
    assert res.failure_round.tolist() == [0, 1, 1, 2, -1, -1]


def test_hand_checked_star_clearing_vs_zero():
    # 5 banks. Bank 1 has 4 claims {0, 2, 3, 4} of 0.05 each; bank 0 has 1 claim {2} of 0.2.
    # Bank 0 is shocked: external assets 0.8 -> 0. Its liabilities: 0.05 to bank 1 plus
    # deposits 1 - 0.04 - 0.05 = 0.91, so pbar_0 = 0.96.
    # zero recovery: bank 1 loses 0.05 > 0.04 -> fails (2 of 5 banks).
    # clearing: bank 2 pays in full, so bank 0 has 0.2 and pays 0.2 / 0.96 = 5/24 of its
    #   obligations; bank 1 recovers 0.05 * 5/24 and loses 0.05 * 19/24 = 0.03958 < 0.04
    #   -> survives (1 of 5 banks).
    book = interbank_book([1, 1, 1, 1, 0], [0, 2, 3, 4, 2], 5, 0.2)
    zero = cascade(book, 5, 0, recovery="zero")
    assert zero.failed.tolist() == [True, True, False, False, False]
    clear = cascade(book, 5, 0, recovery="clearing")
    assert clear.failed.tolist() == [True, False, False, False, False]
    assert clear.recovery_rate[0] == pytest.approx(5 / 24)
    np.testing.assert_allclose(clear.recovery_rate[1:], 1.0)


def test_no_claims_no_contagion():
    book = interbank_book([], [], 4, 0.2)
    res = cascade(book, 4, 2)
    assert res.failed.tolist() == [False, False, True, False]


# --------------------------------------------------------------------------- #
# determinism
# --------------------------------------------------------------------------- #
def test_same_seed_same_result_different_seed_different_draws():
    a = gai_kapadia(500, 3.0, 12, seed=7)
    b = gai_kapadia(500, 3.0, 12, seed=7)
    c = gai_kapadia(500, 3.0, 12, seed=8)
    np.testing.assert_array_equal(a.failure_shares, b.failure_shares)
    assert a.frequency == b.frequency
    assert not np.array_equal(a.failure_shares, c.failure_shares)
    # draws are independent children of one SeedSequence: fewer draws give a prefix
    prefix = gai_kapadia(500, 3.0, 5, seed=7)
    np.testing.assert_array_equal(prefix.failure_shares, a.failure_shares[:5])


def test_result_reports_parameters():
    res = gai_kapadia(200, 2.0, 3, seed=1)
    assert res.failure_shares.shape == (3,)
    assert res.params == {
        "n_banks": 200,
        "mean_degree": 2.0,
        "draws": 3,
        "seed": 1,
        "capital_ratio": 0.04,
        "interbank_share": 0.2,
        "recovery": "zero",
        "threshold": 0.05,
    }
    d = res.as_dict()
    assert d["frequency"] == res.frequency
    assert d["contagion_draws"] == int(np.sum(res.failure_shares >= 0.05))


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_banks": 1}, r"n_banks .*\[2, inf\)"),
        ({"n_banks": 10.5}, r"n_banks .*\[2, inf\)"),
        ({"mean_degree": -1.0}, r"mean_degree .*\[0, 99\]"),
        ({"mean_degree": 100.0}, r"mean_degree .*\[0, 99\]"),
        ({"capital_ratio": 0.0}, r"capital_ratio .*\(0, 1\)"),
        ({"capital_ratio": 1.0}, r"capital_ratio .*\(0, 1\)"),
        ({"capital_ratio": float("nan")}, r"capital_ratio .*\(0, 1\)"),
        ({"interbank_share": -0.1}, r"interbank_share .*\[0, 1\]"),
        ({"interbank_share": 1.5}, r"interbank_share .*\[0, 1\]"),
        ({"recovery": "partial"}, r"recovery .*'zero', 'clearing'"),
        ({"draws": 0}, r"draws .*\[1, inf\)"),
        ({"seed": -1}, r"seed .*\[0, inf\)"),
    ],
)
def test_bad_input_raises(kwargs, pattern):
    args = {"n_banks": 100, "mean_degree": 2.0, "draws": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        gai_kapadia(**args)


def test_bad_input_contagion_window():
    with pytest.raises(ValueError, match="mean_degrees"):
        contagion_window([], n_banks=100, draws=2)
    with pytest.raises(ValueError, match=r"mean_degree .*\[0, 99\]"):
        contagion_window([1.0, -2.0], n_banks=100, draws=2)


def test_bad_network_raises():
    with pytest.raises(ValueError, match="itself"):
        interbank_book([0], [0], 3)
    with pytest.raises(ValueError, match="only once"):
        interbank_book([0, 0], [1, 1], 3)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        interbank_book([0], [3], 3)
