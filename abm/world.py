"""Building the initial world from a scenario: agents, balance sheets, instruments, the lending network.

All draws use the model's seeded generator. Balance sheets are built so that every loan is one lender's
asset and one borrower's liability, lenders are funded by equity, outside funders and other lenders,
and loans start within their covenants at current marks (they describe the 2025 stock, already seasoned).

Speed at scale: draws are made borrower by borrower in a fixed order (a lender's choice depends on
the load left by earlier borrowers), but rows are collected and written with one ``add`` per book,
term sheets are computed over all loans at once with the same floating-point operations in the
same order, and per-borrower sums avoid scans of whole books, so build time grows linearly with
agents and a seed's world is the one the row-by-row code built. Lender draws go through
:class:`abm.world_lender_draws.LenderDraws` (the draws of :func:`_choose_lenders`, made cheaply).
(Over ~450 lines, ~575: the build functions are kept in one module so that the order of a world's
draws reads in one place; the per-borrower loops are written out on Python scalars for speed.)
"""

from __future__ import annotations

import math

import numpy as np

from abm.finance import other_assets
from abm.finance.book import PendingRows, sums_by_key
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
from abm.sampling import weighted_sample
from abm.world_lender_draws import LenderDraws

#: ``lenders.kinds.*.equipment_borrowers`` values under which a kind lends against each borrower
#: type's equipment (GPU lots; in an ASIC world, miners' rigs: the same lot and loan records)
_EQUIPMENT_BORROWERS = {
    "miner": ("miners", "miners_and_neoclouds"),
    "neocloud": ("neoclouds", "miners_and_neoclouds"),
}


def equipment_lender_kinds(cfg: dict, borrower_type: str) -> tuple[str, ...]:
    """Lender kinds (names, in the scenario's order) that lend against the equipment of borrowers
    of ``borrower_type`` ("miner" or "neocloud"): the one place that reads
    ``lenders.kinds.*.equipment_borrowers``. In the packaged scenarios banks, private credit and
    vendor finance lend against both types' GPUs, crypto lenders against miners' only
    (docs/calibration.md, equipment lenders)."""
    wanted = _EQUIPMENT_BORROWERS[borrower_type]
    kinds = cfg["lenders"]["kinds"]
    return tuple(k for k in kinds if kinds[k]["equipment_borrowers"] in wanted)


def _log_uniform(rng, lo_hi, size):
    lo, hi = lo_hi
    if lo <= 0:
        return rng.uniform(lo, hi, size)
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _uniform(rng, lo_hi, size):
    return rng.uniform(lo_hi[0], lo_hi[1], size)


def _choose_lenders(m, candidates: np.ndarray, k: int, load: np.ndarray) -> np.ndarray:
    """Pick ``k`` distinct lenders from ``candidates``: preferential attachment on size and load.

    The rule and its reference implementation: the build makes these draws with
    :class:`abm.world_lender_draws.LenderDraws` (the same draws, cheaper), which
    ``tests/test_world_lender_draws.py`` compares with this function."""
    k = min(k, len(candidates))
    if m.cfg["network"]["topology"] == "random":
        weights = np.ones(len(candidates))
    else:
        conc = m.cfg["lenders"]["size_concentration"]
        weights = (m.lender_size_weight[candidates] * (1.0 + load[candidates])) ** conc
    return candidates[weighted_sample(m.rng, weights / weights.sum(), k)]


def lenders_of_kind(m, kinds) -> np.ndarray:
    codes = [m.lender_kind_names.index(k) for k in kinds if k in m.lender_kind_names]
    return m.lender_idx[np.isin(m.lender_kind[m.lender_idx], codes)]


def build_neoclouds(m, load: np.ndarray) -> None:
    """Neoclouds' GPU fleets, the GPU term loans financing them and their unsecured notes/converts.

    The draws are made one neocloud at a time, in a fixed order (lender choice depends on the load
    left by earlier ones). Each neocloud's lots are split between its lenders as they are drawn, and
    the rows of all neoclouds are written to the books in one ``add`` per book, in drawing order
    (GPU loans then notes per neocloud); the loan terms are computed over all GPU loans at once
    (:func:`_gpu_term_loans`: the per-loan rule's IEEE operations in the same order)."""
    cfg, rng = m.cfg, m.rng
    nc = cfg["neoclouds"]
    mix = np.array([nc["gen_mix"].get(g, 0.0) for g in m.gen_names])
    mix = mix / mix.sum() if mix.sum() > 0 else mix  # (no mix: no neoclouds, see config)
    gpu_lenders = lenders_of_kind(m, equipment_lender_kinds(cfg, "neocloud"))
    hy = lenders_of_kind(m, ("hy_fund",))
    per_borrower = cfg["lenders"]["lenders_per_borrower"]
    k_lo, k_hi = int(per_borrower[0]), int(per_borrower[1]) + 1
    cost_by_gen = m.list_price * cfg["compute"]["all_in_cost_multiplier"]
    first_month = [max(int(r), -36) for r in m.release_month]
    next_loan = first_loan = m.loans.n
    # The loop makes the draws; the arithmetic between them runs on Python ints and floats where
    # that is the same IEEE operation as NumPy's elementwise one (products, floor and
    # round-half-even of floats, integer sums), NumPy where it may not be (exp, sums of arrays).
    draws = LenderDraws(m, load)
    choose, add_load = draws.choose, draws.add_load
    uniform, integers, gamma = rng.uniform, rng.integers, rng.standard_gamma
    fleet_lo, fleet_hi = nc["fleet_units"]
    log_fleet = fleet_lo > 0  # _log_uniform's rule, decided on the configured bounds
    if log_fleet:  # its bounds, once (log(1) = 0: test the flag, not the transformed bound)
        fleet_lo, fleet_hi = np.log(fleet_lo), np.log(fleet_hi)
    mix_list, mark_list = mix.tolist(), m.mark_market.tolist()
    debt_lo, debt_hi = nc["unsecured_debt_to_fleet_value"]
    months_lo, months_hi = nc["unsecured_months_left"]
    tranches = (
        (0.6, NOTE, nc["note_coupon"], SENIOR_UNSECURED),
        (0.4, CONVERT, nc["convert_coupon"], SUBORDINATED),
    )
    # the lots of all neoclouds in row order: owner, generation, units, month acquired, pledged
    # loan row (-1 free) and lender (-1 none); the unsecured loans' rows
    lot_owner: list[int] = []
    lot_gen: list[int] = []
    lot_units: list[int] = []
    lot_acquired: list[int] = []
    lot_loan: list[int] = []
    lot_lender: list[int] = []
    unsecured: list[tuple] = []
    for i in m.neocloud_idx.tolist():
        if log_fleet:
            fleet = float(np.exp(uniform(fleet_lo, fleet_hi, 1))[0])
        else:
            fleet = float(uniform(fleet_lo, fleet_hi, 1)[0])
        units_by_gen = [round(fleet * share) for share in mix_list]  # np.round: half to even
        k = int(integers(k_lo, k_hi))
        lenders = choose(gpu_lenders, k).tolist() if len(gpu_lenders) else []
        weights = _flat_dirichlet(gamma, len(lenders)) if lenders else None
        gens = [g for g, units in enumerate(units_by_gen) if units]
        acquired = [int(integers(first_month[g], 0)) if first_month[g] < 0 else 0 for g in gens]
        first_lot = len(lot_gen)
        for g, when in zip(gens, acquired, strict=True):
            units = units_by_gen[g]
            if not lenders:
                lot_gen.append(g)
                lot_units.append(units)
                lot_acquired.append(when)
                lot_loan.append(-1)
                lot_lender.append(-1)
                continue
            # each generation's GPUs split between the lenders by the drawn weights (remainder to
            # the first); one lot and one delayed-draw term loan per (generation, lender) with GPUs
            split = [math.floor(units * w) for w in weights]
            split[0] += units - sum(split)
            for lender, part in zip(lenders, split, strict=True):
                if part > 0:
                    lot_gen.append(g)
                    lot_units.append(part)
                    lot_acquired.append(when)
                    lot_loan.append(next_loan)
                    lot_lender.append(lender)
                    next_loan += 1
                    add_load(lender)
        lot_owner.extend([i] * (len(lot_gen) - first_lot))
        # (lot_units * mark).sum(): NumPy's pairwise sum of the same float64 products
        products = [
            u * mark_list[g]
            for u, g in zip(lot_units[first_lot:], lot_gen[first_lot:], strict=True)
        ]
        fleet_value = float(np.add.reduce(products))
        # (a scalar uniform is the same draw as element 0 of a one-element array)
        unsecured_usd = uniform(debt_lo, debt_hi) * fleet_value
        if len(hy) and unsecured_usd > 0:
            picks = choose(hy, min(2, len(hy))).tolist()
            for (share, kind, coupon, seniority), lender in zip(
                tranches, picks if len(picks) == 2 else picks * 2, strict=True
            ):
                maturity = int(round(uniform(months_lo, months_hi)))
                unsecured.append(
                    (next_loan, lender, i, kind, seniority, share * unsecured_usd, coupon, maturity)
                )
                next_loan += 1
                add_load(lender)
    m.sga_share[m.neocloud_idx] = nc["sga_share_of_revenue"]
    if not len(m.neocloud_idx):
        return
    owner, gen, units, acquired, loan, lender = (
        np.array(column, dtype=np.int64)
        for column in (lot_owner, lot_gen, lot_units, lot_acquired, lot_loan, lot_lender)
    )
    m.lots.add(
        owner=owner,
        gen=gen,
        units=units,
        acquired_month=acquired,
        cost_usd_per_unit=cost_by_gen[gen],
        loan=loan,
    )
    if next_loan > first_loan:
        columns = {
            name: np.full(next_loan - first_loan, fill, dtype=dtype)
            for name, (dtype, fill) in m.loans.COLUMNS.items()
        }
        if unsecured:
            row, *values = zip(*unsecured, strict=True)
            at = np.array(row, dtype=np.int64) - first_loan
            names = ("lender", "borrower", "kind", "seniority", "principal_usd", "fixed_rate")
            for name, value in zip(names + ("maturity_month",), values, strict=True):
                columns[name][at] = value
            columns["origination_month"][at] = -1
        pledged = loan >= 0
        _gpu_term_loans(
            m,
            columns,
            loan[pledged] - first_loan,
            lender[pledged],
            owner[pledged],
            gen[pledged],
            units[pledged],
            acquired[pledged],
            cost_by_gen,
        )
        m.loans.add(**columns)


def _flat_dirichlet(standard_gamma, k: int) -> list[float]:
    """``rng.dirichlet(np.ones(k)).tolist()`` for ``standard_gamma = rng.standard_gamma``: the same
    draws and bits (NumPy's Dirichlet with all alphas above 0.1 draws k standard gammas, sums them
    in order from 0.0 and multiplies each by 1 / sum), without its argument checks;
    ``tests/test_world_lender_draws.py`` compares the two."""
    gammas = standard_gamma(1.0, k).tolist()
    total = 0.0
    for value in gammas:
        total = total + value
    inverse = 1.0 / total
    return [value * inverse for value in gammas]


def _gpu_term_loans(m, columns, at, lender, borrower, gen, units, acquired, cost_by_gen) -> None:
    """Write the terms of the neoclouds' GPU term loans into the loan ``columns`` at positions
    ``at`` (arrays aligned with ``at``: lender, borrower, generation, GPUs, month acquired),
    vectorised with the per-loan rule's operations in order (so the same bits as one at a time).

    A delayed-draw term loan drawn at purchase: origination LTV on cost, straight-line amortisation
    since; its covenant sits the lender's headroom above where it starts. A loan still performing in
    2025 has been kept within its covenant by earlier cures and paydowns: at most
    ``initial_ltv_headroom_share`` of the way into its headroom at today's marks."""
    tenor = m.cfg["neoclouds"]["gpu_loan_tenor_months"]
    seasoned_share = m.cfg["lenders"]["initial_ltv_headroom_share"]
    lk = m.lk
    months_left = np.maximum(tenor + acquired, 6)
    mark = m.lender_marks_usd(lender, gen)
    headroom = lk["covenant_headroom"][lender]
    orig_ltv = lk["origination_ltv"][lender]
    principal = orig_ltv * cost_by_gen[gen] * units * months_left / tenor
    principal = np.minimum(principal, (orig_ltv + seasoned_share * headroom) * units * mark)
    ltv_now = principal / np.maximum(units * mark, 1.0)
    values = {
        "lender": lender,
        "borrower": borrower,
        "kind": GPU_TERM,
        "seniority": SENIOR_SECURED,
        "principal_usd": principal,
        "spread": lk["loan_spread"][lender],
        "floating": True,
        "amort_usd_per_month": principal / months_left,
        "maturity_month": months_left,
        "max_ltv": np.maximum(orig_ltv + headroom, ltv_now * (1.0 + headroom)),
        "min_coverage": lk["min_coverage"][lender],
        "cure_months": lk["cure_months"][lender],
        "initial_ltv": ltv_now,
        "origination_month": acquired,
    }
    for name, value in values.items():
        columns[name][at] = value


def build_contracts(m) -> None:
    """Customer contracts on the contracted share of each neocloud's fleet, at rents locked earlier.

    Each neocloud is assigned one of ``neoclouds.anchor_customers`` named anchor customers (drawn
    uniformly) holding ``anchor_customer_share`` of its contracted GPUs; the rest is split between
    investment-grade and other small customers by ``ig_customer_share``. Contracts are ordered by
    neocloud, generation, then anchor / investment-grade / other, and each draws its months left
    in that order (all at once: the same draws as one at a time)."""
    cfg, rng = m.cfg, m.rng
    c = cfg["compute"]
    tenor = c["contract_tenor_months"]
    nc = cfg["neoclouds"]
    idx = m.neocloud_idx
    k = len(idx)
    m.contracted_share[idx] = _uniform(rng, nc["contracted_share"], k)
    m.ig_share[idx] = _uniform(rng, nc["ig_customer_share"], k)
    m.anchor_of[idx] = rng.integers(0, nc["anchor_customers"], k)
    m.anchor_share[idx] = _uniform(rng, nc["anchor_customer_share"], k)
    if k == 0:
        return
    # GPUs per (neocloud, generation); integer counts, so the float sums are exact
    lots = m.lots
    slot = np.full(m.n, -1, dtype=np.int64)
    slot[idx] = np.arange(k)
    owned = slot[lots.owner] >= 0
    units = np.bincount(
        slot[lots.owner[owned]] * m.G + lots.gen[owned],
        weights=lots.units[owned],
        minlength=k * m.G,
    ).reshape(k, m.G)
    # Python's round on a float is round-half-to-even, as np.rint
    contracted = np.rint(units * m.contracted_share[idx][:, None])
    anchor = np.rint(contracted * m.anchor_share[idx][:, None])
    ig = np.rint((contracted - anchor) * m.ig_share[idx][:, None])
    n_units = np.stack((anchor, ig, contracted - anchor - ig), axis=2).astype(np.int64)
    provider, gen, grade = np.nonzero(n_units > 0)  # C order: neocloud, generation, grade
    n_units = n_units[provider, gen, grade]
    if len(n_units) == 0:
        return
    left = rng.integers(1, tenor + 1, len(n_units))
    add_initial_contracts(
        m,
        idx[provider],
        gen,
        n_units,
        left,
        investment_grade=grade == 1,
        anchor=np.where(grade == 0, m.anchor_of[idx][provider], -1),
    )


def add_initial_contracts(m, provider, gen, n_units, months_left, investment_grade, anchor) -> None:
    """Book customer contracts in force at the start (scalars or aligned arrays): ``n_units`` GPUs
    of generation ``gen`` from ``provider`` for ``months_left`` more months, at today's spot rent
    plus the contract premium (USD per GPU-hour), with the scenario's take-or-pay share and the
    prepayment still unearned (``prepayment_share`` x monthly rent x months left)."""
    c = m.cfg["compute"]
    rent = m.compute.rent_spot[gen] * (1.0 + c["contract_premium"])
    monthly_usd = n_units * rent * c["hours_per_month"]
    m.contracts.add(
        provider=provider,
        gen=gen,
        units=n_units,
        rent_per_gpu_hour=rent,
        end_month=months_left,
        take_or_pay_share=c["take_or_pay_share"],
        prepaid_usd=c["prepayment_share"] * monthly_usd * months_left,
        prepay_release_share=c["prepayment_share"],
        investment_grade=investment_grade,
        anchor=anchor,
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
    """Notes and converts sized to each miner's assets; BTC-backed loans on part of the treasury.

    Drawn one miner at a time (lender choice depends on earlier load), written in one ``add``."""
    cfg, rng = m.cfg, m.rng
    mc = cfg["miners"]
    n = len(m.miner_idx)
    crypto = lenders_of_kind(m, ("crypto_lender",))
    hy = lenders_of_kind(m, ("hy_fund",))
    price = m.crypto.price_usd
    leverage = _uniform(rng, mc["debt_to_assets"], n)
    tranches = (
        (CONVERT, mc["convert_share"], mc["convert_coupon"], SUBORDINATED),
        (NOTE, 1.0 - mc["convert_share"], mc["secured_coupon"], SENIOR_SECURED),
    )
    idx = m.miner_idx
    # sizes from each miner's own balance sheet (elementwise: the same numbers miner by miner)
    debt = leverage * (m.site_value_usd[idx] + m.acct.btc[idx] * price + m.acct.cash[idx])
    amounts = [(share * debt).tolist() for _, share, _, _ in tranches]
    pledged = mc["btc_loan_share"] * m.acct.btc[idx]
    lo, hi = mc["debt_months_left"]
    draws = LenderDraws(m, load)
    choose, add_load, uniform, integers = (
        draws.choose_one,
        draws.add_load,
        rng.uniform,
        rng.integers,
    )
    # the rows in drawing order: (lender, borrower, kind, seniority, principal, fixed rate, months
    # left), and the positions and BTC collateral of the BTC-backed ones
    rows: list[tuple] = []
    btc_at: list[int] = []
    btc_pledged: list[float] = []
    pledged_list = pledged.tolist()
    for j, i in enumerate(idx.tolist()):
        for (kind, _, coupon, seniority), amount in zip(tranches, amounts, strict=True):
            if amount[j] > 0 and len(hy):
                lender = choose(hy)
                maturity = int(round(uniform(lo, hi)))
                rows.append((lender, i, kind, seniority, amount[j], coupon, maturity))
                add_load(lender)
        if pledged_list[j] > 0 and len(crypto):
            lender = choose(crypto)
            maturity = int(integers(1, 13))
            btc_at.append(len(rows))
            btc_pledged.append(pledged_list[j])
            # principal (LTV x BTC x price) written after the loop
            rows.append((lender, i, BTC_LOAN, SENIOR_SECURED, 0.0, mc["btc_loan_rate"], maturity))
            add_load(lender)
    if not rows:
        return
    columns = {
        name: np.full(len(rows), fill, dtype=dtype)
        for name, (dtype, fill) in m.loans.COLUMNS.items()
    }
    names = ("lender", "borrower", "kind", "seniority", "principal_usd", "fixed_rate")
    for name, values in zip(names + ("maturity_month",), zip(*rows, strict=True), strict=True):
        columns[name][:] = values
    columns["origination_month"][:] = -1
    if btc_at:
        # the pledged BTC leaves the treasury (each miner once: the same subtraction miner by
        # miner); principal = LTV x BTC x price, elementwise in the same order of operations
        at = np.array(btc_at, dtype=np.int64)
        btc = np.array(btc_pledged)
        m.acct.btc[columns["borrower"][at]] -= btc
        columns["principal_usd"][at] = mc["btc_loan_ltv"] * btc * price
        columns["collateral_btc"][at] = btc
        columns["initial_ltv"][at] = mc["btc_loan_ltv"]
        columns["margin_call_ltv"][at] = mc["btc_margin_call_ltv"]
        columns["liquidation_ltv"][at] = mc["btc_liquidation_ltv"]
        columns["cure_months"][at] = 0
    m.loans.add(**columns)


def _it_kw_by_neocloud(m) -> np.ndarray:
    """IT power of each neocloud's GPUs (kW, aligned with ``neocloud_idx``), as ``m.it_kw_of``."""
    lots = m.lots
    return sums_by_key(lots.units * m.kw[lots.gen], lots.owner, m.neocloud_idx)


def build_leases(m) -> None:
    """Neoclouds' hosted share of power is leased from miners' AI-hosting MW; the rest is colocation."""
    cfg = m.cfg
    needs_mw = cfg["neoclouds"]["hosted_share"] * _it_kw_by_neocloud(m) / 1000.0
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
        # installed units are H100-class GPUs: only for buyers of GPUs (equipment classes)
        if m.buyer_installed[i] > 0 and m.is_asic[h100] == m.buyer_asic[i]:
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
    opex = _it_kw_by_neocloud(m) * (
        c["pue"] * c["power_price_usd_per_kwh"] * c["hours_per_month"] + c["colo_usd_per_kw_month"]
    )
    loans = m.loans
    service = sums_by_key(
        loans.principal_usd * (m.base_rate + 0.08) / 12 + loans.amort_usd_per_month,
        loans.borrower,
        m.neocloud_idx,
    )
    m.acct.cash[m.neocloud_idx] = months * (opex + service)


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
    order = [i for i in m.lender_idx.tolist() if i not in bank_set] + banks.tolist()
    # each lender's loan assets: the loans so far, then each interbank loan as it is written (the
    # order bincount would add them in, so the same sums as a bincount over the book at each turn)
    assets_of = np.bincount(loans.lender, weights=loans.principal_usd, minlength=m.n)
    interbank_loans = PendingRows(loans)
    # a crypto lender's assets outside the modelled world are funded like its loans
    m.other_assets_usd[:] = other_assets.start_other_assets_usd(m)
    draws = LenderDraws(m, load)
    for i in order:
        assets_loans = assets_of[i] + m.other_assets_usd[i]
        cash = lc["initial_cash_share_of_loans"] * assets_loans + lc["initial_cash_floor_usd"]
        debt = (1.0 - m.lk["capital_ratio"][i]) * (assets_loans + cash)
        m.acct.cash[i] = cash
        interbank = (
            m.lk["interbank_funding_share"][i] * debt if len(banks) and i not in bank_set else 0.0
        )
        if interbank > 0:
            funder = draws.choose_one(banks)
            draws.add_load(funder)
            if not m.cfg["channels"]["funding"]:
                interbank = 0.0
            else:
                interbank_loans.append(
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
                assets_of[funder] += interbank
        m.outside_funding_usd[i] = debt - interbank
    interbank_loans.flush()
