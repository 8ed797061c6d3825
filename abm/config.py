"""Scenario schema, TOML loading and field-level validation.

A scenario is a TOML file. ``baseline.toml`` holds every parameter; other scenarios say
``extends = "baseline"`` (or a path) and override only what differs: tables merge key by key,
unless the scenario lists them in ``replace = ["generations", ...]`` (then its own table, or an
empty one, stands in for the parent's whole table). The schema below states each
field's type and allowed range; any unknown key, wrong type or out-of-range value raises
:class:`ConfigError` naming the dotted field and what is allowed, before anything runs or is written.
Files are read through :func:`read_toml_file` (a regular file, at most 1 MiB, UTF-8 TOML); this is
the one validation layer for scenario input. (Long because the schema has one entry per parameter.)
"""

from __future__ import annotations

import copy
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

SCENARIO_PACKAGE = "abm.scenarios"
INF = math.inf
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
OVERRIDE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
# resolved while loading (never in a resolved config); an override of them would be ignored
RESERVED_OVERRIDE_KEYS = ("extends", "replace")
MAX_TOML_BYTES = 1 << 20  # scenario and extends files (bounds a read of /dev/zero or a huge file)
MAX_EXTENDS_DEPTH = 32


class ConfigError(ValueError):
    """A scenario or override is invalid; the message names the field and the allowed values."""


@dataclass(frozen=True)
class F:
    """One leaf field: its kind, range and a short description with its unit."""

    # "float", "int", "bool", "str", "name" (plain, see is_plain_name), "month", "range" (two floats
    # lo <= hi), "choice", "floats" (a list of numbers in [lo, hi], possibly empty)
    kind: str
    lo: float = -INF
    hi: float = INF
    doc: str = ""
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "month":
            return "a month 'YYYY-MM'"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a string"
        if self.kind == "name":
            return (
                "a plain name (letters, digits, '_', '.', '-', starting with a letter or digit, "
                "at most 64 characters, no '..')"
            )
        what = {
            "float": "a number",
            "int": "an integer",
            "range": "[low, high] with low <= high",
            "floats": "a list of numbers (empty: not set), each",
        }
        return f"{what[self.kind]} in [{_fmt(self.lo)}, {_fmt(self.hi)}]"


@dataclass(frozen=True)
class MapOf:
    """A table whose keys are free names (e.g. generation names) and whose values share a schema."""

    item: dict
    doc: str = ""


@dataclass(frozen=True)
class ListOf:
    """An array of tables sharing a schema (e.g. pinned shocks)."""

    item: dict
    doc: str = ""


def _fmt(x: float) -> str:
    if x == INF:
        return "inf"
    if x == -INF:
        return "-inf"
    return f"{x:g}"


P = F("float", 0.0, 1.0)  # a probability or share


LENDER_KIND = {
    "capital_ratio": F("float", 0.01, 1.0, "equity / total assets at start"),
    "interbank_funding_share": F("float", 0.0, 1.0, "share of debt funding borrowed from banks"),
    "funding_spread": F("float", 0.0, 0.2, "cost of outside funding over the base rate, per year"),
    "loan_spread": F("float", 0.0, 0.3, "spread over base rate on new secured loans, per year"),
    "origination_ltv": F("float", 0.05, 1.0, "max loan-to-value on new secured loans"),
    "covenant_headroom": F("float", 0.0, 1.0, "max-LTV covenant = origination LTV + headroom"),
    "min_coverage": F("float", 0.0, 10.0, "minimum debt service coverage covenant (x)"),
    "cure_months": F("int", 0, 24, "months a breach may persist before the lender acts"),
    "waiver_tolerance": F("float", 0.0, 2.0, "largest relative breach a healthy lender waives"),
    "mark_policy": F("choice", doc="how collateral is marked", choices=("market", "appraisal")),
    # the kind's appraisal beliefs (used only under mark_policy = "appraisal"; docs/ODD.md, marks)
    "appraisal_haircut": F(
        "float", 0.0, 0.9, "share an appraisal lender takes off its appraisal mark (0: none)"
    ),
    "appraisal_lag_months": F(
        "int", 0, 36, "months its appraisal marks average (0: compute.appraisal_lag_months)"
    ),
    "offer_share_per_month": F("float", 0.0, 1.0, "share of seized inventory offered each month"),
    "loss_sensitivity": F("float", 0.0, 100.0, "appetite cut per unit of recent sector loss rate"),
    # finite funding (abm/finance/funding.py; the ``funding`` channel)
    "redemption_gate_share_per_quarter": F(
        "float", 0.0, 1.0, "most of its equity fund investors can redeem in 3 months (0: none)"
    ),
    "run_share_per_month": F(
        "float",
        0.0,
        1.0,
        "share of deposits withdrawn each month of a run (0: no runnable deposits)",
    ),
    "borrowing_base_advance_rate": F(
        "float", 0.0, 1.0, "bank facility / performing loans it may reach (0: no borrowing base)"
    ),
    "loan_risk_weight": F("float", 0.0, 5.0, "risk weight of its loans and GPUs in its RWA"),
    "min_risk_based_capital_ratio": F(
        "float", 0.0, 1.0, "equity / RWA below which it makes no new loans (0: not regulated)"
    ),
    # equipment lending and the forced sale after a run (abm/world.py::equipment_lender_kinds,
    # abm/finance/seized_sale.py; docs/calibration.md, equipment lenders)
    "equipment_borrowers": F(
        "choice",
        doc="whose equipment (GPU lots; miners' rigs) it lends against at the start",
        choices=("none", "miners", "neoclouds", "miners_and_neoclouds"),
    ),
    "sells_seized_before_loans": F(
        "bool",
        doc="short of funding, it keeps the need its seized lots raise at the best bids for the "
        "market round instead of selling loans for it",
    ),
    # loan marks (abm/finance/loan_marks.py; the ``funding`` channel)
    "marks_loans_to_market": F(
        "bool", doc="carries performing loans at its class's loan mark (fair value), else principal"
    ),
    # the rest of a crypto lender's balance sheet (abm/finance/other_assets.py)
    "other_assets_to_mining_book": F(
        "float",
        0.0,
        50.0,
        "assets held outside the modelled world (a crypto lender's other loans and positions, "
        "illiquid in a run) / its loans to miners at the start (0: none)",
    ),
}

BUYER_KIND = {
    "count": F("int", 0, 1000, "number of buyers of this kind"),
    "monthly_budget_usd": F("float", 0.0, 1e12, "cash available for purchases each month (USD)"),
    "absorption_mw_per_month": F("float", 0.0, 1e5, "MW of compatible power/cooling per month"),
    "hurdle_rate": F("float", 0.0, 2.0, "discount rate for valuing GPUs, per year"),
    "integration_cost_usd_per_gpu": F("float", 0.0, 1e6, "cost of installing a used GPU (USD)"),
    "liquid_cooling": F("bool", doc="can host generations that need liquid cooling"),
    "max_perf": F("float", 0.0, 1e3, "highest relative performance it may buy (export cap)"),
    "installed_units": F("int", 0, 10_000_000, "H100-equivalent GPUs installed at start"),
    # optional, "gpu" when absent: the equipment class it buys (abm/equipment.py)
    "equipment": F("choice", doc="what it buys: GPUs or ASICs", choices=("gpu", "asic")),
}

GENERATION = {
    "release": F("month", doc="volume release month"),
    "perf": F("float", 1e-3, 1e3, "performance relative to H100"),
    "kw_per_gpu": F("float", 0.01, 20.0, "IT power per GPU incl. share of server (kW)"),
    "list_price_usd": F("float", 0.0, 1e7, "new price per GPU (USD)"),
    "liquid_cooling": F("bool", doc="needs liquid-cooled racks"),
    "rent_per_perf_multiple": F(
        "float",
        0.05,
        10.0,
        "rent per unit of performance relative to the market price per H100-hour (1 = parity)",
    ),
    # equipment classes (abm/equipment.py): optional, "gpu" when absent
    "equipment": F(
        "choice",
        doc="what the machine earns: compute rent (gpu) or hashprice (asic)",
        choices=("gpu", "asic"),
    ),
    "th_per_unit": F("float", 1e-3, 1e4, "ASICs only: hashrate per machine (TH/s)"),
    "j_per_th": F("float", 1.0, 1e4, "ASICs only: efficiency (J/TH)"),
}
# keys a generation may omit: a GPU needs perf, kw_per_gpu, liquid_cooling and
# rent_per_perf_multiple; an ASIC needs th_per_unit and j_per_th (checked in _check_generations)
GENERATION_OPTIONAL = (
    "equipment",
    "th_per_unit",
    "j_per_th",
    "perf",
    "kw_per_gpu",
    "liquid_cooling",
    "rent_per_perf_multiple",
)
GPU_REQUIRED = ("perf", "kw_per_gpu", "liquid_cooling", "rent_per_perf_multiple")
ASIC_REQUIRED = ("th_per_unit", "j_per_th")
ASIC_FORBIDDEN = ("perf", "liquid_cooling", "rent_per_perf_multiple")

PINNED = {
    "variable": F("choice", doc="what is shocked", choices=("btc", "ai_demand")),
    "start": F("month", doc="first month of the shock"),
    "end": F("month", doc="last month of the shock"),
    "total_change": F("float", -0.99, 10.0, "total relative change over the window"),
    "force_stress": F("bool", doc="hold the stress regime during the window"),
}

SCHEMA: dict[str, Any] = {
    "name": F("name", doc="scenario name (a plain name: it names the output folder)"),
    "description": F("str", doc="one line"),
    "extends": F("str", doc="scenario this one overrides (name or path)"),
    "run": {
        "start": F("month", doc="first simulated month"),
        "months": F("int", 1, 600, "number of monthly steps"),
        "max_cascade_rounds": F("int", 1, 50, "within-month rounds of tests/resolution/market"),
    },
    "generations": MapOf(GENERATION, "NVIDIA generations by name"),
    "compute": {
        "rent_per_perf_hour_usd": F(
            "float", 0.0, 100.0, "spot rent of one H100-equivalent at start"
        ),
        "rent_deflation_per_year": F("float", 0.0, 0.95, "trend fall of rent per unit of perf"),
        "release_step_down": F("float", 0.0, 0.9, "extra fall of all rents at each release"),
        "valuation_deflation": F(
            "choice",
            doc="rent trend that DCF values (fundamentals, marks, bids, investment) extrapolate: "
            "the realised one, or the underwriting belief",
            choices=("realised", "underwriting"),
        ),
        "underwriting_deflation_per_year": F(
            "float", 0.0, 0.95, "rent deflation the market prices GPUs at (underwriting belief)"
        ),
        "release_interval_months": F(
            "int",
            0,
            120,
            "0 = generations arrive on their listed dates; N = those listed after run.start "
            "arrive every N months after the last one released by then",
        ),
        "valuation_utilisation": F(
            "choice",
            doc="utilisation and spot factor that DCF values expect: today's for the whole horizon "
            "(current), or today's deviation from balance fading month by month (mean_reverting)",
            choices=("current", "mean_reverting"),
        ),
        "valuation_reversion_per_month": F(
            "float",
            0.0,
            0.999,
            "share of today's utilisation / spot-factor deviation expected to remain a month later",
        ),
        "demand_growth_per_year": F("float", -0.9, 10.0, "trend growth of demand for compute"),
        "spot_elasticity": F("float", 0.0, 10.0, "spot rent response to utilisation (exponent)"),
        "utilisation_ref": F("float", 0.05, 1.0, "utilisation at which spot = trend rent"),
        "utilisation_max": F("float", 0.05, 1.0, "physical maximum utilisation"),
        "contract_premium": F("float", -0.5, 2.0, "contract rent over spot at signing"),
        "contract_tenor_months": F("int", 1, 240, "customer contract tenor"),
        "take_or_pay_share": P,
        "prepayment_share": F("float", 0.0, 1.0, "share of contract value prepaid at signing"),
        "customer_default_prob_per_year": F("float", 0.0, 1.0, "non-IG customers, in calm"),
        "customer_default_prob_per_year_stress": F(
            "float", 0.0, 1.0, "non-IG customers, in stress"
        ),
        "ig_customer_default_prob_per_year": F("float", 0.0, 1.0, "investment-grade customers"),
        "renegotiation_threshold": F(
            "float", 1.0, 100.0, "non-IG customers renegotiate above this x today's contract rent"
        ),
        "renegotiation_prob_per_month": F("float", 0.0, 1.0, "chance they do so in a month"),
        "hours_per_month": F("float", 1.0, 744.0, "billable hours in a month"),
        "power_price_usd_per_kwh": F("float", 0.0, 10.0, "neocloud/buyer power price"),
        "pue": F("float", 1.0, 3.0, "power usage effectiveness"),
        "colo_usd_per_kw_month": F("float", 0.0, 1e4, "third-party colocation price"),
        "salvage_share_of_list": F(
            "float", 0.0, 1.0, "what a salvage buyer pays for a retired GPU / its list price"
        ),
        "failure_scrap_rate_per_year": F("float", 0.0, 1.0, "units scrapped each year"),
        "fundamental_discount_rate": F("float", 0.0, 2.0, "discount rate of fundamental value"),
        "all_in_cost_multiplier": F(
            "float", 1.0, 5.0, "all-in capex / list price (fabric, servers)"
        ),
        "calm_market_discount": F(
            "float", 0.0, 0.9, "used-market index below fundamental w/o trades"
        ),
        "mark_window_months": F("int", 1, 24, "months a clearing price sets market marks"),
        "mark_full_weight_units": F(
            "float", 1.0, 1e9, "clearing volume (GPUs) that sets the market mark fully"
        ),
        "appraisal_lag_months": F("int", 1, 36, "months averaged by appraisal marks"),
        "spot_factor_min": F("float", 0.0, 1.0, "lowest spot rent / trend rent"),
        "spot_factor_max": F("float", 1.0, 100.0, "highest spot rent / trend rent"),
        "valuation_horizon_months": F("int", 1, 600, "months of rent in a DCF value per GPU"),
    },
    "crypto": {
        "btc_price_usd": F("float", 1e-6, 1e9, "BTC price at start"),
        "drift_per_year": F("float", -5.0, 5.0, "expected log return"),
        "vol_per_year": F("float", 0.0, 5.0, "volatility in calm"),
        "vol_per_year_stress": F("float", 0.0, 5.0, "volatility in stress"),
        "tail_df": F("float", 2.1, 1000.0, "Student-t degrees of freedom"),
        "jump_prob_per_month": P,
        "jump_mean": F("float", -1.0, 1.0, "mean log jump"),
        "jump_sd": F("float", 0.0, 2.0, "sd of log jump"),
        "price_impact_per_10k_btc": F("float", 0.0, 1.0, "log price fall per 10,000 BTC sold"),
        "impact_half_life_months": F(
            "float", 0.1, 1200.0, "half-life of the impact of forced sales"
        ),
        "network_hashrate_eh": F("float", 1e-3, 1e6, "network hashrate at start (EH/s)"),
        "hashrate_growth_per_year": F("float", -0.9, 10.0, "trend growth"),
        "hashrate_price_elasticity": F(
            "float", 0.0, 5.0, "growth response to log hashprice vs start"
        ),
        "block_subsidy_btc": F("float", 0.0, 50.0, "BTC per block at start"),
        "fees_btc_per_block": F("float", 0.0, 10.0, "fees per block"),
        "halving": F("month", doc="next halving month"),
        "blocks_per_month": F("float", 1.0, 1e5, "blocks mined per month"),
        "modelled_hashrate_max_share": F(
            "float", 0.01, 1.0, "the modelled miners' largest share of network hashrate"
        ),
        # pinned input series (backtests): monthly values from run.start; [] = the stochastic model
        "btc_price_path_usd": F(
            "floats", 1e-6, 1e9, "BTC price each month from run.start (USD; [] = stochastic)"
        ),
        "network_hashrate_path_eh": F(
            "floats", 1e-3, 1e6, "network hashrate each month from run.start (EH/s; [] = modelled)"
        ),
    },
    "shocks": {
        "p_calm_to_stress": P,
        "p_stress_to_calm": P,
        "corr_calm": F("float", -1.0, 1.0, "BTC / AI-demand shock correlation in calm"),
        "corr_stress_target": F("float", -1.0, 1.0, "correlation stress converges to"),
        "corr_convergence_months": F("float", 0.1, 120.0, "e-folding time of the convergence"),
        "ai_demand_vol_per_year": F("float", 0.0, 5.0, "volatility of the AI demand shock"),
        "ai_demand_persistence": F("float", 0.0, 0.999, "AR(1) coefficient of the demand shock"),
        "ai_demand_stress_drift": F("float", -1.0, 1.0, "monthly log drift of demand in stress"),
        "btc_stress_drift": F("float", -1.0, 1.0, "monthly log drift of BTC in stress"),
        "pinned": ListOf(PINNED, "deterministic shocks"),
        "correlation_model": F(
            "choice",
            doc="BTC / AI co-movement: 'emergent' (corr_calm in both regimes, links from the model) "
            "or 'regime_set' (stress sets correlation, customer defaults, buyer budgets by hand)",
            choices=("emergent", "regime_set"),
        ),
        "customer_defaults": F(
            "bool",
            doc="the neoclouds' outside customers (small, investment-grade, anchor) default and "
            "renegotiate contracts: an exogenous credit shock, not a link between agents "
            "(off: none do)",
        ),
    },
    "credit": {
        "base_rate_start": F("float", 0.0, 0.5, "SOFR at start, per year"),
        "base_rate_end": F("float", 0.0, 0.5, "SOFR at the end (linear path)"),
        "target_capital_ratio_multiple": F("float", 0.1, 10.0, "appetite 1 at this x start ratio"),
        "loss_memory_months": F("int", 1, 60, "window of recent sector losses"),
        "equity_cures": F("bool", doc="borrowers may prepay to cure an LTV breach"),
        "funding_clearing": F(
            "choice",
            doc="clearing of the lender funding network",
            choices=("eisenberg_noe", "rogers_veraart"),
        ),
        "default_cost_alpha": F(
            "float", 1e-6, 1.0, "RV: share of external assets a defaulter realises"
        ),
        "default_cost_beta": F(
            "float", 1e-6, 1.0, "RV: share of interbank claims a defaulter realises"
        ),
        "min_capital_ratio_multiple": F(
            "float", 0.05, 1.0, "lenders grow loans until capital ratio = this x start"
        ),
        "roll_min_appetite": P,
        "new_loan_min_appetite": P,
        "payment_grace_months": F("int", 0, 12, "months of arrears before payment default"),
        "workout_cost_share": F(
            "float",
            0.0,
            1.0,
            "share of an estate's GPU value at marks lost to work-out costs (defaulted claims are "
            "carried at the estate's expected recovery net of it)",
        ),
        "reserve_floor_multiplier": F(
            "float",
            0.0,
            1.5,
            "option (0 = off): lowest reserve / fundamental a lender or estate accepts",
        ),
        "roll_min_coverage": F(
            "float", 0.0, 10.0, "a maturing loan is rolled if EBITDA / debt service >= this ..."
        ),
        "roll_min_equity_to_debt": F("float", 0.0, 10.0, "... or equity / debt >= this"),
        "waiver_spread_step": F(
            "float", 0.0, 0.5, "spread added when a breach is waived, per year"
        ),
        "waiver_ltv_reset_multiple": F(
            "float", 1.0, 2.0, "a waived LTV covenant resets to max(old, this x current LTV)"
        ),
        "waiver_coverage_reset_multiple": F(
            "float", 0.0, 1.0, "a waived coverage covenant resets to min(old, this x coverage)"
        ),
        "cure_target_ltv_share": F(
            "float", 0.0, 1.0, "an equity cure prepays down to this x the covenant LTV"
        ),
        "cure_floor_debt_service_months": F(
            "float",
            0.0,
            60.0,
            "equity cures come only from cash above a liquidity floor: this many months of "
            "debt service ...",
        ),
        "cure_floor_opex_months": F(
            "float", 0.0, 60.0, "... plus this many months of operating costs"
        ),
        "cure_max_per_year": F(
            "int", 0, 4, "equity cures a facility allows in any 12 months (4 quarters)"
        ),
        "cure_max_per_facility": F("int", 0, 1000, "equity cures a facility allows over its life"),
        "origination_ltv_floor_share": F(
            "float", 0.0, 1.0, "new-loan LTV = origination LTV x (this + (1 - this) x appetite)"
        ),
        "spread_per_lost_appetite": F(
            "float", 0.0, 0.5, "new-loan spread added per unit of appetite lost, per year"
        ),
        "workout_months": F("int", 1, 240, "an estate not sold out within this is closed"),
        "lost_lease_memory_months": F(
            "int", 0, 120, "a lost lease explains a host's distress for this many months"
        ),
        "servicer_fee_share": F(
            "float", 0.0, 1.0, "share of rent a servicer keeps for leasing out a lender's GPUs"
        ),
        "estate_sale_months": F(
            "int",
            0,
            240,
            "months of an estate's court sale process; then unsold GPUs go in kind to creditors",
        ),
    },
    "neoclouds": {
        "count": F("int", 0, 100_000, "number of neoclouds"),
        "fleet_units": F("range", 1, 1e8, "H100-equivalent GPUs at start (log-uniform)"),
        "gen_mix": MapOf(F("float", 0.0, 1.0), "fleet share by generation at start"),
        "gpu_loan_tenor_months": F(
            "int", 1, 240, "amortisation tenor of GPU term loans from purchase"
        ),
        "unsecured_debt_to_fleet_value": F("range", 0.0, 5.0, "notes + converts at start"),
        "note_coupon": F("float", 0.0, 0.5, "HY note coupon per year"),
        "convert_coupon": F("float", 0.0, 0.5, "convertible coupon per year"),
        "unsecured_months_left": F("range", 1, 240, "months to maturity at start"),
        "cash_months": F("range", 0.0, 120.0, "cash / monthly operating costs at start"),
        "sga_share_of_revenue": F("float", 0.0, 1.0, "overheads as a share of revenue"),
        "hosted_share": F("float", 0.0, 1.0, "share of fleet power leased from miner hosts"),
        "contracted_share": F("range", 0.0, 1.0, "share of the fleet under take-or-pay contracts"),
        "ig_customer_share": F(
            "range", 0.0, 1.0, "share of contracts with investment-grade customers"
        ),
        "anchor_customers": F(
            "int", 1, 20, "named outside anchor customers (hyperscalers, AI labs) neoclouds share"
        ),
        "anchor_customer_share": F(
            "range", 0.0, 1.0, "share of a neocloud's contracted GPUs held by its anchor customer"
        ),
        "max_growth_per_month": F("float", 0.0, 1.0, "largest monthly fleet growth"),
        "build_ahead_months": F(
            "int", 0, 60, "capacity is bought for demand this many months ahead"
        ),
        "investment_hurdle": F("float", 0.0, 2.0, "required NPV margin to expand"),
        "cash_buffer_months": F("float", 0.0, 60.0, "cash kept back from investment"),
        "new_loan_months": F("int", 1, 240, "tenor of new GPU term loans"),
        "expansion_discount_spread": F(
            "float", 0.0, 0.5, "a new GPU is valued at the base rate + this, per year"
        ),
    },
    "miners": {
        "count": F("int", 0, 100_000, "number of miners"),
        "hashrate_eh": F("range", 0.0, 1e4, "own hashrate at start (EH/s)"),
        "efficiency_j_per_th": F("float", 1.0, 200.0, "fleet efficiency"),
        "power_price_usd_per_kwh": F("float", 0.0, 10.0, "miners' power price"),
        "site_opex_usd_per_mw_month": F("float", 0.0, 1e7, "non-power site costs"),
        "hosting_mw": F("range", 0.0, 1e5, "AI-hosting MW at start (leased out)"),
        "btc_holdings": F("range", 0.0, 1e7, "BTC treasury at start (log-uniform)"),
        "btc_sell_share": F("float", 0.0, 1.0, "share of mined BTC sold each month"),
        "cash_usd": F("range", 0.0, 1e12, "cash at start"),
        "debt_to_assets": F("range", 0.0, 5.0, "notes + converts / (site + BTC + cash) at start"),
        "convert_share": F("float", 0.0, 1.0, "share of that debt in convertible notes"),
        "convert_coupon": F("float", 0.0, 0.5, "per year"),
        "secured_coupon": F("float", 0.0, 0.5, "per year"),
        "debt_months_left": F("range", 1, 240, "months to maturity at start"),
        "btc_loan_share": F("float", 0.0, 1.0, "share of treasury pledged to BTC loans"),
        "btc_loan_ltv": F("float", 0.0, 1.0, "BTC loan / collateral at origination"),
        "btc_margin_call_ltv": F("float", 0.0, 2.0, "LTV that triggers a margin call"),
        "btc_liquidation_ltv": F("float", 0.0, 2.0, "LTV at which collateral is liquidated"),
        "btc_loan_rate": F("float", 0.0, 0.5, "per year"),
        "hosting_rate_usd_per_kw_month": F("float", 0.0, 1e4, "lease price of AI hosting"),
        "hosting_site_cost_share": F("float", 0.0, 1.0, "host's costs as share of lease income"),
        "lease_months": F("int", 1, 360, "hosting lease tenor"),
        "conversion_capex_usd_per_mw": F("float", 0.0, 1e9, "cost to convert 1 MW to AI hosting"),
        "conversion_months": F("int", 1, 60, "time to convert"),
        "project_loan_ltc": F("float", 0.0, 1.0, "project loan / conversion cost"),
        "max_conversion_share_per_month": F("float", 0.0, 1.0, "of mining MW"),
        "sga_usd_per_mw_month": F("range", 0.0, 1e7, "cash overheads per MW of capacity"),
        "site_value_usd_per_mining_mw": F("float", 0.0, 1e9, "ASICs and site per mining MW"),
        "asic_usd_per_th": F("float", 0.0, 1e4, "price of new ASIC hashrate (fleet refresh)"),
        "site_recovery_share": F("float", 0.0, 1.0, "site sale price / book value in default"),
        "asic_life_months": F("float", 1.0, 600.0, "ASICs are depreciated straight-line over this"),
        "site_life_months": F(
            "float", 1.0, 600.0, "mining sites (shells, power) are depreciated over this"
        ),
        "conversion_life_months": F(
            "float", 1.0, 600.0, "AI-hosting conversion capex is depreciated over this"
        ),
        "seasoned_life_left_share": F(
            "float", 0.0, 1.0, "share of useful life left to the 2025 stock of sites and ASICs"
        ),
        "btc_shortfall_sale_multiple": F(
            "float", 1.0, 2.0, "BTC sold for a cash shortfall / shortfall at the current price"
        ),
        "btc_raise_cash_multiple": F(
            "float", 1.0, 2.0, "BTC sold to raise cash / cash missing, at the current price"
        ),
        "btc_loan_roll_months": F("int", 1, 120, "tenor of a rolled BTC-backed loan"),
        "conversion_funding_spread": F(
            "float", 0.0, 0.5, "a conversion is costed at the base rate + this, per year"
        ),
        "min_conversion_mw": F("float", 0.0, 1e4, "smaller conversions are not started"),
        "asic_refresh_cash_buffer_months": F(
            "float", 0.0, 60.0, "ASIC refresh spends cash above this x monthly opex"
        ),
        # miners' own GPU fleets on GPU-backed loans (abm/world_miner_gpus.py)
        "gpu_owner_share": F("float", 0.0, 1.0, "share of miners owning GPU fleets at start"),
        "gpu_mw_share": F("range", 0.0, 1.0, "share of a GPU owner's mining MW turned to GPUs"),
        "gpu_gen_mix": MapOf(F("float", 0.0, 1.0), "miners' GPU fleet share by generation"),
        "gpu_bought_within_months": F("int", 1, 120, "miners' GPUs were bought this recently"),
        "gpu_loan_ltv": F("float", 0.0, 1.0, "origination LTV of a miner's GPU-backed loan"),
        "gpu_loan_tenor_months": F("int", 6, 240, "amortisation tenor of a miner's GPU loan"),
        "gpu_contracted_share": F("range", 0.0, 1.0, "share of a miner's GPUs under contract"),
        # miners' ASIC fleets as lots, on machine-backed loans (abm/world_miner_asics.py)
        "asic_gen_mix": MapOf(
            F("float", 0.0, 1.0), "miners' hashrate share by ASIC generation ({} = no ASIC lots)"
        ),
        "asic_bought_within_months": F("int", 1, 120, "miners' ASICs were bought this recently"),
        "asic_loan_share": F(
            "float", 0.0, 1.0, "share of ASIC-owning miners with machine-backed loans at start"
        ),
        "asic_loan_fleet_share": F(
            "range", 0.0, 1.0, "share of a borrowing miner's machines pledged to machine loans"
        ),
        "asic_loan_ltv": F("float", 0.05, 1.0, "machine-backed loans: loan / machine cost"),
        "asic_loan_rate_per_year": F(
            "float", 0.0, 1.0, "machine-backed loans: fixed rate per year"
        ),
        "asic_loan_tenor_months": F("int", 1, 120, "machine-backed loans amortise over this"),
        # miners' ASIC orders (abm/phases/asic_orders.py; inert without ASIC generations)
        "asic_order_hurdle": F(
            "float",
            0.0,
            2.0,
            "order new ASICs when fundamental value / list price - 1 exceeds this",
        ),
        "asic_order_deposit_share": F(
            "float", 0.0, 1.0, "deposit paid to the vendor at order, share of the price"
        ),
        "asic_order_lead_months": F("int", 0, 36, "months from an ASIC order to its delivery"),
        "asic_orders_outstanding_share": F(
            "float", 0.0, 10.0, "ASICs on order at start, TH/s as a share of the installed fleet's"
        ),
        "asic_initial_orders_delivery_months": F(
            "int", 0, 36, "orders on the books at start arrive in equal batches over these months"
        ),
    },
    "lenders": {
        "mix": MapOf(F("int", 0, 100_000), "number of lenders by kind"),
        "kinds": MapOf(LENDER_KIND, "behaviour and balance sheet by lender kind"),
        "lenders_per_borrower": F("range", 1, 50, "secured lenders per borrower"),
        "size_concentration": F("float", 0.0, 5.0, "preferential attachment exponent"),
        "initial_cash_share_of_loans": F(
            "float", 0.0, 1.0, "a lender's cash at start / its loans ..."
        ),
        "initial_cash_floor_usd": F("float", 0.0, 1e12, "... plus this"),
        "interbank_spread_premium": F(
            "float", 0.0, 0.5, "interbank loan spread over the funder's funding spread, per year"
        ),
        "initial_ltv_headroom_share": F(
            "float", 0.0, 1.0, "a seasoned GPU loan starts at most this far into its headroom"
        ),
    },
    "buyers": {
        "kinds": MapOf(BUYER_KIND, "secondary-market GPU buyers by kind"),
        "stress_budget_multiplier": F("float", 0.0, 2.0, "budget and absorption x in stress"),
        "bid_steps": F("int", 1, 50, "price steps of each bid schedule"),
        "bid_floor": F("float", 0.0, 1.0, "option (0 = off): lowest bid / valuation"),
        "purchase_financing_ltv": F(
            "float",
            0.0,
            0.95,
            "loan-to-value of buyers' credit lines: line = budget x ltv / (1 - ltv) x lender appetite",
        ),
        "redeploy_share": F(
            "float", 0.0, 1.0, "share of bought GPUs that re-enter this market's supply"
        ),
    },
    "market": {
        "clearing": F(
            "choice",
            doc="secondary market: one simultaneous auction, or sellers one at a time",
            choices=("simultaneous", "sequential"),
        ),
    },
    "funding": {
        "redemption_trigger_drawdown": F(
            "float", 0.0, 1.0, "fund investors redeem once equity is this far below its peak"
        ),
        "redemption_per_drawdown": F(
            "float", 0.0, 20.0, "redemptions asked per quarter / equity, per unit of drawdown"
        ),
        "run_btc_drawdown": F(
            "float", 0.0, 1.0, "depositors run once BTC is this far below its recent high"
        ),
        "btc_high_window_months": F("int", 1, 120, "months over which the BTC high is taken"),
        "run_equity_drawdown": F(
            "float", 0.0, 1.0, "depositors run once the lender's equity is this far below its peak"
        ),
        "spread_per_capital_shortfall": F(
            "float", 0.0, 1.0, "extra funding spread per year per unit of capital ratio lost"
        ),
        "loan_sale_discount": F(
            "float", 0.0, 0.99, "option (0 = off): fixed discount to principal of any loan sold"
        ),
        "loan_sale_price_impact": F(
            "float",
            0.0,
            20.0,
            "loan price = exp(-this x principal sold / buyers' cash for the class), per month",
        ),
        "loan_mark_recovery_per_month": F(
            "float", 0.0, 1.0, "share of a loan mark's gap to par closed each month without sales"
        ),
        "illiquidity_grace_months": F(
            "int", 0, 24, "months a lender may leave withdrawals or calls unpaid before it fails"
        ),
    },
    "channels": {
        "fire_sale": F("bool", doc="fire-sale clearing prices re-mark everyone's GPU collateral"),
        "funding": F(
            "bool",
            doc="lenders fund each other; funding is finite (runs, redemptions, borrowing-base "
            "calls, capped outside funding); failures clear through the funding network",
        ),
        "credit_crunch": F("bool", doc="lenders' appetite follows their capital and sector losses"),
        "margin_calls": F("bool", doc="BTC loans call margin; forced BTC sales move the price"),
        "counterparty": F(
            "bool",
            doc="a defaulted tenant's hosting lease ends and its host loses the rent (off: an "
            "outside tenant takes the lease over and pays); customers' defaults are "
            "shocks.customer_defaults",
        ),
    },
    "network": {
        "topology": F("choice", doc="lending network", choices=("calibrated", "random")),
    },
    "policy": {
        "last_resort_buyer": F(
            "bool", doc="a buyer of last resort (policy authority) bids for any GPUs offered"
        ),
        "last_resort_share_of_fundamental": F(
            "float", 0.0, 1.0, "its bid / the generation's fundamental value per GPU"
        ),
        "last_resort_budget_usd": F("float", 0.0, 1e13, "its budget over the whole run (USD)"),
        "ltv_cap": F("bool", doc="cap new loans' LTV at origination"),
        "ltv_cap_max_ltv": F(
            "float",
            0.05,
            1.0,
            "largest loan / collateral value (lower of cost or mark) at origination",
        ),
        "forbearance": F("bool", doc="overdue covenant breaches go unenforced in stress"),
        "forbearance_months_after_stress": F(
            "int", 0, 120, "the holiday lasts this many months after the stress regime ends"
        ),
        "forbearance_max_months": F("int", 0, 600, "most holiday months over the run"),
        "capital_requirement": F(
            "bool", doc="lenders originate only above a capital ratio on risk-weighted loans"
        ),
        "capital_min_ratio": F("float", 0.0, 1.0, "minimum equity / risk-weighted loans"),
        "capital_buffer_max": F(
            "float", 0.0, 0.5, "countercyclical buffer on top, built in calm, released in stress"
        ),
        "capital_buffer_build_months": F(
            "int", 1, 120, "calm months to rebuild the buffer from zero to its maximum"
        ),
        "risk_weight_gpu_loans": F("float", 0.0, 12.5, "risk weight of GPU term loans"),
        "risk_weight_project_loans": F("float", 0.0, 12.5, "risk weight of site project loans"),
        "risk_weight_btc_loans": F("float", 0.0, 12.5, "risk weight of BTC-backed loans"),
        "risk_weight_unsecured": F("float", 0.0, 12.5, "risk weight of notes and converts"),
        "risk_weight_interbank": F("float", 0.0, 12.5, "risk weight of loans to other lenders"),
    },
}


# ----------------------------------------------------------------------------- loading


def packaged_scenarios() -> dict[str, Path]:
    """Names and paths of the scenarios shipped in ``abm/scenarios``."""
    root = resources.files(SCENARIO_PACKAGE)
    out = {}
    for entry in root.iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = Path(str(entry))
    return dict(sorted(out.items()))


def _resolve_path(
    name_or_path: str | Path, base_dir: Path | None = None, field: str = "scenario"
) -> Path:
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        try:
            if not path.is_absolute() and base_dir is not None and not path.exists():
                path = base_dir / path
            exists = path.exists()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise ConfigError(f"{field}: cannot use {_short(text)} as a file: {reason}") from None
        if not exists:
            raise ConfigError(f"{field}: file {_short(text)} does not exist")
        return path
    scenarios = packaged_scenarios()
    if text not in scenarios:
        raise ConfigError(
            f"{field}: unknown scenario {_short(text)}; allowed: {', '.join(scenarios)} "
            "or a path to a .toml file"
        )
    return scenarios[text]


def read_toml_file(path: Path, field: str) -> dict:
    """The TOML table in ``path``, read safely: a regular file (not a folder, FIFO or device) of at
    most ``MAX_TOML_BYTES`` bytes of UTF-8 text; anything else raises :class:`ConfigError` naming
    ``field`` (e.g. "scenario", "extends", "experiment")."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked right after
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"{field}: {path} is {what}; give a .toml file")
        chunks, size = [], 0
        while size <= MAX_TOML_BYTES:
            chunk = os.read(fd, MAX_TOML_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_TOML_BYTES:
        raise ConfigError(f"{field}: {path} is larger than {MAX_TOML_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{field}: {path} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{field}: {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{field}: {path} nests arrays or tables too deeply") from None


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` with ``override`` merged in (tables merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _drop_replaced(parent: dict, replace: Any, path: Path, parent_name: str) -> dict:
    """A copy of the resolved ``parent`` with the tables a child lists in ``replace`` emptied.

    ``replace`` must be an array of dotted table paths (bare TOML keys, as ``--set`` keys), each
    naming a table the parent chain has; the child's own table at that path then merges into an
    empty table, i.e. replaces the parent's whole table (a child that gives none leaves it empty).
    ``path`` is the child's file and ``parent_name`` its ``extends`` (both only for messages)."""
    if not isinstance(replace, list):
        raise ConfigError(
            f"replace: must be an array of dotted table paths, got {_short(replace)} ({path.name})"
        )
    out = copy.deepcopy(parent)
    for dotted in replace:
        if not isinstance(dotted, str) or not all(
            OVERRIDE_KEY_RE.fullmatch(part) for part in dotted.split(".")
        ):
            raise ConfigError(
                f"replace: {_short(dotted)} must be a dotted table path of letters, digits, '_' "
                f"or '-' (no empty parts) ({path.name})"
            )
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(
                f"replace: {dotted} is not a table of {_short(parent_name)}, which {path.name} "
                "extends; list only tables it inherits"
            )
        if not isinstance(node[parts[-1]], dict):
            raise ConfigError(
                f"replace: {dotted} is a value, not a table; a value is replaced by setting it"
            )
        node[parts[-1]] = {}  # emptied in place: the table keeps its position in the config
    return out


def _load_raw(name_or_path: str | Path, chain: tuple[Path, ...] = ()) -> dict:
    field = "extends" if chain else "scenario"
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"extends: chain longer than {MAX_EXTENDS_DEPTH} files (at {chain[-1]})")
    base_dir = chain[-1].parent if chain else None
    path = _resolve_path(name_or_path, base_dir, field).resolve()
    if path in chain:
        raise ConfigError(f"extends: circular chain {' -> '.join(p.name for p in chain + (path,))}")
    raw = read_toml_file(path, field)
    parent = raw.get("extends")
    replace = raw.pop("replace", None)
    if parent is None:
        if replace is not None:
            raise ConfigError(
                f"replace: {path.name} has no extends, so there is no inherited table to replace"
            )
        return raw
    if not isinstance(parent, str):
        raise ConfigError(
            f"extends: must be a string (scenario name or path), got {_short(parent)}"
        )
    resolved_parent = _load_raw(parent, chain + (path,))
    if replace is not None:
        resolved_parent = _drop_replaced(resolved_parent, replace, path, parent)
    return deep_merge(resolved_parent, raw)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value`` (the value in TOML syntax; bare words are strings).

    The key is dot-separated bare TOML keys (letters, digits, ``_``, ``-``), none empty, and not a
    reserved key (``extends``, ``replace``: give the scenario with ``--scenario``); the text is one
    line.
    """
    if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text):
        raise ConfigError(f"--set: {_short(text)} must be one line without control characters")
    if "=" not in text:
        raise ConfigError(f"--set: {_short(text)} must look like key.path=value")
    key, value_text = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set: {_short(text)} has no key")
    _check_override_key(key, "--set")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    except RecursionError:
        raise ConfigError(f"--set: value of {key} nests arrays too deeply") from None
    return key, value


def _check_override_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not all(
        OVERRIDE_KEY_RE.fullmatch(part) for part in key.split(".")
    ):
        raise ConfigError(
            f"{where}: key {_short(key)} must be dot-separated names of letters, digits, '_' or "
            "'-' (no empty parts)"
        )
    if key.split(".")[0] in RESERVED_OVERRIDE_KEYS:
        raise ConfigError(
            f"{where}: {key} cannot be overridden; choose the scenario with --scenario "
            "(extends and replace are resolved while it loads)"
        )


def apply_overrides(raw: dict, overrides: dict[str, Any] | None) -> dict:
    """Set dotted keys (``{"compute.pue": 1.2}``) on a copy of a raw config; each key is checked
    as ``--set`` keys are (no empty parts, not ``extends`` or ``replace``)."""
    out = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        _check_override_key(dotted, "overrides")
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, not a table")
            node = nxt
        node[parts[-1]] = value
    return out


def load_scenario(
    name_or_path: str | Path = "baseline", overrides: dict[str, Any] | None = None
) -> dict:
    """Load a packaged scenario by name (or a TOML file by path), apply overrides, validate.

    Parameters
    ----------
    name_or_path:
        A packaged scenario name (see ``abm scenarios``) or a path to a ``.toml`` file.
    overrides:
        Dotted keys to set after loading, e.g. ``{"run.months": 24, "compute.pue": 1.2}``.

    Returns
    -------
    dict
        The fully resolved, validated configuration.

    Raises
    ------
    ConfigError
        Unknown scenario, unknown key, wrong type or out-of-range value; the message names the field.
    """
    raw = _load_raw(name_or_path)
    raw = apply_overrides(raw, overrides)
    if "name" not in raw:
        stem = Path(str(name_or_path)).stem
        if not is_plain_name(stem):
            raise ConfigError(
                f"name: missing, and the file name {_short(stem)} is not a plain name; "
                'add name = "..." to the scenario file'
            )
        raw["name"] = stem
    raw.pop("extends", None)
    validate(raw)
    return raw


# ----------------------------------------------------------------------------- validation


def _check_leaf(path: str, spec: F, value: Any) -> None:
    bad = f"{path}: must be {spec.allowed()}, got {_short(value)}"
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(bad)
        return
    if spec.kind in ("str", "choice", "month", "name"):
        if not isinstance(value, str):
            raise ConfigError(bad)
        if spec.kind == "choice" and value not in spec.choices:
            raise ConfigError(bad)
        if spec.kind == "month" and not MONTH_RE.match(value):
            raise ConfigError(bad)
        if spec.kind == "name" and not is_plain_name(value):
            raise ConfigError(bad)
        return
    if spec.kind == "floats":
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(bad)
        if not all(_finite(v) and spec.lo <= v <= spec.hi for v in value):
            raise ConfigError(bad)
        return
    if spec.kind == "range":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise ConfigError(bad)
        lo, hi = value
        if not all(_finite(v) for v in value) or not (spec.lo <= lo <= hi <= spec.hi):
            raise ConfigError(bad)
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(bad)
    if spec.kind == "int" and not isinstance(value, int):
        raise ConfigError(bad)
    if not _finite(value) or not (spec.lo <= value <= spec.hi):
        raise ConfigError(bad)


def _finite(value: int | float) -> bool:
    """A number the model can use: not NaN or infinite, and an int within float range."""
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range (e.g. 400 digits)
        return False


def is_plain_name(text: Any) -> bool:
    """A name safe as a file name: ``NAME_RE`` (letters, digits, ``_ . -``, starting with a letter
    or digit, at most 64 characters) and no ``..``."""
    return isinstance(text, str) and NAME_RE.fullmatch(text) is not None and ".." not in text


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error stays one readable line."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(path: str, spec: Any, value: Any) -> None:
    if isinstance(spec, F):
        _check_leaf(path, spec, value)
    elif isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a table ({spec.doc})")
        for key, item in value.items():
            _check(f"{path}.{key}", spec.item, item)
    elif isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: must be an array of tables ({spec.doc})")
        for i, item in enumerate(value):
            _check(f"{path}[{i}]", spec.item, item)
    elif isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a table with keys {', '.join(spec)}")
        _check_table(path, spec, value)


def _check_table(prefix: str, schema: dict, table: dict, required: bool = True) -> None:
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in schema:
            raise ConfigError(f"{path}: unknown key; allowed here: {', '.join(schema)}")
        _check(path, schema[key], value)
    if required:
        optional = {"extends", "description", "pinned", *GENERATION_OPTIONAL}
        for key, spec in schema.items():
            if key not in table and key not in optional:
                path = f"{prefix}.{key}" if prefix else key
                raise ConfigError(f"{path}: missing; must be {_describe(spec)}")


def _describe(spec: Any) -> str:
    if isinstance(spec, F):
        return spec.allowed()
    return "a table"


def validate(cfg: dict) -> None:
    """Check types, ranges and cross-field rules; raise :class:`ConfigError` on the first problem."""
    _check_table("", SCHEMA, cfg)
    gens = cfg["generations"]
    if not gens:
        raise ConfigError("generations: at least one generation is required")
    releases = [g["release"] for g in gens.values()]
    if releases != sorted(releases):
        raise ConfigError("generations: must be listed in order of release month")
    _check_generations(gens)
    _check_equipment_fields(cfg)
    for key in ("neoclouds.gen_mix", "miners.gpu_gen_mix"):
        table, leaf = key.split(".")
        for name in cfg[table][leaf]:
            if name in gens and gens[name].get("equipment", "gpu") != "gpu":
                raise ConfigError(f"{key}.{name}: an ASIC generation; GPU fleets name GPUs only")
    # each GPU fleet mix names known generations released by the start, with shares summing to
    # more than 0 unless nobody holds that fleet (the field that turns it off, as the message says)
    for table, leaf, off_field, off in (
        ("neoclouds", "gen_mix", "neoclouds.count", cfg["neoclouds"]["count"] <= 0),
        ("miners", "gpu_gen_mix", "miners.gpu_owner_share", cfg["miners"]["gpu_owner_share"] <= 0),
    ):
        mix = cfg[table][leaf]
        for name, share in mix.items():
            if name not in gens:
                raise ConfigError(
                    f"{table}.{leaf}.{name}: unknown generation; allowed: {', '.join(gens)}"
                )
            if share > 0 and gens[name]["release"] > cfg["run"]["start"]:
                raise ConfigError(f"{table}.{leaf}.{name}: released after run.start")
        if sum(mix.values()) <= 0 and not off:
            raise ConfigError(
                f"{table}.{leaf}: shares must sum to more than 0 (or {off_field} = 0)"
            )
    for kind in cfg["lenders"]["mix"]:
        if kind not in cfg["lenders"]["kinds"]:
            raise ConfigError(
                f"lenders.mix.{kind}: no parameters under lenders.kinds.{kind}; "
                f"allowed: {', '.join(cfg['lenders']['kinds'])}"
            )
    for kind in LENDER_ROLES:
        if kind not in cfg["lenders"]["kinds"]:
            raise ConfigError(
                f"lenders.kinds.{kind}: missing; required kinds: {', '.join(LENDER_ROLES)}"
            )
    m = cfg["miners"]
    if not m["btc_margin_call_ltv"] <= m["btc_liquidation_ltv"]:
        raise ConfigError("miners.btc_margin_call_ltv: must be <= miners.btc_liquidation_ltv")
    if cfg["crypto"]["halving"] < cfg["run"]["start"]:
        raise ConfigError("crypto.halving: must not be before run.start")
    for i, pin in enumerate(cfg["shocks"].get("pinned", [])):
        for key in PINNED:
            if key not in pin:
                raise ConfigError(
                    f"shocks.pinned[{i}].{key}: missing; must be {PINNED[key].allowed()}"
                )
        if pin["end"] < pin["start"]:
            raise ConfigError(f"shocks.pinned[{i}].end: must not be before start ({pin['start']})")
    if cfg["policy"]["last_resort_buyer"] and "last_resort" in cfg["buyers"]["kinds"]:
        raise ConfigError(
            "buyers.kinds.last_resort: reserved for the buyer of last resort "
            "(policy.last_resort_buyer = true); rename this kind"
        )


def _check_generations(gens: dict) -> None:
    """Per generation: the fields its equipment class needs (GPU_REQUIRED or ASIC_REQUIRED), none
    an ASIC cannot have (ASIC_FORBIDDEN), and an ASIC's ``kw_per_gpu``, if given, within 1 % of
    ``th_per_unit x j_per_th / 1000``."""
    for name, g in gens.items():
        asic = g.get("equipment", "gpu") == "asic"
        for key in ASIC_REQUIRED if asic else GPU_REQUIRED:
            if key not in g:
                raise ConfigError(
                    f"generations.{name}.{key}: missing; must be {GENERATION[key].allowed()}"
                )
        if asic:
            for key in ASIC_FORBIDDEN:
                if key in g:
                    raise ConfigError(
                        f"generations.{name}.{key}: not allowed for equipment = 'asic' "
                        "(an ASIC earns hashprice; give th_per_unit and j_per_th)"
                    )
            kw = g["th_per_unit"] * g["j_per_th"] / 1000.0
            if "kw_per_gpu" in g and abs(g["kw_per_gpu"] - kw) > 0.01 * kw:
                raise ConfigError(
                    f"generations.{name}.kw_per_gpu: must equal th_per_unit x j_per_th / 1000 = "
                    f"{kw:g} within 1 % (or be left out), got {_short(g['kw_per_gpu'])}"
                )
            if not kw <= GENERATION["kw_per_gpu"].hi:
                raise ConfigError(
                    f"generations.{name}.th_per_unit: th_per_unit x j_per_th / 1000 must be at "
                    f"most {GENERATION['kw_per_gpu'].hi:g} kW per machine, got {kw:g}"
                )
        else:
            for key in ASIC_REQUIRED:
                if key in g:
                    raise ConfigError(f"generations.{name}.{key}: only for equipment = 'asic'")


def _check_equipment_fields(cfg: dict) -> None:
    """Cross-field rules of the equipment classes and pinned series: ``miners.asic_gen_mix`` names
    ASIC generations released by ``run.start``; a pinned path has at least ``run.months`` values."""
    gens = cfg["generations"]
    for name, share in cfg["miners"]["asic_gen_mix"].items():
        if name not in gens or gens[name].get("equipment", "gpu") != "asic":
            asics = [g for g in gens if gens[g].get("equipment", "gpu") == "asic"]
            raise ConfigError(
                f"miners.asic_gen_mix.{name}: not an ASIC generation; allowed: "
                f"{', '.join(asics) or 'none (no generation has equipment = asic)'}"
            )
        if share > 0 and gens[name]["release"] > cfg["run"]["start"]:
            raise ConfigError(f"miners.asic_gen_mix.{name}: released after run.start")
    for key in ("btc_price_path_usd", "network_hashrate_path_eh"):
        path = cfg["crypto"][key]
        if path and len(path) < cfg["run"]["months"]:
            raise ConfigError(
                f"crypto.{key}: has {len(path)} monthly values, fewer than run.months = "
                f"{cfg['run']['months']} (give one value per month, or [] for none)"
            )


# Lender kinds the model gives a role to: which kind lends what.
LENDER_ROLES = ("bank", "private_credit", "hy_fund", "crypto_lender", "vendor_finance")


def month_index(month: str, start: str) -> int:
    """Whole months from ``start`` to ``month`` (both 'YYYY-MM')."""
    y1, m1 = (int(x) for x in start.split("-"))
    y2, m2 = (int(x) for x in month.split("-"))
    return (y2 - y1) * 12 + (m2 - m1)


def release_months(cfg: dict) -> np.ndarray:
    """Release month of each generation, counted from ``run.start`` (negative = before it).

    With ``compute.release_interval_months`` = N > 0, the generations listed after ``run.start``
    keep their order but arrive every N months after the last generation released by the start
    (the generation cadence as one parameter)."""
    start = cfg["run"]["start"]
    listed = np.array([month_index(g["release"], start) for g in cfg["generations"].values()])
    interval = cfg["compute"].get("release_interval_months", 0)
    if interval > 0:
        future = listed > 0
        anchor = listed[~future].max() if (~future).any() else 0
        listed[future] = anchor + interval * np.arange(1, int(future.sum()) + 1)
    return listed


def month_label(index: int, start: str) -> str:
    """The 'YYYY-MM' label of month ``index`` counted from ``start``."""
    y, m = (int(x) for x in start.split("-"))
    total = y * 12 + (m - 1) + index
    return f"{total // 12:04d}-{total % 12 + 1:02d}"
