"""Phases 1-2: shocks, generation releases, base rate, compute and BTC markets, buyers' budgets."""

from __future__ import annotations

import math

import numpy as np

from abm import policy
from abm.agents.base import ACTIVE
from abm.phases.market import update_marks


def shocks_and_markets(m, t: int) -> None:
    cfg = m.cfg
    sh = cfg["shocks"]
    z_btc, z_ai, pinned = m.shocks.step(t)
    stress = m.shocks.stress
    btc_return = m.crypto.draw_return(z_btc, stress) + pinned["btc"]
    if stress:
        btc_return += sh["btc_stress_drift"]
    m.crypto.step(t, btc_return)
    # the modelled miners are part of the network: it can never be smaller than their hashrate
    # (a pinned network hashrate is the world's record and is kept as given)
    own = float(m.hashrate_eh[m.miner_idx][m.status[m.miner_idx] == ACTIVE].sum())
    if not m.crypto.hashrate_path_eh:
        m.crypto.network_hashrate_eh = max(
            m.crypto.network_hashrate_eh, own / cfg["crypto"]["modelled_hashrate_max_share"]
        )

    # AI demand: trend growth, persistent AR(1) shock, stress drift and pinned shocks (permanent level)
    sigma = sh["ai_demand_vol_per_year"] / math.sqrt(12.0)
    m.demand_shock = sh["ai_demand_persistence"] * m.demand_shock + sigma * z_ai
    m.log_demand_level += (
        math.log1p(cfg["compute"]["demand_growth_per_year"]) / 12.0 + pinned["ai_demand"]
    )
    if stress:
        m.log_demand_level += sh["ai_demand_stress_drift"]
    # demand stops growing at e^230 (1e100) times its start: a float-safety bound, not economics.
    # Valid parameters (+1 log/month of stress drift for 600 months) would overflow math.exp
    demand = m.demand_base_perf_units * math.exp(min(m.log_demand_level + m.demand_shock, 230.0))

    span = max(m.months - 1, 1)
    c = cfg["credit"]
    m.base_rate = c["base_rate_start"] + (c["base_rate_end"] - c["base_rate_start"]) * t / span

    if t > 0:
        m.compute.step_trend(int(np.sum(m.release_month == t)))
    m.compute.clear(demand, m.in_service_perf_units())
    m.compute.update_fundamentals(t)
    # market marks carried into this month: the index where no recent trade, else (weighted) trades
    update_marks(m, t)
    m.index_history.append(m.mark_market.copy())
    lag = cfg["compute"]["appraisal_lag_months"]
    # appraisals average the market marks of the last ``lag`` months: comparable sales, with a lag
    m.mark_appraisal = np.mean(m.index_history[-lag:], axis=0)
    m.mark_appraisal_by_kind = appraisal_marks_by_kind(m)

    # buyers: this month's budget and absorption; owners top the cash up to the budget or take surplus
    b = m.buyer_idx
    mult = buyer_credit_multiplier(m, stress)
    m.budget_left[b] = m.populations.buyers.monthly_spending_usd(mult)
    m.mw_left[b] = m.absorption_mw[b] * mult
    policy.return_last_resort_cash(m)  # (its salvage proceeds go back to the policy authority)
    m.acct.from_sector("equity_investors", b, m.budget_left[b] - m.acct.cash[b])

    m.this_month.reset()
    # a lost lease explains later distress for a limited time (a year in the baseline)
    memory = cfg["credit"]["lost_lease_memory_months"]
    m.lost_revenue_event[t - m.lost_revenue_month > memory] = -1


def appraisal_marks_by_kind(m) -> np.ndarray:
    """(K, G) appraisal marks by lender kind (USD per GPU; rows in ``lender_kind_names`` order):
    kind k takes ``appraisal_haircut`` off the mean of the market marks of its own last
    ``appraisal_lag_months`` (``compute.appraisal_lag_months`` where the kind sets 0). Kinds with
    the market-wide lag share ``mark_appraisal`` (one mean per distinct lag)."""
    means = {int(lag): None for lag in m.appraisal_lag_months_by_kind}
    default_lag = m.cfg["compute"]["appraisal_lag_months"]
    for lag in means:
        means[lag] = (
            m.mark_appraisal if lag == default_lag else np.mean(m.index_history[-lag:], axis=0)
        )
    lagged = np.stack([means[int(lag)] for lag in m.appraisal_lag_months_by_kind])
    return (1.0 - m.appraisal_haircut_by_kind)[:, None] * lagged


def buyer_credit_multiplier(m, stress: bool) -> float:
    """This month's multiplier of buyers' cash budgets and absorption (MW).

    Under ``shocks.correlation_model = "regime_set"`` the stress regime sets it by hand
    (``buyers.stress_budget_multiplier`` in stress, else 1). Under ``"emergent"`` it is 1: the regime
    sets nothing, and buyers feel lenders pulling back through their credit lines, which follow the
    lenders' size-weighted appetite (:meth:`abm.agents.buyer.Buyers.monthly_spending_usd`); their
    owners' cash and their MW of power do not depend on lenders."""
    if m.shocks.regime_sets_correlation:
        return m.cfg["buyers"]["stress_budget_multiplier"] if stress else 1.0
    return 1.0
