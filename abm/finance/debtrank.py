"""DebtRank: propagation of distress (equity losses) on an exposure network.

The relative equity loss ("distress") ``h_i`` in [0, 1] of each node spreads
to its creditors through the impact matrix

    ``W[i, j] = min(1, exposures[i, j] / equity[i])``,

the fractional equity loss of ``i`` per unit of distress of ``j`` (``i`` holds a
claim of ``exposures[i, j]`` USD on ``j``). Two variants are implemented:

* ``"single_hit"`` -- the original DebtRank of Battiston et al. (2012). Nodes
  are undistressed (U), distressed (D) or inactive (I). A node propagates its
  distress level only once, in the round after it becomes distressed, and is
  inactive afterwards:
  ``h_i(t) = min(1, h_i(t-1) + sum_{j in D(t-1)} W[i, j] h_j(t-1))``.
* ``"linear"`` -- the linear DebtRank of Bardoscia et al. (2015), in which every
  increment of distress is propagated:
  ``h(t) = min(1, h(t-1) + W (h(t-1) - h(t-2)))`` with ``h(-1) = 0``,
  iterated to convergence. Equivalently ``h(t) = min(1, h(0) + W h(t-1))``,
  so the limit is the least fixed point of ``h = min(1, h(0) + W h)``.

The linear variant is componentwise no smaller than the single-hit variant.

References
----------
.. [B2012] Battiston, S., Puliga, M., Kaushik, R., Tasca, P., & Caldarelli, G.
   (2012). DebtRank: Too central to fail? Financial networks, the FED and
   systemic risk. *Scientific Reports*, 2, 541. https://doi.org/10.1038/srep00541
.. [B2015] Bardoscia, M., Battiston, S., Caccioli, F., & Caldarelli, G. (2015).
   DebtRank: A microscopic foundation for shock propagation. *PLoS ONE*,
   10(6), e0130406. https://doi.org/10.1371/journal.pone.0130406
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np

from abm.finance._checks import square_matrix

__all__ = ["debtrank", "debtrank_value", "impact_matrix"]

_VARIANTS = ("single_hit", "linear")


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _as_exposures(exposures) -> np.ndarray:
    return square_matrix("exposures", exposures, "a node has no claim on itself")


def _as_vector(name: str, values, n: int, *, low: float, high: float, open_low: bool):
    v = np.array(values, dtype=float, copy=True)
    lo = "(" if open_low else "["
    hi = "inf)" if math.isinf(high) else f"{high:g}]"
    allowed = f"{lo}{low:g}, {hi}"
    if v.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (no NaN or inf); allowed range is {allowed}")
    bad_low = v <= low if open_low else v < low
    if np.any(bad_low) or np.any(v > high):
        raise ValueError(f"{name} must lie in {allowed}")
    return v


def _check_max_iter(max_iter) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer in [1, inf); got {max_iter!r}")
    return int(max_iter)


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, Real):
        raise ValueError(f"tol must be a real number in [0, inf); got {tol!r}")
    t = float(tol)
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"tol must be in [0, inf); got {tol!r}")
    return t


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def impact_matrix(exposures, equity) -> np.ndarray:
    """Impact matrix ``W[i, j] = min(1, exposures[i, j] / equity[i])``.

    Parameters
    ----------
    exposures : array_like, shape (n, n)
        ``exposures[i, j]`` is ``i``'s claim on ``j`` (USD); non-negative,
        finite, zero diagonal.
    equity : array_like, shape (n,)
        Equity of each node (USD), strictly positive.

    Returns
    -------
    numpy.ndarray, shape (n, n)
        Dimensionless impacts in [0, 1].
    """
    X = _as_exposures(exposures)
    E = _as_vector("equity", equity, X.shape[0], low=0.0, high=math.inf, open_low=True)
    return np.minimum(1.0, X / E[:, None])


def debtrank(
    exposures,
    equity,
    initial_distress,
    value_weights=None,
    variant: str = "single_hit",
    max_iter: int = 1000,
    *,
    tol: float = 1e-12,
) -> np.ndarray:
    """Final distress vector of the DebtRank propagation.

    Parameters
    ----------
    exposures : array_like, shape (n, n)
        ``exposures[i, j]`` is node ``i``'s claim on node ``j`` (USD);
        non-negative, finite, zero diagonal.
    equity : array_like, shape (n,)
        Equity of each node (USD), in (0, inf).
    initial_distress : array_like, shape (n,)
        Initial relative equity loss ``h(0)``, in [0, 1] (1 = default).
    value_weights : array_like, shape (n,), optional
        Economic weights of the nodes, non-negative. They do not affect the
        distress vector; they are only validated here, for symmetry with
        :func:`debtrank_value`, which uses them.
    variant : {"single_hit", "linear"}, default "single_hit"
        ``"single_hit"``: Battiston et al. (2012), each node propagates once.
        ``"linear"``: Bardoscia et al. (2015), all increments propagate.
    max_iter : int, default 1000
        Maximum number of rounds. ``"single_hit"`` always stops within
        ``n + 1`` rounds; ``"linear"`` emits a ``RuntimeWarning`` and returns
        the current iterate if it has not converged after ``max_iter`` rounds.
    tol : float, default 1e-12
        ``"linear"`` stops when no component of ``h`` grew by more than ``tol``
        in a round.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Final distress ``h`` (dimensionless), ``initial_distress <= h <= 1``.

    Raises
    ------
    ValueError
        If an argument has the wrong shape, is out of range or not finite, or
        ``variant`` is unknown.
    """
    X = _as_exposures(exposures)
    n = X.shape[0]
    E = _as_vector("equity", equity, n, low=0.0, high=math.inf, open_low=True)
    h0 = _as_vector("initial_distress", initial_distress, n, low=0.0, high=1.0, open_low=False)
    if value_weights is not None:
        _as_vector("value_weights", value_weights, n, low=0.0, high=math.inf, open_low=False)
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}; got {variant!r}")
    max_iter = _check_max_iter(max_iter)
    tol = _check_tol(tol)
    W = np.minimum(1.0, X / E[:, None])

    if variant == "single_hit":
        return _single_hit(W, h0, max_iter)
    return _linear(W, h0, max_iter, tol)


def _single_hit(W: np.ndarray, h0: np.ndarray, max_iter: int) -> np.ndarray:
    h = h0.copy()
    distressed = h > 0  # state D
    inactive = np.zeros_like(distressed)  # state I
    for _ in range(max_iter):
        if not distressed.any():
            return h
        h_new = np.minimum(1.0, h + W[:, distressed] @ h[distressed])
        inactive = inactive | distressed
        distressed = (h_new > 0) & ~inactive
        h = h_new
    if distressed.any():  # only reachable if max_iter < n + 1
        warnings.warn(
            f"single-hit DebtRank stopped after max_iter={max_iter} rounds with "
            "distressed nodes left; the result is incomplete",
            RuntimeWarning,
            stacklevel=3,
        )
    return h


def _linear(W: np.ndarray, h0: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    h_prev = np.zeros_like(h0)
    h = h0.copy()
    for _ in range(max_iter):
        h_new = np.minimum(1.0, h + W @ (h - h_prev))
        step = np.max(h_new - h, initial=0.0)
        h_prev, h = h, h_new
        if step <= tol:
            return h
    warnings.warn(
        f"linear DebtRank did not converge within max_iter={max_iter} rounds "
        f"(last increment {step:.3g} > tol={tol:g}); returning the last iterate",
        RuntimeWarning,
        stacklevel=3,
    )
    return h


def debtrank_value(h, initial_distress, value_weights=None) -> float:
    """DebtRank ``R = sum_i v_i h_i - sum_i v_i h_i(0)``.

    Parameters
    ----------
    h : array_like, shape (n,)
        Final distress vector, in [0, 1] (e.g. from :func:`debtrank`).
    initial_distress : array_like, shape (n,)
        Initial distress ``h(0)``, in [0, 1].
    value_weights : array_like, shape (n,), optional
        Non-negative weights ``v``, used as given (not normalised). Pass
        relative economic values summing to 1 for the dimensionless DebtRank,
        or USD values (e.g. equity) for the induced loss in USD. Default:
        uniform weights ``1 / n``.

    Returns
    -------
    float
        The distress induced by the propagation, excluding the initial shock
        (dimensionless for weights summing to 1, else in the weights' units).
    """
    h = np.array(h, dtype=float, copy=True)
    if h.ndim != 1:
        raise ValueError(f"h must be a 1-D array of shape (n,); got shape {h.shape}")
    n = h.shape[0]
    h = _as_vector("h", h, n, low=0.0, high=1.0, open_low=False)
    h0 = _as_vector("initial_distress", initial_distress, n, low=0.0, high=1.0, open_low=False)
    if value_weights is None:
        v = np.full(n, 1.0 / n) if n else np.zeros(0)
    else:
        v = _as_vector("value_weights", value_weights, n, low=0.0, high=math.inf, open_low=False)
    return float(v @ h - v @ h0)
