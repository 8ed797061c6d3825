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
  principal; a failed lender shows no equity while its creditors are still written down.
* Compute demand: the H100-equivalents paid for this month never exceed those demanded plus those
  take-or-pay obliges customers to pay for while idle, and no rent is paid except by the
  ``compute_customers`` sector (its cumulative net flow to agents is never negative).
* Sites: an active miner's site value (book value of its ASICs, sites and conversions) equals what is
  still scheduled to be depreciated: no site value appears without capex or vanishes without
  depreciation, a conversion's write-off or a site sale.

The USD identities allow float64 rounding in proportion to the amounts they sum, so that they stay
meaningful at the extreme (but valid) magnitudes the schema allows.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, FAILED, LENDER
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.instruments import INTERBANK


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
    if abs(btc_gap) > 1e-6 * max(1.0, m.initial_btc):
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
    # the books' look-up indexes (loan -> pledged lots, borrower -> loans) match their columns
    problems += m.lots.index_problems() + loans.index_problems()
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
    6. no facility has had more equity cures than ``credit.cure_max_per_facility``."""
    problems = []
    booked = float(m.written_off_usd.sum() + m.inventory_loss_usd.sum())
    scale = float(np.abs(m.written_off_usd).sum() + np.abs(m.inventory_loss_usd).sum())
    if not _close(m.lender_losses_usd, booked, scale):
        problems.append(
            f"lender losses {m.lender_losses_usd:.2f} USD != write-offs + inventory losses "
            f"{booked:.2f} USD"
        )
    realised = m.inventory_book_out_usd - m.inventory_proceeds_usd
    if not np.allclose(m.inventory_loss_usd, realised, rtol=1e-9, atol=1e-3):
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
    failed = lenders[(m.status[lenders] == FAILED) & (equity[lenders] > 1.0)]
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
    appraisal marks (USD per GPU) and the last clearing price of each generation (NaN until its
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


def all_problems(m) -> list[str]:
    """Every invariant of this module at once (empty when all hold): the accounting identities
    (:func:`check`, losses included), prices (:func:`price_problems`) and balances (:func:`balance_problems`). A new
    invariant belongs here too, so that the schema-wide property test checks it every month."""
    return check(m) + price_problems(m) + balance_problems(m)
