"""The summary metrics of one run: one flat row of numbers, the columns of ``runs.parquet``.

Every metric is a float (NaN where it is undefined, e.g. a recovery rate without defaults), so
tables from many runs stack and average without special cases. ``METRICS`` documents each one.
"""

from __future__ import annotations

import numpy as np

from abm.vocabulary import BORROWER_TYPES, CAUSES, CHANNELS
from abm.vocabulary import DEFAULTING_TYPES as AGENT_TYPES

METRICS: dict[str, str] = {
    "defaults": "defaults of all types over the run (count)",
    **{f"defaults_{t}": f"{t} defaults (count)" for t in AGENT_TYPES},
    **{
        f"default_share_{t}": f"share of the {t}s present at the start that defaulted"
        for t in AGENT_TYPES
    },
    "default_share_borrowers": "share of miners and neoclouds that defaulted",
    **{f"defaults_cause_{c}": f"defaults caused by {c} (count)" for c in CAUSES},
    **{
        f"pushes_{c}": f"cascade-tree edges (default -> default pushes) through {c}"
        for c in CHANNELS
    },
    "cascade_roots": "defaults not pushed by another default",
    "cascade_depth": "defaults on the longest chain of the default genealogy",
    "first_default_month": "month of the first default (NaN without defaults)",
    "lender_losses_usd": "realised lender credit losses, cumulative (USD)",
    "lender_capital_start_usd": "lenders' equity capital at the start (USD)",
    "lender_loss_rate": "lender losses / lenders' starting capital: the systemic loss",
    "outside_funder_losses_usd": "losses passed to lenders' outside funders (USD)",
    "lender_recovery_rate": "1 - write-offs / defaulted borrower debt (NaN without defaults)",
    "fire_sale_units": "GPUs sold in the secondary market, cumulative",
    "deepest_price_to_fundamental": "lowest clearing price / fundamental value (NaN: no trade)",
    "price_to_fundamental_vw": "monthly worst clearing price / fundamental, volume-weighted",
    "credit_supply_change": "lending capacity at the end / at the start - 1",
    "btc_max_drawdown": "largest peak-to-trough fall of the BTC price (share)",
    "stress_months": "months in the stress regime",
    "debtrank_start": "single-hit DebtRank of the start network (every borrower -20 % equity)",
}


def _nan_if_none(value) -> float:
    return float("nan") if value is None else float(value)


def run_metrics(result) -> dict[str, float]:
    """The flat summary metrics of a :class:`abm.results.RunResult` (keys = ``METRICS``)."""
    cm = result.cascade_metrics()
    ts, ev = result.timeseries, result.events
    out: dict[str, float] = {"defaults": float(cm["defaults"])}
    for t in AGENT_TYPES:
        out[f"defaults_{t}"] = float(cm["defaults_by_type"][t])
    for t in AGENT_TYPES:
        out[f"default_share_{t}"] = float(cm["default_share_by_type"][t])
    first = result.agents[result.agents["month"] == result.agents["month"].min()]
    n_borrowers = int(first["agent_type"].isin(BORROWER_TYPES).sum())
    n_defaulted = cm["defaults_by_type"]["miner"] + cm["defaults_by_type"]["neocloud"]
    out["default_share_borrowers"] = n_defaulted / n_borrowers if n_borrowers else float("nan")
    for c in CAUSES:
        out[f"defaults_cause_{c}"] = float(cm["defaults_by_cause"].get(c, 0))
    for c in CHANNELS:
        out[f"pushes_{c}"] = float(cm["pushes_by_channel"].get(c, 0))
    out["cascade_roots"] = float(cm["cascade_roots"])
    out["cascade_depth"] = float(cm["cascade_depth"])
    out["first_default_month"] = _nan_if_none(cm["first_default_month"])
    losses = float(ts["lender_losses_usd"].iloc[-1])
    capital0 = float(ts["lender_capital_usd"].iloc[0])
    out["lender_losses_usd"] = losses
    out["lender_capital_start_usd"] = capital0
    out["lender_loss_rate"] = losses / capital0 if capital0 > 0 else float("nan")
    out["outside_funder_losses_usd"] = float(ts["outside_funder_losses_usd"].iloc[-1])
    borrower_defaults = ev[(ev["event"] == "default") & (ev["agent_type"] != "lender")]
    defaulted_debt = float(borrower_defaults["amount_usd"].sum())
    written_off = float(ev.loc[ev["event"] == "write_off", "amount_usd"].sum())
    out["lender_recovery_rate"] = (
        1.0 - written_off / defaulted_debt if defaulted_debt > 0 else float("nan")
    )
    out["fire_sale_units"] = float(ts["fire_sale_units_cum"].iloc[-1])
    out["deepest_price_to_fundamental"] = _nan_if_none(cm["deepest_fire_sale_discount"])
    ratio = ts["min_discount"].to_numpy(dtype=float)
    units = ts["fire_sale_units"].to_numpy(dtype=float)
    traded = np.isfinite(ratio) & (units > 0)
    out["price_to_fundamental_vw"] = (
        float(np.sum(ratio[traded] * units[traded]) / np.sum(units[traded]))
        if traded.any()
        else float("nan")
    )
    supply = ts["credit_supply_usd"].to_numpy(dtype=float)
    out["credit_supply_change"] = supply[-1] / supply[0] - 1.0 if supply[0] > 0 else float("nan")
    btc = ts["btc_price"].to_numpy(dtype=float)
    out["btc_max_drawdown"] = float(np.max(1.0 - btc / np.maximum.accumulate(btc)))
    out["stress_months"] = float((ts["regime"] == "stress").sum())
    out["debtrank_start"] = _nan_if_none(cm["debtrank_start"])
    missing = set(METRICS) - set(out)
    assert not missing, f"metrics not computed: {missing}"  # keeps METRICS and this in step
    return out
