"""Building the initial world, continued: miners' ASIC fleets as lots, on machine-backed loans.

In a scenario with ASIC generations and ``miners.asic_gen_mix`` set (``asic_2022``), each miner's
drawn hashrate is its ASIC fleet: lots of the mix's generations, one book with GPUs (the same
``LotBook``, marks, secondary market, seizure and retirement code). Part of the miners pledge part of
their machines to amortising equipment term loans (the ``GPU_TERM`` loan kind: one code path for
GPU-backed and machine-backed loans, LTV covenants at the lender's marks of the generation). With
an empty mix (the 2025 scenarios) nothing here runs and no random number is drawn.
"""

from __future__ import annotations

import numpy as np

from abm.finance.instruments import GPU_TERM, SENIOR_SECURED
from abm.world import _uniform, equipment_lender_kinds, lenders_of_kind
from abm.world_lender_draws import LenderDraws
from abm.world_miner_gpus import seasoned_loan_terms


def machine_lender_kinds(cfg: dict) -> tuple[str, ...]:
    """The lender kinds that lend against miners' ASICs in scenario ``cfg``: those lending against
    miners' equipment (``lenders.kinds.*.equipment_borrowers``, read in one place,
    :func:`abm.world.equipment_lender_kinds`). In asic_2022 these are specialist equipment lenders
    and private credit (NYDIG, Galaxy, Trinity: ``private_credit``) and crypto lenders (Celsius,
    BlockFi: ``crypto_lender``)."""
    return equipment_lender_kinds(cfg, "miner")


def build_miner_asic_fleets(m, load: np.ndarray) -> None:
    """ASIC lots and machine-backed loans of the miners (rules; units in names; draws from
    ``m.rng`` only when ``miners.asic_gen_mix`` has a positive share):

    * Each miner's hashrate ``hashrate_eh`` is split by ``asic_gen_mix`` (shares of hashrate) into
      ``floor(share x EH/s x 1e6 / th_per_unit)`` machines per generation. The fleet then lives in
      the lots: the miner's un-lotted base fleet (``hashrate_eh``, ``mining_mw``) is set to zero,
      its ``site_value_usd`` (set from the MW, ``site_value_usd_per_mining_mw``) stays as the
      site's infrastructure. Each generation was bought in the last ``asic_bought_within_months``
      (not before its release), at its list price.
    * ``round(asic_loan_share x miners)`` miners, drawn without replacement, have machine-backed
      loans: each pledges a share ``asic_loan_fleet_share`` (drawn in its range) of each
      generation's machines (one pledged lot and one loan per generation) to one lender of
      :func:`machine_lender_kinds` (chosen as for GPU loans, by size and load); the rest stays
      free in a second lot.
    * A loan: ``asic_loan_ltv`` x cost at origination, straight-line amortisation over
      ``asic_loan_tenor_months`` since purchase, fixed ``asic_loan_rate_per_year``, the lender's covenants
      (max LTV = origination LTV + headroom, minimum coverage, cure months); a seasoned loan sits at
      most ``lenders.initial_ltv_headroom_share`` into its headroom at today's marks.
    """
    mc = m.cfg["miners"]
    mix = np.array([mc["asic_gen_mix"].get(g, 0.0) for g in m.gen_names])
    if mix.sum() <= 0 or len(m.miner_idx) == 0:
        return
    mix = mix / mix.sum()
    rng = m.rng
    n_borrowers = int(round(mc["asic_loan_share"] * len(m.miner_idx)))
    lenders = lenders_of_kind(m, machine_lender_kinds(m.cfg))
    borrowers = (
        set(rng.choice(m.miner_idx, size=n_borrowers, replace=False).tolist())
        if n_borrowers and len(lenders)
        else set()
    )
    gens = np.flatnonzero(mix)
    released = np.flatnonzero(m.is_asic & (m.release_month <= 0))
    newest = int(released[np.argmax(m.release_month[released])]) if len(released) else -1
    draws = LenderDraws(m, load)
    for i in m.miner_idx.tolist():
        th = m.hashrate_eh[i] * 1e6
        units_by_gen = np.floor(th * mix / np.maximum(m.th_per_unit, 1e-9)).astype(np.int64)
        m.hashrate_eh[i] = 0.0
        m.mining_mw[i] = 0.0
        pledged_share = _uniform(rng, mc["asic_loan_fleet_share"], 1)[0] if i in borrowers else 0.0
        lender = draws.choose_one(lenders) if i in borrowers else -1
        # the miner's mining sites: the MW its fleet fills (abm/phases/asic_orders.py)
        m.asic_site_mw[i] = float((units_by_gen * m.kw).sum()) / 1000.0
        if newest >= 0:
            seed_initial_orders(m, i, float((units_by_gen * m.th_per_unit).sum()), newest)
        for g in gens:
            units = int(units_by_gen[g])
            if units <= 0:
                continue
            first = max(int(m.release_month[g]), -int(mc["asic_bought_within_months"]))
            acquired = int(rng.integers(first, 0)) if first < 0 else 0
            cost = float(m.list_price[g])
            pledged = int(round(units * pledged_share))
            if pledged > 0:
                loan = _machine_loan(m, i, lender, pledged, g, cost, acquired)
                m.lots.add(
                    owner=i,
                    gen=g,
                    units=pledged,
                    acquired_month=acquired,
                    cost_usd_per_unit=cost,
                    loan=loan,
                )
                draws.add_load(lender)
            if units - pledged > 0:
                m.lots.add(
                    owner=i,
                    gen=g,
                    units=units - pledged,
                    acquired_month=acquired,
                    cost_usd_per_unit=cost,
                )


def _machine_loan(m, i: int, lender: int, units: int, g: int, cost: float, acquired: int) -> int:
    """One miner's machine-backed loan on ``units`` ASICs of generation ``g`` bought in month
    ``acquired`` at ``cost`` USD each (rules: :func:`build_miner_asic_fleets`). Returns its row."""
    mc = m.cfg["miners"]
    orig_ltv = mc["asic_loan_ltv"]
    principal, months_left, ltv_now, headroom = seasoned_loan_terms(
        m, lender, units, g, cost, acquired, orig_ltv, mc["asic_loan_tenor_months"]
    )
    return int(
        m.loans.add(
            lender=lender,
            borrower=i,
            kind=GPU_TERM,
            seniority=SENIOR_SECURED,
            principal_usd=principal,
            fixed_rate=mc["asic_loan_rate_per_year"],
            amort_usd_per_month=principal / months_left,
            maturity_month=months_left,
            max_ltv=max(orig_ltv + headroom, ltv_now * (1.0 + headroom)),
            min_coverage=m.lk["min_coverage"][lender],
            cure_months=m.lk["cure_months"][lender],
            initial_ltv=ltv_now,
            origination_month=acquired,
        )[0]
    )


def seed_initial_orders(m, i: int, th_installed: float, g: int) -> None:
    """Orders miner ``i`` has on the books at the start (built with its fleet,
    :func:`build_miner_asic_fleets`): ``miners.asic_orders_outstanding_share``
    x its installed TH/s (``th_installed``) in machines of generation ``g`` (the newest released by
    the start) at its list price, delivered in equal monthly batches over months
    ``1..asic_initial_orders_delivery_months``. Their deposits (``asic_order_deposit_share``) were
    paid before the start (out of the cash the miner no longer has: no cash moves here) and are
    held as the miner's asset; its site MW grows by their MW (the sites being built for them)."""
    mc = m.cfg["miners"]
    total = int(np.floor(mc["asic_orders_outstanding_share"] * th_installed / m.th_per_unit[g]))
    months = int(mc["asic_initial_orders_delivery_months"])
    if total <= 0 or months <= 0:
        return
    batches = np.full(months, total // months, dtype=np.int64)
    batches[: total % months] += 1
    batches = batches[batches > 0]
    months_at = np.arange(1, len(batches) + 1)
    price = float(m.list_price[g])
    deposit = batches * price * mc["asic_order_deposit_share"]
    ob = m.asic_orders
    ob.add(
        miner=i,
        gen=g,
        units=batches,
        price_usd_per_unit=price,
        deposit_usd=deposit,
        order_month=-1,
        delivery_month=months_at,
        open=True,
    )
    ob.deposits_paid_usd += float(deposit.sum())
    ob.units_ordered += int(batches.sum())
    m.asic_deposits_usd[i] += float(deposit.sum())
    m.asic_site_mw[i] += float(batches.sum()) * m.kw[g] / 1000.0
