"""Building the initial world, continued: miners that own GPU fleets on GPU-backed loans.

A share of miners (``miners.gpu_owner_share``; IREN, Hut 8/Highrise, Bit Digital/WhiteFiber and
HIVE did this in 2024-25) has turned part of its mining power into AI halls and runs its own GPUs
there, financed by GPU-backed term loans beside its BTC treasury and BTC-backed loans. From then on
the lots, loans and customer contracts are the same records as a neocloud's and go through the same
code (rent, power, valuation, LTV and coverage covenants, seizure, fire sale, retirement): only
the building rules here are the miners' own. Kept apart from :mod:`abm.world` so that the
row-by-row book filling there can change without touching this mechanism.
"""

from __future__ import annotations

import numpy as np

from abm.finance.instruments import GPU_TERM, SENIOR_SECURED
from abm.world import (
    _uniform,
    add_initial_contracts,
    equipment_lender_kinds,
    lenders_of_kind,
)
from abm.world_lender_draws import LenderDraws


def build_miner_gpu_fleets(m, load: np.ndarray) -> None:
    """GPU fleets, GPU-backed loans and customer contracts of the GPU-owning miners.

    Rules (units in names; draws from ``m.rng``, none at all when no miner owns GPUs):

    * ``round(gpu_owner_share x miners)`` miners, drawn without replacement, own GPUs.
    * Each converts a share ``gpu_mw_share`` (drawn uniformly in its range) of its mining MW to an
      AI hall: ``gpu_mw`` (facility MW) is taken from ``mining_mw`` and its hashrate falls in
      proportion (the same EH/s per MW). The hall's book value stays in ``site_value_usd``.
    * The hall is filled with GPUs of ``gpu_gen_mix``: ``gpu_mw x 1000 / pue`` kW of IT power over
      the mix's mean kW per GPU. Each generation's GPUs were bought in the last
      ``gpu_bought_within_months`` (not before its release) at list price x
      ``compute.all_in_cost_multiplier``.
    * Each generation's units are one lot pledged to one GPU term loan from one equipment lender
      of miners (:func:`abm.world.equipment_lender_kinds`: banks, private credit, vendor finance
      and crypto lenders in the packaged scenarios; chosen as for neoclouds): origination LTV
      ``gpu_loan_ltv`` on cost, straight-line amortisation over ``gpu_loan_tenor_months`` since
      purchase, floating at the lender's spread, covenants (LTV headroom, minimum coverage, cure
      months) the lender's own; a seasoned loan sits at most ``lenders.initial_ltv_headroom_share``
      into its headroom at today's marks, as a neocloud's does.
    * A share ``gpu_contracted_share`` of each generation's units is under customer contracts as a
      neocloud's are (anchor, investment-grade and other customers by the neoclouds' shares; rent
      locked at spot x (1 + ``contract_premium``), take-or-pay and prepayments as for neoclouds);
      the rest earns spot rent.
    """
    mc, c = m.cfg["miners"], m.cfg["compute"]
    n_owners = int(round(mc["gpu_owner_share"] * len(m.miner_idx)))
    gpu_lenders = lenders_of_kind(m, equipment_lender_kinds(m.cfg, "miner"))
    if n_owners == 0 or len(gpu_lenders) == 0:
        return
    rng = m.rng
    owners = np.sort(rng.choice(m.miner_idx, size=n_owners, replace=False))
    mix = np.array([mc["gpu_gen_mix"].get(g, 0.0) for g in m.gen_names])
    mix = mix / mix.sum()
    kw_per_gpu = float((mix * m.kw).sum())
    share = _uniform(rng, mc["gpu_mw_share"], n_owners)
    contracted = _uniform(rng, mc["gpu_contracted_share"], n_owners)
    # rows collected in drawing order and written with one ``add`` per book (the loop reads no
    # book): a loan's row is known before it is written, as in ``abm.world.build_neoclouds``
    first_loan = m.loans.n
    loan_rows: list[tuple] = []  # _LOAN_COLUMNS of each GPU loan
    lot_rows: list[tuple] = []  # _LOT_COLUMNS of each lot
    new_contracts: list[tuple] = []
    draws = LenderDraws(m, load)
    cost_by_gen = (m.list_price * c["all_in_cost_multiplier"]).tolist()
    bought_within = -int(mc["gpu_bought_within_months"])
    for j, i in enumerate(owners.tolist()):
        gpu_mw = share[j] * m.mining_mw[i]
        m.hashrate_eh[i] *= 1.0 - share[j]
        m.mining_mw[i] -= gpu_mw
        m.gpu_mw[i] = gpu_mw
        units_by_gen = np.floor(gpu_mw * 1000.0 / c["pue"] / kw_per_gpu * mix).astype(np.int64)
        lender = draws.choose_one(gpu_lenders)
        for g in np.flatnonzero(units_by_gen).tolist():
            first = max(int(m.release_month[g]), bought_within)
            acquired = int(rng.integers(first, 0)) if first < 0 else 0
            cost = cost_by_gen[g]
            units = int(units_by_gen[g])
            lot_rows.append((i, g, units, acquired, cost, first_loan + len(loan_rows)))
            loan_rows.append(_gpu_loan(m, i, lender, units, g, cost, acquired))
            draws.add_load(lender)
        m.contracted_share[i] = contracted[j]
        _contracts_of(m, i, units_by_gen, new_contracts)
    _add_rows(
        m.loans, _LOAN_COLUMNS, loan_rows, kind=GPU_TERM, seniority=SENIOR_SECURED, floating=True
    )
    _add_rows(m.lots, _LOT_COLUMNS, lot_rows)
    if new_contracts:  # one call on aligned arrays: the same rows as one call per contract
        add_initial_contracts(m, *(np.array(column) for column in zip(*new_contracts, strict=True)))


_LOAN_COLUMNS = (
    "lender",
    "borrower",
    "principal_usd",
    "spread",
    "amort_usd_per_month",
    "maturity_month",
    "max_ltv",
    "min_coverage",
    "cure_months",
    "initial_ltv",
    "origination_month",
)
_LOT_COLUMNS = ("owner", "gen", "units", "acquired_month", "cost_usd_per_unit", "loan")


def _add_rows(book, names: tuple[str, ...], rows: list[tuple], **constants) -> None:
    """Add ``rows`` (tuples of the columns ``names``) to ``book`` in one call; ``constants`` are
    columns with one value for every row, the other columns take their fill values."""
    if not rows:
        return
    columns = {
        name: np.full(len(rows), fill, dtype=dtype) for name, (dtype, fill) in book.COLUMNS.items()
    }
    for name, values in zip(names, zip(*rows, strict=True), strict=True):
        columns[name][:] = values
    for name, value in constants.items():
        columns[name][:] = value
    book.add(**columns)


def _gpu_loan(m, i: int, lender: int, units: int, g: int, cost: float, acquired: int) -> tuple:
    """One miner's GPU term loan on ``units`` GPUs of generation ``g`` bought in month
    ``acquired`` at ``cost`` USD each (rules: :func:`build_miner_gpu_fleets`): its row, the
    values of ``_LOAN_COLUMNS`` (a GPU term loan, senior secured, floating at the spread)."""
    mc = m.cfg["miners"]
    orig_ltv = mc["gpu_loan_ltv"]
    principal, months_left, ltv_now, headroom = seasoned_loan_terms(
        m, lender, units, g, cost, acquired, orig_ltv, mc["gpu_loan_tenor_months"]
    )
    return (
        lender,
        i,
        principal,
        m.lk["loan_spread"][lender],
        principal / months_left,
        months_left,
        max(orig_ltv + headroom, ltv_now * (1.0 + headroom)),
        m.lk["min_coverage"][lender],
        m.lk["cure_months"][lender],
        ltv_now,
        acquired,
    )


def _contracts_of(m, i: int, units_by_gen: np.ndarray, contracts: list[tuple]) -> None:
    """Customer contracts on the contracted share of miner ``i``'s GPUs (rules:
    :func:`build_miner_gpu_fleets`; the same contract terms as :func:`abm.world.build_contracts`),
    appended to ``contracts`` as the arguments of :func:`abm.world.add_initial_contracts`."""
    rng, c, nc = m.rng, m.cfg["compute"], m.cfg["neoclouds"]
    tenor = c["contract_tenor_months"]
    m.ig_share[i] = _uniform(rng, nc["ig_customer_share"], 1)[0]
    m.anchor_of[i] = rng.integers(0, nc["anchor_customers"])
    m.anchor_share[i] = _uniform(rng, nc["anchor_customer_share"], 1)[0]
    for g in np.flatnonzero(units_by_gen):
        contracted = int(round(units_by_gen[g] * m.contracted_share[i]))
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
            contracts.append((i, g, n_units, left, is_ig, anchor_id))


def seasoned_loan_terms(
    m, lender: int, units: int, g: int, cost: float, acquired: int, orig_ltv: float, tenor: int
) -> tuple[float, int, float, float]:
    """Terms of an equipment loan in force at the start (miners' GPU halls and ASIC fleets):
    ``units`` of generation ``g`` bought in month ``acquired`` (<= 0) at ``cost`` USD each, lent
    at ``orig_ltv`` of cost and amortised straight-line over ``tenor`` months. Returns (principal
    still owed, USD; months left, at least 6; LTV now at the lender's mark; the lender's covenant
    headroom). A seasoned loan sits at most ``lenders.initial_ltv_headroom_share`` into its
    headroom at today's marks."""
    months_left = max(tenor + acquired, 6)
    mark = m.lender_marks_usd(lender, g)
    headroom = m.lk["covenant_headroom"][lender]
    principal = orig_ltv * cost * units * months_left / tenor
    seasoned = m.cfg["lenders"]["initial_ltv_headroom_share"]
    principal = min(principal, (orig_ltv + seasoned * headroom) * units * mark)
    ltv_now = principal / max(units * mark, 1.0)
    return principal, months_left, ltv_now, headroom
