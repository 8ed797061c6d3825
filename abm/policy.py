"""Policy levers (the ``[policy]`` section): their rules, each off by default.

With every lever off, nothing here changes the model: each hook returns its input unchanged and no
agent, flow or random draw is added. The levers (docs/ODD.md, "Policy levers"):

1. **Buyer of last resort** (``last_resort_buyer``): one secondary-market buyer of kind
   ``last_resort``, funded by the outside sector ``policy_authority``, bids
   ``last_resort_share_of_fundamental`` x the generation's fundamental value (USD per GPU) for any
   units offered, until ``last_resort_budget_usd`` (total over the run) is spent. It has no MW or
   cooling limit and holds what it buys to the end of the run, warehoused off this market (its lots
   earn no rent and add no compute supply; it never resells).
2. **LTV cap at origination** (``ltv_cap``): a new loan is at most ``ltv_cap_max_ltv`` x its
   collateral's value at origination: for a GPU loan the lower of the all-in purchase cost and the
   lender's mark of the generation bought (lower of cost or appraisal), for a project loan the
   conversion capex.
3. **Covenant forbearance** (``forbearance``): a holiday in stress. While the regime is stress and
   for ``forbearance_months_after_stress`` months after it ends, overdue LTV and coverage covenant
   breaches are not enforced (no waiver, no acceleration); at most ``forbearance_max_months``
   holiday months over the run. Breaches are still tested and reported; after the holiday an
   overdue breach goes to the lender's response as before.
4. **Capital requirement with a countercyclical buffer** (``capital_requirement``): a lender may
   originate only while equity / risk-weighted loans >= ``capital_min_ratio`` + the buffer, and only
   up to the new loans that keep it there (at the highest new-loan risk weight). The buffer starts at
   ``capital_buffer_max``, is released to zero in any stress month and is rebuilt in calm by
   ``capital_buffer_max / capital_buffer_build_months`` per month.
"""

from __future__ import annotations

import numpy as np

from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import BTC_LOAN, CONVERT, GPU_TERM, INTERBANK, NOTE, PROJECT

POLICY_AUTHORITY = "policy_authority"  # outside sector funding the buyer of last resort
LAST_RESORT_KIND = "last_resort"  # buyer kind of the buyer of last resort (reserved name)

# the buyer of last resort as a row of the buyer table: no monthly budget or MW (its budget is the
# run-wide one held in PolicyState), any generation, nothing installed at the start
_LAST_RESORT_PARAMS = {
    "count": 1,
    "monthly_budget_usd": 0.0,
    "absorption_mw_per_month": 0.0,
    "hurdle_rate": 0.0,
    "integration_cost_usd_per_gpu": 0.0,
    "liquid_cooling": True,
    "max_perf": 1000.0,
    "installed_units": 0,
}


def buyer_kinds(cfg: dict) -> dict:
    """The scenario's buyer kinds (``buyers.kinds``), with the ``last_resort`` kind appended when
    ``policy.last_resort_buyer`` is on (then it is the last buyer row)."""
    kinds = cfg["buyers"]["kinds"]
    if not cfg["policy"]["last_resort_buyer"]:
        return kinds
    return {**kinds, LAST_RESORT_KIND: dict(_LAST_RESORT_PARAMS)}


class PolicyState:
    """What the levers remember over a run (``model.policy``).

    ``last_resort``: agent row of the buyer of last resort (-1 without one);
    ``last_resort_budget_left_usd`` / ``last_resort_spent_usd``: its budget left and spent (USD,
    spent + left = ``last_resort_budget_usd``); ``last_resort_units``: GPUs it bought;
    ``last_resort_returned_usd``: salvage proceeds of its retired GPUs returned to the authority;
    ``buffer_ratio``: the countercyclical buffer in force (share of risk-weighted loans);
    ``below_requirement``: per agent, True for a lender below its capital requirement at the last
    investment phase; ``below_requirement_months``: lender-months spent below it;
    ``holiday_months``: months in which covenant enforcement was suspended; ``last_stress_month``:
    the latest month in stress (-10,000 before any)."""

    def __init__(self, m) -> None:
        p = m.cfg["policy"]
        self.cfg = p
        kinds = list(buyer_kinds(m.cfg))
        self.last_resort = -1
        if p["last_resort_buyer"]:
            k = kinds.index(LAST_RESORT_KIND)
            self.last_resort = int(m.buyer_idx[m.buyer_kind[m.buyer_idx] == k][0])
        self.last_resort_budget_left_usd = float(p["last_resort_budget_usd"])
        self.last_resort_spent_usd = 0.0
        self.last_resort_units = 0
        self.last_resort_returned_usd = 0.0
        self.buffer_ratio = float(p["capital_buffer_max"])
        self.below_requirement = np.zeros(m.n, dtype=bool)
        self.below_requirement_months = 0
        self.holiday_months: set[int] = set()
        self.last_stress_month = -10_000


# ----------------------------------------------------------------------------- buyer of last resort


def with_last_resort_bids(m, bids: list, offered_units: np.ndarray) -> list:
    """Add the buyer of last resort's bids to the other buyers' (a list over generations of
    (buyer rows, USD per GPU, units) arrays, as :meth:`abm.agents.buyer.Buyers.bid_schedules`).

    For each generation offered: one step at ``last_resort_share_of_fundamental`` x its fundamental
    value for up to all units offered, as many as its budget left allows; the budget left is split
    across generations in proportion to the offered value at that price, so the bids of one round
    never add up to more than the budget left."""
    ps = m.policy
    if ps.last_resort < 0 or ps.last_resort_budget_left_usd <= 0:
        return bids
    price = ps.cfg["last_resort_share_of_fundamental"] * m.compute.fundamental_value  # per gen
    value = np.where(price > 0, offered_units * price, 0.0)
    total = value.sum()
    if total <= 0:
        return bids
    budget = ps.last_resort_budget_left_usd * value / total
    out = list(bids)
    for g in np.flatnonzero(value > 0):
        units = int(offered_units[g])
        # a price near zero (a subnormal share of fundamental) overflows the division to inf:
        # then every unit offered is affordable
        with np.errstate(over="ignore"):
            affordable = np.floor(budget[g] / price[g])
        if affordable < units:
            units = int(affordable)
        if units <= 0:
            continue
        b, p, u = bids[g]
        out[g] = (
            np.append(b, ps.last_resort).astype(np.int64),
            np.append(p, price[g]),
            np.append(u, units).astype(np.int64),
        )
    return out


def fund_last_resort(m, buyer: np.ndarray, cash_usd: np.ndarray) -> None:
    """After a settlement (``buyer``: buyer row of each trade, ``cash_usd``: what it paid): the
    policy authority pays the buyer of last resort's purchases, so its cash stays at zero, and its
    budget left falls by them."""
    ps = m.policy
    if ps.last_resort < 0:
        return
    mine = buyer == ps.last_resort
    if not mine.any():
        return
    paid = float(cash_usd[mine].sum())
    m.acct.from_sector(POLICY_AUTHORITY, np.array([ps.last_resort]), np.array([paid]))
    ps.last_resort_budget_left_usd -= paid
    ps.last_resort_spent_usd += paid


def return_last_resort_cash(m) -> None:
    """Monthly, before buyers' budgets are reset: whatever cash the buyer of last resort holds
    (salvage proceeds of GPUs it retired) goes back to the policy authority, so no other sector
    ever pays or receives for it."""
    ps = m.policy
    if ps.last_resort < 0:
        return
    cash = float(m.acct.cash[ps.last_resort])
    if cash != 0.0:
        m.acct.to_sector(POLICY_AUTHORITY, np.array([ps.last_resort]), np.array([cash]))
        ps.last_resort_returned_usd += cash


def redeployed_units(m, buyer: int, units: int) -> int:
    """GPUs of a purchase of ``units`` that re-enter this market's compute supply: ``redeploy_share``
    of them for a market buyer, none for the buyer of last resort (it warehouses what it buys)."""
    if buyer == m.policy.last_resort:
        m.policy.last_resort_units += units
        return 0
    return int(round(units * m.cfg["buyers"]["redeploy_share"]))


# ----------------------------------------------------------------------------- LTV cap


def cap_gpu_loan_ltv(m, ltv: np.ndarray, lenders: np.ndarray, g: int, cost_usd: float):
    """New GPU loans' LTV (loan / all-in cost ``cost_usd`` per GPU of generation ``g``), capped so
    that loan <= ``ltv_cap_max_ltv`` x min(cost, the lender's mark of ``g``) per GPU. ``ltv`` and
    ``lenders`` (agent rows) are aligned; returns the capped LTVs (unchanged with the lever off)."""
    p = m.cfg["policy"]
    if not p["ltv_cap"]:
        return ltv
    mark = m.lender_marks_usd(lenders, g)
    value = np.minimum(cost_usd, mark)
    return np.minimum(ltv, p["ltv_cap_max_ltv"] * value / cost_usd)


def cap_project_ltc(m, loan_to_cost: float) -> float:
    """A new project loan's loan / conversion capex, capped at ``ltv_cap_max_ltv`` when the lever is
    on (the capex is the collateral's value at origination)."""
    p = m.cfg["policy"]
    return min(loan_to_cost, p["ltv_cap_max_ltv"]) if p["ltv_cap"] else loan_to_cost


# ----------------------------------------------------------------------------- forbearance


def covenant_holiday(m, t: int) -> bool:
    """Whether overdue covenant breaches go unenforced in month ``t``: the lever is on, the regime
    is stress or ended at most ``forbearance_months_after_stress`` months ago, and fewer than
    ``forbearance_max_months`` holiday months have been used (this month counts once)."""
    p = m.cfg["policy"]
    if not p["forbearance"]:
        return False
    ps = m.policy
    if m.shocks.stress:
        ps.last_stress_month = t
    if t in ps.holiday_months:
        return True
    trigger = t - ps.last_stress_month <= p["forbearance_months_after_stress"]
    if trigger and len(ps.holiday_months) < p["forbearance_max_months"]:
        ps.holiday_months.add(t)
        return True
    return False


# ----------------------------------------------------------------------------- capital requirement


def risk_weights_by_loan_kind(p: dict) -> np.ndarray:
    """Risk weight of each loan kind (index = loan kind code), from the ``risk_weight_*`` fields."""
    w = np.zeros(max(GPU_TERM, NOTE, CONVERT, BTC_LOAN, PROJECT, INTERBANK) + 1)
    w[GPU_TERM] = p["risk_weight_gpu_loans"]
    w[PROJECT] = p["risk_weight_project_loans"]
    w[BTC_LOAN] = p["risk_weight_btc_loans"]
    w[NOTE] = w[CONVERT] = p["risk_weight_unsecured"]
    w[INTERBANK] = p["risk_weight_interbank"]
    return w


def risk_weighted_loans_usd(m) -> np.ndarray:
    """Per agent: principal of each lender's active loans x the risk weight of their kind (USD)."""
    book = m.loans
    live = np.flatnonzero(book.status == LOAN_ACTIVE)
    weights = risk_weights_by_loan_kind(m.cfg["policy"])[book.kind[live]]
    return np.bincount(book.lender[live], weights=book.principal_usd[live] * weights, minlength=m.n)


def capital_requirement_ratio(m) -> float:
    """The capital ratio (equity / risk-weighted loans) lenders must hold to originate this month:
    ``capital_min_ratio`` + the countercyclical buffer in force."""
    return m.cfg["policy"]["capital_min_ratio"] + m.policy.buffer_ratio


def cap_lending_capacity(m, t: int, capacity_left: np.ndarray, sheet=None) -> None:
    """Cap lenders' new lending this month (``capacity_left``: per agent, USD, in place) by the
    capital requirement; called once a month at the start of the investment phase.

    The buffer moves first (released to zero in stress, else rebuilt by ``capital_buffer_max /
    capital_buffer_build_months``, up to ``capital_buffer_max``). A lender with equity below the
    requirement x its risk-weighted loans originates nothing; one above may add new loans up to
    (equity / requirement - risk-weighted loans) / the highest new-loan risk weight (GPU or
    project). ``sheet``: the lenders' current (assets, equity) in ``model.lender_idx`` order."""
    p = m.cfg["policy"]
    if not p["capital_requirement"]:
        return
    ps = m.policy
    if m.shocks.stress:
        ps.buffer_ratio = 0.0
    else:
        step = p["capital_buffer_max"] / p["capital_buffer_build_months"]
        ps.buffer_ratio = min(p["capital_buffer_max"], ps.buffer_ratio + step)
    lenders = m.lender_idx
    _, equity = m.lender_assets_and_equity() if sheet is None else sheet
    rwa = risk_weighted_loans_usd(m)[lenders]
    required = capital_requirement_ratio(m)
    below = equity < required * rwa
    new_weight = max(p["risk_weight_gpu_loans"], p["risk_weight_project_loans"], 1e-9)
    room = np.where(below, 0.0, np.maximum(equity / max(required, 1e-9) - rwa, 0.0) / new_weight)
    capacity_left[lenders] = np.minimum(capacity_left[lenders], room)
    ps.below_requirement[:] = False
    ps.below_requirement[lenders] = below
    ps.below_requirement_months += int(below.sum())
