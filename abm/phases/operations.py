"""Phase 3: operations. Rents (contracted and spot), hosting leases, mining, power and site costs,
overheads, lenders' funding costs, GPU scrapping and completed conversions. Vectorised over lots,
contracts and leases.

(Longer than ~450 lines: the month's cash flows share the G x n unit tables built once at the top
of :func:`run`, and the contract rules with their table helpers are kept next to the revenue they
set, so that one reading follows the phase from the tables to the cash.)"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, BUYER, LENDER, MINER, NEOCLOUD
from abm.finance import losses, other_assets
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.phases.asic_mining import mine_asic_lots


def _table(agent, gen, units, n: int, G: int) -> np.ndarray:
    """Units by (generation, agent) as a G x n array (bincount: much faster than np.add.at). Each
    cell sums its elements in input order, as an n x G table would."""
    flat = np.bincount(gen * n + agent, weights=units, minlength=G * n)
    return flat.reshape(G, n)


def _sum_over_gens(p: np.ndarray) -> np.ndarray:
    """``p.T.sum(axis=1)`` of a G x n array, bit for bit, as G vector operations on contiguous rows.

    NumPy sums each row of a C-contiguous n x G array with its pairwise kernel: fewer than 8 terms
    one after the other; 8 to 128 terms in 8 interleaved partial sums combined as a tree, then the
    remainder one by one; the result added to the identity 0.0. The per-agent sums of an n x G table
    over a handful of generations run that kernel once per agent, which is slow; this does the same
    additions in the same order, one generation (row of the G x n array) at a time."""
    G = p.shape[0]
    if G > 128:
        return np.ascontiguousarray(p.T).sum(axis=1)
    if G < 8:
        res = p[0].copy()
        for i in range(1, G):
            res += p[i]
    else:
        tail = G - G % 8
        r = p[:8].copy()
        for i in range(8, tail, 8):
            r += p[i : i + 8]
        res = r[0] + r[1]
        res += r[2] + r[3]
        hi = r[4] + r[5]
        hi += r[6] + r[7]
        res += hi
        for i in range(tail, G):
            res += p[i]
    res += 0.0  # the reduction's identity (turns -0.0 into 0.0, as NumPy's sum does)
    return res


def push_history(hist: np.ndarray, newest: np.ndarray) -> np.ndarray:
    """A new (agents x months) history array: ``newest`` in column 0, the older months shifted one
    column back (the oldest drops out). Same values as ``np.roll`` + assignment, without the roll.

    In row-major order column j + 1 of a row directly follows column j, so shifting the flat array by
    one element moves every month one column back in a single contiguous copy; the element that
    wraps into column 0 of the next row is then overwritten by ``newest``."""
    hist = np.ascontiguousarray(hist)
    out = np.empty_like(hist)
    out.reshape(-1)[1:] = hist.reshape(-1)[:-1]
    out[:, 0] = newest
    return out


def _monthly_prob(per_year: float) -> float:
    return 1.0 - (1.0 - per_year) ** (1.0 / 12.0)


def run(m, t: int) -> np.ndarray:
    """Phase 3: the month's operations (rents, leases, mining, power and site costs, overheads,
    lenders' funding costs, EBITDA history, scrapping, completed conversions). Returns the BTC each
    agent sells from this month's production (per agent; the debt-service phase sells it)."""
    cfg = m.cfg
    c = cfg["compute"]
    n, G = m.n, m.G
    acct = m.acct
    hours = c["hours_per_month"]
    revenue = np.zeros(n)
    opex = np.zeros(n)

    lots = m.lots
    lot_units = lots.units
    live = m.in_service_lots()
    # integer unit counts: the table's sums are exact whatever the order
    # (G x n tables: per-agent sums over generations run on contiguous rows, see _sum_over_gens)
    owned = _table(lots.owner.take(live), lots.gen.take(live), lot_units.take(live), n, G)
    # the contracts still active after this month's cuts and renewals (rows of active providers)
    act = _renew_and_cut_contracts(m, t, owned)

    # contracted revenue: the take-or-pay share is paid whatever the usage, usage above it only as
    # far as demand reaches (demand is served on reserved GPUs first); prepayments released first
    # (computed on the active contracts only: the others earn and release nothing)
    ct = m.contracts
    provider, units, gen_act = ct.provider.take(act), ct.units.take(act), ct.gen.take(act)
    cell = gen_act * n + provider  # (generation, provider) cell of the G x n tables
    # (_contract_usage's three results, from the columns gathered here)
    contracted = np.bincount(cell, weights=units, minlength=G * n).reshape(G, n)
    scale = _in_service_scale(contracted, owned)
    contract_usage = _usage(m, contracted, owned)
    take_or_pay = ct.take_or_pay_share.take(act)
    paid_share = np.maximum(take_or_pay, contract_usage)
    idle_share = paid_share - contract_usage  # paid for under take-or-pay, not used
    reserved = units * scale.reshape(-1).take(cell)  # contracted units the provider has in service
    rent_month = reserved * ct.rent_per_gpu_hour.take(act) * hours
    value = rent_month * paid_share
    prepaid = ct.prepaid_usd.take(act)
    release = np.minimum(prepaid, ct.prepay_release_share.take(act) * value)
    ct.prepaid_usd[act] = prepaid - release
    contract_cash = np.bincount(provider, weights=value - release, minlength=n)
    revenue += np.bincount(provider, weights=value, minlength=n)
    idle_usd = np.bincount(provider, weights=rent_month * idle_share, minlength=n)
    m.idle_take_or_pay_usd += idle_usd
    m.this_month.idle_take_or_pay_usd += float(idle_usd.sum())

    # spot revenue on uncontracted units of generations worth running, at the utilisation the
    # demand left after contracted usage gives them
    running = m.compute.running()
    spot_units = np.maximum(owned - contracted, 0.0)
    reserved_perf_c = reserved * m.perf.take(gen_act)  # per contract
    reserved_perf = float(reserved_perf_c.sum())
    spot_perf = float((spot_units.sum(axis=1) * m.perf * running).sum())
    demand_left = max(m.compute.demand_perf_units - contract_usage * reserved_perf, 0.0)
    spot_util = min(c["utilisation_max"], demand_left / spot_perf) if spot_perf > 0 else 0.0
    spot = _sum_over_gens(spot_units * (m.compute.rent_spot * spot_util * hours * running)[:, None])
    revenue += spot
    acct.from_sector_all("compute_customers", contract_cash + spot)
    asic_btc = mine_asic_lots(m, owned, revenue, opex)  # ASIC lots: hashprice, power, sites
    _pay_servicers(m, revenue, opex)
    m.contract_usage, m.spot_utilisation = contract_usage, spot_util
    # next month's balance: the contract book after this month's cuts and renewals
    m.compute.set_balance(reserved_perf, float((owned * m.perf[:, None]).sum()))
    m.paid_compute_perf_units = float((reserved_perf_c * paid_share).sum()) + spot_util * spot_perf
    m.idle_take_or_pay_perf_units = float((reserved_perf_c * idle_share).sum())

    # power for running units, colocation for all installed kW not hosted by a miner
    busy_units = (
        np.minimum(contracted, owned) * contract_usage + spot_units * (running * spot_util)[:, None]
    )
    power = _sum_over_gens(
        busy_units * (m.kw * c["pue"] * c["power_price_usd_per_kwh"] * hours)[:, None]
    )
    it_kw = _sum_over_gens(owned * m.kw[:, None])
    ls = m.leases
    outside = ls.tenant < 0  # a lease taken over by an outside tenant (counterparty channel off)
    lact = ls.active & (outside | (m.status[np.maximum(ls.tenant, 0)] == ACTIVE))
    _renew_leases(m, t, lact)
    inside = np.flatnonzero(lact & ~outside)  # (rows: gathered once for all the columns below)
    tenants, hosts = ls.tenant.take(inside), ls.host.take(inside)
    kw_in = ls.mw.take(inside) * 1000.0
    hosted_kw = np.bincount(tenants, weights=kw_in, minlength=n)
    colo = np.maximum(it_kw - hosted_kw, 0.0) * c["colo_usd_per_kw_month"]
    colo[m.type == MINER] = 0.0  # miners run their own GPUs in their own halls
    power_colo = power + colo
    opex += power_colo
    acct.from_sector_all("power_and_sites", -power_colo)

    # hosting leases: tenant -> host (or the outside buyer of a defaulted host's site)
    lease_pay = kw_in * ls.rate_usd_per_kw_month.take(inside)
    opex += np.bincount(tenants, weights=lease_pay, minlength=n)
    to_host = hosts >= 0
    acct.transfer(tenants[to_host], hosts[to_host], lease_pay[to_host])
    acct.to_sector("infrastructure_buyers", tenants[~to_host], lease_pay[~to_host])
    ext = lact & outside & (ls.host >= 0)
    ext_pay = ls.mw[ext] * 1000.0 * ls.rate_usd_per_kw_month[ext]
    acct.from_sector("compute_customers", ls.host[ext], ext_pay)
    hosts = np.concatenate([hosts[to_host], ls.host[ext]])
    lease_pay = np.concatenate([lease_pay[to_host], ext_pay])
    lease_income = np.bincount(hosts, weights=lease_pay, minlength=n)
    site_cost = lease_income * cfg["miners"]["hosting_site_cost_share"]
    revenue += lease_income
    opex += site_cost
    acct.from_sector_all("power_and_sites", -site_cost)

    production_sale_btc = _mining(m, t, revenue, opex, asic_btc)
    m.site_assets.depreciate(m, t)  # not a cash flow, and not in EBITDA

    # overheads
    sga = np.where(m.type == NEOCLOUD, m.sga_share * revenue, 0.0)
    sga[m.miner_idx] = m.sga_usd[m.miner_idx]
    sga[m.status != ACTIVE] = 0.0
    opex += sga
    acct.from_sector_all("staff_and_suppliers", -sga)

    # lenders pay their outside funders
    lenders = m.lender_idx
    funding_cost = (
        m.outside_funding_usd[lenders]
        * (m.base_rate + m.lk["funding_spread"][lenders] + m.funding_state.premium[lenders])
        / 12.0
    )
    acct.to_sector("outside_funders", lenders, funding_cost)
    other_assets.pay_interest(m)  # a crypto lender's loans outside the model pay interest
    acct.from_sector(
        "money_market", lenders, np.maximum(acct.cash[lenders], 0.0) * m.base_rate / 12.0
    )

    ebitda = revenue - opex
    ebitda[(m.type == LENDER) | (m.type == BUYER)] = 0.0
    m.ebitda_hist = push_history(m.ebitda_hist, ebitda)
    m.monthly_opex_usd = opex

    _scrap(m, t)
    _complete_conversions(m, t)
    return production_sale_btc


def _pay_servicers(m, revenue: np.ndarray, opex: np.ndarray) -> None:
    """Lenders lease their seized GPUs out through servicers, who keep ``credit.servicer_fee_share``
    of the rent (the lenders' revenue so far this month: they have no contracts)."""
    lenders = m.lender_idx
    fee = m.cfg["credit"]["servicer_fee_share"] * revenue[lenders]
    if fee.any():
        m.acct.to_sector("gpu_servicers", lenders, fee)
        opex[lenders] += fee


def _mining(m, t: int, revenue: np.ndarray, opex: np.ndarray, asic_btc: np.ndarray) -> np.ndarray:
    """Miners earn BTC from the network for their hashrate (switching off when power costs more) and
    refresh ASICs with spare cash. ``asic_btc``: BTC mined this month by each agent's ASIC lots
    (:func:`abm.phases.asic_mining.mine_asic_lots`), received with the base fleet's. Returns the BTC
    each agent sells from production (per agent)."""
    mc = m.cfg["miners"]
    idx = m.miner_idx[m.status[m.miner_idx] == ACTIVE]
    hours = m.cfg["compute"]["hours_per_month"]
    margin_on = (m.mining_margin_per_mw_month()[idx] > -mc["site_opex_usd_per_mw_month"]).astype(
        float
    )
    btc = m.hashrate_eh[idx] * m.crypto.btc_mined_per_eh_month() * margin_on
    if len(m.asic.rows):
        btc = btc + asic_btc[idx]
    m.acct.btc_from_sector("btc_network", idx, btc)
    production_sale_btc = np.zeros(m.n)
    production_sale_btc[idx] = btc * mc["btc_sell_share"]
    power = m.mining_mw[idx] * 1000.0 * hours * mc["power_price_usd_per_kwh"] * margin_on
    site = m.mining_mw[idx] * mc["site_opex_usd_per_mw_month"]
    revenue[idx] += btc * m.crypto.price_usd
    m.miner_revenue_usd = float((btc * m.crypto.price_usd).sum())
    opex[idx] += power + site
    m.acct.to_sector("power_and_sites", idx, power + site)
    # fleet refresh: profitable miners replace ASICs to keep pace with the network's efficiency trend,
    # as far as spare cash allows (same MW, more EH/s)
    growth = (1.0 + m.cfg["crypto"]["hashrate_growth_per_year"]) ** (1.0 / 12.0) - 1.0
    add_eh = m.hashrate_eh[idx] * max(growth, 0.0) * margin_on
    capex = add_eh * 1e6 * mc["asic_usd_per_th"]
    buffer = mc["asic_refresh_cash_buffer_months"] * m.monthly_opex_usd[idx]
    spare = np.maximum(m.acct.cash[idx] - buffer, 0.0)
    frac = np.where(capex > 0, np.minimum(1.0, spare / np.maximum(capex, 1e-9)), 0.0)
    m.hashrate_eh[idx] += add_eh * frac
    m.acct.to_sector("asic_vendor", idx, capex * frac)
    m.site_value_usd[idx] += capex * frac
    m.site_assets.capitalise(idx, capex * frac, mc["asic_life_months"], t, asic=True)
    return production_sale_btc


def _contracts_in_force(m) -> np.ndarray:
    """Rows of the contracts in force of active providers, ascending:
    ``flatnonzero(active & (status[provider] == ACTIVE))``, with the provider test on the active
    rows only (most of the book is ended contracts in long runs)."""
    ct = m.contracts
    rows = np.flatnonzero(ct.active)
    return rows[m.status.take(ct.provider.take(rows)) == ACTIVE]


def reserved_perf_units(m) -> float:
    """H100-equivalents in service under the contracts in force of active providers (the
    reserved capacity demand is served on first)."""
    act = _contracts_in_force(m)
    live = m.in_service_lots()
    lots = m.lots
    owned = _table(lots.owner.take(live), lots.gen.take(live), lots.units.take(live), m.n, m.G)
    contracted = _contract_usage(m, act, owned)[0]
    return float((np.minimum(contracted, owned) * m.perf[:, None]).sum())


def _contract_usage(m, act: np.ndarray, owned: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """How much of the reserved capacity customers use this month.

    ``act``: the contract rows in force; ``owned``: in-service units by (generation, agent), G x n.
    Returns the contracted units by (generation, provider) (G x n), the share of them the provider
    has in service (``min(1, owned / contracted)``, G x n) and the contract usage: the share of the
    reserved in-service H100-equivalents busy, ``min(utilisation_max, demand / reserved)``. Demand
    is served on reserved GPUs first; what is left goes to spot GPUs."""
    contracted = _contracted_table(m, act)
    return contracted, _in_service_scale(contracted, owned), _usage(m, contracted, owned)


def _in_service_scale(contracted: np.ndarray, owned: np.ndarray) -> np.ndarray:
    """``min(1, owned / contracted)`` where units are contracted, else 0 (G x n, float): the
    division only where it is defined."""
    held = contracted > 0
    scale = np.divide(owned, contracted, out=np.zeros(contracted.shape), where=held)
    np.minimum(scale, 1.0, out=scale, where=held)
    return scale


def _contracted_table(m, act: np.ndarray) -> np.ndarray:
    """Units under the contracts ``act`` by (generation, provider), G x n."""
    ct = m.contracts
    n, G = m.n, m.G
    cell = ct.gen.take(act) * n + ct.provider.take(act)
    return np.bincount(cell, weights=ct.units.take(act), minlength=G * n).reshape(G, n)


def _usage(m, contracted: np.ndarray, owned: np.ndarray) -> float:
    """The contract usage of :func:`_contract_usage` from the contracted and owned tables."""
    c = m.cfg["compute"]
    reserved_perf = float((np.minimum(contracted, owned) * m.perf[:, None]).sum())
    if reserved_perf <= 0:
        return float(c["utilisation_max"])
    return float(min(c["utilisation_max"], m.compute.demand_perf_units / reserved_perf))


def _renew_and_cut_contracts(m, t: int, owned: np.ndarray) -> np.ndarray:
    """Customers default (contract cut), anchor customers fall into distress (all their contracts
    cut, at every provider they buy from), and contracts at their end renew on today's demand at
    today's spot rent. Returns the rows still active afterwards (ascending).

    Rules:

    * Small customers default with the monthly equivalent of their grade's annual probability. A
      non-investment-grade customer's probability rises with the idle share of the take-or-pay it
      paid last month (``(take_or_pay - usage) / take_or_pay``): from the calm-regime probability
      towards the stress-regime one (a customer paying for fully idle capacity is as stressed as
      in the stress regime).
    * Each of the ``neoclouds.anchor_customers`` anchor customers is in distress with that same
      probability; its contracts with every provider end in the same month.
    * A renewal keeps the share of the units the customer uses today,
      ``min(1, contract usage / utilisation_max)``, at spot x (1 + ``contract_premium``) for
      ``contract_tenor_months``; a contract renewed on zero units ends.

    Only contracts of active providers can change; the tests run on those rows (``act``), while the
    draws cover every contract and anchor so that their alignment does not depend on who is active
    or on ``shocks.customer_defaults`` (off: no customer defaults or renegotiates). ``owned``: in-service units by (generation, agent), G x n."""
    c = m.cfg["compute"]
    ct = m.contracts
    act = _contracts_in_force(m)
    # the regime sets the stress probability by hand only under shocks.correlation_model =
    # "regime_set"; otherwise customers' stress comes only from the idle take-or-pay they pay below
    p = c[
        "customer_default_prob_per_year_stress"
        if m.shocks.stress and m.shocks.regime_sets_correlation
        else "customer_default_prob_per_year"
    ]
    # customers that paid for idle reserved GPUs last month carry that cost: their default
    # probability moves towards the stress regime's by the idle share of their take-or-pay
    top = c["take_or_pay_share"]
    idle_share = max(top - m.contract_usage, 0.0) / top if top > 0 else 0.0
    p_small = p + idle_share * max(c["customer_default_prob_per_year_stress"] - p, 0.0)
    # monthly default probability by grade (index 1: investment grade)
    p_grade = np.array(
        [_monthly_prob(p_small), _monthly_prob(c["ig_customer_default_prob_per_year"])]
    )
    # drawn whatever the switch, so switching it keeps every other draw aligned
    draws = m.rng.random(ct.n)
    reneg_draws = m.rng.random(ct.n)
    anchor_distressed = m.rng.random(m.cfg["neoclouds"]["anchor_customers"]) < _monthly_prob(
        p_small
    )
    # an outside shock with its own switch (not channels.counterparty: no model agent is its source)
    if m.cfg["shocks"]["customer_defaults"]:
        ig = ct.investment_grade.take(act)
        anchor = ct.anchor.take(act)
        of_anchor = anchor >= 0
        cut_mask = np.where(
            of_anchor,
            anchor_distressed.take(np.maximum(anchor, 0)),
            draws.take(act) < p_grade.take(ig.view(np.uint8)),
        )
        m.this_month.anchor_distress += len(np.unique(anchor[of_anchor & cut_mask]))
        keep_mask = ~cut_mask
        cut, kept = act[cut_mask], act[keep_mask]
        # counted in the time series: many, and a lost customer is not a default's parent
        m.this_month.contract_cuts += len(cut)
        ct.active[cut] = False
        ct.prepaid_usd[cut] = 0.0  # a defaulted customer forfeits it
        # a non-investment-grade customer paying far above today's contract price renegotiates
        # down; the (rare) draw is tested first, the other conditions on those rows only
        today_g = m.compute.rent_spot * (1.0 + c["contract_premium"])
        cand = kept[(reneg_draws.take(kept) < c["renegotiation_prob_per_month"]) & ~ig[keep_mask]]
        today = today_g.take(ct.gen.take(cand))
        rent = ct.rent_per_gpu_hour.take(cand)
        reneg = rent > c["renegotiation_threshold"] * today
        # counted in the time series (many, and never a default's parent): revenue given up
        m.this_month.renegotiations += int(np.count_nonzero(reneg))
        m.this_month.renegotiated_usd += float(
            ((rent[reneg] - today[reneg]) * ct.units.take(cand[reneg]) * c["hours_per_month"]).sum()
        )
        ct.rent_per_gpu_hour[cand[reneg]] = today[reneg]
    else:  # customers' defaults off: nothing is cut or renegotiated
        kept = act
    rows = kept[ct.end_month.take(kept) <= t]
    if len(rows):
        # the customer re-reserves what it uses today (demand served on the contracts in force)
        usage = _usage(m, _contracted_table(m, kept), owned)
        keep_share = min(1.0, usage / c["utilisation_max"])
        ct.units[rows] = np.rint(ct.units[rows] * keep_share).astype(np.int64)
        rent = m.compute.rent_spot[ct.gen[rows]] * (1.0 + c["contract_premium"])
        # renewals on installed GPUs re-price to today's rent; prepayments fund new capacity only
        ct.rent_per_gpu_hour[rows] = rent
        ct.end_month[rows] = t + c["contract_tenor_months"]
        ct.prepay_release_share[rows] = 0.0
        empty = rows[ct.units[rows] == 0]
        if len(empty):
            ct.active[empty] = False
            kept = kept[ct.active.take(kept)]
    return kept


def _renew_leases(m, t: int, lact: np.ndarray) -> None:
    ls = m.leases
    due = lact & (ls.end_month <= t)
    ls.end_month = np.where(due, t + m.cfg["miners"]["lease_months"], ls.end_month)


def _scrap(m, t: int) -> None:
    """Failures beyond repair remove GPUs from the world (binomial draws per lot at
    ``failure_scrap_rate_per_year``); then owners retire the generations no longer worth keeping
    (:func:`_retire`)."""
    lots = m.lots
    c = m.cfg["compute"]
    units = lots.units
    has = np.flatnonzero(units > 0)
    if len(has) == 0:
        return
    p = _monthly_prob(c["failure_scrap_rate_per_year"])
    held = units.take(has)
    failed = m.rng.binomial(held, p)  # drawn for every lot with units
    # units leave through the one booking function: a lender holding them books the loss (handed
    # the lots with failures only: it skips rows without units to retire, in order, anyway)
    hit = np.flatnonzero(failed)
    losses.retire_units(m, has.take(hit), failed.take(hit))
    _retire(m, t)


def _retire(m, t: int) -> None:
    """Economic retirement: owners (neoclouds, GPU-owning miners and their estates, lenders holding
    seized GPUs, buyers) retire the GPUs of a generation whose expected rents no longer beat its salvage value
    (``Population.retire_uneconomic_lots``; owners keep the units their customer contracts still
    pay for) and sell them to ``salvage_buyers`` at the salvage value.

    The proceeds of pledged lots prepay their loan (a collateral disposal), up to its principal;
    the rest is the owner's. A lender retiring seized GPUs realises the loss against the value it
    booked them at (:func:`abm.finance.losses.retire_units`). Retired units count in ``gpu_scrapped``, so ``gpu_units_total = initial +
    delivered - scrapped`` still holds."""
    retiring = m.compute.retiring()
    if not retiring.any():
        return
    pops = m.populations
    decided = [
        p.retire_uneconomic_lots(retiring)
        for p in (pops.miners, pops.neoclouds, pops.lenders, pops.buyers)
    ]
    rows = np.concatenate([d[0] for d in decided])
    if len(rows) == 0:
        return
    units = np.concatenate([d[1] for d in decided])
    order = np.argsort(rows)
    rows, units = rows[order], units[order]
    lots, loans = m.lots, m.loans
    owner = lots.owner[rows]
    salvage = m.compute.salvage_usd_per_gpu[lots.gen[rows]]
    proceeds = units * salvage
    m.acct.from_sector("salvage_buyers", owner, proceeds)
    # proceeds of pledged GPUs prepay their (open) loan
    loan = lots.loan[rows]
    pledged = loan >= 0
    if pledged.any():
        per_loan = np.bincount(loan[pledged], weights=proceeds[pledged], minlength=loans.n)
        paid_rows = np.flatnonzero(per_loan > 0)
        open_ = loans.status[paid_rows] == LOAN_ACTIVE
        paid_rows = paid_rows[open_]
        pay = np.minimum(per_loan[paid_rows], loans.principal_usd[paid_rows])
        m.acct.transfer(loans.borrower[paid_rows], loans.lender[paid_rows], pay)
        loans.principal_usd[paid_rows] -= pay
        # principal in arrears is part of the principal just prepaid: it is no longer owed
        prepaid_arrears = np.maximum(
            loans.arrears_principal_usd[paid_rows] - loans.principal_usd[paid_rows], 0.0
        )
        loans.arrears_principal_usd[paid_rows] -= prepaid_arrears
        loans.arrears_usd[paid_rows] -= prepaid_arrears
    np.add.at(m.this_month.retired_units, lots.gen[rows], units)
    # the units leave through the one booking function: a lender holding them books their carrying
    # value against the salvage proceeds (a realised loss, or a gain above carrying value)
    losses.retire_units(m, rows, units, proceeds)


def _complete_conversions(m, t: int) -> None:
    cv = m.conversions
    done = cv.active & (cv.done_month <= t)
    if done.any():
        ok = done & (m.status[cv.miner] == ACTIVE)
        np.add.at(m.hosting_mw, cv.miner[ok], cv.mw[ok])
        cv.active = cv.active & ~done
