"""Accounting identities of the model, checked by the tests every month.

* GPUs: units held by all agents = initial + delivered - scrapped (no GPU appears or vanishes).
* Cash: total agent cash = initial cash + net payments by the named outside sectors.
* BTC: total agent BTC (free + pledged) = initial + net BTC from the network and the market.
* Claims: every loan is one record, a lender's asset and another agent's liability of the same amount;
  lenders' equity is the same whether computed by the lender layer or the agent balance sheets.
* Holdings: no negative GPU units, BTC or principal; cash negative only for a defaulted estate.
* Indexes: the books' look-up indexes (loan -> pledged lots, borrower -> loans) match their columns.
* Prices (``price_problems``): every price finite and >= 0; BTC price and network hashrate > 0.
* Balances (``balance_problems``): finite; no negative cash at any active agent, lenders included.
* Losses (:func:`loss_problems`): ``lender_losses_usd`` = write-offs of claims and write-downs of
  funding (net of restorations) + realised losses on seized inventory (carrying value of units sold,
  scrapped or retired - their proceeds); the inventory carrying value that entered by seizure less
  what left is what lenders still hold; defaulted claims are carried between zero and their
  principal; a failed lender shows no equity while its creditors are still written down. Lenders'
  lower-of-cost-or-market write-down of the lots they hold (:func:`impairment_problems`): each
  lot's write-down per unit in [0, carrying value]; each lender's allowance = charged - reversed -
  released = the sum over its lots; at the end of a month, write-down = max(carrying value - market
  mark, 0), lot by lot.
* Compute demand: the H100-equivalents paid for this month never exceed those demanded plus those
  take-or-pay obliges customers to pay for while idle, and no rent is paid except by the
  ``compute_customers`` sector (its cumulative net flow to agents is never negative).
* Secondary market (:func:`market_problems`): funding needs and the month's mark evidence finite
  and >= 0, mark weights in [0, 1], servicers only receive fees.
* Sites: an active miner's site value (book value of its ASICs, sites and conversions) equals what is
  still scheduled to be depreciated: no site value appears without capex or vanishes without
  depreciation, a conversion's write-off or a site sale.
* Policy (:func:`policy_problems`): the buyer of last resort stays within its run budget, is paid
  only by the ``policy_authority`` sector and warehouses what it buys.
* Loan marks (:func:`loan_mark_problems`): every class's mark in (0, 1] (1 with the ``funding``
  channel off); lenders' equity at the marks + their unrealised mark-down = their equity with every
  loan at principal; loan-sale cash is zero-sum among lenders (proceeds received = purchases paid,
  and a seller's proceeds = principal sold - its discount).
* Miners' GPU halls (:func:`miner_gpu_problems`): the GPUs an active miner owns draw no more
  facility power (IT kW x PUE) than the MW it turned into GPU halls (``gpu_mw``), and only a miner
  with a GPU hall owns GPUs or owes GPU term loans.
* Forced sale after a run (:func:`seized_sale_problems`): a funding need kept out of a lender's
  illiquidity grace is backed by seized lots of a kind that sells them before loans; a trade naming
  a depositor run is sold by the lender whose depositors ran.

The USD identities allow float64 rounding in proportion to the amounts they sum, so that they stay
meaningful at the extreme (but valid) magnitudes the schema allows.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, BUYER, FAILED, LENDER
from abm.events import PARENTS
from abm.finance import impairment, loan_marks, other_assets
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import CLOSED as LOAN_CLOSED
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.instruments import GPU_TERM, INTERBANK
from abm.phases.asic_orders import order_book_problems


def check(m, tol_usd: float = 1e-3) -> list[str]:
    """Return a list of violated identities (empty when all hold)."""
    problems = []
    units = int(m.lots.units.sum())
    if units != m.initial_gpu_units + m.gpu_delivered - m.gpu_scrapped:
        problems.append(f"gpu units {units} != initial+delivered-scrapped")
    if np.any(m.lots.units < 0):
        problems.append("negative GPU units in a lot")
    gap = m.acct.cash_identity_gap(m.initial_cash_usd)
    scale = max(1.0, abs(m.initial_cash_usd))
    if abs(gap) > tol_usd * scale * 1e-6 + tol_usd + _rounding_usd(m):
        problems.append(f"cash identity gap {gap:.6f} USD")
    btc_gap = m.total_btc() - m.initial_btc - sum(m.acct.sector_btc_in.values())
    # relative to the BTC that exists or has flowed: float rounding grows with the flows (a world
    # that starts with little BTC and mines ~10^5 BTC a month for 20 years drifts by ~1e-6 BTC)
    btc_scale = max(
        1.0, m.initial_btc, m.total_btc(), sum(abs(v) for v in m.acct.sector_btc_in.values())
    )
    if abs(btc_gap) > 1e-6 * btc_scale:
        problems.append(f"btc identity gap {btc_gap:.9f}")
    if np.any(m.acct.btc < -1e-9) or np.any(m.loans.collateral_btc < -1e-9):
        problems.append("negative BTC")
    if np.any(m.loans.principal_usd < -1e-6):
        problems.append("negative loan principal")
    neg_cash = (m.acct.cash < -1e-6) & (m.status == ACTIVE) & (m.type != LENDER)
    if neg_cash.any():
        problems.append(f"negative cash at active agents {np.flatnonzero(neg_cash).tolist()}")
    loans = m.loans
    # a loan is one record: one lender's asset and one borrower's liability; check that the record
    # runs from a lender to another agent
    if np.any(m.type[loans.lender] != LENDER) or np.any(loans.lender == loans.borrower):
        problems.append("a loan does not run from a lender to another agent")
    # the books' look-up indexes (loan -> pledged lots, borrower -> loans, provider -> contracts,
    # tenant -> leases) match their columns
    for book in (m.lots, loans, m.contracts, m.leases):
        problems += book.index_problems()
    # site values: the book of an active miner = what its depreciation schedules still hold
    if len(m.miner_idx):
        active = m.miner_idx[m.status[m.miner_idx] == ACTIVE]
        book = m.site_assets.book_value(m.steps - 1)[active]
        # a value depreciated to near zero keeps the rounding of the amounts subtracted from it
        booked = m.site_assets.depreciated_usd + m.site_assets.written_off_usd
        if not np.allclose(m.site_value_usd[active], book, rtol=1e-9, atol=1e-3 + 1e-12 * booked):
            problems.append("site value differs from the depreciation schedules' book value")
    # lenders' equity computed two ways (the lender layer's and the agent panel's) must agree
    sheets = m.balance_sheets()
    # (equity is a difference of assets and liabilities: its rounding follows the assets)
    rounding = 1e-12 * float(np.abs(sheets["assets"][m.lender_idx]).max(initial=0.0))
    if len(m.lender_idx) and not np.allclose(
        sheets["equity"][m.lender_idx], m.lender_equity(), rtol=1e-9, atol=1e-3 + rounding
    ):
        problems.append("lender equity differs between the lender layer and the balance sheets")
    problems += demand_problems(m)
    problems += miner_gpu_problems(m)
    return problems + loss_problems(m, sheets["equity"])


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(scale)) + 1e-3


def loss_problems(m, equity: np.ndarray | None = None) -> list[str]:
    """Violations of the loss identities (empty when all hold). ``equity``: every agent's equity at
    current marks (``balance_sheets()["equity"]``), when the caller has it.

    1. cumulative ``lender_losses_usd`` = sum of ``written_off_usd`` (claims written off, funding
       written down, less restorations) + sum of ``inventory_loss_usd``;
    2. ``inventory_loss_usd`` = carrying value of inventory that left - its proceeds, per agent;
    3. carrying value seized - carrying value that left = units held by lenders x their carrying
       value per unit (no seized unit leaves the books without being booked);
    4. every defaulted claim is carried at no less than zero and no more than its principal;
    5. a failed lender with positive equity owes its creditors no write-down any more;
    6. no facility has had more equity cures than ``credit.cure_max_per_facility``;
    7. the write-down ledger of held lots (:func:`impairment_ledger_problems`)."""
    problems = []
    booked = float(m.written_off_usd.sum() + m.inventory_loss_usd.sum())
    scale = float(np.abs(m.written_off_usd).sum() + np.abs(m.inventory_loss_usd).sum())
    if not _close(m.lender_losses_usd, booked, scale):
        problems.append(
            f"lender losses {m.lender_losses_usd:.2f} USD != write-offs + inventory losses "
            f"{booked:.2f} USD"
        )
    realised = m.inventory_book_out_usd - m.inventory_proceeds_usd
    # the loss is a difference of two sums booked sale by sale: its rounding follows the sums (a
    # $7e14 book out less $7e14 of proceeds leaves a $1.7e5 loss good to ~0.1 USD, not 1e-3; 1e-12
    # of the sums is ~1e4 float64 rounding steps)
    size = np.maximum(np.abs(m.inventory_book_out_usd), np.abs(m.inventory_proceeds_usd))
    if np.any(np.abs(m.inventory_loss_usd - realised) > 1e-12 * size + 1e-3):
        problems.append("inventory losses differ from carrying value out - proceeds")
    lots = m.lots
    held = (lots.owner >= 0) & (m.type[np.maximum(lots.owner, 0)] == LENDER)
    carried = float((lots.units[held] * lots.book_value_usd_per_unit[held]).sum())
    ledger = float(m.inventory_seized_usd.sum() - m.inventory_book_out_usd.sum())
    if not _close(carried, ledger, float(m.inventory_seized_usd.sum())):
        problems.append(
            f"lenders hold inventory carried at {carried:.2f} USD but the ledger says "
            f"{ledger:.2f} USD (units left a lender's books without being booked)"
        )
    problems += impairment_ledger_problems(m)
    loans = m.loans
    dflt = np.flatnonzero(loans.status == LOAN_DEFAULTED)
    if len(dflt):
        carry = m.claims_value()[dflt]
        if np.any(carry < -1e-6) or np.any(carry > loans.principal_usd[dflt] + 1e-6):
            problems.append("a defaulted claim is carried below zero or above its principal")
    if np.any(loans.cures_total > m.cfg["credit"]["cure_max_per_facility"]):
        problems.append("a facility was cured more often than its credit agreement allows")
    lenders = m.lender_idx
    if equity is None:
        equity = m.balance_sheets()["equity"]
    # equity is a difference of assets and liabilities: a failed lender's rounding residual
    # follows its assets (128 USD on 9.4e17 USD of assets in a schema-wide example)
    residual = 1.0 + 1e-12 * np.abs(m.lender_assets())
    failed = lenders[(m.status[lenders] == FAILED) & (equity[lenders] > residual)]
    if len(failed):
        ib = m.loan_rows_of_kind(INTERBANK)
        ib = ib[loans.status[ib] == LOAN_ACTIVE]
        down = m.funding_written_down_usd + np.bincount(
            loans.borrower[ib], weights=loans.written_down_usd[ib], minlength=m.n
        )
        if np.any(down[failed] > 1.0):
            problems.append(
                f"failed lenders {failed[down[failed] > 1.0].tolist()} keep equity while their "
                "creditors are still written down"
            )
    return problems


def impairment_ledger_problems(m) -> list[str]:
    """Violations of the write-down ledger of lenders' held lots (abm/finance/impairment.py), which
    hold at any time (empty when all do):

    1. every lot's write-down per unit is >= 0 (lower of cost or market never writes up) and <= its
       carrying value per unit (a lot is never carried below zero), and 0 on lots no lender holds;
    2. each agent's allowance ``inventory_impairment_usd`` = charged - reversed - released;
    3. each agent's allowance = the sum over the lots it holds of units x write-down per unit (no
       unit leaves a lender's books without its write-down being released);
    4. the inventory ledger net of the write-down: carrying value seized - carrying value that left
       - allowance = the lenders' held units at lower of cost or market (units x (carrying value -
       write-down) per unit), summed over lenders."""
    problems = []
    lots = m.lots
    per_unit = lots.impairment_usd_per_unit
    if np.any(per_unit < -1e-9) or np.any(per_unit > lots.book_value_usd_per_unit + 1e-6):
        problems.append("a lot's write-down per unit is below zero or above its carrying value")
    held = (lots.owner >= 0) & (m.type[np.maximum(lots.owner, 0)] == LENDER)
    if np.any((per_unit != 0) & ~held & (lots.units > 0)):
        problems.append("a lot no lender holds carries a write-down")
    allowance = m.inventory_impairment_usd
    flows = (
        m.inventory_impairment_charged_usd
        - m.inventory_impairment_reversed_usd
        - m.inventory_impairment_released_usd
    )
    scale = 1e-9 * np.maximum(np.abs(m.inventory_impairment_charged_usd), 1.0) + 1e-3
    if np.any(np.abs(allowance - flows) > scale):
        problems.append("lenders' write-down allowance != charged - reversed - released")
    by_lot = np.bincount(lots.owner[held], weights=lots.units[held] * per_unit[held], minlength=m.n)
    if np.any(np.abs(allowance - by_lot) > scale):
        problems.append(
            "lenders' write-down allowance differs from the write-downs of the lots they hold "
            "(units left without their write-down being released)"
        )
    net_ledger = float(
        m.inventory_seized_usd.sum() - m.inventory_book_out_usd.sum() - allowance.sum()
    )
    at_lcm = float((lots.units[held] * (lots.book_value_usd_per_unit[held] - per_unit[held])).sum())
    if not _close(net_ledger, at_lcm, float(m.inventory_seized_usd.sum())):
        problems.append(
            f"lenders' inventory at lower of cost or market {at_lcm:.2f} USD != seized - left - "
            f"write-down {net_ledger:.2f} USD"
        )
    return problems


def impairment_problems(m) -> list[str]:
    """Lower of cost or market at the end of a month (after :func:`abm.finance.impairment.remeasure`;
    empty when it holds): every lot a lender holds is written down by exactly ``max(carrying value
    - market mark, 0)`` per unit, the mark at which the lenders' balance sheets carry it, so the
    lenders' equity and their unrealised loss agree."""
    lots = m.lots
    rows = impairment.lender_lot_rows(m)
    expected = np.maximum(lots.book_value_usd_per_unit[rows] - m.mark_market[lots.gen[rows]], 0.0)
    if not np.allclose(lots.impairment_usd_per_unit[rows], expected, rtol=1e-9, atol=1e-6):
        return ["a held lot's write-down differs from max(carrying value - market mark, 0)"]
    return []


def demand_problems(m) -> list[str]:
    """The demand identity of the month's rents (:func:`abm.phases.operations.run`): paid
    H100-equivalents <= demanded + take-or-pay-obliged idle ones (both in H100-equivalent GPUs
    over the month, i.e. perf-hours / hours); idle obligations non-negative; the customers pay."""
    problems = []
    paid = m.paid_compute_perf_units
    obliged = m.idle_take_or_pay_perf_units
    demand = m.compute.demand_perf_units
    if obliged < -1e-9:
        problems.append(f"negative idle take-or-pay {obliged:.3f} H100-equivalents")
    # float rounding follows the largest amount compared (obligations can dwarf demand)
    if paid > demand + obliged + 1e-6 * max(1.0, demand) + 1e-12 * max(paid, obliged):
        problems.append(
            f"paid compute {paid:.1f} > demanded {demand:.1f} + take-or-pay obliged {obliged:.1f} "
            "H100-equivalents"
        )
    if m.acct.sector_cash_in["compute_customers"] < -1e-6:
        problems.append("compute customers received more from agents than they paid")
    return problems


def _rounding_usd(m) -> float:
    """Float64 rounding allowance of the cash identity (USD): 1e-12 of the amounts it sums (every
    cash balance and every sector's net flow). Each addition rounds by up to 1.1e-16 of its operands,
    and a run makes at most some thousands of them; 1e-12 covers that. The fixed tolerances alone
    fall below float resolution once balances pass ~1e13 USD, which valid parameters reach (e.g. BTC
    valued at 1e13 USD brings 1e20 USD of cash), and would report rounding as a missing flow."""
    flows = sum(abs(v) for v in m.acct.sector_cash_in.values())
    return 1e-12 * (float(np.abs(m.acct.cash).sum()) + flows)


def price_problems(m) -> list[str]:
    """Return the prices that are not numbers a market could quote (empty when all are).

    Every price is finite and >= 0: the BTC price (USD, and > 0: the market bounds it away from 0),
    the hashprice (USD per PH/s-day), the network hashrate (EH/s, > 0: mining income divides by it),
    the compute rents (trend per perf-hour, spot per GPU-hour), fundamental values, market and
    appraisal marks (also by lender kind; USD per GPU) and the last clearing price of each generation (NaN until its
    first trade). The compute market's balance utilisation lies in [``utilisation_ref``,
    ``max(utilisation_ref, utilisation_max)``]."""
    crypto, compute = m.crypto, m.compute
    scalars = {
        "btc price": crypto.price_usd,
        "hashprice": crypto.hashprice_usd_per_ph_day(),
        "network hashrate": crypto.network_hashrate_eh,
        "trend rent per perf-hour": compute.trend_price_per_perf_hour,
    }
    problems = [
        f"{name} {value!r} is not finite and >= 0"
        for name, value in scalars.items()
        if not (np.isfinite(value) and value >= 0)
    ]
    for name in ("btc price", "network hashrate"):
        if not scalars[name] > 0:
            problems.append(f"{name} {scalars[name]!r} is not > 0")
    arrays = {
        "spot rent": compute.rent_spot,
        "fundamental value": compute.fundamental_value,
        "market mark": m.mark_market,
        "appraisal mark": m.mark_appraisal,
        "appraisal mark by lender kind": m.mark_appraisal_by_kind.ravel(),
        "last clearing price": m.last_trade_price[~np.isnan(m.last_trade_price)],
    }
    for name, values in arrays.items():
        bad = ~(np.isfinite(values) & (values >= 0))
        if bad.any():
            problems.append(f"{name} not finite and >= 0: {np.asarray(values)[bad].tolist()}")
    # the balance utilisation mixes reserved GPUs at utilisation_max with spot GPUs at
    # utilisation_ref (ComputeMarket.set_balance): it lies between the two
    c = m.cfg["compute"]
    lo, hi = c["utilisation_ref"], max(c["utilisation_ref"], c["utilisation_max"])
    for name in ("balance_utilisation", "next_balance_utilisation"):
        b = getattr(compute, name)
        if not (np.isfinite(b) and lo - 1e-12 <= b <= hi + 1e-12):
            problems.append(f"compute {name} {b!r} outside [{lo}, {hi}]")
    return problems


def balance_problems(m) -> list[str]:
    """Return the balances that are not finite numbers, and the active agents of any type (lenders
    included) holding negative cash (empty when none). Cash, BTC, loan principal, BTC collateral
    and arrears must all be finite."""
    problems = []
    columns = {
        "cash": m.acct.cash,
        "btc": m.acct.btc,
        "loan principal": m.loans.principal_usd,
        "btc collateral": m.loans.collateral_btc,
        "loan arrears": m.loans.arrears_usd,
    }
    for name, values in columns.items():
        if not np.all(np.isfinite(values)):
            problems.append(
                f"{name} not finite at rows {np.flatnonzero(~np.isfinite(values)).tolist()}"
            )
    neg = (m.acct.cash < -1e-6) & (m.status == ACTIVE)
    if neg.any():
        problems.append(f"negative cash at active agents (any type) {np.flatnonzero(neg).tolist()}")
    return problems


def market_problems(m) -> list[str]:
    """The secondary market's state (empty when sound): lenders' funding needs finite and >= 0;
    the month's mark evidence (units offered, their value) finite and >= 0 and every mark weight in
    [0, 1]; servicers only ever receive fees (the ``gpu_servicers`` sector's net payment to agents
    is never positive)."""
    problems = []
    for name, values in (
        ("funding need", m.funding_need_usd),
        ("mark evidence units", m.mark_offered_units),
        ("mark evidence value", m.mark_evidence_usd),
    ):
        bad = ~(np.isfinite(values) & (values >= 0))
        if bad.any():
            problems.append(f"{name} not finite and >= 0: {np.asarray(values)[bad].tolist()}")
    if np.any((m.last_trade_weight < 0) | (m.last_trade_weight > 1)):
        problems.append("a mark weight outside [0, 1]")
    if m.acct.sector_cash_in["gpu_servicers"] > 1e-6:
        problems.append("servicers paid agents")
    return problems


def all_problems(m) -> list[str]:
    """Every invariant of this module at once (empty when all hold): the accounting identities
    (:func:`check`, losses included), prices (:func:`price_problems`) and balances (:func:`balance_problems`). A new
    invariant belongs here too, so that the schema-wide property test checks it every month."""
    return (
        check(m)
        + price_problems(m)
        + balance_problems(m)
        + policy_problems(m)
        + funding_problems(m)
        + market_problems(m)
        + miner_gpu_problems(m)
        + loan_mark_problems(m)
        + equipment_problems(m)
        + impairment_problems(m)
        + order_book_problems(m)
        + other_assets.other_assets_problems(m)
    )


def policy_problems(m) -> list[str]:
    """The policy levers' identities (abm/policy.py): the buyer of last resort has spent at most its
    run budget; the ``policy_authority`` sector's net payment is its purchases less the salvage
    proceeds returned (it has no other counterparty); the buyer's cash is never negative; it holds
    only warehoused lots and no more GPUs than it bought. Empty when they hold (always, with the
    levers off)."""
    problems = []
    ps = m.policy
    paid = m.acct.sector_cash_in["policy_authority"]
    budget = m.cfg["policy"]["last_resort_budget_usd"]
    scale = max(1.0, budget) * 1e-9
    net = ps.last_resort_spent_usd - ps.last_resort_returned_usd
    if abs(paid - net) > scale:
        problems.append(f"policy_authority paid {paid:.2f} USD, last resort net {net:.2f}")
    if ps.last_resort < 0:
        return problems
    if ps.last_resort_spent_usd > budget + scale:
        problems.append(
            f"last resort spent {ps.last_resort_spent_usd:.2f} USD > budget {budget:.2f}"
        )
    if m.acct.cash[ps.last_resort] < -scale:
        problems.append(f"last resort cash {m.acct.cash[ps.last_resort]:.2f} USD < 0")
    mine = m.lots.owner == ps.last_resort
    if int(m.lots.units[mine & ~m.lots.exported].sum()) != 0:
        problems.append("last resort holds GPUs that are not warehoused")
    if int(m.lots.units[mine].sum()) > ps.last_resort_units:
        problems.append(f"last resort holds more GPUs than the {ps.last_resort_units} it bought")
    return problems


def funding_problems(m) -> list[str]:
    """Finite lender funding (abm/finance/funding.py), with the ``funding`` channel on: no active
    lender that drew outside funding this month holds more than its cap; every open (active or
    defaulted) interbank loan
    runs between two lenders and the lenders' liabilities are their outside funding plus the open
    interbank principal they owe; redemptions paid = what the ``fund_investors`` sector received;
    no active lender has a funding need while it holds cash it could have paid with."""
    if not m.cfg["channels"]["funding"]:
        return []
    problems = []
    fs, lenders = m.funding_state, m.lender_idx
    active = m.status[lenders] == ACTIVE
    drew = active & (fs.drawn_usd[lenders] > 0)
    over = m.outside_funding_usd[lenders] - fs.cap_usd[lenders]
    if np.any(over[drew] > 1e-6 * np.maximum(fs.cap_usd[lenders][drew], 1.0)):
        problems.append(f"outside funding above its cap at lenders {lenders[drew & (over > 0)]}")
    loans = m.loans
    ib = m.loan_rows_of_kind(INTERBANK)
    ib = ib[loans.status[ib] != LOAN_CLOSED]  # open: active or defaulted
    if np.any(m.type[loans.borrower[ib]] != LENDER):
        problems.append("an interbank loan is owed by an agent that is not a lender")
    liabilities = m.lender_liabilities()
    owed = liabilities - m.outside_funding_usd[lenders]
    book = np.bincount(loans.borrower[ib], weights=loans.principal_usd[ib], minlength=m.n)[lenders]
    # float rounding follows the liabilities the interbank part is taken out of
    if np.any(np.abs(owed - book) > 1e-9 * np.maximum(liabilities, 1.0) + 1e-3):
        problems.append("lenders' interbank liabilities differ from the interbank loans they owe")
    paid = float(fs.redemptions_total_usd.sum())
    received = -m.acct.sector_cash_in["fund_investors"]
    if not _close(paid, received, max(1.0, paid)):
        problems.append(
            f"redemptions paid {paid:.2f} USD but fund investors received {received:.2f}"
        )
    stuck = active & (m.funding_need_usd[lenders] > 1.0) & (m.acct.cash[lenders] > 1.0)
    if stuck.any():
        problems.append(f"lenders {lenders[stuck].tolist()} hold cash but leave a funding need")
    problems += seized_sale_problems(m)
    return problems


def seized_sale_problems(m) -> list[str]:
    """The forced sale after a run (abm/finance/seized_sale.py): a lender's funding need that does
    not count towards its illiquidity grace (``need_months`` 0 with a need) is kept for seized lots,
    so the lender is of a kind with ``sells_seized_before_loans`` and holds seized units; and a
    trade that names a ``depositor_run`` was sold by the lender whose depositors ran."""
    problems = []
    fs, lenders = m.funding_state, m.lender_idx
    kept = (
        (m.status[lenders] == ACTIVE)
        & (m.funding_need_usd[lenders] > 1.0)
        & (fs.need_months[lenders] == 0)
    )
    if kept.any():
        lots = m.lots
        held = np.bincount(lots.owner, weights=lots.units, minlength=m.n)[lenders]
        bad = kept & ((held <= 0) | (m.lk["sells_seized_before_loans"][lenders] <= 0))
        if bad.any():
            problems.append(
                f"lenders {lenders[bad].tolist()} keep a funding need out of their grace "
                "without seized lots to sell for it"
            )
    # this month's trades (the log is in month order: read back from its end)
    rows = m.events.rows
    for row in reversed(rows):
        if row[1] != m.month:
            break
        if row[2] != "trade":
            continue
        for p in row[PARENTS]:
            parent = rows[p - 1]
            if parent[2] == "depositor_run" and parent[3] != row[3]:
                problems.append(f"trade {row[0]} names depositor run {p} of another lender")
    return problems


def miner_gpu_problems(m) -> list[str]:
    """Violations of the miners' GPU-hall rules (empty when all hold): an active miner's GPUs draw
    at most its ``gpu_mw`` (facility MW: IT kW x ``compute.pue`` / 1000); a miner without a hall
    owns no GPUs and owes no GPU term loan (miners get GPUs only with a hall,
    :mod:`abm.world_miner_gpus`)."""
    problems = []
    idx = m.miner_idx[m.status[m.miner_idx] == ACTIVE]
    if len(idx) == 0:
        return problems
    lots = m.lots
    # ASIC lots (equipment classes) stand in the mining sites, not the GPU halls
    gpu_lot = ~m.is_asic[lots.gen]
    weights = np.where(gpu_lot, lots.units * m.kw[lots.gen], 0.0)
    kw = np.bincount(lots.owner, weights=weights, minlength=m.n)[idx]
    draw_mw = kw * m.cfg["compute"]["pue"] / 1000.0
    hall = m.gpu_mw[idx]
    if np.any(draw_mw > hall * (1.0 + 1e-9) + 1e-9):
        problems.append(f"miner GPUs draw more than their halls at {idx[draw_mw > hall].tolist()}")
    loans = m.loans
    term = (loans.kind == GPU_TERM) & (loans.status == LOAN_ACTIVE)
    if m.is_asic.any():  # machine-backed loans are GPU_TERM loans too: count loans on GPU lots
        on_gpus = np.zeros(loans.n, dtype=bool)
        on_gpus[lots.loan[(lots.loan >= 0) & gpu_lot]] = True
        term &= on_gpus
    gpu_debtors = loans.borrower[term]
    no_hall = idx[hall <= 0]
    if np.isin(no_hall, gpu_debtors).any():
        problems.append("a miner without a GPU hall owes a GPU term loan")
    return problems


def loan_mark_problems(m) -> list[str]:
    """Violations of the loan-mark rules (abm/finance/loan_marks.py; empty when all hold):

    1. every class's mark is finite and in (0, 1], and exactly 1 with the ``funding`` channel off;
    2. lenders' equity at the marks + their unrealised mark-down (``loan_marks.markdown_usd``, from
       principal by lender and class) = their equity with every mark at 1: a mark-down is in equity
       once, only at lenders that mark to market, only on performing loans;
    3. loan-sale cash is zero-sum among lenders: what sellers received = what buyers paid, only
       lenders paid, and each seller's proceeds = the principal it sold - its discount."""
    problems = []
    lm, fs, lenders = m.loan_marks, m.funding_state, m.lender_idx
    if not np.all(np.isfinite(lm.mark)) or np.any(lm.mark <= 0) or np.any(lm.mark > 1.0):
        problems.append(f"loan marks outside (0, 1]: {lm.mark.tolist()}")
    if not m.cfg["channels"]["funding"] and np.any(lm.mark != 1.0):
        problems.append("loan marks moved with the funding channel off")
    marked = m.lender_equity()
    markdown = loan_marks.markdown_usd(m)[lenders]
    if np.any(markdown[~lm.marks_to_market[lenders]] != 0.0):
        problems.append("a lender that does not mark to market shows a loan mark-down")
    saved = lm.mark
    try:
        lm.mark = np.ones_like(saved)
        at_par = m.lender_equity()
    finally:
        lm.mark = saved
    # equity is a difference of assets and liabilities: its rounding follows the assets
    scale = 1e-9 * np.maximum(np.abs(m.lender_assets()), np.abs(at_par)) + 1e-3
    if np.any(np.abs(marked + markdown - at_par) > scale):
        problems.append("lender equity at loan marks + unrealised mark-down != equity at par")
    received, paid = lm.sale_proceeds_usd, lm.purchase_cost_usd
    if not _close(float(received.sum()), float(paid.sum()), float(received.sum())):
        problems.append(
            f"loan sales: sellers received {received.sum():.2f} USD, buyers paid {paid.sum():.2f}"
        )
    if np.any((paid != 0) & (m.type != LENDER)) or np.any((received != 0) & (m.type != LENDER)):
        problems.append("a loan was bought or sold by an agent that is not a lender")
    expected = fs.loans_sold_usd - fs.loan_sale_discount_usd
    if not np.allclose(received, expected, rtol=1e-9, atol=1e-3):
        problems.append("a seller's loan-sale proceeds differ from principal sold - discount")
    return problems


def equipment_problems(m) -> list[str]:
    """Violations of the equipment-class rules (empty when all hold; abm/markets/asic.py):
    ASIC generations have no compute performance (they are not in GPU supply or demand); a buyer
    holds only machines of the class its kind buys (``equipment``; the buyer of last resort buys
    either); a pinned BTC price or network
    hashrate (``crypto.btc_price_path_usd``, ``network_hashrate_path_eh``) is the month's value of
    its path."""
    problems = []
    if np.any(m.perf[m.is_asic] != 0.0):
        problems.append("an ASIC generation has compute performance")
    lots = m.lots
    # (the buyer of last resort, a policy lever, bids for either class)
    bought = (lots.units > 0) & (m.type[lots.owner] == BUYER) & (lots.owner != m.policy.last_resort)
    wrong = bought & (m.is_asic[lots.gen] != m.buyer_asic[lots.owner])
    if wrong.any():
        problems.append(f"buyers {np.unique(lots.owner[wrong]).tolist()} hold the wrong equipment")
    crypto = m.crypto
    if crypto.month >= 0:
        if crypto.price_path_usd and crypto.price_usd != crypto.price_path_usd[crypto.month]:
            problems.append("the BTC price left its pinned path")
        if (
            crypto.hashrate_path_eh
            and crypto.network_hashrate_eh != crypto.hashrate_path_eh[crypto.month]
        ):
            problems.append("the network hashrate left its pinned path")
    return problems
