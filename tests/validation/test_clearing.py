"""Tests of abm.finance.clearing (Eisenberg-Noe and Rogers-Veraart clearing)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.finance.clearing import (
    clearing_losses,
    eisenberg_noe,
    fictitious_default_sequence,
    rogers_veraart,
)

# Worked example (banks A=0, B=1, C=2), amounts in USD:
#
#   L = [[0, 8, 2],      A owes B 8, C 2   -> pbar_A = 10, Pi_A = (0, 4/5, 1/5)
#        [6, 0, 2],      B owes A 6, C 2   -> pbar_B =  8, Pi_B = (3/4, 0, 1/4)
#        [1, 1, 0]]      C owes A 1, B 1   -> pbar_C =  2, Pi_C = (1/2, 1/2, 0)
#   e = (1, 0, 5)
#
# Round 1, p = pbar = (10, 8, 2):
#   A: 1 + 6 + 1      =  8 < 10  -> defaults
#   B: 0 + 8 + 1      =  9 >= 8  -> solvent
#   C: 5 + 2 + 2      =  9 >= 2  -> solvent
#   solve for A with B, C paying in full: p_A = 1 + 6 + 1 = 8.
# Round 2, p = (8, 8, 2):
#   B: 0 + (4/5)*8 + 1 = 7.4 < 8 -> defaults
#   C: 5 + 1.6 + 2     = 8.6 >= 2
#   solve for {A, B} with C paying 2:
#     p_A = 1 + (3/4) p_B + (1/2)*2 = 2 + (3/4) p_B
#     p_B = 0 + (4/5) p_A + (1/2)*2 = 1 + (4/5) p_A
#     => p_A = 2 + 3/4 + (3/5) p_A  => (2/5) p_A = 11/4  => p_A = 55/8 = 6.875
#        p_B = 1 + (4/5)(55/8) = 1 + 11/2 = 13/2 = 6.5
# Round 3: A: 1 + (3/4)(13/2) + 1 = 6.875 < 10, B: (4/5)(55/8) + 1 = 6.5 < 8,
#   C: 5 + (1/5)(55/8) + (1/4)(13/2) = 5 + 11/8 + 13/8 = 8 >= 2: no new default.
# Greatest clearing vector p = (55/8, 13/2, 2); default waves {A}, then {B}.
EN_L = np.array([[0.0, 8.0, 2.0], [6.0, 0.0, 2.0], [1.0, 1.0, 0.0]])
EN_E = np.array([1.0, 0.0, 5.0])
EN_P = np.array([55 / 8, 13 / 2, 2.0])


def test_eisenberg_noe_worked_example():
    p = eisenberg_noe(EN_L, EN_E)
    np.testing.assert_allclose(p, EN_P, rtol=1e-13, atol=0)


def test_fictitious_default_sequence_worked_example():
    assert fictitious_default_sequence(EN_L, EN_E) == [frozenset({0}), frozenset({0, 1})]


def test_clearing_losses_worked_example():
    # A pays 55/8 of 10 -> loss rate 1 - 0.6875 = 0.3125; B pays 6.5 of 8 -> 0.1875.
    expected = np.array(
        [
            [0.0, 8 * 0.3125, 2 * 0.3125],  # B loses 2.5, C loses 0.625 on A
            [6 * 0.1875, 0.0, 2 * 0.1875],  # A loses 1.125, C loses 0.375 on B
            [0.0, 0.0, 0.0],  # C pays in full
        ]
    )
    losses = clearing_losses(EN_L, EN_P)
    np.testing.assert_allclose(losses, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(losses.sum(axis=1), EN_L.sum(axis=1) - EN_P, atol=1e-13)


# Rogers-Veraart example 1: same network, alpha = 1/2 (fire-sale of external
# assets), beta = 1.
# Round 1, p = pbar: A has 8 < 10 as before -> defaults and pays
#   p_A = 0.5*1 + 1*(6 + 1) = 7.5.
# Round 2, p = (7.5, 8, 2): B: 0 + 0.8*7.5 + 1 = 7 < 8 -> defaults; C: 5+1.5+2 >= 2.
#   p_A = 0.5*1 + (3/4) p_B + 1 = 1.5 + (3/4) p_B
#   p_B = 0.5*0 + (4/5) p_A + 1 = 1   + (4/5) p_A
#   => p_A = 1.5 + 0.75 + 0.6 p_A => 0.4 p_A = 2.25 => p_A = 45/8 = 5.625,
#      p_B = 1 + 4.5 = 11/2 = 5.5
# Round 3: A: 1 + 0.75*5.5 + 1 = 6.125 < 10, B: 0.8*5.625 + 1 = 5.5 < 8,
#   C: 5 + 1.125 + 1.375 = 7.5 >= 2: stop.
# RV p = (45/8, 11/2, 2) < EN p = (55/8, 13/2, 2) in the first two components.
def test_rogers_veraart_worked_example_alpha_only():
    p = rogers_veraart(EN_L, EN_E, alpha=0.5, beta=1.0)
    np.testing.assert_allclose(p, [45 / 8, 11 / 2, 2.0], rtol=1e-13, atol=0)
    assert np.all(p[:2] < EN_P[:2])


# Rogers-Veraart example 2 (chain A -> B -> C), alpha = beta = 1/2:
#   A owes B 10, B owes C 10, C owes nothing; e = (4, 7, 0).
# EN: A pays 4 (default); B has 7 + 4 = 11 >= 10 -> pays 10. p_EN = (4, 10, 0).
# RV round 1: A has 4 + 0 < 10 -> defaults, pays 0.5*4 + 0.5*0 = 2.
# RV round 2: B has 7 + 2 = 9 < 10 -> defaults (only because of A's default
#   costs), pays 0.5*7 + 0.5*2 = 4.5.  Round 3: no change.
# p_RV = (2, 4.5, 0): default costs add a default and cut B's payment 10 -> 4.5.
def test_rogers_veraart_worked_example_extra_default():
    L = [[0, 10, 0], [0, 0, 10], [0, 0, 0]]
    e = [4, 7, 0]
    np.testing.assert_allclose(eisenberg_noe(L, e), [4.0, 10.0, 0.0], rtol=1e-13)
    np.testing.assert_allclose(rogers_veraart(L, e, 0.5, 0.5), [2.0, 4.5, 0.0], rtol=1e-13)
    assert fictitious_default_sequence(L, e) == [frozenset({0})]
    assert fictitious_default_sequence(L, e, alpha=0.5, beta=0.5) == [
        frozenset({0}),
        frozenset({0, 1}),
    ]


def test_greatest_vector_in_closed_cycle():
    # Two banks owing each other 5 with no external assets: every p = (x, x),
    # 0 <= x <= 5, clears; the greatest is (5, 5) (Picard from 0 would give 0).
    L = [[0, 5], [5, 0]]
    np.testing.assert_array_equal(eisenberg_noe(L, [0, 0]), [5.0, 5.0])
    np.testing.assert_array_equal(rogers_veraart(L, [0, 0], 0.3, 0.3), [5.0, 5.0])


def test_no_obligations_pay_zero():
    L = [[0, 3, 0], [0, 0, 0], [0, 0, 0]]
    p = eisenberg_noe(L, [1, 50, 0])
    np.testing.assert_allclose(p, [1.0, 0.0, 0.0])


# --------------------------------------------------------------------------- #
# input validation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("L", "e", "match"),
    [
        ([[0, 1, 0], [1, 0, 0]], [1, 1], "liabilities.*square"),
        ([[0, -1], [1, 0]], [1, 1], "liabilities.*non-negative"),
        ([[0, np.nan], [1, 0]], [1, 1], "liabilities.*finite"),
        ([[1, 1], [1, 0]], [1, 1], "liabilities.*zero diagonal"),
        ([[0, 1], [1, 0]], [1, 1, 1], "external_assets.*shape"),
        ([[0, 1], [1, 0]], [1, -1], "external_assets.*non-negative"),
        ([[0, 1], [1, 0]], [np.nan, 1], "external_assets.*finite"),
    ],
)
def test_bad_inputs_raise(L, e, match):
    with pytest.raises(ValueError, match=match):
        eisenberg_noe(L, e)
    with pytest.raises(ValueError, match=match):
        rogers_veraart(L, e, 0.5, 0.5)


@pytest.mark.parametrize(
    ("alpha", "beta", "match"),
    [
        (0.0, 0.5, r"alpha.*\(0, 1\]"),
        (1.5, 0.5, r"alpha.*\(0, 1\]"),
        (0.5, -0.1, r"beta.*\(0, 1\]"),
        (0.5, np.nan, r"beta.*\(0, 1\]"),
        (0.5, 1.0000001, r"beta.*\(0, 1\]"),
    ],
)
def test_bad_recovery_rates_raise(alpha, beta, match):
    with pytest.raises(ValueError, match=match):
        rogers_veraart(EN_L, EN_E, alpha, beta)


def test_clearing_losses_rejects_overpayment():
    with pytest.raises(ValueError, match="payments"):
        clearing_losses(EN_L, [11.0, 8.0, 2.0])


# --------------------------------------------------------------------------- #
# properties on random networks
# --------------------------------------------------------------------------- #
@st.composite
def networks(draw, max_n: int = 12):
    n = draw(st.integers(1, max_n))
    entry = st.one_of(st.just(0), st.just(0), st.integers(1, 100))
    L = np.array(draw(st.lists(entry, min_size=n * n, max_size=n * n)), dtype=float)
    L = L.reshape(n, n)
    np.fill_diagonal(L, 0.0)
    asset = st.one_of(st.just(0.0), st.floats(0.0, 200.0, allow_subnormal=False))
    e = np.array(draw(st.lists(asset, min_size=n, max_size=n)), dtype=float)
    return L, e


recovery = st.one_of(st.just(1.0), st.floats(0.05, 1.0))
PROPS = settings(max_examples=50, deadline=None)


def _pieces(L):
    pbar = L.sum(axis=1)
    Pi = np.divide(L, pbar[:, None], out=np.zeros_like(L), where=pbar[:, None] > 0)
    return pbar, Pi


def _scale(L, e):
    return 1.0 + L.sum() + e.sum()


@PROPS
@given(networks())
def test_en_is_fixed_point_and_bounded(net):
    L, e = net
    pbar, Pi = _pieces(L)
    p = eisenberg_noe(L, e)
    inflow = Pi.T @ p
    atol = 1e-9 * _scale(L, e)
    np.testing.assert_allclose(p, np.minimum(pbar, e + inflow), rtol=0, atol=atol)
    assert np.all(p >= 0)
    assert np.all(p <= pbar)
    assert np.all(p <= e + inflow + atol)


@PROPS
@given(networks())
def test_en_equals_picard_limit_from_pbar(net):
    L, e = net
    pbar, Pi = _pieces(L)
    q = pbar.copy()
    for _ in range(1_000_000):
        nxt = np.minimum(pbar, e + Pi.T @ q)
        done = np.max(np.abs(nxt - q), initial=0.0) <= 1e-13 * _scale(L, e)
        q = nxt
        if done:
            break
    np.testing.assert_allclose(eisenberg_noe(L, e), q, rtol=0, atol=1e-7 * _scale(L, e))


@PROPS
@given(networks())
def test_default_sequence_is_consistent(net):
    L, e = net
    n = L.shape[0]
    pbar, _ = _pieces(L)
    p = eisenberg_noe(L, e)
    seq = fictitious_default_sequence(L, e)
    assert len(seq) <= n
    for earlier, later in zip(seq, seq[1:], strict=False):
        assert earlier < later  # strictly growing
    final = np.zeros(n, dtype=bool)
    if seq:
        final[list(seq[-1])] = True
    assert np.all(p[final] < pbar[final])
    np.testing.assert_array_equal(p[~final], pbar[~final])


@PROPS
@given(networks(), recovery, recovery)
def test_rv_is_fixed_point_of_rv_map(net, alpha, beta):
    L, e = net
    pbar, Pi = _pieces(L)
    p = rogers_veraart(L, e, alpha, beta)
    inflow = Pi.T @ p
    solvent = e + inflow >= pbar - 1e-10 * np.maximum(1.0, pbar)
    expected = np.where(solvent, pbar, alpha * e + beta * inflow)
    atol = 1e-9 * _scale(L, e)
    np.testing.assert_allclose(p, expected, rtol=0, atol=atol)
    assert np.all((p >= 0) & (p <= pbar))
    assert np.all(p <= e + inflow + atol)


@PROPS
@given(networks(), recovery, recovery)
def test_rv_below_en_and_equal_at_full_recovery(net, alpha, beta):
    L, e = net
    p_en = eisenberg_noe(L, e)
    np.testing.assert_allclose(rogers_veraart(L, e, 1.0, 1.0), p_en, rtol=0, atol=1e-12)
    assert np.all(rogers_veraart(L, e, alpha, beta) <= p_en + 1e-9 * _scale(L, e))


@PROPS
@given(networks(), st.data(), recovery, recovery)
def test_monotone_in_external_assets(net, data, alpha, beta):
    L, e = net
    n = L.shape[0]
    bump = np.array(data.draw(st.lists(st.floats(0.0, 50.0), min_size=n, max_size=n)))
    atol = 1e-9 * _scale(L, e + bump)
    assert np.all(eisenberg_noe(L, e + bump) >= eisenberg_noe(L, e) - atol)
    assert np.all(
        rogers_veraart(L, e + bump, alpha, beta) >= rogers_veraart(L, e, alpha, beta) - atol
    )
