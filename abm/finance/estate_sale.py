"""A bankruptcy estate's GPUs on a court timeline: a sale process, then a hand-over in kind.

For ``credit.estate_sale_months`` after the default the estate offers its GPUs every month in the
secondary market. Its reserve is the *credit bid* of its largest remaining creditor: the lender may
bid its claim for the GPUs, so the court accepts an outside bid only when it beats what the GPUs are
worth to that lender held (:meth:`~abm.agents.lender.Lenders.hold_value_per_gpu`); an estate with no
claims left is solvent and its owners sell only at the fundamental value. When the sale process ends, the GPUs still unsold go in kind to
the remaining creditors, senior classes first and pro rata within a class, at the market mark: each
claim falls by the value it receives, the lender carries the units in its inventory at that value
(:func:`~abm.finance.losses.book_seizures`), and what is left of the claims is written off when the
estate closes. Losses are booked once: the write-off of the unpaid rest, and later the lender's
realised gain or loss against the mark when it sells the units.
"""

from __future__ import annotations

import numpy as np

from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.losses import book_seizures


def estate_reserves_usd(m, rows: np.ndarray) -> np.ndarray:
    """Reserve (USD per GPU, aligned with ``rows``: lot rows owned by estates) of each estate lot:
    the hold value to the estate's largest remaining lender claim (its credit bid); without a claim
    left (a solvent estate) the fundamental value; never below the
    ``credit.reserve_floor_multiplier`` option x fundamental value."""
    lots, loans = m.lots, m.loans
    owner = lots.owner[rows]
    gen = lots.gen[rows]
    open_claim = (loans.status == LOAN_DEFAULTED) & (loans.principal_usd > 0)
    claims = np.flatnonzero(open_claim)
    top_lender = np.full(m.n, -1, dtype=np.int64)
    if len(claims):
        # the largest claim on each estate: sort by principal, the last write per borrower wins
        order = claims[np.argsort(loans.principal_usd[claims], kind="stable")]
        top_lender[loans.borrower[order]] = loans.lender[order]
    bidder = top_lender[owner]
    has = bidder >= 0
    # an estate whose claims are all paid is solvent: its owners are not forced sellers and keep
    # the GPUs unless a bid reaches their fundamental value
    reserve = m.compute.fundamental_value[gen].copy()
    if has.any():
        reserve[has] = m.populations.lenders.hold_value_per_gpu(bidder[has], gen[has])
    floor = m.cfg["credit"]["reserve_floor_multiplier"] * m.compute.fundamental_value[gen]
    return np.maximum(reserve, floor)


def hand_over_unsold(m, t: int) -> set[int]:
    """Estates whose sale process (``credit.estate_sale_months`` since the default) has ended give
    their unsold GPUs to their remaining lender claims in kind at the market mark (module
    docstring); one ``seizure`` event per transferred lot, child of the default. Returns the
    estates that handed GPUs over."""
    months = m.cfg["credit"]["estate_sale_months"]
    # ascending estates (the order of ``sorted``: distinct integers) from one array read
    estates = np.fromiter(m.open_estates, dtype=np.int64, count=len(m.open_estates))
    estates.sort()
    due = estates[t - m.default_month[estates] >= months]
    if len(due) == 0:
        return set()
    # an estate without an open claim hands nothing over; a hand-over reduces only its own
    # estate's claims, so the estates with open claims are found once, before the hand-overs
    loans = m.loans
    open_claim = (loans.status == LOAN_DEFAULTED) & (loans.principal_usd > 0)
    has_claim = np.zeros(m.n, dtype=bool)
    has_claim[loans.borrower[open_claim]] = True
    due = due[has_claim[due]].tolist()  # (hundreds of due estates, most without a claim left)
    if not due:
        return set()
    # the lots of every due estate from one pass over the lots (ascending rows per estate, as
    # ``flatnonzero(owner == b)``), not one scan per estate: a hand-over changes the units of its
    # own estate's lots only, and the lots it adds (found below in the new rows) go to lenders
    lots = m.lots
    first_new_row = len(lots)
    wanted = np.zeros(m.n + 1, dtype=bool)  # owner -1 (none) reads the last slot
    wanted[due] = True
    rows = np.flatnonzero(wanted[lots.owner])
    rows = rows[np.argsort(lots.owner[rows], kind="stable")]
    owners = lots.owner[rows]
    lo = np.searchsorted(owners, due, side="left").tolist()
    hi = np.searchsorted(owners, due, side="right").tolist()
    handed = set()
    for b, a, z in zip(due, lo, hi, strict=True):
        owned = rows[a:z]
        if len(lots) > first_new_row:  # a lender that is itself a due estate may have received lots
            new = first_new_row + np.flatnonzero(lots.owner[first_new_row:] == b)
            owned = np.concatenate((owned, new)) if len(new) else owned
        if _hand_over(m, b, t, owned):
            handed.add(b)
    return handed


def _hand_over(m, b: int, t: int, owned: np.ndarray | None = None) -> bool:
    """Hand estate ``b``'s unsold GPUs to its open claims; ``owned``: ``flatnonzero(lots.owner ==
    b)`` when the caller has it."""
    lots, loans = m.lots, m.loans
    claims = loans.rows_of_borrower(b)
    claims = claims[(loans.status[claims] == LOAN_DEFAULTED) & (loans.principal_usd[claims] > 0)]
    if len(claims) == 0:
        return False
    if owned is None:
        owned = np.flatnonzero(lots.owner == b)
    rows = owned[lots.units[owned] > 0]
    if len(rows) == 0:
        return False
    mark = m.mark_market[lots.gen[rows]]
    rows, mark = rows[mark > 0], mark[mark > 0]
    total_value = float((lots.units[rows] * mark).sum())
    if total_value <= 0:
        return False
    # value each claim receives: senior classes first, pro rata within a class, up to the claim
    value_left = total_value
    received = np.zeros(len(claims))
    seniority = loans.seniority[claims]
    for s in sorted(set(seniority.tolist())):
        cls = np.flatnonzero(seniority == s)
        owed = loans.principal_usd[claims[cls]]
        paid = owed * min(1.0, value_left / float(owed.sum()))
        received[cls] = paid
        value_left -= float(paid.sum())
        if value_left <= 0:
            break
    share = received / total_value  # of every lot: a claim takes the same share of each
    new = {"owner": [], "gen": [], "units": [], "cost": [], "mark": [], "claim": []}
    for k, loan in enumerate(claims.tolist()):
        if share[k] <= 0:
            continue
        units = np.floor(lots.units[rows] * share[k]).astype(np.int64)
        for row, u, mk in zip(rows.tolist(), units.tolist(), mark.tolist(), strict=True):
            if u <= 0:
                continue
            new["owner"].append(int(loans.lender[loan]))
            new["gen"].append(int(lots.gen[row]))
            new["units"].append(u)
            new["cost"].append(float(lots.cost_usd_per_unit[row]))
            new["mark"].append(mk)
            new["claim"].append(loan)
            lots.units[row] -= u
    if not new["units"]:
        return False
    units = np.array(new["units"], dtype=np.int64)
    value = units * np.array(new["mark"])
    added = lots.add(
        owner=np.array(new["owner"], dtype=np.int64),
        gen=np.array(new["gen"], dtype=np.int64),
        units=units,
        acquired_month=np.full(len(units), t, dtype=np.int64),
        cost_usd_per_unit=np.array(new["cost"]),
        book_value_usd_per_unit=np.array(new["mark"]),
    )
    claim_rows = np.array(new["claim"], dtype=np.int64)
    np.subtract.at(loans.principal_usd, claim_rows, value)
    loans.principal_usd[claim_rows] = np.maximum(loans.principal_usd[claim_rows], 0.0)
    book_seizures(m, new["owner"], value.tolist())
    event_ids = m.events.add_many(
        t,
        "seizure",
        new["owner"],
        [b] * len(units),
        [[int(m.default_event[b])]] * len(units),
        value.tolist(),
        units=units.tolist(),
        prices=new["mark"],
    )
    m.lot_origin_event.update(zip(np.asarray(added).tolist(), event_ids, strict=True))
    return True
