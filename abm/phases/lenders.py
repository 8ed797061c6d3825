"""Phase 10: lenders. Interbank interest, liquidity, capital, failures, and the clearing of the lender
funding network (Eisenberg-Noe) that passes a failed lender's shortfall on to its funders."""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, FAILED
from abm.finance import funding, resolution
from abm.finance.clearing import eisenberg_noe, rogers_veraart
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import INTERBANK


def run(m, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Interbank interest, liquidity, failures and appetite. Returns the lenders' (assets, equity)
    at the end of the phase, which the investment phase decides its lending capacity from."""
    loans = m.loans
    ib = m.loan_rows_of_kind(INTERBANK)
    ib = ib[loans.status[ib] == LOAN_ACTIVE]
    if len(ib):
        rate = loans.rates(m.base_rate, ib)
        interest = loans.principal_usd[ib] * rate / 12.0
        m.acct.transfer(loans.borrower[ib], loans.lender[ib], interest)
    if m.cfg["channels"]["funding"]:
        # finite funding (abm/finance/funding.py), which ends with the lenders' balance sheets
        illiquid, sheet = funding.lender_funding_month(m, t)
    else:
        top_up_liquidity(m)
        illiquid = np.zeros(len(m.lender_idx), dtype=bool)
        sheet = m.lender_assets_and_equity()
    if _failures(m, t, sheet, illiquid):
        # failures wrote claims and funding down: appetite needs fresh balance sheets
        sheet = m.lender_assets_and_equity()
    # a restored interbank claim can raise the equity of a funder that failed too: pass gains on
    # along the chain until none is left (at most one pass per lender)
    for _ in range(len(m.lender_idx)):
        if not pass_gains_to_creditors(m, sheet[1]):
            break
        sheet = m.lender_assets_and_equity()
    m.populations.lenders.update_appetite(sheet)
    m.loss_history.append(m.this_month.loss_usd)
    return sheet


def top_up_liquidity(m) -> None:
    """A lender short of cash draws on its outside funders (deposits, fund calls): on demand with
    the ``funding`` channel off, else only within its outside funding cap (abm/finance/funding.py)."""
    lenders = m.lender_idx
    short = np.maximum(-m.acct.cash[lenders], 0.0)
    if m.cfg["channels"]["funding"]:
        funding.draw_outside_funding(m, lenders, np.where(m.status[lenders] == ACTIVE, short, 0.0))
    elif short.any():
        m.outside_funding_usd[lenders] += short
        m.acct.from_sector("outside_funders", lenders, short)


def _failures(m, t: int, sheet: tuple[np.ndarray, np.ndarray], illiquid: np.ndarray) -> bool:
    """Fail insolvent lenders and those that cannot meet withdrawals or margin calls (``illiquid``:
    mask aligned with ``model.lender_idx``), and clear the funding network. ``sheet``: the lenders'
    current (assets, equity). Returns True if any lender failed (balance sheets changed)."""
    lenders = m.lender_idx
    assets, equity = sheet
    insolvent = equity < -1e-6
    illiquid = illiquid & (m.status[lenders] == ACTIVE)
    if not insolvent.any() and not illiquid.any():
        return False
    loans = m.loans
    k = len(lenders)
    pos = {int(i): j for j, i in enumerate(lenders)}
    ib = m.loan_rows_of_kind(INTERBANK)
    ib = ib[loans.status[ib] == LOAN_ACTIVE]
    # nodes: lenders 0..k-1 and the outside funders k
    L = np.zeros((k + 1, k + 1))
    for row in ib:
        L[pos[int(loans.borrower[row])], pos[int(loans.lender[row])]] += loans.principal_usd[row]
    L[:k, k] = m.outside_funding_usd[lenders]
    interbank_claims = np.zeros(k)
    np.add.at(interbank_claims, [pos[int(x)] for x in loans.lender[ib]], loans.principal_usd[ib])
    external = np.maximum(assets - interbank_claims, 0.0)
    credit = m.cfg["credit"]
    if credit["funding_clearing"] == "rogers_veraart":
        alpha, beta = credit["default_cost_alpha"], credit["default_cost_beta"]
        p = rogers_veraart(L, np.append(external, 0.0), alpha, beta)
    else:
        p = eisenberg_noe(L, np.append(external, 0.0))
    pbar = L.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pbar > 0, p / pbar, 1.0)[:k]
    failing = np.flatnonzero((ratio < 1.0 - 1e-9) | insolvent | illiquid)
    # events first (parents: the failures of lenders that owed it money, else its borrowers' defaults)
    new = [j for j in failing if m.status[lenders[j]] == ACTIVE]
    hit_by = {}
    for row in ib:
        debtor, funder = pos[int(loans.borrower[row])], pos[int(loans.lender[row])]
        if ratio[debtor] < 1.0 - 1e-9:
            hit_by.setdefault(funder, []).append(int(lenders[debtor]))
    # one pass over the loans for every failing lender (lenders owe only interbank loans, so these
    # failures add no default events to the lists)
    borrower_events = funding.borrower_default_events(m, lenders[new])
    for j in new:
        i = int(lenders[j])
        debtors = [d for d in hit_by.get(j, []) if m.default_event[d] > 0 or d in lenders[new]]
        cause = "lender_failure" if debtors and not insolvent[j] else "counterparty"
        parents = _borrower_parents(m, i, borrower_events)
        if illiquid[j] and not insolvent[j] and not debtors:
            # it could not pay its depositors, investors or bank: the run or call is the parent
            cause = "illiquidity"
            parents = parents + [int(m.funding_state.need_event[i])]
        m.status[i] = FAILED
        m.defaults["lender"] += 1
        m.default_event[i] = m.events.add(
            t, "default", i, cause=cause, parents=parents, amount=float(-equity[j])
        )
    for j in new:  # second pass: link funding-channel parents now that every failure has an id
        i = int(lenders[j])
        extra = [int(m.default_event[d]) for d in hit_by.get(j, []) if m.default_event[d] > 0]
        if extra:
            m.events.add_parents(int(m.default_event[i]), extra)
    # write liabilities down to what the clearing pays: funders and outside investors take the loss
    for row in ib:
        debtor = pos[int(loans.borrower[row])]
        if ratio[debtor] < 1.0 - 1e-9:
            loss = loans.principal_usd[row] * (1.0 - ratio[debtor])
            loans.principal_usd[row] -= loss
            loans.written_down_usd[row] += loss
            resolution.record_loss(m, int(loans.lender[row]), float(loss))
    cut = ratio < 1.0 - 1e-9
    funding_cut = m.outside_funding_usd[lenders] * (1.0 - ratio) * cut
    m.outside_funder_losses_usd += float(funding_cut.sum())
    m.funding_written_down_usd[lenders] += funding_cut
    m.outside_funding_usd[lenders] = np.where(
        cut, m.outside_funding_usd[lenders] * ratio, m.outside_funding_usd[lenders]
    )
    if credit["funding_clearing"] == "rogers_veraart":
        # charged once, when a lender fails (a later re-clearing of a failed lender's shortfall
        # passes any excess write-down back to its creditors)
        # (a lender failing only for illiquidity pays its creditors in full: no default cost)
        _pay_default_costs(m, lenders[[j for j in new if ratio[j] < 1.0 - 1e-9]])
    return True


def _pay_default_costs(m, failing: np.ndarray) -> None:
    """Rogers-Veraart clearing pays creditors less than a failing lender's assets: the difference
    is its default cost. It leaves the system (paid to ``insolvency_administrators``) instead of
    staying as the failed lender's equity, where it would later be passed back to its creditors.
    ``failing``: agent rows of the failing lenders."""
    equity = m.lender_equity()
    cost = np.maximum(equity[np.searchsorted(m.lender_idx, failing)], 0.0)
    if cost.any():
        m.acct.to_sector("insolvency_administrators", failing, cost)


def _borrower_parents(m, lender: int, by_lender: dict | None = None) -> list[int]:
    """Default events of this lender's borrowers (the losses that sank it), ascending, the last
    20. ``by_lender``: :func:`~abm.finance.funding.borrower_default_events` of the current state,
    when the caller has it."""
    if by_lender is None:
        by_lender = funding.borrower_default_events(m, np.array([lender]))
    return list(by_lender.get(lender, []))


def pass_gains_to_creditors(m, equity: np.ndarray) -> bool:
    """A failed lender is wound down for its creditors: equity it shows after its failure (later
    gains on its claims, inventory or cash) first restores what its outside funders and interbank
    lenders were written down, pro rata to their write-downs, until they are whole; only a surplus
    beyond that stays as equity. Outside funders' losses fall and interbank lenders book the
    restored amount as a recovery (a negative loss). ``equity``: lenders' equity (USD, in
    ``lender_idx`` order). Returns True if anything was restored."""
    lenders = m.lender_idx
    loans = m.loans
    failed = (m.status[lenders] == FAILED) & (equity > 1e-6)
    if not failed.any():
        return False
    ib = m.loan_rows_of_kind(INTERBANK)
    ib = ib[(loans.status[ib] == LOAN_ACTIVE) & (loans.written_down_usd[ib] > 0)]
    interbank_down = np.bincount(
        loans.borrower[ib], weights=loans.written_down_usd[ib], minlength=m.n
    )[lenders]
    owed_back = m.funding_written_down_usd[lenders] + interbank_down
    restore = np.where(failed, np.minimum(equity, owed_back), 0.0)
    if not np.any(restore > 0):
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(owed_back > 0, restore / owed_back, 0.0)
    outside = m.funding_written_down_usd[lenders] * share
    m.outside_funding_usd[lenders] += outside
    m.funding_written_down_usd[lenders] -= outside
    m.outside_funder_losses_usd -= float(outside.sum())
    share_by_agent = np.zeros(m.n)
    share_by_agent[lenders] = share
    back = loans.written_down_usd[ib] * share_by_agent[loans.borrower[ib]]
    got = back > 0
    if got.any():
        rows = ib[got]
        loans.principal_usd[rows] += back[got]
        loans.written_down_usd[rows] -= back[got]
        resolution.record_losses(m, loans.lender[rows], -back[got])
    return True
