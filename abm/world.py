"""Building the initial world from a scenario: agents, balance sheets, instruments, the lending network.

All draws use the model's seeded generator. Balance sheets are built so that every loan is one lender's
asset and one borrower's liability, lenders are funded by equity, outside funders and other lenders,
and loans start within their covenants at current marks (they describe the 2025 stock, already seasoned).
"""

from __future__ import annotations

import numpy as np

from abm.finance.instruments import (
    BTC_LOAN,
    CONVERT,
    GPU_TERM,
    INTERBANK,
    NOTE,
    SENIOR_SECURED,
    SENIOR_UNSECURED,
    SUBORDINATED,
)

GPU_LENDER_KINDS = ("bank", "private_credit", "vendor_finance")


def _log_uniform(rng, lo_hi, size):
    lo, hi = lo_hi
    if lo <= 0:
        return rng.uniform(lo, hi, size)
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _uniform(rng, lo_hi, size):
    return rng.uniform(lo_hi[0], lo_hi[1], size)


def _choose_lenders(m, candidates: np.ndarray, k: int, load: np.ndarray) -> np.ndarray:
    """Pick ``k`` distinct lenders from ``candidates``: preferential attachment on size and load."""
    k = min(k, len(candidates))
    if m.cfg["network"]["topology"] == "random":
        weights = np.ones(len(candidates))
    else:
        conc = m.cfg["lenders"]["size_concentration"]
        weights = (m.lender_size_weight[candidates] * (1.0 + load[candidates])) ** conc
    return m.rng.choice(candidates, size=k, replace=False, p=weights / weights.sum())


def lenders_of_kind(m, kinds) -> np.ndarray:
    codes = [m.lender_kind_names.index(k) for k in kinds if k in m.lender_kind_names]
    return m.lender_idx[np.isin(m.lender_kind[m.lender_idx], codes)]


def build_neoclouds(m, load: np.ndarray) -> None:
    cfg, rng = m.cfg, m.rng
    seasoned_share = cfg["lenders"]["initial_ltv_headroom_share"]
    nc = cfg["neoclouds"]
    mix = np.array([nc["gen_mix"].get(g, 0.0) for g in m.gen_names])
    mix = mix / mix.sum()
    gpu_lenders = lenders_of_kind(m, GPU_LENDER_KINDS)
    hy = lenders_of_kind(m, ("hy_fund",))
    for i in m.neocloud_idx:
        fleet = _log_uniform(rng, nc["fleet_units"], 1)[0]
        units_by_gen = np.round(fleet * mix).astype(np.int64)
        k = int(
            rng.integers(
                int(cfg["lenders"]["lenders_per_borrower"][0]),
                int(cfg["lenders"]["lenders_per_borrower"][1]) + 1,
            )
        )
        lenders = _choose_lenders(m, gpu_lenders, k, load) if len(gpu_lenders) else np.empty(0, int)
        weights = rng.dirichlet(np.ones(len(lenders))) if len(lenders) else np.ones(1)
        tenor = nc["gpu_loan_tenor_months"]
        for g in np.flatnonzero(units_by_gen):
            first = max(int(m.release_month[g]), -36)
            acquired = int(rng.integers(first, 0)) if first < 0 else 0
            cost = m.list_price[g] * cfg["compute"]["all_in_cost_multiplier"]
            if len(lenders) == 0:
                m.lots.add(
                    owner=i,
                    gen=g,
                    units=units_by_gen[g],
                    acquired_month=acquired,
                    cost_usd_per_unit=cost,
                )
                continue
            split = np.floor(units_by_gen[g] * weights).astype(np.int64)
            split[0] += units_by_gen[g] - split.sum()
            for lender, u in zip(lenders, split, strict=True):
                if u <= 0:
                    continue
                # a delayed-draw term loan drawn at purchase: origination LTV on cost, straight-line
                # amortisation since; its covenant sits the lender's headroom above where it starts
                months_left = max(tenor + acquired, 6)
                mark = m.mark_appraisal[g] if not m.market_policy[lender] else m.mark_market[g]
                headroom = m.lk["covenant_headroom"][lender]
                orig_ltv = m.lk["origination_ltv"][lender]
                principal = orig_ltv * cost * u * months_left / tenor
                # a loan still performing in 2025 has been kept within its covenant by earlier cures
                # and paydowns: at most halfway into its headroom at today's marks
                principal = min(principal, (orig_ltv + seasoned_share * headroom) * u * mark)
                ltv_now = principal / max(u * mark, 1.0)
                loan = m.loans.add(
                    lender=lender,
                    borrower=i,
                    kind=GPU_TERM,
                    seniority=SENIOR_SECURED,
                    principal_usd=principal,
                    spread=m.lk["loan_spread"][lender],
                    floating=True,
                    amort_usd_per_month=principal / months_left,
                    maturity_month=months_left,
                    max_ltv=max(
                        m.lk["origination_ltv"][lender] + headroom, ltv_now * (1.0 + headroom)
                    ),
                    min_coverage=m.lk["min_coverage"][lender],
                    cure_months=m.lk["cure_months"][lender],
                    initial_ltv=ltv_now,
                    origination_month=acquired,
                )[0]
                m.lots.add(
                    owner=i,
                    gen=g,
                    units=u,
                    acquired_month=acquired,
                    cost_usd_per_unit=cost,
                    loan=loan,
                )
                load[lender] += 1
        lots_i = np.flatnonzero(m.lots.owner == i)
        fleet_value = float((m.lots.units[lots_i] * m.mark_market[m.lots.gen[lots_i]]).sum())
        unsecured = _uniform(rng, nc["unsecured_debt_to_fleet_value"], 1)[0] * fleet_value
        if len(hy) and unsecured > 0:
            picks = _choose_lenders(m, hy, min(2, len(hy)), load)
            for share, kind, coupon, seniority, lender in zip(
                (0.6, 0.4),
                (NOTE, CONVERT),
                (nc["note_coupon"], nc["convert_coupon"]),
                (SENIOR_UNSECURED, SUBORDINATED),
                np.resize(picks, 2),
                strict=True,
            ):
                maturity = int(round(_uniform(rng, nc["unsecured_months_left"], 1)[0]))
                m.loans.add(
                    lender=lender,
                    borrower=i,
                    kind=kind,
                    seniority=seniority,
                    principal_usd=share * unsecured,
                    fixed_rate=coupon,
                    maturity_month=maturity,
                    origination_month=-1,
                )
                load[lender] += 1
        m.sga_share[i] = nc["sga_share_of_revenue"]


def build_contracts(m) -> None:
    """Customer contracts on the contracted share of each neocloud's fleet, at rents locked earlier.

    Each neocloud is assigned one of ``neoclouds.anchor_customers`` named anchor customers (drawn
    uniformly) holding ``anchor_customer_share`` of its contracted GPUs; the rest is split between
    investment-grade and other small customers by ``ig_customer_share``."""
    cfg, rng = m.cfg, m.rng
    c = cfg["compute"]
    tenor = c["contract_tenor_months"]
    nc = cfg["neoclouds"]
    k = len(m.neocloud_idx)
    m.contracted_share[m.neocloud_idx] = _uniform(rng, nc["contracted_share"], k)
    m.ig_share[m.neocloud_idx] = _uniform(rng, nc["ig_customer_share"], k)
    m.anchor_of[m.neocloud_idx] = rng.integers(0, nc["anchor_customers"], k)
    m.anchor_share[m.neocloud_idx] = _uniform(rng, nc["anchor_customer_share"], k)
    for i in m.neocloud_idx:
        lots_i = np.flatnonzero(m.lots.owner == i)
        units = np.bincount(m.lots.gen[lots_i], weights=m.lots.units[lots_i], minlength=m.G)
        for g in np.flatnonzero(units):
            contracted = int(round(units[g] * m.contracted_share[i]))
            anchor = int(round(contracted * m.anchor_share[i]))
            ig = int(round((contracted - anchor) * m.ig_share[i]))
            for n_units, is_ig, anchor_id in (
                (anchor, False, int(m.anchor_of[i])),
                (ig, True, -1),
                (contracted - anchor - ig, False, -1),
            ):
                if n_units <= 0:
                    continue
                left = int(rng.integers(1, tenor + 1))
                rent = m.compute.rent_spot[g] * (1.0 + c["contract_premium"])
                monthly = n_units * rent * c["hours_per_month"]
                m.contracts.add(
                    provider=i,
                    gen=g,
                    units=n_units,
                    rent_per_gpu_hour=rent,
                    end_month=left,
                    take_or_pay_share=c["take_or_pay_share"],
                    prepaid_usd=c["prepayment_share"] * monthly * left,
                    prepay_release_share=c["prepayment_share"],
                    investment_grade=is_ig,
                    anchor=anchor_id,
                )


def build_miners(m, load: np.ndarray) -> None:
    cfg, rng = m.cfg, m.rng
    mc = cfg["miners"]
    n = len(m.miner_idx)
    hashrate = _uniform(rng, mc["hashrate_eh"], n)
    m.hashrate_eh[m.miner_idx] = hashrate
    m.mining_mw[m.miner_idx] = hashrate * mc["efficiency_j_per_th"]
    m.hosting_mw[m.miner_idx] = _uniform(rng, mc["hosting_mw"], n)
    m.acct.btc[m.miner_idx] = _log_uniform(rng, mc["btc_holdings"], n)
    m.acct.cash[m.miner_idx] = _log_uniform(rng, mc["cash_usd"], n)
    m.site_value_usd[m.miner_idx] = (
        m.mining_mw[m.miner_idx] * mc["site_value_usd_per_mining_mw"]
        + m.hosting_mw[m.miner_idx] * mc["conversion_capex_usd_per_mw"]
    )


def _sorted_distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a float array (sorted distinct values), without its overhead: a stable
    sort (fast on the two sorted runs of :func:`match_cumulative`) and a mask of value changes. With
    NaNs (never the case there) it defers to ``np.unique`` (which merges them)."""
    aux = np.sort(values, kind="stable")
    if len(aux) == 0 or np.isnan(aux[-1]):
        return np.unique(values)
    mask = np.empty(len(aux), dtype=bool)
    mask[0] = True
    np.not_equal(aux[1:], aux[:-1], out=mask[1:])
    return aux[mask]


def match_cumulative(needs: np.ndarray, supplies: np.ndarray):
    """Pair needs with supplies in order (two-pointer on cumulative sums, vectorised).

    Returns (need_index, supply_index, amount) arrays; the total matched is min(sum needs, sum supplies).
    """
    cn = np.concatenate(([0.0], np.cumsum(needs)))
    cs = np.concatenate(([0.0], np.cumsum(supplies)))
    total = min(cn[-1], cs[-1])
    cuts = _sorted_distinct(np.concatenate((cn, cs)))
    cuts = cuts[cuts <= total]
    lo, hi = cuts[:-1], cuts[1:]
    amount = hi - lo
    keep = amount > 1e-12
    mid = (lo + hi)[keep] / 2
    need_i = np.searchsorted(cn, mid, side="right") - 1
    supply_i = np.searchsorted(cs, mid, side="right") - 1
    return need_i, supply_i, amount[keep]


def build_miner_debt(m, load: np.ndarray) -> None:
    """Notes and converts sized to each miner's assets; BTC-backed loans on part of the treasury."""
    cfg, rng = m.cfg, m.rng
    mc = cfg["miners"]
    n = len(m.miner_idx)
    crypto = lenders_of_kind(m, ("crypto_lender",))
    hy = lenders_of_kind(m, ("hy_fund",))
    price = m.crypto.price_usd
    leverage = _uniform(rng, mc["debt_to_assets"], n)
    for j, i in enumerate(m.miner_idx):
        assets = m.site_value_usd[i] + m.acct.btc[i] * price + m.acct.cash[i]
        debt = leverage[j] * assets
        for kind, share, coupon, seniority in (
            (CONVERT, mc["convert_share"], mc["convert_coupon"], SUBORDINATED),
            (NOTE, 1.0 - mc["convert_share"], mc["secured_coupon"], SENIOR_SECURED),
        ):
            amount = share * debt
            if amount > 0 and len(hy):
                lender = _choose_lenders(m, hy, 1, load)[0]
                maturity = int(round(_uniform(rng, mc["debt_months_left"], 1)[0]))
                m.loans.add(
                    lender=lender,
                    borrower=i,
                    kind=kind,
                    seniority=seniority,
                    principal_usd=amount,
                    fixed_rate=coupon,
                    maturity_month=maturity,
                    origination_month=-1,
                )
                load[lender] += 1
        pledged = mc["btc_loan_share"] * m.acct.btc[i]
        if pledged > 0 and len(crypto):
            lender = _choose_lenders(m, crypto, 1, load)[0]
            m.acct.btc[i] -= pledged
            m.loans.add(
                lender=lender,
                borrower=i,
                kind=BTC_LOAN,
                seniority=SENIOR_SECURED,
                principal_usd=mc["btc_loan_ltv"] * pledged * price,
                fixed_rate=mc["btc_loan_rate"],
                maturity_month=int(rng.integers(1, 13)),
                collateral_btc=pledged,
                initial_ltv=mc["btc_loan_ltv"],
                margin_call_ltv=mc["btc_margin_call_ltv"],
                liquidation_ltv=mc["btc_liquidation_ltv"],
                cure_months=0,
                origination_month=-1,
            )
            load[lender] += 1


def build_leases(m) -> None:
    """Neoclouds' hosted share of power is leased from miners' AI-hosting MW; the rest is colocation."""
    cfg = m.cfg
    needs_mw = np.array(
        [cfg["neoclouds"]["hosted_share"] * m.it_kw_of(i) / 1000.0 for i in m.neocloud_idx]
    )
    tenants, hosts, mw = match_cumulative(needs_mw, m.hosting_mw[m.miner_idx])
    tenor = cfg["miners"]["lease_months"]
    if len(mw):
        m.leases.add(
            tenant=m.neocloud_idx[tenants],
            host=m.miner_idx[hosts],
            mw=mw,
            rate_usd_per_kw_month=cfg["miners"]["hosting_rate_usd_per_kw_month"],
            end_month=m.rng.integers(tenor // 2, tenor + 1, len(mw)),
        )
    # only leased hosting capacity exists at start (sites are built to suit a signed tenant)
    leased = (
        np.bincount(m.miner_idx[hosts], weights=mw, minlength=m.n) if len(mw) else np.zeros(m.n)
    )
    m.hosting_mw[m.miner_idx] = leased[m.miner_idx]
    mc = cfg["miners"]
    m.site_value_usd[m.miner_idx] = (
        m.mining_mw[m.miner_idx] * mc["site_value_usd_per_mining_mw"]
        + m.hosting_mw[m.miner_idx] * mc["conversion_capex_usd_per_mw"]
    )
    m.sga_usd[m.miner_idx] = (m.mining_mw + m.hosting_mw)[m.miner_idx] * _uniform(
        m.rng, mc["sga_usd_per_mw_month"], len(m.miner_idx)
    )


def build_buyers(m) -> None:
    h100 = m.gen_names.index("H100") if "H100" in m.gen_names else 0
    for i in m.buyer_idx:
        if m.buyer_installed[i] > 0:
            m.lots.add(
                owner=i,
                gen=h100,
                units=m.buyer_installed[i],
                acquired_month=-12,
                cost_usd_per_unit=m.list_price[h100],
            )
        m.acct.cash[i] = m.budget_usd[i]


def initial_cash_for_borrowers(m) -> None:
    """Neoclouds hold ``cash_months`` of operating costs and debt service."""
    c = m.cfg["compute"]
    months = _uniform(m.rng, m.cfg["neoclouds"]["cash_months"], len(m.neocloud_idx))
    for j, i in enumerate(m.neocloud_idx):
        kw = m.it_kw_of(i)
        opex = kw * (
            c["pue"] * c["power_price_usd_per_kwh"] * c["hours_per_month"]
            + c["colo_usd_per_kw_month"]
        )
        mine = m.loans.borrower == i
        service = float(
            (
                m.loans.principal_usd[mine] * (m.base_rate + 0.08) / 12
                + m.loans.amort_usd_per_month[mine]
            ).sum()
        )
        m.acct.cash[i] = months[j] * (opex + service)


def build_lender_funding(m, load: np.ndarray) -> None:
    """Lender balance sheets: loans + liquidity = equity + outside funding + interbank borrowing.

    Non-bank lenders borrow ``interbank_funding_share`` of their debt from a bank (back-leverage);
    banks come last because those loans are part of their assets. With the funding channel off the
    same funder is drawn (so the rest of the world is identical) but the funding comes from outside.
    """
    loans = m.loans
    lc = m.cfg["lenders"]
    banks = lenders_of_kind(m, ("bank",))
    bank_set = set(banks.tolist())
    order = [i for i in m.lender_idx if i not in bank_set] + list(banks)
    for i in order:
        assets_loans = np.bincount(loans.lender, weights=loans.principal_usd, minlength=m.n)[i]
        cash = lc["initial_cash_share_of_loans"] * assets_loans + lc["initial_cash_floor_usd"]
        debt = (1.0 - m.lk["capital_ratio"][i]) * (assets_loans + cash)
        m.acct.cash[i] = cash
        interbank = (
            m.lk["interbank_funding_share"][i] * debt if len(banks) and i not in bank_set else 0.0
        )
        if interbank > 0:
            funder = _choose_lenders(m, banks, 1, load)[0]
            load[funder] += 1
            if not m.cfg["channels"]["funding"]:
                interbank = 0.0
            else:
                m.loans.add(
                    lender=funder,
                    borrower=i,
                    kind=INTERBANK,
                    seniority=SENIOR_UNSECURED,
                    principal_usd=interbank,
                    spread=m.lk["funding_spread"][funder] + lc["interbank_spread_premium"],
                    floating=True,
                    maturity_month=10_000,
                    origination_month=-1,
                )
        m.outside_funding_usd[i] = debt - interbank
