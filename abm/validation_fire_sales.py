"""Fire-sale amplification (Cifuentes, Ferrucci & Shin 2005; Cont & Schaanning 2017), reproduced with
the model's own market, marks and covenants configured down to the papers' setting.

The setting: identical-ish neoclouds hold a common illiquid asset (GPUs) financed by GPU loans whose
LTV covenants are tested at mark-to-market prices; forced sellers (lenders selling seized collateral,
bankruptcy estates) accept any price above the GPUs' salvage value, so the price impact of sales comes only from the buyers'
downward-sloping bid schedules (the inverse demand curve); bought GPUs leave this market (no supply
recycling), and the other contagion channels are off, as are the outside customers' defaults. The
initial shock is the pinned AI-demand fall.

Predictions tested in ``tests/validation/test_fire_sales.py``: the share of defaults rises with the
price impact of sales and with the initial shock, and is higher when the market clears all forced
sales simultaneously than when sellers clear one at a time.
"""

from __future__ import annotations

import copy

import pandas as pd

from abm.config import LENDER_ROLES, load_scenario
from abm.results import run


def fire_sale_setting(
    price_impact: float = 0.55,
    shock: float = -0.2,
    clearing: str = "simultaneous",
    n_neoclouds: int = 20,
) -> dict:
    """The papers' setting as a scenario.

    Parameters
    ----------
    price_impact:
        In [0, 1): how far the inverse demand curve falls, 1 - ``buyers.bid_floor`` (the lowest bid as a
        share of each buyer's valuation). 0.05 is an almost flat (deep) market, 0.8 a steep one.
    shock:
        Total relative change of AI demand over 2026-02..09 (the initial shock), in (-1, 0].
    clearing:
        ``"simultaneous"`` or ``"sequential"`` secondary-market clearing.
    """
    if not 0.0 <= price_impact < 1.0:
        raise ValueError(f"price_impact: must be in [0, 1), got {price_impact!r}")
    if not -1.0 < shock <= 0.0:
        raise ValueError(f"shock: must be in (-1, 0], got {shock!r}")
    base = load_scenario("correlated_crash")
    pins = copy.deepcopy(base["shocks"]["pinned"])
    for pin in pins:
        if pin["variable"] == "ai_demand":
            pin["total_change"] = shock
    overrides = {
        "shocks.pinned": pins,
        "neoclouds.count": n_neoclouds,
        "neoclouds.fleet_units": [20000.0, 60000.0],
        "miners.count": 0,
        "buyers.bid_floor": 1.0 - price_impact,
        "buyers.redeploy_share": 0.0,
        "market.clearing": clearing,
        "credit.reserve_floor_multiplier": 0.0,
        # holding seized GPUs earns the lender nothing: its reserve (and the estates' credit bid)
        # falls to the GPUs' salvage value, so forced sellers take any bid above scrap
        "credit.servicer_fee_share": 1.0,
    }
    for channel in ("funding", "credit_crunch", "margin_calls", "counterparty"):
        overrides[f"channels.{channel}"] = False
    # and no outside shock but the demand fall (the customers' defaults were part of the
    # counterparty switch when this setting was written)
    overrides["shocks.customer_defaults"] = False
    for kind in LENDER_ROLES:
        overrides[f"lenders.kinds.{kind}.mark_policy"] = "market"
    return load_scenario("correlated_crash", overrides)


def default_share(config: dict, seeds=range(12)) -> dict:
    """Share of neoclouds that default and total lender losses (USD) over ``seeds``."""
    defaults = losses = 0.0
    for seed in seeds:
        last = run(config, seed=seed).timeseries.iloc[-1]
        defaults += last["defaults_neocloud"]
        losses += last["lender_losses_usd"]
    n = config["neoclouds"]["count"] * len(list(seeds))
    return {"default_share": defaults / n, "lender_losses_usd": losses}


def fire_sale_amplification(
    price_impacts=(0.05, 0.3, 0.55, 0.8),
    shocks=(-0.2,),
    clearings=("simultaneous",),
    seeds=range(12),
) -> pd.DataFrame:
    """Default share over a grid of price impact x initial shock x clearing mode (one row each)."""
    rows = []
    for clearing in clearings:
        for shock in shocks:
            for impact in price_impacts:
                cfg = fire_sale_setting(impact, shock, clearing)
                rows.append(
                    {
                        "clearing": clearing,
                        "shock": shock,
                        "price_impact": impact,
                        **default_share(cfg, seeds),
                    }
                )
    return pd.DataFrame(rows)
