"""Confidence intervals of a replicate mean that stay inside the metric's possible range.

Two methods, picked by the metric's ``kind`` in :data:`abm.sweep.metrics.CATALOGUE`:

- ``bootstrap_percentile``: the replicate mean recomputed on ``RESAMPLES`` resamples (with
  replacement) of the replicates; the interval is the (1 - c)/2 and (1 + c)/2 quantiles of those
  means. A mean of values inside [low, high] is inside [low, high], so the interval is too. The
  resampling is seeded (same sweep, same interval).
- ``wilson``: the Wilson score interval of a frequency k / n over runs (a 0/1 outcome per run);
  it lies inside [0, 1] and is not degenerate at k = 0 or k = n.

Fewer than ``MIN_REPLICATES`` finite values give no interval (NaN bounds, method ``none``): a
percentile bootstrap of 2-4 values is far too narrow, and the table says so instead.
"""

from __future__ import annotations

import zlib

import numpy as np

MIN_REPLICATES = 5
RESAMPLES = 2000
BOOTSTRAP = "bootstrap_percentile"
WILSON = "wilson"
NO_INTERVAL = "none"


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / trials (trials >= 1), inside [0, 1]."""
    from scipy import stats

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    # exact ends at k = 0 and k = n (the formula gives them up to rounding)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return float(lo), float(hi)


def bootstrap_interval(
    values: np.ndarray, confidence: float, rng: np.random.Generator, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (1-d, finite, at least 1)."""
    n = len(values)
    means = values[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2])
    # the quantiles interpolate between resampled means, all inside [min, max] of the values
    return float(max(lo, values.min())), float(min(hi, values.max()))


def interval_seed(master_seed: int, point: int, metric: str) -> np.random.SeedSequence:
    """The bootstrap seed of one (design point, metric): independent of the metric's position."""
    return np.random.SeedSequence([master_seed % 2**63, int(point), zlib.crc32(metric.encode())])


def mean_interval(
    values: np.ndarray,
    kind: str,
    confidence: float,
    seed: np.random.SeedSequence,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[float, float, str]:
    """(low, high, method) of the mean of the finite ``values`` of one design point.

    ``kind`` "binary" (0/1 values) uses Wilson, anything else the percentile bootstrap; fewer
    than ``MIN_REPLICATES`` values give (NaN, NaN, "none"). The bounds are clipped to ``bounds``
    (the metric's declared range) as a guard against floating-point rounding."""
    values = values[np.isfinite(values)]
    n = len(values)
    if n < MIN_REPLICATES:
        return float("nan"), float("nan"), NO_INTERVAL
    if kind == "binary":
        lo, hi = wilson_interval(int(round(values.sum())), n, confidence)
        method = WILSON
    else:
        lo, hi = bootstrap_interval(values, confidence, np.random.default_rng(seed))
        method = BOOTSTRAP
    low, high = bounds
    return float(np.clip(lo, low, high)), float(np.clip(hi, low, high)), method
