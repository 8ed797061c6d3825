"""Phase 11: investment. Neoclouds expand with the newest generation on new GPU term loans; miners
convert mining MW to AI hosting on project loans. Lenders fund what their capital and appetite allow,
shared pro rata among the borrowers asking them this month (decided simultaneously)."""

from __future__ import annotations

import numpy as np

from abm.agents import lender as lender_rules
from abm.agents import miner as miner_rules
from abm.agents import neocloud as neocloud_rules
from abm.finance.instruments import GPU_TERM, PROJECT, SENIOR_SECURED
from abm.phases.lenders import top_up_liquidity
from abm.world import lenders_of_kind, match_cumulative

TRANCHE_MONTHS = 12  # draws within a year of a tranche's opening join it


def run(m, t: int) -> None:
    m.credit_supply_usd = float(lender_rules.lending_capacity(m, m.lender_idx).sum())
    _expand_fleets(m, t)
    _convert_sites(m, t)
    top_up_liquidity(m)


def _funding_shares(m, lenders: np.ndarray, request_usd: np.ndarray) -> np.ndarray:
    """Share of each request its lender can fund: capacity over total requests to that lender."""
    capacity = np.zeros(m.n)
    uniq = np.unique(lenders)
    capacity[uniq] = lender_rules.lending_capacity(m, uniq)
    asked = np.bincount(lenders, weights=request_usd, minlength=m.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(asked > 0, np.minimum(1.0, capacity / asked), 0.0)
    return share[lenders]


def _expand_fleets(m, t: int) -> None:
    idx, want = neocloud_rules.plan_expansion(m, t)
    go = want > 0
    idx, want = idx[go], want[go]
    if len(idx) == 0:
        return
    cfg = m.cfg
    g = neocloud_rules.newest_generation(m, t)
    cost = m.list_price[g] * cfg["compute"]["all_in_cost_multiplier"]
    lenders = m.primary_lender[idx]
    has_lender = lenders >= 0
    idx, want, lenders = idx[has_lender], want[has_lender], lenders[has_lender]
    ltv, spread = lender_rules.new_loan_terms(m, lenders)
    buffer = cfg["neoclouds"]["cash_buffer_months"] * np.maximum(m.monthly_outflow_usd[idx], 0.0)
    equity_room = np.maximum(m.acct.cash[idx] - buffer, 0.0)
    affordable = np.floor(equity_room / (cost * (1.0 - ltv)))
    units = np.minimum(want, affordable)
    share = _funding_shares(m, lenders, units * cost * ltv)
    units = np.floor(units * share).astype(np.int64)
    ok = units > 0
    if not ok.any():
        return
    idx, units, lenders, ltv, spread = idx[ok], units[ok], lenders[ok], ltv[ok], spread[ok]
    principal = units * cost * ltv
    tenor = cfg["neoclouds"]["new_loan_months"]
    _draw_tranches(m, t, idx, lenders, g, principal, spread, ltv, tenor, units, cost)
    m.acct.transfer(lenders, idx, principal)
    m.acct.to_sector("gpu_vendor", idx, units * cost)
    m.gpu_delivered += int(units.sum())
    _sign_contracts(m, t, idx, g, units)
    _lease_hosting(m, t, idx, units * m.kw[g] / 1000.0 * cfg["neoclouds"]["hosted_share"])


def _draw_tranches(m, t, idx, lenders, g, principal, spread, ltv, tenor, units, cost):
    """Book each purchase as a draw on a delayed-draw term loan.

    Draws within ``TRANCHE_MONTHS`` of a tranche's opening join it (one loan row and one lot per
    generation, amortising over the tranche's remaining term); otherwise a new tranche opens. This keeps
    the books small in long runs with many borrowers, as real facilities do with their draw periods.
    """
    loans, lots = m.loans, m.lots
    out = np.empty(len(idx), dtype=np.int64)
    fresh = []
    for k, (b, lender) in enumerate(zip(idx.tolist(), lenders.tolist(), strict=True)):
        row = m.open_tranches.get((b, lender))
        if (
            row is not None
            and loans.status[row] == 0
            and t - loans.origination_month[row] < TRANCHE_MONTHS
            and loans.maturity_month[row] > t
        ):
            loans.principal_usd[row] += principal[k]
            loans.amort_usd_per_month[row] = loans.principal_usd[row] / (
                loans.maturity_month[row] - t
            )
            lot = m.tranche_lots.get((row, g))
            if lot is None:
                lot = int(
                    lots.add(
                        owner=b, gen=g, units=0, acquired_month=t, cost_usd_per_unit=cost, loan=row
                    )[0]
                )
                m.tranche_lots[(row, g)] = lot
            lots.units[lot] += units[k]
            out[k] = row
        else:
            fresh.append(k)
    if fresh:
        f = np.array(fresh)
        rows = loans.add(
            lender=lenders[f],
            borrower=idx[f],
            kind=GPU_TERM,
            seniority=SENIOR_SECURED,
            principal_usd=principal[f],
            spread=spread[f],
            floating=True,
            amort_usd_per_month=principal[f] / tenor,
            maturity_month=t + tenor,
            max_ltv=m.lk["origination_ltv"][lenders[f]] + m.lk["covenant_headroom"][lenders[f]],
            min_coverage=m.lk["min_coverage"][lenders[f]],
            cure_months=m.lk["cure_months"][lenders[f]],
            initial_ltv=ltv[f],
            origination_month=t,
        )
        new_lots = lots.add(
            owner=idx[f], gen=g, units=units[f], acquired_month=t, cost_usd_per_unit=cost, loan=rows
        )
        for k, row, lot in zip(f, rows, new_lots, strict=True):
            b, lender = int(idx[k]), int(lenders[k])
            m.open_tranches[(b, lender)] = int(row)
            m.tranche_lots[(int(row), g)] = int(lot)
            netmod_add_edge(m, lender, b, int(row))
            out[k] = row
    return out


def _sign_contracts(m, t: int, idx: np.ndarray, g: int, units: np.ndarray) -> None:
    c = m.cfg["compute"]
    contracted = np.floor(units * m.contracted_share[idx]).astype(np.int64)
    ig = np.floor(contracted * m.ig_share[idx]).astype(np.int64)
    rent = m.compute.rent_spot[g] * (1.0 + c["contract_premium"])
    tenor = c["contract_tenor_months"]
    for n_units, is_ig in ((ig, True), (contracted - ig, False)):
        ok = n_units > 0
        if not ok.any():
            continue
        prepay = c["prepayment_share"] * n_units[ok] * rent * c["hours_per_month"] * tenor
        m.contracts.add(
            provider=idx[ok],
            gen=g,
            units=n_units[ok],
            rent_per_gpu_hour=rent,
            end_month=t + tenor,
            take_or_pay_share=c["take_or_pay_share"],
            prepaid_usd=prepay,
            prepay_release_share=c["prepayment_share"],
            investment_grade=is_ig,
        )
        m.acct.from_sector("compute_customers", idx[ok], prepay)


def _lease_hosting(m, t: int, tenants: np.ndarray, need_mw: np.ndarray) -> None:
    """Lease free AI-hosting MW from miners; what cannot be hosted goes to colocation and is recorded
    as unmet hosting demand (a signal for conversions)."""
    free = m.free_hosting_mw()[m.miner_idx]
    ti, hi, mw = match_cumulative(need_mw, free)
    if len(mw):
        m.leases.add(
            tenant=tenants[ti],
            host=m.miner_idx[hi],
            mw=mw,
            rate_usd_per_kw_month=m.cfg["miners"]["hosting_rate_usd_per_kw_month"],
            end_month=t + m.cfg["miners"]["lease_months"],
        )
    m.unmet_hosting_mw = float(need_mw.sum() - mw.sum())


def _convert_sites(m, t: int) -> None:
    mc = m.cfg["miners"]
    pipeline = float(m.conversions.mw[m.conversions.active].sum())
    free = float(m.free_hosting_mw()[m.miner_idx].sum())
    unmet = m.unmet_hosting_mw - pipeline - free
    mw = miner_rules.plan_conversions(m, unmet)
    go = mw > 0.1
    if not go.any():
        return
    miners = m.miner_idx[go]
    mw = mw[go]
    banks = lenders_of_kind(m, ("bank",))
    if len(banks) == 0:
        return
    capacity = lender_rules.lending_capacity(m, banks)
    lender = np.full(len(miners), banks[int(np.argmax(capacity))])
    capex = mw * mc["conversion_capex_usd_per_mw"]
    loan_usd = capex * mc["project_loan_ltc"]
    share = _funding_shares(m, lender, loan_usd)
    own = capex - loan_usd
    ok = (share >= 1.0) & (m.acct.cash[miners] >= own)
    if not ok.any():
        return
    miners, mw, capex, loan_usd, lender = miners[ok], mw[ok], capex[ok], loan_usd[ok], lender[ok]
    tenor = mc["lease_months"]
    _, spread = lender_rules.new_loan_terms(m, lender)
    rows = m.loans.add(
        lender=lender,
        borrower=miners,
        kind=PROJECT,
        seniority=SENIOR_SECURED,
        principal_usd=loan_usd,
        spread=spread,
        floating=True,
        amort_usd_per_month=loan_usd / tenor,
        maturity_month=t + tenor,
        origination_month=t,
    )
    m.acct.transfer(lender, miners, loan_usd)
    m.acct.to_sector("power_and_sites", miners, capex)
    m.site_value_usd[miners] += capex
    m.hashrate_eh[miners] *= 1.0 - mw / m.mining_mw[miners]
    m.mining_mw[miners] -= mw
    m.conversions.add(miner=miners, mw=mw, done_month=t + mc["conversion_months"])
    for loan, ln, b, cost in zip(rows, lender, miners, capex, strict=True):
        netmod_add_edge(m, int(ln), int(b), int(loan))
        m.events.add(t, "conversion_start", int(b), counterparty=int(ln), amount=float(cost))


def netmod_add_edge(m, lender: int, borrower: int, loan: int) -> None:
    from abm import network

    network.add_loan_edge(m, lender, borrower, loan)
