"""Tests of abm.finance.debtrank (single-hit and linear DebtRank)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.finance.debtrank import debtrank, debtrank_value, impact_matrix

# 3-node chain 0 <- 1 <- 2: node 0 holds a 5 USD claim on node 1, node 1 a 4 USD
# claim on node 2; every equity is 10 USD.
#   W[0, 1] = 5/10 = 0.5, W[1, 2] = 4/10 = 0.4, all other entries 0.
# Initial distress h(0) = (0, 0.5, 1.0): node 2 defaults, node 1 lost half its equity.
#
# single_hit (Battiston et al. 2012): D(0) = {1, 2}
#   t=1: h_1 = min(1, 0.5 + 0.4*1.0) = 0.9,  h_0 = min(1, 0 + 0.5*0.5) = 0.25
#        nodes 1, 2 become inactive; node 0 becomes distressed
#   t=2: node 0 is nobody's debtor -> no change; node 0 becomes inactive; stop.
#   h = (0.25, 0.9, 1.0)   (node 1's extra 0.4 is never passed on to node 0)
# linear (Bardoscia et al. 2015), h(-1) = 0:
#   h(1) = h(0) + W h(0)                = (0.25, 0.9, 1.0)
#   h(2) = h(1) + W (h(1) - h(0))       : h(1) - h(0) = (0.25, 0.4, 0)
#        h_0 = 0.25 + 0.5*0.4 = 0.45,  h_1 = 0.9 + 0.4*0 = 0.9
#   h(3) = h(2) + W (0.2, 0, 0) = h(2)  -> converged
#   h = (0.45, 0.9, 1.0)
# DebtRank with uniform weights 1/3: R = (sum h - sum h(0)) / 3
#   single_hit: (2.15 - 1.5)/3 = 0.65/3,   linear: (2.35 - 1.5)/3 = 0.85/3.
CHAIN_X = np.array([[0.0, 5.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
CHAIN_E = np.array([10.0, 10.0, 10.0])
CHAIN_H0 = np.array([0.0, 0.5, 1.0])


def test_chain_single_hit():
    h = debtrank(CHAIN_X, CHAIN_E, CHAIN_H0, variant="single_hit")
    np.testing.assert_allclose(h, [0.25, 0.9, 1.0], rtol=1e-14)
    np.testing.assert_allclose(debtrank_value(h, CHAIN_H0), 0.65 / 3, rtol=1e-12)


def test_chain_linear():
    h = debtrank(CHAIN_X, CHAIN_E, CHAIN_H0, variant="linear")
    np.testing.assert_allclose(h, [0.45, 0.9, 1.0], rtol=1e-14)
    np.testing.assert_allclose(debtrank_value(h, CHAIN_H0), 0.85 / 3, rtol=1e-12)


def test_default_variant_is_single_hit():
    np.testing.assert_array_equal(
        debtrank(CHAIN_X, CHAIN_E, CHAIN_H0),
        debtrank(CHAIN_X, CHAIN_E, CHAIN_H0, variant="single_hit"),
    )


def test_cycle_reverberation():
    # 0 and 1 hold 5 USD claims on each other, equity 10: W = [[0, .5], [.5, 0]].
    # h(0) = (0.2, 0).
    # single_hit: t=1 h_1 = 0.5*0.2 = 0.1 (0 -> inactive); t=2 h_0 = 0.2 + 0.5*0.1
    #   = 0.25 (1 -> inactive); the echo stops: h = (0.25, 0.1).
    # linear: least fixed point of h = min(1, h0 + W h):
    #   h_0 = 0.2 + 0.5 h_1, h_1 = 0.5 h_0 => h_0 = 0.2/0.75 = 4/15, h_1 = 2/15.
    X = [[0, 5], [5, 0]]
    E = [10, 10]
    h0 = [0.2, 0.0]
    np.testing.assert_allclose(debtrank(X, E, h0), [0.25, 0.1], rtol=1e-14)
    np.testing.assert_allclose(debtrank(X, E, h0, variant="linear"), [4 / 15, 2 / 15], rtol=1e-10)


def test_impact_is_capped_at_one():
    # exposure 30 against equity 10 -> W[0, 1] = min(1, 3) = 1, so a 0.5 loss of
    # node 1 costs node 0 half its equity, not 1.5 times it.
    X = [[0, 30], [0, 0]]
    np.testing.assert_array_equal(impact_matrix(X, [10, 10]), [[0, 1], [0, 0]])
    for variant in ("single_hit", "linear"):
        np.testing.assert_allclose(debtrank(X, [10, 10], [0, 0.5], variant=variant), [0.5, 0.5])
        np.testing.assert_allclose(debtrank(X, [10, 10], [0.8, 0.5], variant=variant), [1.0, 0.5])


def test_debtrank_value_weights():
    h = np.array([0.5, 1.0, 0.0])
    h0 = np.array([0.0, 1.0, 0.0])
    assert debtrank_value(h, h0) == pytest.approx(0.5 / 3)
    assert debtrank_value(h, h0, value_weights=[100.0, 50.0, 7.0]) == pytest.approx(50.0)


# --------------------------------------------------------------------------- #
# input validation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"exposures": [[0, 1, 0], [1, 0, 0]]}, "exposures.*square"),
        ({"exposures": [[0, -1], [1, 0]]}, "exposures.*non-negative"),
        ({"exposures": [[0, np.nan], [1, 0]]}, "exposures.*finite"),
        ({"exposures": [[2, 1], [1, 0]]}, "exposures.*zero diagonal"),
        ({"equity": [1, 0]}, r"equity.*\(0, inf\)"),
        ({"equity": [1, -3]}, r"equity.*\(0, inf\)"),
        ({"equity": [1, 1, 1]}, "equity.*shape"),
        ({"equity": [1, np.inf]}, "equity.*finite"),
        ({"initial_distress": [0, 1.5]}, r"initial_distress.*\[0, 1\]"),
        ({"initial_distress": [-0.1, 0]}, r"initial_distress.*\[0, 1\]"),
        ({"initial_distress": [np.nan, 0]}, "initial_distress.*finite"),
        ({"value_weights": [1, -1]}, "value_weights"),
        ({"variant": "quadratic"}, "variant"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    args = {"exposures": [[0, 1], [1, 0]], "equity": [1, 1], "initial_distress": [0.5, 0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        debtrank(**args)


def test_debtrank_value_bad_inputs_raise():
    with pytest.raises(ValueError, match="initial_distress.*shape"):
        debtrank_value([0.5, 0.5], [0.1])
    with pytest.raises(ValueError, match=r"h.*\[0, 1\]"):
        debtrank_value([1.5, 0.5], [0.1, 0.1])


# --------------------------------------------------------------------------- #
# properties on random networks
# --------------------------------------------------------------------------- #
@st.composite
def systems(draw, max_n: int = 12):
    n = draw(st.integers(1, max_n))
    entry = st.one_of(st.just(0), st.just(0), st.integers(1, 20))
    X = np.array(draw(st.lists(entry, min_size=n * n, max_size=n * n)), dtype=float)
    X = X.reshape(n, n)
    np.fill_diagonal(X, 0.0)
    E = np.array(draw(st.lists(st.integers(1, 20), min_size=n, max_size=n)), dtype=float)
    shock = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.01, 1.0))
    h0 = np.array(draw(st.lists(shock, min_size=n, max_size=n)), dtype=float)
    return X, E, h0


PROPS = settings(max_examples=50, deadline=None)
VARIANTS = st.sampled_from(["single_hit", "linear"])


@PROPS
@given(systems(), VARIANTS)
def test_distress_bounded_and_not_below_initial(system, variant):
    X, E, h0 = system
    h = debtrank(X, E, h0, variant=variant)
    assert h.shape == h0.shape
    assert np.all((h >= 0) & (h <= 1))
    assert np.all(h >= h0)
    assert debtrank_value(h, h0) >= 0


@PROPS
@given(systems(), VARIANTS)
def test_zero_exposures_leave_initial_distress(system, variant):
    _, E, h0 = system
    np.testing.assert_array_equal(
        debtrank(np.zeros((h0.size, h0.size)), E, h0, variant=variant), h0
    )


@PROPS
@given(systems())
def test_linear_dominates_single_hit(system):
    X, E, h0 = system
    single = debtrank(X, E, h0, variant="single_hit")
    linear = debtrank(X, E, h0, variant="linear", max_iter=100_000)
    assert np.all(linear >= single - 1e-9)


@PROPS
@given(systems())
def test_linear_is_fixed_point(system):
    X, E, h0 = system
    W = impact_matrix(X, E)
    h = debtrank(X, E, h0, variant="linear", max_iter=100_000)
    np.testing.assert_allclose(h, np.minimum(1.0, h0 + W @ h), rtol=0, atol=1e-8)


@PROPS
@given(systems())
def test_single_hit_only_reaches_exposed_nodes(system):
    # A node's distress can only grow if it has a chain of claims leading to an
    # initially distressed node.
    X, E, h0 = system
    n = h0.size
    reach = h0 > 0
    for _ in range(n):
        reach = reach | ((X > 0).astype(float) @ reach.astype(float) > 0)
    for variant in ("single_hit", "linear"):
        h = debtrank(X, E, h0, variant=variant)
        np.testing.assert_array_equal(h[~reach], h0[~reach])
