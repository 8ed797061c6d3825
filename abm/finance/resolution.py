"""Phase 7: default resolution. Secured lenders seize pledged collateral (GPU lots at their marks, BTC
sold at once); the rest of the borrower becomes an estate whose cash and sale proceeds pay the remaining
claims by seniority; claims left when the estate is empty (or after the work-out period) are written off.
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, DEFAULTED, LENDER, MINER, TYPE_NAMES
from abm.finance.instruments import (
    ACTIVE as LOAN_ACTIVE,
)
from abm.finance.instruments import (
    BTC_LOAN,
    INTERBANK,
    REPAID,
    SENIOR_SECURED,
    SENIOR_UNSECURED,
)
from abm.finance.instruments import (
    DEFAULTED as LOAN_DEFAULTED,
)
from abm.finance.losses import book_seizures, record_loss, record_losses, retire_units
from abm.markets.btc_sales import sell_btc

__all__ = [
    "default_borrower",
    "distribute_all_estates",
    "distribute_estate",
    "record_loss",
    "record_losses",
    "write_off",
]


def default_borrower(m, b: int, t: int, cause: str, parents: list[int]) -> int:
    """Put borrower ``b`` into default: log it, seize collateral, end its contracts and leases."""
    loans, lots = m.loans, m.lots
    if m.status[b] != ACTIVE:
        return int(m.default_event[b])
    mine = loans.rows_of_borrower(b)
    mine = mine[(loans.status[mine] == LOAN_ACTIVE) & (loans.kind[mine] != INTERBANK)]
    debt = float(loans.principal_usd[mine].sum())
    eid = m.events.add(t, "default", b, cause=cause, parents=parents, amount=debt)
    m.default_event[b] = eid
    m.default_month[b] = t
    m.open_estates.add(b)
    m.status[b] = DEFAULTED
    m.defaults[TYPE_NAMES[m.type[b]]] += 1
    loans.capitalise_arrears(mine)  # accrued arrears become part of the claim
    later = _EventsOfDefault()  # the default's other events, logged together at the end
    # every lot pledged to the borrower's loans, found once: the seizure takes some of them (the
    # others stay pledged until released below; no lot is pledged anew meanwhile)
    pledged = lots.pledged_lots(mine)
    btc_loan = loans.kind[mine] == BTC_LOAN
    if np.count_nonzero(btc_loan):  # (count_nonzero: a fraction of .any()'s call cost)
        btc_rows = mine[btc_loan & (loans.collateral_btc[mine] > 0)]
        _seize_lots(m, t, mine[~btc_loan], later)
        if len(btc_rows):
            _sell_btc_collateral(m, t, btc_rows, later)
    else:  # the common case: no BTC-backed loan, every pledged lot may be seized
        _seize_lots(m, t, mine, later, pledged)
    loans.status[mine] = np.where(loans.principal_usd[mine] > 1e-6, LOAN_DEFAULTED, REPAID)
    seniority = loans.seniority[mine]
    loans.seniority[mine] = np.where(seniority == SENIOR_SECURED, SENIOR_UNSECURED, seniority)
    # excess collateral joins the estate: as ``lots.loan[lots.rows_of_loans(mine)] = -1`` (the
    # seized lots are already free)
    lots.loan[pledged[1]] = -1
    _end_contracts_and_leases(m, b, t, later)
    later.log(m, t, eid)
    return eid


class _EventsOfDefault:
    """The events one default causes after its own, children of it, in the order they happen:
    seizures, then BTC liquidations, then terminated leases. They are logged with one
    ``add_many`` (its rows are those of ``add`` called event by event, and nothing else logs an
    event meanwhile, so the ids are the same); what refers to their ids (the seized lots'
    origin, the BTC sale list, the hosts' lost-revenue event) is written once they are known."""

    def __init__(self) -> None:
        self.event: list[str] = []
        self.agent: list[int] = []
        self.counterparty: list[int] = []
        self.amount: list[float] = []
        self.units: list[int] = []
        self.price: list[float] = []
        self.cause: list[str] = []
        self.seized_lots: list[int] = []  # lot row of each seizure (the first events)
        self.btc_sales = 0  # the next events: BTC liquidations
        self.lease_hosts: list[int] = []  # host of each terminated lease (the last events)

    def extend(
        self, event: str, agents, counterparties, amounts, units=None, prices=None, cause=""
    ) -> None:
        """Append ``len(agents)`` events of one kind (lists aligned with ``agents``; units 0 and
        prices 0.0 when not given), as ``add`` would take them one by one."""
        count = len(agents)
        self.event.extend([event] * count)
        self.agent.extend(agents)
        self.counterparty.extend(counterparties)
        self.amount.extend(amounts)
        self.units.extend([0] * count if units is None else units)
        self.price.extend([0.0] * count if prices is None else prices)
        self.cause.extend([cause] * count)

    def log(self, m, t: int, eid: int) -> None:
        """Log the events (children of the default ``eid``) and record their ids."""
        if not self.event:
            return
        ids = m.events.add_many(
            t,
            self.event,
            self.agent,
            self.counterparty,
            [[eid]] * len(self.event),
            self.amount,
            units=self.units,
            prices=self.price,
            cause=self.cause,
        )
        seized = len(self.seized_lots)
        if seized:
            m.lot_origin_event.update(zip(self.seized_lots, ids[:seized], strict=True))
        sold = seized + self.btc_sales
        m.btc_sale_events.extend(ids[seized:sold])
        for host, event_id in zip(self.lease_hosts, ids[sold:], strict=True):
            m.lost_revenue_event[host] = event_id


def _seize_lots(m, t: int, loan_rows: np.ndarray, later: _EventsOfDefault, pledged=None) -> None:
    """Secured lenders of ``loan_rows`` seize pledged GPU units at their marks
    (:meth:`~abm.finance.instruments.LoanBook.seize_lots`); one seizure event per seized lot, child
    of the default (in ``later``), which also becomes the seized lot's origin. ``pledged``:
    ``m.lots.pledged_lots(loan_rows)`` when the caller has it."""
    seized_rows, lenders, borrowers, amounts, units_taken, prices = m.loans.seize_lots(
        loan_rows, m.lots, m.mark_table(), m.lender_mark_row, t, pledged
    )
    if seized_rows:
        book_seizures(m, lenders, amounts)  # carried at the value the claims fell by
        later.extend("seizure", lenders, borrowers, amounts, units=units_taken, prices=prices)
        later.seized_lots.extend(seized_rows)


def _sell_btc_collateral(m, t: int, rows: np.ndarray, later: _EventsOfDefault) -> None:
    loans = m.loans
    btc = loans.collateral_btc[rows].copy()
    borrower = int(loans.borrower[rows[0]])
    # the collateral is sold for the borrower's estate, proceeds go first to the secured lender
    m.acct.btc[borrower] += btc.sum()
    loans.collateral_btc[rows] = 0.0
    price = sell_btc(m.crypto, m.acct, np.array([borrower]), np.array([btc.sum()]))
    for k, loan in enumerate(rows):
        proceeds = btc[k] * price
        pay = min(proceeds, float(loans.principal_usd[loan]))
        m.acct.transfer(borrower, int(loans.lender[loan]), pay)
        loans.principal_usd[loan] -= pay
        # a ``btc_liquidation`` event of the lender, child of the default (in ``later``)
        later.extend(
            "btc_liquidation", [int(loans.lender[loan])], [borrower], [proceeds], prices=[price]
        )
        later.btc_sales += 1


def _end_contracts_and_leases(m, b: int, t: int, later: _EventsOfDefault) -> None:
    ct, ls = m.contracts, m.leases
    provided = ct.rows_of_provider(b)  # book indexes, not a scan of every contract and lease
    ct.active[provided] = False
    ct.prepaid_usd[provided] = 0.0  # customers lose prepayments
    as_tenant = ls.rows_of_tenant(b)
    as_tenant = as_tenant[ls.active[as_tenant]]
    if not m.cfg["channels"]["counterparty"]:
        ls.tenant[as_tenant] = -1  # channel off: an outside tenant takes the lease over and pays
        as_tenant = as_tenant[:0]
    if len(as_tenant):
        ls.active[as_tenant] = False
        hosts = ls.host[as_tenant].tolist()
        lost_usd = (ls.mw[as_tenant] * 1000.0 * ls.rate_usd_per_kw_month[as_tenant]).tolist()
        host_active = m.status[np.maximum(ls.host[as_tenant], 0)].tolist()
        # a terminated lease costs an active host its rent: a ``lease_terminated`` event of the
        # host, child of the default (in ``later``), becomes its lost-revenue event
        hit = [
            k
            for k, (host, status) in enumerate(zip(hosts, host_active, strict=True))
            if host >= 0 and status == ACTIVE
        ]
        if hit:
            hit_hosts = [hosts[k] for k in hit]
            m.lost_revenue_month[hit_hosts] = t
            later.extend(
                "lease_terminated",
                hit_hosts,
                [b] * len(hit),
                [lost_usd[k] for k in hit],
                cause="counterparty",
            )
            later.lease_hosts.extend(hit_hosts)
    if m.type[b] == MINER:
        # the site (and its leases) is sold to an outside infrastructure buyer
        price = m.cfg["miners"]["site_recovery_share"] * m.site_value_usd[b]
        m.acct.from_sector("infrastructure_buyers", b, price)
        m.site_value_usd[b] = 0.0
        m.hashrate_eh[b] = m.mining_mw[b] = m.hosting_mw[b] = m.gpu_mw[b] = 0.0
        # (a scan of the lease and conversion books, written only where the miner appears)
        ls.host[np.flatnonzero(ls.host == b)] = -1
        m.conversions.active[np.flatnonzero(m.conversions.miner == b)] = False


def distribute_all_estates(m, t: int) -> None:
    estates = sorted(m.open_estates)
    if not estates:
        return
    # the lots of every estate, found in one pass over the lots (ascending rows per estate, as
    # ``flatnonzero(owner == b)``): distributing one estate changes no lot of another estate
    owner = m.lots.owner
    wanted = np.zeros(m.n + 1, dtype=bool)  # owner -1 (none) reads the last slot
    wanted[estates] = True
    rows = np.flatnonzero(wanted[owner])
    rows = rows[np.argsort(owner[rows], kind="stable")]
    owners = owner[rows]
    bounds = (
        np.searchsorted(owners, estates, side="left"),
        np.searchsorted(owners, estates, "right"),
    )
    acting = _estates_that_act(m, t, np.asarray(estates, dtype=np.int64), rows, owners)
    for b, lo, hi, act in zip(
        estates, bounds[0].tolist(), bounds[1].tolist(), acting.tolist(), strict=True
    ):
        if act:
            distribute_estate(m, int(b), t, rows[lo:hi])


def _estates_that_act(
    m, t: int, estates: np.ndarray, rows: np.ndarray, owners: np.ndarray
) -> np.ndarray:
    """Mask aligned with ``estates`` (ascending agent ids; ``rows``: their lot rows, ``owners``
    the rows' owners): False where :func:`distribute_estate` would change nothing this month, so
    the call is skipped. Such an estate has open claims, no BTC, no cash or nothing owed, GPUs
    with a value left, and is inside its work-out period. Distributing one estate pays only
    lenders, so a lender's estate is always called (its cash may grow within the loop)."""
    loans = m.loans
    claim = loans.status == LOAN_DEFAULTED
    n_claims = np.bincount(loans.borrower[claim], minlength=m.n)[estates]
    owed = np.bincount(loans.borrower[claim & (loans.principal_usd > 0)], minlength=m.n)[estates]
    lots = m.lots
    valuable = (lots.units[rows] > 0) & (m.compute.fundamental_value[lots.gen[rows]] > 0)
    n_valuable = np.bincount(owners[valuable], minlength=m.n)[estates]
    idle = (
        (n_claims > 0)
        & (m.acct.btc[estates] <= 0)
        & ((m.acct.cash[estates] <= 0) | (owed == 0))
        & (n_valuable > 0)
        & (t - m.default_month[estates] < m.cfg["credit"]["workout_months"])
        & (m.type[estates] != LENDER)
    )
    return ~idle


def distribute_estate(m, b: int, t: int, lots_owned: np.ndarray | None = None) -> None:
    """Pay the estate's cash to its remaining claims by seniority; close it when nothing is left.
    ``lots_owned``: ``flatnonzero(m.lots.owner == b)`` when the caller has it."""
    loans, acct = m.loans, m.acct
    claims = loans.rows_of_borrower(b)
    claims = claims[loans.status[claims] == LOAN_DEFAULTED]
    if len(claims) == 0:
        m.open_estates.discard(b)
        return
    if acct.btc[b] > 0:
        sell_btc(m.crypto, acct, np.array([b]), np.array([acct.btc[b]]))
    cash = max(float(acct.cash[b]), 0.0)
    # no cash, or nothing owed on any claim (claims paid in full stay open until the estate
    # closes): every class below would be skipped, so the classes are not formed
    if cash > 0 and not np.count_nonzero(loans.principal_usd[claims] > 0):
        cash = 0.0
    seniorities = loans.seniority[claims]
    # each seniority class once, senior first (np.unique's order); no cash: no payments
    classes = sorted(set(seniorities.tolist())) if cash > 0 else ()
    for seniority in classes:
        rows = claims if len(classes) == 1 else claims[seniorities == seniority]
        owed = loans.principal_usd[rows]
        total = float(owed.sum())
        if total <= 0 or cash <= 0:
            continue
        pay = owed * min(1.0, cash / total)
        _pay_lenders(acct.cash, b, loans.lender[rows], pay)
        loans.principal_usd[rows] -= pay
        cash -= float(pay.sum())
    lots_left = np.flatnonzero(m.lots.owner == b) if lots_owned is None else lots_owned
    lots_left = lots_left[m.lots.units[lots_left] > 0]
    if (
        len(lots_left) == 0
        or not np.count_nonzero(m.compute.fundamental_value[m.lots.gen[lots_left]] > 0)  # worthless
        or t - m.default_month[b] >= m.cfg["credit"]["workout_months"]
    ):
        for loan in claims:
            write_off(m, t, int(loan))
        m.open_estates.discard(b)
        # GPUs nobody bought by the end of the work-out are abandoned (scrapped): a closed estate
        # has no creditors left to sell them for. Their value is part of the claims just written
        # off (the lenders carried it in the estate's expected recovery until now). (No lots left:
        # nothing to retire, and retire_units would change nothing.)
        if len(lots_left):
            retire_units(m, lots_left, m.lots.units[lots_left])


def _pay_lenders(cash: np.ndarray, b: int, lenders: np.ndarray, pay: np.ndarray) -> None:
    """``acct.transfer(np.full(len(lenders), b), lenders, pay)`` for a few payments, in Python:
    the same float64 operations in the same order (every payment out of ``b``'s cash, then into
    each lender's, as ``np.subtract.at`` and ``np.add.at`` do) without their per-call cost."""
    amounts = pay.tolist()
    for amount in amounts:
        cash[b] -= amount
    for lender, amount in zip(lenders.tolist(), amounts, strict=True):
        cash[lender] += amount


def write_off(m, t: int, loan: int) -> None:
    """Write loan ``loan`` off (:meth:`~abm.finance.instruments.LoanBook.write_off`): its lender
    records the loss and a ``write_off`` event, child of the borrower's default, is logged."""
    loans = m.loans
    lender = int(loans.lender[loan])
    amount = loans.write_off(loan)
    if amount > 0:
        record_loss(m, lender, amount)
        m.events.add(
            t,
            "write_off",
            lender,
            counterparty=int(loans.borrower[loan]),
            parents=[int(m.default_event[loans.borrower[loan]])],
            amount=amount,
        )
