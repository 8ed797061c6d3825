"""The loop's second-wave fast paths against the code they replaced (a1d5c5d).

Pure functions (``Lenders.hold_value_per_gpu``) are compared with their slow twin at every call of
a whole run (bit for bit); the twins are kept here as they were. Each test also requires that the
path was used with non-trivial input, so that the comparison could fail.
"""

from __future__ import annotations

import numpy as np

import abm
from abm.agents.lender import Lenders


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
