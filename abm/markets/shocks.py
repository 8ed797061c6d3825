"""Correlated regime shocks to BTC and AI demand, with optional pinned (deterministic) shocks."""

from __future__ import annotations

import math

import numpy as np

from abm.config import month_index


class Shocks:
    """A calm/stress Markov regime and correlated standard-normal draws for BTC and AI demand.

    ``correlation_model`` (``shocks.correlation_model``) says where the BTC / AI-demand co-movement
    comes from:

    * ``"emergent"`` (default): the draws are correlated by ``corr_calm`` in both regimes, the
      loading of an exogenous common risk-appetite factor; the regime adds no correlation. Any extra
      co-movement in stress comes from what links the two markets in the model (miners selling BTC
      to service GPU and other debt, lenders common to both sectors pulling back, the stress drifts
      of both, which are the regime's exogenous risk-off).
    * ``"regime_set"`` (the earlier rule, for comparison): in stress the correlation converges from
      ``corr_calm`` towards ``corr_stress_target`` with e-folding time ``corr_convergence_months``
      (correlations go to one in a crisis).

    Pinned shocks add a deterministic log change spread evenly over their window and may hold the
    regime in stress.
    """

    def __init__(self, cfg: dict, start: str, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng
        self.stress = False
        self.months_in_stress = 0
        self.correlation = cfg["corr_calm"]
        # the earlier rule: the stress regime sets the correlation (and, elsewhere, customer defaults
        # and buyers' budgets) by hand
        self.regime_sets_correlation = cfg["correlation_model"] == "regime_set"
        self.pinned = []
        for pin in cfg.get("pinned", []):
            first, last = month_index(pin["start"], start), month_index(pin["end"], start)
            per_month = math.log1p(pin["total_change"]) / (last - first + 1)
            self.pinned.append((pin["variable"], first, last, per_month, pin["force_stress"]))

    def step(self, month: int) -> tuple[float, float, dict]:
        """Advance the regime; return (z_btc, z_ai, pinned log changes by variable)."""
        cfg = self.cfg
        forced = any(force and first <= month <= last for _, first, last, _, force in self.pinned)
        u = self.rng.random()
        if forced:
            self.stress = True
        elif self.stress:
            self.stress = u >= cfg["p_stress_to_calm"]
        else:
            self.stress = u < cfg["p_calm_to_stress"]
        self.months_in_stress = self.months_in_stress + 1 if self.stress else 0
        if self.stress and self.regime_sets_correlation:
            w = math.exp(-self.months_in_stress / cfg["corr_convergence_months"])
            self.correlation = (
                cfg["corr_stress_target"] + (cfg["corr_calm"] - cfg["corr_stress_target"]) * w
            )
        else:
            self.correlation = cfg["corr_calm"]
        z1, z2 = self.rng.standard_normal(2)
        rho = self.correlation
        z_ai = rho * z1 + math.sqrt(max(0.0, 1.0 - rho * rho)) * z2
        pinned = {"btc": 0.0, "ai_demand": 0.0}
        for variable, first, last, per_month, _ in self.pinned:
            if first <= month <= last:
                pinned[variable] += per_month
        return float(z1), float(z_ai), pinned
