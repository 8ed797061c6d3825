"""Who the agents are: the agent table built from a scenario (types, index sets, per-agent
parameters of lenders and buyers). :func:`agent_table` is the first step of building the world
(:mod:`abm.world` builds the balance sheets on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm import policy
from abm.agents.base import BUYER, LENDER, MINER, NEOCLOUD
from abm.config import LENDER_ROLES


@dataclass(frozen=True)
class AgentTable:
    """Who the agents are: types, index sets and per-agent parameters (arrays of length ``n``,
    rows ordered miners, neoclouds, lenders, buyers; zeros / -1 outside the type they belong to).

    ``lk``: lender parameters by name (per-agent arrays from ``lenders.kinds``); ``market_policy``:
    True for lenders marking collateral to market (else appraisal); ``lender_size_weight``: lognormal
    size weights for preferential attachment; buyer arrays from ``buyers.kinds`` (USD per month,
    MW per month, hurdle rate per year, USD per GPU, bool, relative performance, GPUs)."""

    n: int
    type: np.ndarray
    miner_idx: np.ndarray
    neocloud_idx: np.ndarray
    lender_idx: np.ndarray
    buyer_idx: np.ndarray
    borrower_idx: np.ndarray
    lender_kind_names: tuple
    lender_kind: np.ndarray
    lk: dict
    market_policy: np.ndarray
    lender_size_weight: np.ndarray
    buyer_kind_names: tuple
    buyer_kind: np.ndarray
    budget_usd: np.ndarray
    absorption_mw: np.ndarray
    hurdle: np.ndarray
    integration_usd: np.ndarray
    buyer_liquid: np.ndarray
    buyer_max_perf: np.ndarray
    buyer_installed: np.ndarray
    buyer_asic: np.ndarray  # the buyer's kind buys ASICs (equipment = "asic"), not GPUs


def agent_table(cfg: dict, rng: np.random.Generator) -> AgentTable:
    """Agent types and per-agent parameters from the scenario; ``rng`` draws the lenders' size
    weights (one lognormal draw per lender)."""
    lender_kinds = [k for k in LENDER_ROLES] + [
        k for k in cfg["lenders"]["kinds"] if k not in LENDER_ROLES
    ]
    lender_kind_names = tuple(lender_kinds)
    lender_kind_list = [
        lender_kinds.index(k) for k in lender_kinds for _ in range(cfg["lenders"]["mix"].get(k, 0))
    ]
    bk = policy.buyer_kinds(cfg)  # the scenario's kinds (+ the buyer of last resort, when on)
    buyer_kind_names = tuple(bk)
    buyer_kind_list = [i for i, k in enumerate(buyer_kind_names) for _ in range(bk[k]["count"])]
    n_m, n_n = cfg["miners"]["count"], cfg["neoclouds"]["count"]
    types = (
        [MINER] * n_m
        + [NEOCLOUD] * n_n
        + [LENDER] * len(lender_kind_list)
        + [BUYER] * len(buyer_kind_list)
    )
    type_ = np.array(types, dtype=np.int64)
    n = len(types)
    lender_idx = np.flatnonzero(type_ == LENDER)
    buyer_idx = np.flatnonzero(type_ == BUYER)
    lender_kind = np.full(n, -1, dtype=np.int64)
    lender_kind[lender_idx] = lender_kind_list
    buyer_kind = np.full(n, -1, dtype=np.int64)
    buyer_kind[buyer_idx] = buyer_kind_list
    # lender parameters as per-agent arrays (zeros for non-lenders)
    lk = {}
    for key in cfg["lenders"]["kinds"][lender_kinds[0]]:
        if key == "mark_policy":
            continue
        arr = np.zeros(n)
        for i in lender_idx:
            arr[i] = cfg["lenders"]["kinds"][lender_kinds[lender_kind[i]]][key]
        lk[key] = arr
    lk["cure_months"] = lk["cure_months"].astype(np.int64)
    market_policy = np.zeros(n, dtype=bool)
    for i in lender_idx:
        market_policy[i] = (
            cfg["lenders"]["kinds"][lender_kinds[lender_kind[i]]]["mark_policy"] == "market"
        )
    lender_size_weight = np.zeros(n)
    lender_size_weight[lender_idx] = rng.lognormal(0.0, 0.75, len(lender_idx))
    # buyer parameters

    def buyer_param(key, dtype=float):
        arr = np.zeros(n, dtype=dtype)
        for i in buyer_idx:
            arr[i] = bk[buyer_kind_names[buyer_kind[i]]][key]
        return arr

    return AgentTable(
        n=n,
        type=type_,
        miner_idx=np.flatnonzero(type_ == MINER),
        neocloud_idx=np.flatnonzero(type_ == NEOCLOUD),
        lender_idx=lender_idx,
        buyer_idx=buyer_idx,
        borrower_idx=np.flatnonzero((type_ == MINER) | (type_ == NEOCLOUD)),
        lender_kind_names=lender_kind_names,
        lender_kind=lender_kind,
        lk=lk,
        market_policy=market_policy,
        lender_size_weight=lender_size_weight,
        buyer_kind_names=buyer_kind_names,
        buyer_kind=buyer_kind,
        budget_usd=buyer_param("monthly_budget_usd"),
        absorption_mw=buyer_param("absorption_mw_per_month"),
        hurdle=buyer_param("hurdle_rate"),
        integration_usd=buyer_param("integration_cost_usd_per_gpu"),
        buyer_liquid=buyer_param("liquid_cooling", bool),
        buyer_max_perf=buyer_param("max_perf"),
        buyer_installed=buyer_param("installed_units", np.int64),
        buyer_asic=np.array(
            [
                t == BUYER and bk[buyer_kind_names[k]].get("equipment", "gpu") == "asic"
                for t, k in zip(type_, buyer_kind, strict=True)
            ],
            dtype=bool,
        ),
    )
