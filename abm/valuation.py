"""The model's valuations: what each loan's collateral, each agent's GPUs and claims, and each
balance sheet are worth at the current marks, and the trailing coverage ratios.

:class:`Valuation` is a base class of :class:`abm.model.AIComputeCreditModel`: its methods read the
model's books (``loans``, ``lots``, ``contracts``, ``leases``), accounts (``acct``), marks
(``mark_market``, ``mark_appraisal_by_kind``) and per-agent arrays, and write nothing but their own caches.
Rules that *act* on these values (covenant tests, rollovers, lender failures) live in the phases and
the agent modules.

(Over 450 lines because the claims cache, :meth:`Valuation.claims_parts`, sits beside the values it
serves: its key must name every input they read, and a reader checks the two side by side.)
"""

from __future__ import annotations

import numpy as np

from abm.agents.base import ACTIVE, LENDER
from abm.finance import loan_marks
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import BTC_LOAN, GPU_TERM, INTERBANK
from abm.finance.instruments import CLOSED as LOAN_CLOSED
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED


class Valuation:
    """Valuation views of the model's state (USD at current marks; per-agent arrays of length
    ``n``, per-loan arrays of length ``loans.n``, lender arrays in ``lender_idx`` order)."""

    def init_valuation_caches(self) -> None:
        """Create the (empty) caches of the valuation views; the model's constructor calls it."""
        self._pledged_cache = None  # (lots seen, pledged lot rows, their mark keys)
        self._kind_rows_cache: dict = {}  # loan kind -> (loans seen, rows of that kind)
        self._coverage_cache = None  # (ebitda history, service history, months, coverage)
        # copies of the inputs of the claims and GPU values, and the parts computed from them
        # (claims_parts)
        self._claims_cache: dict | None = None

    def total_btc(self) -> float:
        """All BTC held by agents: free BTC plus BTC pledged to loans (BTC)."""
        return float(self.acct.btc.sum() + self.loans.collateral_btc.sum())

    def free_hosting_mw(self) -> np.ndarray:
        """AI-hosting MW built by each miner and not leased out."""
        ls = self.leases
        leased = np.bincount(
            np.maximum(ls.host, 0), weights=ls.mw * ls.active * (ls.host >= 0), minlength=self.n
        )
        return np.maximum(self.hosting_mw - leased, 0.0)

    def mining_margin_per_mw_month(self) -> np.ndarray:
        """Per agent: mining revenue less power and site costs per MW-month (USD) at current BTC
        economics and each miner's own fleet efficiency (EH/s per MW)."""
        mc = self.cfg["miners"]
        with np.errstate(divide="ignore", invalid="ignore"):
            eh_per_mw = np.where(
                self.mining_mw > 0,
                self.hashrate_eh / self.mining_mw,
                1.0 / mc["efficiency_j_per_th"],
            )
        revenue = self.crypto.btc_mined_per_eh_month() * self.crypto.price_usd * eh_per_mw
        power = 1000.0 * self.cfg["compute"]["hours_per_month"] * mc["power_price_usd_per_kwh"]
        return revenue - power - mc["site_opex_usd_per_mw_month"]

    def in_service_lots(self) -> np.ndarray:
        """Rows of the lots earning rent (ascending): units owned by an active agent or by a lender
        of any status (a lender's seized GPUs are leased out through a servicer, also by a failed
        lender's administrator) and used in this market (not exported)."""
        lots = self.lots
        earning_owner = (self.status == ACTIVE) | (self.type == LENDER)  # per agent, then per lot
        return np.flatnonzero(earning_owner.take(lots.owner) & (lots.units > 0) & ~lots.exported)

    def miner_hashrate_eh(self) -> np.ndarray:
        """Per agent (EH/s): the un-lotted base fleet ``hashrate_eh`` plus the TH/s of the agent's
        in-service ASIC lots (equipment classes, abm/markets/asic.py) / 1e6."""
        live, lots = self.in_service_lots(), self.lots
        th = lots.units.take(live) * self.th_per_unit.take(lots.gen.take(live))
        return (
            self.hashrate_eh
            + np.bincount(lots.owner.take(live), weights=th, minlength=self.n) / 1e6
        )

    def in_service_perf_units(self) -> float:
        """Performance units (GPUs x relative performance) of the lots earning rent."""
        live, lots = self.in_service_lots(), self.lots
        return float((lots.units.take(live) * self.perf.take(lots.gen.take(live))).sum())

    def it_kw_of(self, i: int) -> float:
        """IT power of the GPUs agent ``i`` owns (kW)."""
        mine = self.lots.owner == i
        return float((self.lots.units[mine] * self.kw[self.lots.gen[mine]]).sum())

    def gpu_units_by_agent(self) -> np.ndarray:
        """GPUs owned per agent (float array of length ``n``)."""
        return np.bincount(self.lots.owner, weights=self.lots.units, minlength=self.n)

    def gpu_value_by_agent(self) -> np.ndarray:
        """GPUs owned per agent at market marks (USD, length ``n``)."""
        value = self.lots.units * self.mark_market[self.lots.gen]
        return np.bincount(self.lots.owner, weights=value, minlength=self.n)

    def mark_table(self) -> np.ndarray:
        """(K + 1, G) USD per GPU: rows 0..K-1 the appraisal marks of each lender kind
        (``mark_appraisal_by_kind``, ``lender_kind_names`` order), row K the market marks. Agent
        ``i`` marks generation ``g`` at ``mark_table()[lender_mark_row[i], g]``."""
        return np.concatenate((self.mark_appraisal_by_kind, self.mark_market[None, :]))

    def lender_marks_usd(self, lenders, gen):
        """Each lender's own mark of generation ``gen`` (USD per GPU): its kind's appraisal mark,
        or the market mark if it marks to market. ``lenders`` and ``gen`` (agent rows, generation
        indices; arrays or scalars) broadcast together."""
        return self.mark_table()[self.lender_mark_row[lenders], gen]

    def collateral_value(self) -> np.ndarray:
        """USD value of each loan's collateral at its lender's marks (GPU lots, or BTC)."""
        loans, lots = self.loans, self.lots
        pledged, loan, key = self._pledged_lots()
        # each lot's mark picked from the flattened mark table by its lender's row: the same
        # values as mark_table()[lender_mark_row[lender], gen]
        table = self.mark_table().ravel()
        value = np.bincount(loan, weights=lots.units[pledged] * table[key], minlength=loans.n)
        value = value.astype(np.float64, copy=False)  # int64 when no lot is pledged at all
        btc = self._btc_loan_rows()
        value[btc] = loans.collateral_btc[btc] * self.crypto.price_usd
        return value

    def _pledged_lots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(``flatnonzero(lots.loan >= 0)``, their loans, their keys ``gen + G * lender_mark_row[lender
        of the loan]``), read-only. A lot is pledged only when it is added and can only be released
        afterwards (:class:`~abm.finance.instruments.LotBook`); its generation and the lender's mark
        row (kind and policy) never change, and its loan's lender changes only by a loan sale, which
        calls :meth:`forget_pledged_keys`. So the pledged rows of the last call, plus the rows added
        since, still pledged now, are all the pledged rows (ascending), with the same keys."""
        lots = self.lots
        cached = self._pledged_cache
        if cached is None:
            seen, rows, keys = 0, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        else:
            seen, rows, keys = cached
        if lots.n > seen:
            new = seen + np.flatnonzero(lots.loan[seen:] >= 0)
            new_keys = (
                lots.gen[new] + self.G * self.lender_mark_row[self.loans.lender[lots.loan[new]]]
            )
            rows = np.concatenate((rows, new))
            keys = np.concatenate((keys, new_keys))
        loan = lots.loan[rows]
        still = loan >= 0
        if not still.all():
            rows, keys, loan = rows[still], keys[still], loan[still]
        for a in (rows, keys, loan):
            a.flags.writeable = False
        self._pledged_cache = (lots.n, rows, keys)
        return rows, loan, keys

    def forget_pledged_keys(self) -> None:
        """Drop the cached pledged lots and their mark keys (:meth:`_pledged_lots`): loans changed
        lender (abm/finance/loan_sales.py), so their lots are now valued at the buyer's marks."""
        self._pledged_cache = None

    def _btc_loan_rows(self) -> np.ndarray:
        """``flatnonzero(loans.kind == BTC_LOAN)`` (see :meth:`loan_rows_of_kind`)."""
        return self.loan_rows_of_kind(BTC_LOAN)

    def loan_rows_of_kind(self, kind: int) -> np.ndarray:
        """``flatnonzero(loans.kind == kind)``, read-only. A loan's kind never changes and rows are
        only appended, so the rows found for the first ``n`` loans stay valid: only new rows are
        scanned."""
        loans = self.loans
        caches = self._kind_rows_cache
        cached = caches.get(kind)
        if cached is not None and cached[0] == loans.n:
            return cached[1]
        if cached is not None and cached[0] < loans.n:
            new = cached[0] + np.flatnonzero(loans.kind[cached[0] :] == kind)
            rows = np.concatenate((cached[1], new)) if len(new) else cached[1]
        else:
            rows = np.flatnonzero(loans.kind == kind)
        rows.flags.writeable = False
        caches[kind] = (loans.n, rows)
        return rows

    def collateral_value_of(self, loan_rows: np.ndarray) -> np.ndarray:
        """``collateral_value()[loan_rows]``, valuing only these loans' lots (the same sums, lot by
        lot in row order): for a few loans, without a pass over every lot."""
        loans, lots = self.loans, self.lots
        pos, rows = lots.pledged_lots(loan_rows)
        gen = lots.gen[rows]
        marks = self.lender_marks_usd(loans.lender[loan_rows[pos]], gen)
        value = np.bincount(pos, weights=lots.units[rows] * marks, minlength=len(loan_rows))
        # without any pledged lot, bincount returns int64 and would cut BTC values to whole USD
        value = value.astype(np.float64, copy=False)
        btc = loans.kind[loan_rows] == BTC_LOAN
        value[btc] = loans.collateral_btc[loan_rows[btc]] * self.crypto.price_usd
        return value

    def claims_value(self, gpu_value: np.ndarray | None = None) -> np.ndarray:
        """Lenders' carrying value of each loan (USD, per loan row): principal if performing, times
        its class's loan mark if its lender marks loans to market (abm/finance/loan_marks.py); if
        defaulted, its share of the estate's expected recovery (:meth:`estate_recoveries`); zero
        once closed or repaid. ``gpu_value``: :meth:`gpu_value_by_agent`, when the caller has it.
        Without ``gpu_value`` the result is read-only and comes from :meth:`claims_parts`."""
        if gpu_value is None:
            return self.claims_parts()[0]
        dflt = np.flatnonzero(self.loans.status == LOAN_DEFAULTED)
        return self._claims_value_at(gpu_value, dflt)

    def _claims_value_at(self, gpu_value: np.ndarray, dflt: np.ndarray) -> np.ndarray:
        """:meth:`claims_value` given the GPU values by agent and the defaulted loan rows."""
        loans = self.loans
        value = np.where(
            loans.status == LOAN_ACTIVE, loans.principal_usd * loan_marks.carrying_factor(self), 0.0
        )
        if len(dflt):
            value[dflt] = self.estate_recoveries(dflt, gpu_value)
        return value

    def _claims_inputs(self) -> dict[str, np.ndarray]:
        """The arrays :meth:`claims_value` and :meth:`gpu_value_by_agent` read in full, by name
        (the defaulted claims' own inputs: :meth:`_estate_inputs`)."""
        loans, lots, marks = self.loans, self.lots, self.loan_marks
        return {
            "mark": marks.mark,
            "mark_market": self.mark_market,
            "marks_to_market": marks.marks_to_market,
            "principal": loans.principal_usd,
            "units": lots.units,
            "status": loans.status,
            "lender": loans.lender,
            "owner": lots.owner,
            "gen": lots.gen,
            "kind": loans.kind,
        }

    def _estate_inputs(self, dflt: np.ndarray, gpu_value: np.ndarray) -> tuple:
        """Everything :meth:`estate_recoveries` reads for the defaulted loans ``dflt``: their
        principal, borrowers and seniorities, the estates' cash, BTC and GPU values, the BTC price
        and the workout cost (floats as their exact hex)."""
        loans = self.loans
        borrower = loans.borrower[dflt]
        arrays = (
            loans.principal_usd[dflt],
            borrower,
            loans.seniority[dflt],
            self.acct.cash[borrower],
            self.acct.btc[borrower],
            gpu_value[borrower],
        )
        scalars = (
            float(self.crypto.price_usd).hex(),
            float(self.cfg["credit"]["workout_cost_share"]).hex(),
        )
        return arrays, scalars

    def claims_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(:meth:`claims_value` per loan, :meth:`gpu_value_by_agent`, claims by holding agent),
        read-only, each computed once per state of its inputs. ``(claims, gpu values)`` are the
        ``parts`` of :meth:`lender_assets` and :meth:`balance_sheets`.

        The books and accounts are written in place by many rules, so the cache is keyed on the
        inputs themselves: copies of every array read (:meth:`_claims_inputs`), compared bit for
        bit with the current ones at each call (a comparison costs a fraction of the
        computation). Each part is reused while its own inputs are unchanged: the GPU values
        (lots, market marks, agents), the performing loans' values (loans, loan marks), the
        defaulted claims' recoveries (:meth:`_estate_inputs`), the claims by holder (all of
        these). Between the lender phase's balance sheets typically only lenders' cash moves,
        which none of them reads; from month to month the BTC price moves only the recoveries."""
        cache = self._claims_cache
        if cache is None or cache["n"] != self.n:
            cache = self._claims_cache = {"n": self.n, "inputs": {}}
        stored, current = cache["inputs"], self._claims_inputs()
        changed = {k for k, a in current.items() if k not in stored or not _same_bits(a, stored[k])}
        if not changed and "parts" in cache:
            gpu_value = cache["parts"][1]
            estate = self._estate_inputs(cache["dflt"], gpu_value)
            if _same_estates(estate, cache["estate"]):
                return cache["parts"]
        loans = self.loans
        if changed & {"units", "owner", "gen", "mark_market"} or "parts" not in cache:
            gpu_value = self.gpu_value_by_agent()
            gpu_value.flags.writeable = False
        else:
            gpu_value = cache["parts"][1]
        if changed & {"principal", "status", "lender", "kind", "mark", "marks_to_market"} or (
            "performing" not in cache
        ):
            performing = np.where(
                loans.status == LOAN_ACTIVE,
                loans.principal_usd * loan_marks.carrying_factor(self),
                0.0,
            )
            performing.flags.writeable = False
            cache["performing"] = performing
        if "status" in changed or "dflt" not in cache:
            cache["dflt"] = np.flatnonzero(loans.status == LOAN_DEFAULTED)
        dflt = cache["dflt"]
        estate = self._estate_inputs(dflt, gpu_value)
        if "recoveries" not in cache or not _same_estates(estate, cache["estate"]):
            cache["recoveries"] = self.estate_recoveries(dflt, gpu_value) if len(dflt) else None
            cache["estate"] = estate
        value = cache["performing"]
        if len(dflt):
            value = value.copy()
            value[dflt] = cache["recoveries"]
        claims = np.bincount(loans.lender, weights=value, minlength=self.n)
        for a in (value, claims):
            a.flags.writeable = False
        cache["parts"] = (value, gpu_value, claims)
        # only now (the parts are of these inputs) keep copies of the changed inputs, into the
        # old buffers when they fit
        for k in changed:
            old = stored.get(k)
            if old is not None and old.shape == current[k].shape and old.dtype == current[k].dtype:
                np.copyto(old, current[k])
            else:
                stored[k] = current[k].copy()
        return cache["parts"]

    def estate_recoveries(
        self, claims: np.ndarray, gpu_value: np.ndarray | None = None
    ) -> np.ndarray:
        """Expected recovery of each defaulted claim of ``claims`` (loan rows, USD, aligned): what
        its estate would pay it if it realised its assets at the current marks. An estate is worth
        its cash, its free BTC at the current price and its GPUs at market marks less
        ``credit.workout_cost_share`` (the costs of working them out); that value pays the estate's
        defaulted claims by seniority, pro rata within a class, as ``distribute_estate`` does.
        ``gpu_value``: :meth:`gpu_value_by_agent`, when the caller has it."""
        loans = self.loans
        if gpu_value is None:
            gpu_value = self.gpu_value_by_agent()
        cost = self.cfg["credit"]["workout_cost_share"]
        borrower = loans.borrower[claims]
        # the waterfall, vectorised over (estate, seniority class), classes in ascending key order
        # (estate, then seniority: senior first): a class gets what its estate has left after the
        # classes senior to it, shared pro rata to the claims
        owed = loans.principal_usd[claims]
        key = borrower * 4 + loans.seniority[claims]  # seniority classes are 0..2
        classes, of_class = np.unique(key, return_inverse=True)
        class_owed = np.bincount(of_class, weights=owed, minlength=len(classes))
        class_estate = classes // 4
        running = np.cumsum(class_owed)
        first = np.ones(len(classes), dtype=bool)
        first[1:] = class_estate[1:] != class_estate[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(classes)), 0))
        senior_owed = running - class_owed - (running[group_start] - class_owed[group_start])
        # each class's estate valued element by element (the same bits as valuing every agent)
        estate_value = (
            np.maximum(self.acct.cash[class_estate], 0.0)
            + np.maximum(self.acct.btc[class_estate], 0.0) * self.crypto.price_usd
            + gpu_value[class_estate] * (1.0 - cost)
        )
        left = np.maximum(estate_value - senior_owed, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(class_owed > 0, np.minimum(1.0, left / class_owed), 0.0)
        return owed * share[of_class]

    def claims_and_inventory(self) -> tuple[np.ndarray, np.ndarray]:
        """Per agent (USD): carrying value of the loans it holds (:meth:`claims_value`), and its GPUs
        at market marks (:meth:`gpu_value_by_agent`). Both balance-sheet views use these parts.
        Read-only; computed once per state of their inputs (:meth:`claims_parts`)."""
        _, gpu_value, claims = self.claims_parts()
        return claims, gpu_value

    def lender_assets(self, parts: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Total assets of every lender (USD), lender rows only. ``parts``: the current
        :meth:`claims_and_inventory`, when the caller has them."""
        claims, inventory = self.claims_and_inventory() if parts is None else parts
        return (self.acct.cash + claims + inventory + self.other_assets_usd)[self.lender_idx]

    def lender_liabilities(self) -> np.ndarray:
        """What every lender owes (USD, lender rows): outside funding plus open interbank loans."""
        loans = self.loans
        interbank = self.loan_rows_of_kind(INTERBANK)  # the only loans lenders owe
        owed = np.where(loans.status[interbank] != LOAN_CLOSED, loans.principal_usd[interbank], 0.0)
        owed_by = np.bincount(loans.borrower[interbank], weights=owed, minlength=self.n)
        return (self.outside_funding_usd + owed_by)[self.lender_idx]

    def lender_equity(self) -> np.ndarray:
        """Assets less liabilities of every lender (USD, lender rows)."""
        return self.lender_assets() - self.lender_liabilities()

    def lender_assets_and_equity(
        self, parts: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(assets, equity) of every lender (USD, lender rows), computing the assets only once.
        ``parts``: the current :meth:`claims_and_inventory`, when the caller has them."""
        assets = self.lender_assets(parts)
        return assets, assets - self.lender_liabilities()

    def balance_sheets(
        self, parts: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Assets, liabilities and equity of every agent at current marks (USD). ``parts``: the
        current :meth:`claims_and_inventory`, when the caller has them."""
        loans = self.loans
        claims, inventory = self.claims_and_inventory() if parts is None else parts
        open_ = loans.status != LOAN_CLOSED
        debt = np.bincount(loans.borrower, weights=loans.principal_usd * open_, minlength=self.n)
        # pledged BTC: only the loans with BTC collateral add to the sums (the others add zeros);
        # flatnonzero of the bool mask: the same rows as of the float column, several times faster
        pledged = np.flatnonzero(loans.collateral_btc != 0)
        btc = self.acct.btc + np.bincount(
            loans.borrower[pledged],
            weights=loans.collateral_btc[pledged] * open_[pledged],
            minlength=self.n,
        )
        deferred = np.bincount(
            self.contracts.provider,
            weights=self.contracts.prepaid_usd * self.contracts.active,
            minlength=self.n,
        )
        assets = (
            self.acct.cash + btc * self.crypto.price_usd + inventory + self.site_value_usd + claims
        ) + self.other_assets_usd
        if self.asic_orders.n:  # deposits on ASIC orders: prepayments to the vendor (asset)
            assets = assets + self.asic_deposits_usd
        liabilities = debt + deferred + self.outside_funding_usd
        return {
            "assets": assets,
            "liabilities": liabilities,
            "equity": assets - liabilities,
            "debt": debt,
            "btc": btc,
        }

    def balance_sheet(self, i: int) -> dict:
        """:meth:`balance_sheets` of agent ``i`` as floats (USD; ``btc`` in BTC)."""
        sheets = self.balance_sheets()
        return {k: float(v[i]) for k, v in sheets.items()}

    def coverage(self) -> np.ndarray:
        """Trailing (up to 12-month) EBITDA / debt service per agent; inf with no service or history.

        Read-only. Computed once per state of the histories: the phases replace ``ebitda_hist`` and
        ``service_hist`` by new arrays once a month (never write them in place afterwards), so the
        result is reused while both arrays and ``hist_months`` are the ones it was computed from."""
        k = min(self.hist_months, 12)
        if k < 3:
            return np.full(self.n, np.inf)
        cached = self._coverage_cache
        if (
            cached is not None
            and cached[0] is self.ebitda_hist
            and cached[1] is self.service_hist
            and cached[2] == self.hist_months
        ):
            return cached[3]
        ebitda = self.ebitda_hist[:, :k].sum(axis=1)
        service = self.service_hist[:, :k].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = np.where(service > 0, ebitda / service, np.inf)
        cov.flags.writeable = False
        self._coverage_cache = (self.ebitda_hist, self.service_hist, self.hist_months, cov)
        return cov

    def gpu_ltv(self) -> np.ndarray:
        """Per borrower: secured GPU debt / collateral value (nan without GPU loans)."""
        loans = self.loans
        gpu = np.flatnonzero((loans.kind == GPU_TERM) & (loans.status == LOAN_ACTIVE))
        borrower = loans.borrower[gpu]
        debt = np.bincount(borrower, weights=loans.principal_usd[gpu], minlength=self.n)
        value = np.bincount(borrower, weights=self.collateral_value()[gpu], minlength=self.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(debt > 0, debt / np.maximum(value, 1e-9), np.nan)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` have the same shape, dtype and bits (floats compared as integers:
    NaN equals itself, -0.0 differs from 0.0, so a match can never change a result)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        view = np.dtype(f"i{a.dtype.itemsize}")
        a, b = a.view(view), b.view(view)
    return bool(np.array_equal(a, b))


def _same_estates(a: tuple, b: tuple) -> bool:
    """True if two :meth:`Valuation._estate_inputs` are the same bits."""
    return a[1] == b[1] and all(map(_same_bits, a[0], b[0]))
