"""Weighted draws without replacement, as NumPy's ``Generator.choice`` makes them, for the many
single draws of building a world (one lender choice per borrower and instrument)."""

from __future__ import annotations

import numpy as np


def weighted_sample(rng, p: np.ndarray, k: int) -> np.ndarray:
    """Positions of ``k`` distinct draws with probabilities ``p``: the algorithm and the draws of
    ``rng.choice(len(p), size=k, replace=False, p=p)`` (NumPy's ``Generator.choice``: uniforms
    against the renormalised cumulative sum, repeats redrawn with the found entries zeroed), without
    its argument checks, which cost more than the draw when it runs once per borrower.
    ``tests/test_books.py`` checks it against ``rng.choice``."""
    if k == 1:  # one uniform, never a repeat (the common case: checked by the cumulative sum)
        cdf = np.cumsum(p)
        total = cdf[-1]
        if total > 0 and np.isfinite(total) and p.min() >= 0:
            cdf /= total
            return cdf.searchsorted(rng.random(1), side="right")
    if k <= 0 or np.count_nonzero(p > 0) < k or not np.isfinite(p).all():
        # nothing to draw, or let NumPy raise its error
        return rng.choice(len(p), size=k, replace=False, p=p)
    p = p.copy()  # zeroed below where drawn (the caller's array stays as it was)
    found = np.zeros(k, dtype=np.int64)
    n_found = 0
    while n_found < k:
        x = rng.random(k - n_found)
        if n_found > 0:  # a repeat: redraw the rest with the entries found so far excluded
            p[found[:n_found]] = 0
        cdf = np.cumsum(p)
        cdf /= cdf[-1]
        new = cdf.searchsorted(x, side="right")
        if len(new) > 1 and len(set(new.tolist())) < len(new):  # repeats: keep first of each
            _, first = np.unique(new, return_index=True)
            first.sort()
            new = new.take(first)
        found[n_found : n_found + len(new)] = new
        n_found += len(new)
    return found
