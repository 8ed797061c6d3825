"""Building the initial world, continued: the many weighted lender draws of a build, made cheaply.

A world build draws a lender for every borrower's loan (26,900 draws at 10,000 borrowers), by
preferential attachment on lender size and load (:func:`abm.world._choose_lenders`, the rule and
the reference). Each draw there recomputes the weights of all 200-600 candidates and makes a dozen
NumPy calls. :class:`LenderDraws` makes the same draws with the same generator calls and the same
floating-point operations, but keeps each candidate set's weights between draws and recomputes
only the entries whose load changed (load changes go through :meth:`LenderDraws.add_load`), and
makes a single draw (``k`` = 1) with four NumPy calls into preallocated arrays. The returned
lenders and the generator's state after each draw are those of ``_choose_lenders``:
``tests/test_world_lender_draws.py`` checks it on hypothesis-drawn weights, loads and seeds.
"""

from __future__ import annotations

import math

import numpy as np

from abm.sampling import weighted_sample

_divide, _add_reduce = np.divide, np.add.reduce


class _CandidateSet:
    """One candidate array's weights ((size x (1 + load)) ** concentration, float64, aligned with
    ``candidates``) and work arrays."""

    __slots__ = ("candidates", "candidate_list", "weights", "p", "cdf", "nonnegative")

    def __init__(self, candidates: np.ndarray, weights: np.ndarray) -> None:
        self.candidates = candidates
        self.candidate_list = candidates.tolist()
        self.weights = weights
        self.p = np.empty(len(candidates))
        self.cdf = np.empty(len(candidates))
        # all weights >= 0 (no NaN): then p >= 0 whenever the cumulative total is finite and > 0,
        # and the check ``p.min() >= 0`` of weighted_sample's single draw needs no pass over p
        self.nonnegative = bool((weights >= 0).all())


class LenderDraws:
    """Lender draws of one build step over a shared ``load`` array (lenders' loan counts so far,
    float, one per agent), made as :func:`abm.world._choose_lenders` makes them.

    Rules: a candidate's weight is ``(lender_size_weight x (1 + load)) ** lenders.size_concentration``
    (all ones under ``network.topology = "random"``); ``choose(candidates, k)`` draws ``k`` distinct
    candidates with probability proportional to weight (``Generator.choice``'s algorithm,
    :func:`abm.sampling.weighted_sample`). Every change of ``load`` while the object is in use must
    go through :meth:`add_load` (it recomputes the changed lender's weight in every candidate set);
    ``load`` may be changed freely before the object is made."""

    def __init__(self, m, load: np.ndarray) -> None:
        self.m, self.rng, self.load = m, m.rng, load
        self.uniform_weights = m.cfg["network"]["topology"] == "random"
        self.concentration = m.cfg["lenders"]["size_concentration"]
        # with exponent 1.0, NumPy's ``x ** 1.0`` is a copy of x (its fast scalar power): a changed
        # weight is then size x (1 + load) in float64, the same bits computed on Python floats
        self.linear = (not isinstance(self.concentration, bool)) and self.concentration == 1.0
        self.size_weight = m.lender_size_weight
        self._sets: dict[int, _CandidateSet] = {}
        # lender -> the (candidate set, position) pairs where its weight sits
        self._slots: dict[int, list[tuple[_CandidateSet, int]]] = {}
        # Python-float copies of sizes and loads (scalar reads of NumPy arrays cost more)
        self._size = self.size_weight.tolist()
        self._load = load.tolist()

    def _weights(self, candidates: np.ndarray) -> np.ndarray:
        """The weights of ``candidates`` as ``_choose_lenders`` computes them (the same operations)."""
        if self.uniform_weights:
            return np.ones(len(candidates))
        load = self.load
        return (self.size_weight[candidates] * (1.0 + load[candidates])) ** self.concentration

    def _candidate_set(self, candidates: np.ndarray) -> _CandidateSet:
        """The candidate set of ``candidates`` (the same array object), made on first use."""
        # (an entry holds its array, so an id is never reused for another array while it lives)
        entry = self._sets.get(id(candidates))
        if entry is None:
            entry = self._sets[id(candidates)] = _CandidateSet(
                candidates, self._weights(candidates)
            )
            for j, lender in enumerate(entry.candidate_list):
                self._slots.setdefault(lender, []).append((entry, j))
        return entry

    def choose(self, candidates: np.ndarray, k: int) -> np.ndarray:
        """``_choose_lenders(m, candidates, k, load)``: ``k`` distinct lenders (array of agent
        indices, in drawing order), the same draws from ``m.rng``."""
        k = min(k, len(candidates))
        entry = self._candidate_set(candidates)
        weights = entry.weights
        if not entry.nonnegative or k < 1:
            return candidates[weighted_sample(self.rng, weights / weights.sum(), k)]
        p, cdf = entry.p, entry.cdf
        total_weight = np.add.reduce(weights)  # weights.sum(), without its Python wrapper
        np.divide(weights, total_weight, out=p)
        if k == 1:
            # weighted_sample's single draw: p's cumulative sum normalised by its last entry, one
            # uniform searched (side "right"); p >= 0 since the weights are
            p.cumsum(out=cdf)
            total = cdf[-1]
            if not (total > 0 and math.isfinite(total)):
                return candidates[weighted_sample(self.rng, p.copy(), k)]
            np.divide(cdf, total, out=cdf)
            j = int(cdf.searchsorted(self.rng.random(), side="right"))
            return candidates[j : j + 1]
        # several distinct draws: Generator.choice's loop (uniforms for the draws still missing
        # against the renormalised cumulative sum, entries found so far zeroed, first of repeats
        # kept); its preconditions: at least k positive probabilities, all finite (so when the
        # weights, all >= 0, have a finite positive sum)
        if not (total_weight > 0 and math.isfinite(total_weight)) or np.count_nonzero(p) < k:
            return candidates[weighted_sample(self.rng, weights / weights.sum(), k)]
        found: list[int] = []
        while len(found) < k:
            x = self.rng.random(k - len(found))
            if found:
                p[found] = 0
            p.cumsum(out=cdf)
            np.divide(cdf, cdf[-1], out=cdf)
            new = cdf.searchsorted(x, side="right").tolist()
            seen: set[int] = set()
            found.extend(j for j in new if not (j in seen or seen.add(j)))
        return candidates[found]

    def choose_one(self, candidates: np.ndarray) -> int:
        """``int(choose(candidates, 1)[0])``: one lender (agent index), the same draw, with less
        Python around it (the common case: one draw per instrument)."""
        entry = self._sets.get(id(candidates))
        if entry is None or not entry.nonnegative or not entry.candidate_list:
            return int(self.choose(candidates, 1)[0])
        weights, p, cdf = entry.weights, entry.p, entry.cdf
        _divide(weights, _add_reduce(weights), out=p)
        p.cumsum(out=cdf)
        total = cdf[-1]
        if not (total > 0 and math.isfinite(total)):
            return int(candidates[weighted_sample(self.rng, p.copy(), 1)][0])
        _divide(cdf, total, out=cdf)
        return entry.candidate_list[cdf.searchsorted(self.rng.random(), side="right")]

    def add_load(self, lenders, amount: float = 1.0) -> None:
        """``load[lender] += amount`` for each lender in ``lenders`` (an int or an array; repeats
        add once each, in order, as ``np.add.at``), and the lender's weight in every candidate set
        recomputed."""
        if isinstance(lenders, np.ndarray):
            for lender in lenders.tolist():
                self.add_load(lender, amount)
            return
        lender = int(lenders)
        value = self._load[lender] + amount
        self._load[lender] = value
        self.load[lender] = value
        if self.uniform_weights:
            return
        if self.linear:
            weight = self._size[lender] * (1.0 + value)
        else:  # the reference's expression, elementwise on a one-element array
            row = slice(lender, lender + 1)
            weight = ((self.size_weight[row] * (1.0 + self.load[row])) ** self.concentration)[0]
        for entry, j in self._slots.get(lender, ()):
            entry.weights[j] = weight
            if not weight >= 0:
                entry.nonnegative = False
