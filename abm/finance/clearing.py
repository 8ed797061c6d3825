"""Clearing payment vectors for a network of nominal interbank liabilities.

Two clearing models are implemented, both returning the *greatest* clearing
payment vector and both computed exactly (a finite sequence of linear solves,
not an iteration to a tolerance):

* :func:`eisenberg_noe` -- the clearing vector of Eisenberg & Noe (2001),
  computed with their *fictitious default algorithm*.
* :func:`rogers_veraart` -- the clearing vector with default costs of
  Rogers & Veraart (2013), computed with their *Greatest Clearing Vector
  Algorithm* (GA). With ``alpha = beta = 1`` it coincides with Eisenberg-Noe.

Helpers :func:`fictitious_default_sequence` (default sets by round, i.e. the
cascade waves) and :func:`clearing_losses` (creditor losses given payments) are
provided for reporting.

Notation (all monetary amounts in USD):

* ``L[i, j]`` -- nominal liability of bank ``i`` to bank ``j``.
* ``pbar[i] = sum_j L[i, j]`` -- total nominal obligations of ``i``.
* ``Pi[i, j] = L[i, j] / pbar[i]`` -- relative liabilities matrix (row ``i`` is
  zero when ``pbar[i] == 0``).
* ``e[i]`` -- external (non-interbank) assets of ``i``.
* inflow of ``i`` under payments ``p``: ``sum_j Pi[j, i] * p[j]``, i.e.
  ``(Pi.T @ p)[i]``.

References
----------
.. [EN2001] Eisenberg, L., & Noe, T. H. (2001). Systemic risk in financial
   systems. *Management Science*, 47(2), 236-249.
   https://doi.org/10.1287/mnsc.47.2.236.9835
.. [RV2013] Rogers, L. C. G., & Veraart, L. A. M. (2013). Failure and rescue in
   an interbank network. *Management Science*, 59(4), 882-898.
   https://doi.org/10.1287/mnsc.1120.1569
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from abm.finance._checks import square_matrix

__all__ = [
    "clearing_losses",
    "eisenberg_noe",
    "fictitious_default_sequence",
    "rogers_veraart",
]


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _as_liabilities(liabilities) -> np.ndarray:
    return square_matrix("liabilities", liabilities, "a bank cannot owe itself")


def _as_vector(name: str, values, n: int) -> np.ndarray:
    v = np.array(values, dtype=float, copy=True)
    if v.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match liabilities; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (no NaN or inf); allowed range is [0, inf)")
    if np.any(v < 0):
        raise ValueError(f"{name} must be non-negative; allowed range is [0, inf)")
    return v


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number in (0, 1]; got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and 0.0 < x <= 1.0):
        raise ValueError(f"{name} must be in (0, 1]; got {value!r}")
    return x


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, Real):
        raise ValueError(f"tol must be a real number in [0, inf); got {tol!r}")
    t = float(tol)
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"tol must be in [0, inf); got {tol!r}")
    return t


def _check_max_iter(max_iter) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer in [1, inf); got {max_iter!r}")
    return int(max_iter)


def _relative_liabilities(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(pbar, Pi)``; rows of ``Pi`` with ``pbar == 0`` are zero."""
    pbar = L.sum(axis=1)
    Pi = np.zeros_like(L)
    owes = pbar > 0
    Pi[owes] = L[owes] / pbar[owes, None]
    return pbar, Pi


# --------------------------------------------------------------------------- #
# core: Rogers-Veraart Greatest Clearing Vector Algorithm (EN when alpha=beta=1)
# --------------------------------------------------------------------------- #
def _greatest_clearing(
    L: np.ndarray,
    e: np.ndarray,
    alpha: float,
    beta: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, list[frozenset[int]]]:
    """Greatest clearing vector and the insolvency sets by round.

    Stage ``k``: with payments ``p^k`` find the insolvent set
    ``D_{k+1} = D_k U {i : e_i + (Pi^T p^k)_i < pbar_i}``; if it did not grow,
    ``p^k`` is the greatest clearing vector. Otherwise banks outside ``D_{k+1}``
    pay ``pbar`` and the banks in ``D_{k+1}`` solve the linear system
    ``p_D = alpha e_D + beta (Pi^T)_{DD} p_D + beta (Pi^T)_{DN} pbar_N``.
    With ``alpha = beta = 1`` this is the fictitious default algorithm of
    Eisenberg & Noe (2001).
    """
    n = L.shape[0]
    pbar, Pi = _relative_liabilities(L)
    A = Pi.T  # A[i, j] = share of j's payments that goes to i
    p = pbar.copy()
    in_default = np.zeros(n, dtype=bool)
    sequence: list[frozenset[int]] = []
    slack = tol * np.maximum(1.0, pbar)

    for _ in range(max_iter):
        assets = e + A @ p
        new_default = in_default | (assets < pbar - slack)
        if np.array_equal(new_default, in_default):
            return p, sequence
        in_default = new_default
        sequence.append(frozenset(int(i) for i in np.flatnonzero(in_default)))

        D = in_default
        N = ~in_default
        p_prev = p
        p = pbar.copy()
        rhs = alpha * e[D] + beta * (A[np.ix_(D, N)] @ pbar[N])
        B = beta * A[np.ix_(D, D)]
        try:
            p_D = np.linalg.solve(np.eye(int(D.sum())) - B, rhs)
        except np.linalg.LinAlgError:
            # Unreachable in exact arithmetic (a default set never contains a
            # closed group of banks that owe only each other); decreasing Picard
            # iteration from p_prev gives the greatest solution below p_prev.
            p_D = p_prev[D].copy()
            for _ in range(max_iter):
                nxt = np.minimum(p_D, rhs + B @ p_D)
                if np.max(np.abs(nxt - p_D), initial=0.0) <= tol:
                    p_D = nxt
                    break
                p_D = nxt
        # Exact arithmetic gives 0 <= p^{k+1} <= p^k; remove round-off only.
        p[D] = np.clip(np.minimum(p_D, p_prev[D]), 0.0, pbar[D])

    raise RuntimeError(
        f"clearing did not stabilise within max_iter={max_iter} rounds "
        f"(at most n + 1 = {n + 1} are needed in exact arithmetic)"
    )


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def eisenberg_noe(
    liabilities,
    external_assets,
    *,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> np.ndarray:
    """Greatest Eisenberg-Noe clearing payment vector.

    Solves ``p_i = min(pbar_i, e_i + sum_j Pi[j, i] p_j)`` for the greatest
    solution with the fictitious default algorithm of Eisenberg & Noe (2001):
    start from ``p = pbar``, find the banks that cannot pay in full, solve the
    linear system for those defaulters assuming all other banks pay in full,
    and repeat until the default set stops growing (at most ``n`` rounds).

    Parameters
    ----------
    liabilities : array_like, shape (n, n)
        ``liabilities[i, j]`` is the nominal amount (USD) bank ``i`` owes bank
        ``j``. Non-negative, finite, zero diagonal.
    external_assets : array_like, shape (n,)
        External (non-interbank) assets of each bank (USD). Non-negative, finite.
    tol : float, default 1e-10
        Relative tolerance of the default test: bank ``i`` is treated as a
        defaulter when its assets fall short of ``pbar_i`` by more than
        ``tol * max(1, pbar_i)`` USD. It does not make the result approximate.
    max_iter : int, default 10_000
        Safety cap on the number of rounds (``n + 1`` always suffice).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Payments (USD) ``p`` with ``0 <= p <= pbar``; ``p_i = pbar_i`` for
        solvent banks and ``p_i = 0`` for banks with no obligations.

    Raises
    ------
    ValueError
        If an argument has the wrong shape, is negative, or is not finite.
    """
    L = _as_liabilities(liabilities)
    e = _as_vector("external_assets", external_assets, L.shape[0])
    p, _ = _greatest_clearing(L, e, 1.0, 1.0, _check_tol(tol), _check_max_iter(max_iter))
    return p


def rogers_veraart(
    liabilities,
    external_assets,
    alpha: float,
    beta: float,
    *,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> np.ndarray:
    """Greatest Rogers-Veraart clearing payment vector with default costs.

    A bank that can meet its obligations, ``e_i + sum_j Pi[j, i] p_j >= pbar_i``,
    pays ``pbar_i``; a defaulting bank realises only a fraction ``alpha`` of its
    external assets and ``beta`` of its interbank receivables and pays
    ``alpha * e_i + beta * sum_j Pi[j, i] p_j``. Computed with the Greatest
    Clearing Vector Algorithm of Rogers & Veraart (2013): decreasing iteration
    from ``pbar`` in which the insolvent set grows monotonically and a linear
    system is solved at each stage. ``alpha = beta = 1`` gives
    :func:`eisenberg_noe`.

    Parameters
    ----------
    liabilities : array_like, shape (n, n)
        ``liabilities[i, j]`` is the nominal amount (USD) bank ``i`` owes bank
        ``j``. Non-negative, finite, zero diagonal.
    external_assets : array_like, shape (n,)
        External assets of each bank (USD). Non-negative, finite.
    alpha : float
        Recovery fraction of external assets on default, in (0, 1].
    beta : float
        Recovery fraction of interbank receivables on default, in (0, 1].
    tol : float, default 1e-10
        Relative tolerance of the insolvency test (see :func:`eisenberg_noe`).
    max_iter : int, default 10_000
        Safety cap on the number of stages (``n + 1`` always suffice).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Payments (USD), ``0 <= p <= pbar``, componentwise no larger than the
        Eisenberg-Noe vector.

    Raises
    ------
    ValueError
        If an argument has the wrong shape, is negative or not finite, or if
        ``alpha`` or ``beta`` is outside (0, 1].
    """
    a = _check_fraction("alpha", alpha)
    b = _check_fraction("beta", beta)
    L = _as_liabilities(liabilities)
    e = _as_vector("external_assets", external_assets, L.shape[0])
    p, _ = _greatest_clearing(L, e, a, b, _check_tol(tol), _check_max_iter(max_iter))
    return p


def fictitious_default_sequence(
    liabilities,
    external_assets,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    tol: float = 1e-10,
) -> list[frozenset[int]]:
    """Default sets by round of the clearing algorithm (the cascade waves).

    Parameters
    ----------
    liabilities : array_like, shape (n, n)
        Nominal interbank liabilities (USD), as in :func:`eisenberg_noe`.
    external_assets : array_like, shape (n,)
        External assets (USD).
    alpha, beta : float, default 1.0
        Default-cost recovery fractions in (0, 1]; the defaults give the
        Eisenberg-Noe fictitious default algorithm, other values the
        Rogers-Veraart algorithm.
    tol : float, default 1e-10
        Relative tolerance of the default test.

    Returns
    -------
    list of frozenset of int
        ``result[k]`` is the cumulative set of defaulting bank indices after
        round ``k + 1``; the sets are strictly increasing and there are at most
        ``n`` of them (empty list if no bank defaults). Wave ``k`` is
        ``result[k] - result[k - 1]``. The last set is the default set of the
        greatest clearing vector.
    """
    a = _check_fraction("alpha", alpha)
    b = _check_fraction("beta", beta)
    L = _as_liabilities(liabilities)
    e = _as_vector("external_assets", external_assets, L.shape[0])
    _, sequence = _greatest_clearing(L, e, a, b, _check_tol(tol), L.shape[0] + 1)
    return sequence


def clearing_losses(liabilities, payments) -> np.ndarray:
    """Creditor losses implied by a payment vector.

    Each debtor ``i`` pays its creditors pro rata, so creditor ``j`` loses
    ``L[i, j] * (1 - p_i / pbar_i)`` on its claim against ``i`` (zero when
    ``pbar_i == 0``).

    Parameters
    ----------
    liabilities : array_like, shape (n, n)
        ``liabilities[i, j]`` is the nominal amount (USD) ``i`` owes ``j``.
    payments : array_like, shape (n,)
        Total payments (USD) of each bank, ``0 <= p_i <= pbar_i`` (a relative
        excess of up to 1e-9 from round-off is clipped).

    Returns
    -------
    numpy.ndarray, shape (n, n)
        ``losses[i, j]`` -- loss (USD) of creditor ``j`` on its claim on ``i``.
        Column sums are total losses per creditor, row sums are
        ``pbar - payments``.
    """
    L = _as_liabilities(liabilities)
    p = _as_vector("payments", payments, L.shape[0])
    pbar = L.sum(axis=1)
    if np.any(p > pbar + 1e-9 * np.maximum(1.0, pbar)):
        raise ValueError("payments must not exceed total obligations; allowed range is [0, pbar]")
    p = np.minimum(p, pbar)
    shortfall = np.zeros_like(pbar)
    owes = pbar > 0
    shortfall[owes] = 1.0 - p[owes] / pbar[owes]
    return L * shortfall[:, None]
