"""Validation against published results: Gai & Kapadia (2010) contagion window.

(Over 450 lines on purpose: one replication, whose long statement of the boundary convention below
belongs next to the cascade code it explains.)

Gai & Kapadia [GK2010]_ study default contagion on a directed Erdos-Renyi
interbank network. Every bank has the same balance sheet size; a share of it is
lent to other banks, split equally over its claims; a single bank fails at
random and its creditors lose their claims on it in full (zero recovery). A bank
fails when its losses exceed its capital, and failures spread round by round.
Their Figure 1 (capital 4 % and interbank assets 20 % of total assets, 1000
banks, 1000 draws) shows the *contagion window*: contagion (>= 5 % of banks
failing) is essentially absent for mean degree z below about 1, frequent and
almost total for z between about 1 and 8, and rare again beyond, where each
claim is too small for one failure to topple its creditor ("robust yet
fragile").

This module rebuilds that experiment on the model's own lender layer: the
exposures are ``INTERBANK`` rows of a :class:`abm.finance.instruments.LoanBook`
(``lender`` = creditor, ``borrower`` = debtor), failure is the model's rule of
:mod:`abm.phases.lenders` (equity = assets - liabilities strictly negative),
and with ``recovery="clearing"`` claims on failed banks are valued with the
model's funding-layer clearing, :func:`abm.finance.clearing.eisenberg_noe`.

Boundary convention
-------------------
The model fails a lender only when its equity is *strictly* negative (up to a
round-off tolerance of :data:`FAILURE_TOL` in units of total assets), so a bank
whose losses exactly equal its capital survives. With equal exposures and zero
recovery a bank with ``k`` claims (each ``interbank_share / k``) fails when
*more than* ``k * capital_ratio / interbank_share`` of its debtors have failed:
with the defaults (0.04 / 0.2) more than ``0.2 k``. In particular a single
failed debtor topples only banks with ``k <= 4`` claims; a bank with exactly
5 claims loses exactly its capital and survives.

How that shifts the window: the first-order branching condition for a global
cascade on a directed Poisson network is ``z * P(Poisson(z) <= kmax - 1) > 1``,
where banks with ``k <= kmax`` claims are toppled by one failure. With the strict
rule ``kmax = 4`` and the condition holds for ``1.02 < z < 5.76``; if equality
counted as failure (``kmax = 5``) it would hold for ``1.00 < z < 7.48``. The
lower edge (the emergence of a giant component) is unaffected; the upper edge
moves down by about 1.7 in z. Simulated cascades reach somewhat beyond the
first-order edge (banks hit by two or more failures also fall), so the measured
window under the strict rule ends around z = 6-7 rather than the paper's ~8.
To reproduce the other convention, pass a capital ratio a hair below the nominal
one (e.g. ``0.04 - 1e-6``).

References
----------
.. [GK2010] Gai, P., & Kapadia, S. (2010). Contagion in financial networks.
   *Proceedings of the Royal Society A*, 466(2120), 2401-2423.
   https://doi.org/10.1098/rspa.2009.0410
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Integral, Real

import networkx as nx
import numpy as np
import pandas as pd

from abm.finance.clearing import eisenberg_noe
from abm.finance.instruments import ACTIVE, INTERBANK, SENIOR_UNSECURED, LoanBook

__all__ = [
    "CONTAGION_THRESHOLD",
    "FAILURE_TOL",
    "RECOVERY_MODES",
    "BalanceSheets",
    "CascadeResult",
    "GaiKapadiaResult",
    "balance_sheets",
    "cascade",
    "contagion_window",
    "gai_kapadia",
    "interbank_book",
]

RECOVERY_MODES = ("zero", "clearing")
CONTAGION_THRESHOLD = 0.05  # a draw is a contagion event when at least this share of banks fails
FAILURE_TOL = 1e-9  # equity below -FAILURE_TOL (units of total assets = 1) is a failure
TOTAL_ASSETS = 1.0  # normalised balance sheet size of every bank


# --------------------------------------------------------------------------- #
# argument checks
# --------------------------------------------------------------------------- #
def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be an integer in [{low}, inf); got {value!r}")
    return int(value)


def _check_real(name: str, value, low: float, high: float, *, closed: str) -> float:
    """``closed`` is one of "[]", "()", "[)", "(]" and gives the allowed interval."""
    interval = f"{closed[0]}{low:g}, {high:g}{closed[1]}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number in {interval}; got {value!r}")
    x = float(value)
    ok_low = x >= low if closed[0] == "[" else x > low
    ok_high = x <= high if closed[1] == "]" else x < high
    if not (math.isfinite(x) and ok_low and ok_high):
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
    return x


def _check_recovery(recovery) -> str:
    if recovery not in RECOVERY_MODES:
        allowed = ", ".join(repr(r) for r in RECOVERY_MODES)
        raise ValueError(f"recovery must be one of {allowed}; got {recovery!r}")
    return recovery


def _check_params(n_banks, capital_ratio, interbank_share, recovery) -> tuple:
    return (
        _check_int("n_banks", n_banks, 2),
        _check_real("capital_ratio", capital_ratio, 0.0, 1.0, closed="()"),
        _check_real("interbank_share", interbank_share, 0.0, 1.0, closed="[]"),
        _check_recovery(recovery),
    )


# --------------------------------------------------------------------------- #
# network and balance sheets
# --------------------------------------------------------------------------- #
def interbank_book(creditors, debtors, n_banks: int, interbank_share: float = 0.2) -> LoanBook:
    """The lender layer: one active ``INTERBANK`` loan per exposure.

    Each bank's interbank assets (``interbank_share`` of total assets 1) are
    split equally over its claims, so the loan from creditor ``c`` to debtor
    ``d`` has principal ``interbank_share / k_c`` with ``k_c`` the number of
    claims of ``c``. Interbank liabilities follow from the others' claims.

    Parameters
    ----------
    creditors, debtors : array_like of int
        One entry per exposure: ``creditors[e]`` lent to ``debtors[e]``. Pairs
        must be distinct and no bank may lend to itself.
    n_banks : int
        Number of banks (indices ``0 .. n_banks - 1``), at least 2.
    interbank_share : float, default 0.2
        Interbank assets as a share of total assets, in [0, 1].
    """
    n = _check_int("n_banks", n_banks, 2)
    share = _check_real("interbank_share", interbank_share, 0.0, 1.0, closed="[]")
    c = np.asarray(creditors, dtype=np.int64).ravel()
    d = np.asarray(debtors, dtype=np.int64).ravel()
    if c.shape != d.shape:
        raise ValueError(
            f"creditors and debtors must have the same length; got {c.size} and {d.size}"
        )
    if c.size and (min(c.min(), d.min()) < 0 or max(c.max(), d.max()) >= n):
        raise ValueError(f"bank indices must be in [0, {n - 1}]")
    if np.any(c == d):
        raise ValueError("a bank cannot lend to itself (creditor == debtor)")
    if np.unique(c * n + d).size != c.size:
        raise ValueError("each (creditor, debtor) pair may appear only once")
    claims = np.bincount(c, minlength=n)
    book = LoanBook(capacity=max(int(c.size), 1))
    if c.size:
        book.add(
            lender=c,
            borrower=d,
            kind=INTERBANK,
            seniority=SENIOR_UNSECURED,
            principal_usd=share / claims[c],
            status=ACTIVE,
        )
    return book


@dataclass(frozen=True)
class BalanceSheets:
    """Gai-Kapadia balance sheets in units of total assets (arrays of length ``n_banks``).

    ``external + interbank_assets == interbank_liabilities + deposits + capital``.
    Total assets are 1 except for the (rare) bank whose interbank borrowing
    exceeds ``1 - capital``: it has no deposits and holds the excess funding as
    additional external assets, so its capital is still ``capital_ratio``.
    """

    interbank_assets: np.ndarray
    interbank_liabilities: np.ndarray
    external: np.ndarray
    deposits: np.ndarray
    capital: np.ndarray

    @property
    def equity(self) -> np.ndarray:
        return self.external + self.interbank_assets - self.interbank_liabilities - self.deposits


def _interbank_rows(book: LoanBook) -> np.ndarray:
    return np.flatnonzero((book.kind == INTERBANK) & (book.status == ACTIVE))


def balance_sheets(book: LoanBook, n_banks: int, capital_ratio: float = 0.04) -> BalanceSheets:
    """Balance sheets implied by the active interbank rows of ``book`` (total assets 1)."""
    n = _check_int("n_banks", n_banks, 2)
    cap = _check_real("capital_ratio", capital_ratio, 0.0, 1.0, closed="()")
    rows = _interbank_rows(book)
    amount = book.principal_usd[rows]
    ib_assets = np.bincount(book.lender[rows], weights=amount, minlength=n)[:n]
    ib_liabilities = np.bincount(book.borrower[rows], weights=amount, minlength=n)[:n]
    capital = np.full(n, cap * TOTAL_ASSETS)
    deposits_raw = TOTAL_ASSETS - capital - ib_liabilities
    deposits = np.maximum(deposits_raw, 0.0)
    external = TOTAL_ASSETS - ib_assets + np.maximum(-deposits_raw, 0.0)
    return BalanceSheets(ib_assets, ib_liabilities, external, deposits, capital)


# --------------------------------------------------------------------------- #
# the cascade
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class CascadeResult:
    """Outcome of one cascade.

    ``failed`` -- bool per bank. ``failure_round`` -- 0 for the initially failed
    banks, ``r`` for banks that fail in round ``r`` of the zero-recovery
    cascade, -1 for survivors (with ``recovery="clearing"`` the rounds are not
    tracked: 1 marks every contagious failure; use
    :func:`abm.finance.clearing.fictitious_default_sequence` for the waves).
    ``recovery_rate`` -- share of its nominal liabilities each bank pays
    (1 for survivors; 0 for failed banks under zero recovery).
    """

    failed: np.ndarray
    failure_round: np.ndarray
    recovery_rate: np.ndarray

    @property
    def share_failed(self) -> float:
        return float(self.failed.mean())


def cascade(
    book: LoanBook,
    n_banks: int,
    initial,
    *,
    capital_ratio: float = 0.04,
    recovery: str = "zero",
) -> CascadeResult:
    """Run default contagion on the lender layer of ``book`` after ``initial`` banks fail.

    The initially failed banks lose their external assets (the paper's shock).
    ``recovery="zero"``: a creditor's claims on failed banks are worth nothing;
    each round recomputes equity = external + claims on surviving banks -
    interbank liabilities - deposits, and banks with equity < -:data:`FAILURE_TOL`
    fail, until a round adds no failure. ``recovery="clearing"``: the liabilities
    (interbank rows plus deposits owed to an outside-depositor node) are cleared
    with :func:`~abm.finance.clearing.eisenberg_noe`; a bank fails when it cannot
    pay in full (equivalently, its equity after valuing claims at the clearing
    payments is negative), as in :mod:`abm.phases.lenders`. The book is read, not
    modified.
    """
    n = _check_int("n_banks", n_banks, 2)
    cap = _check_real("capital_ratio", capital_ratio, 0.0, 1.0, closed="()")
    mode = _check_recovery(recovery)
    init = np.atleast_1d(np.asarray(initial, dtype=np.int64))
    if init.size and (init.min() < 0 or init.max() >= n):
        raise ValueError(f"initial bank indices must be in [0, {n - 1}]")
    sheets = balance_sheets(book, n, cap)
    rows = _interbank_rows(book)
    creditor, debtor = book.lender[rows], book.borrower[rows]
    amount = book.principal_usd[rows]
    external = sheets.external.copy()
    external[init] = 0.0
    liabilities = sheets.interbank_liabilities + sheets.deposits
    failed = np.zeros(n, dtype=bool)
    failed[init] = True
    rounds = np.full(n, -1, dtype=np.int64)
    rounds[init] = 0

    if mode == "zero":
        r = 0
        while True:
            r += 1
            held = np.bincount(creditor, weights=amount * ~failed[debtor], minlength=n)[:n]
            equity = external + held - liabilities
            new = (equity < -FAILURE_TOL) & ~failed
            if not new.any():
                break
            failed |= new
            rounds[new] = r
        rate = np.where(failed, 0.0, 1.0)
        return CascadeResult(failed, rounds, rate)

    # clearing: nodes 0..n-1 are the banks, node n the outside depositors
    L = np.zeros((n + 1, n + 1))
    np.add.at(L, (debtor, creditor), amount)
    L[:n, n] = sheets.deposits
    p = eisenberg_noe(L, np.append(external, 0.0))
    pbar = L.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(pbar > 0, p / pbar, 1.0)[:n]
    new = (rate < 1.0 - FAILURE_TOL) & ~failed
    failed |= new
    rounds[new] = 1
    return CascadeResult(failed, rounds, rate)


# --------------------------------------------------------------------------- #
# the experiment
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class GaiKapadiaResult:
    """Monte Carlo summary of :func:`gai_kapadia`.

    ``frequency`` -- share of all draws in which at least ``threshold`` of the
    banks failed (no draw is excluded from the denominator).
    ``conditional_extent`` -- mean share of banks failed over those contagion
    draws (NaN when there are none). ``failure_shares`` -- share of banks
    failed in each draw, the initially failed bank included. ``params`` -- the
    arguments used.
    """

    frequency: float
    conditional_extent: float
    failure_shares: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def contagion_draws(self) -> int:
        return int(np.count_nonzero(self.failure_shares >= self.params["threshold"]))

    def as_dict(self) -> dict:
        return {
            "frequency": self.frequency,
            "conditional_extent": self.conditional_extent,
            "contagion_draws": self.contagion_draws,
            "failure_shares": self.failure_shares.copy(),
            **self.params,
        }


def gai_kapadia(
    n_banks: int = 1000,
    mean_degree: float = 5.0,
    draws: int = 100,
    seed: int = 0,
    capital_ratio: float = 0.04,
    interbank_share: float = 0.2,
    recovery: str = "zero",
    *,
    threshold: float = CONTAGION_THRESHOLD,
) -> GaiKapadiaResult:
    """Frequency and extent of contagion after one random bank fails (Gai & Kapadia 2010, Fig. 1).

    Each draw builds a directed Erdos-Renyi network with ``networkx.fast_gnp_random_graph``
    (edge probability ``mean_degree / (n_banks - 1)``; edge ``u -> v`` means ``u`` owes
    ``v``, so contagion flows along the edges and a bank's in-degree is its number of
    claims), stores it as ``INTERBANK`` rows of a ``LoanBook``, wipes out the
    external assets of one bank chosen at random and runs :func:`cascade`.

    Boundary convention: a bank whose losses exactly equal its capital does NOT
    fail, because the model fails a lender only when equity is strictly negative.
    With equal exposures a bank with ``k`` claims therefore fails when more than
    ``k * capital_ratio / interbank_share`` of its debtors fail (> 0.2 k with the
    defaults), so one failure topples only banks with at most 4 claims. That
    moves the upper edge of the window down relative to the paper's Figure 1
    (roughly z in [1, 8] with near-total contagion in between): the first-order
    cascade condition ``z P(Poisson(z) <= 3) > 1`` ends at z = 5.76 instead of
    7.48 for ``z P(Poisson(z) <= 4) > 1`` (equality counted as failure), and the
    measured window ends around z = 6-7. The lower edge (z ~ 1) is unchanged.
    See the module docstring.

    Parameters
    ----------
    n_banks : int, default 1000
        Number of banks, at least 2.
    mean_degree : float, default 5.0
        Mean number of claims (= of debtors) per bank, z, in [0, n_banks - 1].
    draws : int, default 100
        Number of independent networks, at least 1.
    seed : int, default 0
        Non-negative seed. Draw ``i`` uses the ``i``-th child of
        ``numpy.random.SeedSequence(seed)`` for the graph seed and the initial
        bank, so draws are independent, the first ``k`` draws do not depend on
        ``draws``, and the same seed gives common random numbers across ``mean_degree``.
    capital_ratio : float, default 0.04
        Capital as a share of total assets, in (0, 1).
    interbank_share : float, default 0.2
        Interbank assets as a share of total assets, in [0, 1].
    recovery : {"zero", "clearing"}, default "zero"
        "zero": the paper's assumption, claims on failed banks are lost in full.
        "clearing": claims are valued at the Eisenberg-Noe clearing payments
        (dense ``(n+1) x (n+1)`` solve per draw: much slower than "zero").
    threshold : float, default 0.05
        Share of banks that must fail for a draw to count as contagion, in (0, 1].

    Returns
    -------
    GaiKapadiaResult
        ``frequency``, ``conditional_extent``, ``failure_shares`` (per draw) and ``params``.

    Raises
    ------
    ValueError
        If an argument is outside its allowed range (the message names it and the range).
    """
    n, cap, share, mode = _check_params(n_banks, capital_ratio, interbank_share, recovery)
    z = _check_real("mean_degree", mean_degree, 0.0, float(n - 1), closed="[]")
    n_draws = _check_int("draws", draws, 1)
    seed = _check_int("seed", seed, 0)
    thr = _check_real("threshold", threshold, 0.0, 1.0, closed="(]")

    p = z / (n - 1)
    shares = np.empty(n_draws)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n_draws)):
        rng = np.random.default_rng(child)
        graph_seed = int(rng.integers(0, 2**63 - 1))
        first = int(rng.integers(0, n))
        graph = nx.fast_gnp_random_graph(n, p, seed=graph_seed, directed=True)
        flat = itertools.chain.from_iterable(graph.edges())
        edges = np.fromiter(flat, dtype=np.int64, count=2 * graph.number_of_edges())
        edges = edges.reshape(-1, 2)
        book = interbank_book(edges[:, 1], edges[:, 0], n, share)  # u owes v: v is the lender
        shares[i] = cascade(book, n, first, capital_ratio=cap, recovery=mode).share_failed

    hit = shares >= thr
    frequency = float(hit.mean())
    extent = float(shares[hit].mean()) if hit.any() else math.nan
    params = {
        "n_banks": n,
        "mean_degree": z,
        "draws": n_draws,
        "seed": seed,
        "capital_ratio": cap,
        "interbank_share": share,
        "recovery": mode,
        "threshold": thr,
    }
    return GaiKapadiaResult(frequency, extent, shares, params)


def contagion_window(
    mean_degrees: Iterable[float],
    n_banks: int = 1000,
    draws: int = 100,
    seed: int = 0,
    capital_ratio: float = 0.04,
    interbank_share: float = 0.2,
    recovery: str = "zero",
    *,
    threshold: float = CONTAGION_THRESHOLD,
) -> pd.DataFrame:
    """:func:`gai_kapadia` over several mean degrees (the x-axis of the paper's Figure 1).

    Returns a DataFrame with one row per mean degree and columns ``mean_degree``,
    ``frequency``, ``conditional_extent``, ``contagion_draws``, ``mean_share_failed``
    (unconditional) and the remaining parameters. Every row uses the same
    ``seed`` (common random numbers across z).
    """
    zs = list(mean_degrees)
    if not zs:
        raise ValueError("mean_degrees must contain at least one value in [0, n_banks - 1]")
    rows = []
    for z in zs:
        res = gai_kapadia(
            n_banks,
            z,
            draws,
            seed,
            capital_ratio,
            interbank_share,
            recovery,
            threshold=threshold,
        )
        rows.append(
            {
                "mean_degree": res.params["mean_degree"],
                "frequency": res.frequency,
                "conditional_extent": res.conditional_extent,
                "contagion_draws": res.contagion_draws,
                "mean_share_failed": float(res.failure_shares.mean()),
                **{k: v for k, v in res.params.items() if k != "mean_degree"},
            }
        )
    return pd.DataFrame(rows)
