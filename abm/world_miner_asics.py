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
from abm.world import _choose_lenders, _uniform, lenders_of_kind

# Lender kinds that make machine-backed loans to miners: specialist equipment lenders and private
# credit (NYDIG, Galaxy, Trinity/Foundry-like: ``private_credit``) and crypto lenders (Celsius,
# BlockFi: ``crypto_lender``). One function, so that it can later read a per-kind schema field.
MACHINE_LENDER_KINDS = ("private_credit", "crypto_lender")


def machine_lender_kinds(cfg: dict) -> tuple[str, ...]:
    """The lender kinds that lend against miners' ASICs in scenario ``cfg`` (names of
    ``lenders.kinds``): :data:`MACHINE_LENDER_KINDS` that the scenario defines."""
    return tuple(k for k in MACHINE_LENDER_KINDS if k in cfg["lenders"]["kinds"])


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
    for i in m.miner_idx.tolist():
        th = m.hashrate_eh[i] * 1e6
        units_by_gen = np.floor(th * mix / np.maximum(m.th_per_unit, 1e-9)).astype(np.int64)
        m.hashrate_eh[i] = 0.0
        m.mining_mw[i] = 0.0
        pledged_share = _uniform(rng, mc["asic_loan_fleet_share"], 1)[0] if i in borrowers else 0.0
        lender = _choose_lenders(m, lenders, 1, load)[0] if i in borrowers else -1
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
                load[lender] += 1
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
    tenor = mc["asic_loan_tenor_months"]
    months_left = max(tenor + acquired, 6)
    mark = m.lender_marks_usd(lender, g)
    headroom = m.lk["covenant_headroom"][lender]
    orig_ltv = mc["asic_loan_ltv"]
    principal = orig_ltv * cost * units * months_left / tenor
    seasoned = m.cfg["lenders"]["initial_ltv_headroom_share"]
    principal = min(principal, (orig_ltv + seasoned * headroom) * units * mark)
    ltv_now = principal / max(units * mark, 1.0)
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
