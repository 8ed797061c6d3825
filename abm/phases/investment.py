"""Phase 11: investment. Neoclouds expand with the newest generation on new GPU term loans; miners
convert mining MW to AI hosting on project loans. Lenders fund what their capital and appetite allow,
shared pro rata among the borrowers asking them this month (decided simultaneously)."""

from __future__ import annotations

import numpy as np

from abm import network, policy
from abm.agents.base import ACTIVE
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import GPU_TERM, PROJECT, SENIOR_SECURED
from abm.phases import asic_orders
from abm.phases.lenders import top_up_liquidity
from abm.world import lenders_of_kind, match_cumulative

TRANCHE_MONTHS = 12  # draws within a year of a tranche's opening join it


def run(m, t: int, lender_sheet: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Fleet expansion and site conversions. ``lender_sheet``: the lenders' current (assets,
    equity) when the caller has them (the lender phase returns them; nothing changes in between)."""
    # lenders decide their capacity once, from the state at the start of the phase; what they fund
    # is drawn from it (so fleet expansion and conversions share one budget)
    capacity_left = np.zeros(m.n)  # per agent (lender rows), USD, drawn down as loans are funded
    capacity_left[m.lender_idx] = m.populations.lenders.lending_capacity(m.lender_idx, lender_sheet)
    policy.cap_lending_capacity(m, t, capacity_left, lender_sheet)
    m.credit_supply_usd = float(capacity_left.sum())
    _expand_fleets(m, t, capacity_left)
    _convert_sites(m, t, capacity_left)
    asic_orders.run(m, t, capacity_left)  # miners' ASIC orders and deliveries (ODD 7.22)
    top_up_liquidity(m)


def _funding_shares(
    capacity_left: np.ndarray, lenders: np.ndarray, request_usd: np.ndarray
) -> np.ndarray:
    """Share of each request its lender can fund: capacity left over total requests to that lender."""
    asked = np.bincount(lenders, weights=request_usd, minlength=len(capacity_left))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(asked > 0, np.minimum(1.0, capacity_left / asked), 0.0)
    return share[lenders]


def _draw_capacity(capacity_left: np.ndarray, lenders: np.ndarray, amounts: np.ndarray) -> None:
    """Lenders' funded amounts (USD) drawn from their capacity left (per agent, in place)."""
    np.subtract.at(capacity_left, lenders, amounts)


def _expand_fleets(m, t: int, capacity_left: np.ndarray) -> None:
    """Neoclouds buy the newest generation on delayed-draw GPU loans from their primary lender, as
    far as their plan, their cash and their lender's capacity left (per agent, USD) allow."""
    idx, want = m.populations.neoclouds.plan_expansion(t)
    go = want > 0
    idx, want = idx[go], want[go]
    if len(idx) == 0:
        return
    cfg = m.cfg
    g = m.populations.neoclouds.newest_generation(t)
    cost = m.list_price[g] * cfg["compute"]["all_in_cost_multiplier"]
    lenders = m.primary_lender[idx]
    has_lender = lenders >= 0
    idx, want, lenders = idx[has_lender], want[has_lender], lenders[has_lender]
    ltv, spread = m.populations.lenders.new_loan_terms(lenders)
    ltv = policy.cap_gpu_loan_ltv(m, ltv, lenders, g, cost)
    units = np.minimum(want, m.populations.neoclouds.affordable_units(idx, cost, ltv))
    share = _funding_shares(capacity_left, lenders, units * cost * ltv)
    units = np.floor(units * share).astype(np.int64)
    ok = units > 0
    if not ok.any():
        return
    idx, units, lenders, ltv, spread = idx[ok], units[ok], lenders[ok], ltv[ok], spread[ok]
    principal = units * cost * ltv
    _draw_capacity(capacity_left, lenders, principal)
    tenor = cfg["neoclouds"]["new_loan_months"]
    _draw_tranches(m, t, idx, lenders, g, principal, spread, ltv, tenor, units, cost)
    m.acct.transfer(lenders, idx, principal)
    m.acct.to_sector("gpu_vendor", idx, units * cost)
    m.gpu_delivered += int(units.sum())
    _sign_contracts(m, t, idx, g, units)
    _lease_hosting(m, t, idx, units * m.kw[g] / 1000.0 * cfg["neoclouds"]["hosted_share"])


def _draw_tranches(m, t, idx, lenders, g, principal, spread, ltv, tenor, units, cost):
    """Book each purchase as a draw on a delayed-draw term loan (vectorised over borrowers).

    Draws within ``TRANCHE_MONTHS`` of the borrower's open tranche with the same lender join it (one
    loan row, amortising over the tranche's remaining term, and one lot per generation); otherwise a
    new tranche opens. This keeps the books small in long runs, as real facilities' draw periods do.
    """
    loans, lots = m.loans, m.lots
    rows = m.tranche_row[idx]
    join = rows >= 0
    r = rows[join]
    join[join] = (
        (loans.status[r] == LOAN_ACTIVE)
        & (loans.lender[r] == lenders[join])
        & (t - loans.origination_month[r] < TRANCHE_MONTHS)
        & (loans.maturity_month[r] > t)
    )
    if join.any():
        r, b = rows[join], idx[join]
        loans.principal_usd[r] += principal[join]
        loans.amort_usd_per_month[r] = loans.principal_usd[r] / (loans.maturity_month[r] - t)
        lot = m.tranche_lot[b]
        same = (lot >= 0) & (m.tranche_lot_gen[b] == g)
        same[same] &= (lots.loan[lot[same]] == r[same]) & (lots.owner[lot[same]] == b[same])
        lots.units[lot[same]] += units[join][same]
        if (~same).any():
            new = lots.add(
                owner=b[~same],
                gen=g,
                units=units[join][~same],
                acquired_month=t,
                cost_usd_per_unit=cost,
                loan=r[~same],
            )
            m.tranche_lot[b[~same]] = new
            m.tranche_lot_gen[b[~same]] = g
    fresh = ~join
    if fresh.any():
        b, lender = idx[fresh], lenders[fresh]
        new_rows = loans.add(
            lender=lender,
            borrower=b,
            kind=GPU_TERM,
            seniority=SENIOR_SECURED,
            principal_usd=principal[fresh],
            spread=spread[fresh],
            floating=True,
            amort_usd_per_month=principal[fresh] / tenor,
            maturity_month=t + tenor,
            max_ltv=m.lk["origination_ltv"][lender] + m.lk["covenant_headroom"][lender],
            min_coverage=m.lk["min_coverage"][lender],
            cure_months=m.lk["cure_months"][lender],
            initial_ltv=ltv[fresh],
            origination_month=t,
        )
        new_lots = lots.add(
            owner=b,
            gen=g,
            units=units[fresh],
            acquired_month=t,
            cost_usd_per_unit=cost,
            loan=new_rows,
        )
        m.tranche_row[b] = new_rows
        m.tranche_lot[b] = new_lots
        m.tranche_lot_gen[b] = g
        network.add_loan_edges(m, lender, b, new_rows)


def _sign_contracts(m, t: int, idx: np.ndarray, g: int, units: np.ndarray) -> None:
    """Contracts for the contracted share of new units, split between the provider's anchor
    customer (``anchor_share``) and small customers by grade. Customers reserve only capacity they
    have demand for: the contracted units are scaled down so that all reserved H100-equivalents
    stay within today's demand / ``utilisation_max``.

    Units signed within ``TRANCHE_MONTHS`` of an open contract of the same provider, generation and
    grade join it: rent and end month become unit-weighted averages and the prepayment adds up. This
    keeps the contract book small in long runs (one row per provider, grade and year).
    """
    c = m.cfg["compute"]
    ct = m.contracts
    contracted = np.floor(units * m.contracted_share[idx]).astype(np.int64)
    # customers reserve only capacity they have demand for: new reservations stop where reserved
    # H100-equivalents at full usage (utilisation_max) would exceed today's demand
    live = np.flatnonzero(ct.active)  # (the provider test on the active rows only)
    live = live[m.status.take(ct.provider.take(live)) == ACTIVE]
    reserved_perf = float((ct.units.take(live) * m.perf.take(ct.gen.take(live))).sum())
    headroom = max(m.compute.demand_perf_units / c["utilisation_max"] - reserved_perf, 0.0)
    asked = float(contracted.sum()) * m.perf[g]
    if asked > headroom:
        contracted = np.floor(contracted * (headroom / asked)).astype(np.int64)
    anchor = np.floor(contracted * m.anchor_share[idx]).astype(np.int64)
    ig = np.floor((contracted - anchor) * m.ig_share[idx]).astype(np.int64)
    rent = m.compute.rent_spot[g] * (1.0 + c["contract_premium"])
    tenor = c["contract_tenor_months"]
    # grade slots: 0 small non-IG customers, 1 investment grade, 2 the provider's anchor customer;
    # the new contracts of all grades are written in one add, in this order of grades
    fresh_rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for grade, n_units in ((2, anchor), (1, ig), (0, contracted - anchor - ig)):
        ok = n_units > 0
        if not ok.any():
            continue
        b, u = idx[ok], n_units[ok]
        prepay = c["prepayment_share"] * u * rent * c["hours_per_month"] * tenor
        m.acct.from_sector("compute_customers", b, prepay)
        rows = m.contract_row[b, grade]
        join = rows >= 0
        r = rows[join]
        join[join] = (
            ct.active[r]
            & (ct.gen[r] == g)
            & (t - m.contract_opened[b[join], grade] < TRANCHE_MONTHS)
            & (ct.end_month[r] > t)
        )
        if join.any():
            r, uj = rows[join], u[join]
            units_r = ct.units[r]
            total = units_r + uj
            ct.rent_per_gpu_hour[r] = (ct.rent_per_gpu_hour[r] * units_r + rent * uj) / total
            ct.end_month[r] = np.rint((ct.end_month[r] * units_r + (t + tenor) * uj) / total)
            ct.units[r] = total
            ct.prepaid_usd[r] += prepay[join]
        fresh = ~join
        if fresh.any():
            fresh_rows.append((grade, b[fresh], u[fresh], prepay[fresh]))
    if not fresh_rows:
        return
    grades = np.concatenate([np.full(len(b), grade) for grade, b, _, _ in fresh_rows])
    providers = np.concatenate([b for _, b, _, _ in fresh_rows])
    new = ct.add(
        provider=providers,
        gen=g,
        units=np.concatenate([u for _, _, u, _ in fresh_rows]),
        rent_per_gpu_hour=rent,
        end_month=t + tenor,
        take_or_pay_share=c["take_or_pay_share"],
        prepaid_usd=np.concatenate([p for _, _, _, p in fresh_rows]),
        prepay_release_share=c["prepayment_share"],
        investment_grade=grades == 1,
        anchor=np.where(grades == 2, m.anchor_of[providers], -1),
    )
    m.contract_row[providers, grades] = new
    m.contract_opened[providers, grades] = t


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


def _convert_sites(m, t: int, capacity_left: np.ndarray) -> None:
    """Miners start converting mining MW to AI hosting on project loans from the bank with the most
    capacity left (per agent, USD), when the loan is fully funded and they pay the rest in cash."""
    mc = m.cfg["miners"]
    pipeline = float(m.conversions.mw[m.conversions.active].sum())
    free = float(m.free_hosting_mw()[m.miner_idx].sum())
    unmet = m.unmet_hosting_mw - pipeline - free
    mw = m.populations.miners.plan_conversions(unmet)
    go = mw > m.cfg["miners"]["min_conversion_mw"]
    if not go.any():
        return
    miners = m.miner_idx[go]
    mw = mw[go]
    banks = lenders_of_kind(m, ("bank",))
    if len(banks) == 0:
        return
    lender = np.full(len(miners), banks[int(np.argmax(capacity_left[banks]))])
    capex = mw * mc["conversion_capex_usd_per_mw"]
    loan_usd = capex * policy.cap_project_ltc(m, mc["project_loan_ltc"])
    share = _funding_shares(capacity_left, lender, loan_usd)
    own = capex - loan_usd
    ok = (share >= 1.0) & (m.acct.cash[miners] >= own)
    if not ok.any():
        return
    miners, mw, capex, loan_usd, lender = miners[ok], mw[ok], capex[ok], loan_usd[ok], lender[ok]
    tenor = mc["lease_months"]
    _, spread = m.populations.lenders.new_loan_terms(lender)
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
    _draw_capacity(capacity_left, lender, loan_usd)
    m.acct.transfer(lender, miners, loan_usd)
    m.acct.to_sector("power_and_sites", miners, capex)
    m.site_value_usd[miners] += capex
    m.site_assets.capitalise(miners, capex, mc["conversion_life_months"], t, asic=False)
    # the converted MW stop mining: their share of the ASICs leaves the books at book value
    m.site_assets.retire_asic_share(m, miners, mw / m.mining_mw[miners], t)
    m.hashrate_eh[miners] *= 1.0 - mw / m.mining_mw[miners]
    m.mining_mw[miners] -= mw
    m.conversions.add(miner=miners, mw=mw, done_month=t + mc["conversion_months"])
    network.add_loan_edges(m, lender, miners, rows)
    m.events.add_many(
        t, "conversion_start", miners.tolist(), lender.tolist(), [()] * len(rows), capex.tolist()
    )
