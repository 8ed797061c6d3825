"""The Mesa model: builds the world from a scenario and runs the monthly schedule of DESIGN.md section 3.

One step is one month:

 1. shocks       regime, BTC return, AI-demand shock, generation releases, base rate
 2. markets      compute rents and utilisation; BTC price; hashprice; fundamental values
 3. operations   revenues, power and site costs, leases, mining, contracts, scrapping
 4. debt service interest and amortisation; shortfalls -> BTC sales (one clearing), then arrears
 5-9. rounds     tests -> lender response -> resolution -> secondary market -> marks,
                 repeated until a round brings no new default and no trade (or max rounds)
10. lenders      capital, failures, clearing of the lender funding network (Eisenberg-Noe)
11. investment   fleet expansion, conversions, new loans at current appetite
12. collect      time series row, agent panel row, events
"""

from __future__ import annotations

import mesa
import networkx as nx
import numpy as np
from mesa.discrete_space import Network

from abm import network as netmod
from abm import phases, world
from abm.accounts import Accounts
from abm.agents import (
    BUYER,
    LENDER,
    MINER,
    NEOCLOUD,
    TYPE_NAMES,
    Lender,
    Miner,
    Neocloud,
    SecondaryBuyer,
)
from abm.agents.base import ACTIVE
from abm.config import load_scenario, month_index, month_label, release_months
from abm.events import EventLog
from abm.finance.instruments import (
    ACTIVE as LOAN_ACTIVE,
)
from abm.finance.instruments import (
    BTC_LOAN,
    GPU_TERM,
    INTERBANK,
    ContractBook,
    ConversionBook,
    LeaseBook,
    LoanBook,
    LotBook,
)
from abm.finance.instruments import (
    CLOSED as LOAN_CLOSED,
)
from abm.finance.instruments import (
    DEFAULTED as LOAN_DEFAULTED,
)
from abm.markets.compute import ComputeMarket
from abm.markets.crypto import CryptoMarket
from abm.markets.shocks import Shocks

AGENT_CLASSES = {MINER: Miner, NEOCLOUD: Neocloud, LENDER: Lender, BUYER: SecondaryBuyer}


class AIComputeCreditModel(mesa.Model):
    """Credit contagion in AI-compute infrastructure.

    Parameters
    ----------
    config:
        A validated scenario (``abm.load_scenario``); default: the packaged ``baseline``.
    rng:
        Seed or ``numpy.random.Generator``; all randomness flows from it (Mesa's ``Model(rng=...)``).
    months:
        Overrides ``run.months``.
    """

    def __init__(self, config: dict | None = None, rng=None, months: int | None = None) -> None:
        super().__init__(rng=rng)
        # macro shocks (regime, BTC, AI demand) draw from their own stream, derived from the seed, so
        # that variants of a scenario (channels off, clearing mode, policies) face the same shock
        # path: common random numbers for comparisons. Agent-level draws use self.rng.
        self.market_rng = np.random.default_rng(int(self.rng.integers(2**63)))
        self.cfg = cfg = config if config is not None else load_scenario("baseline")
        self.start = cfg["run"]["start"]
        self.months = int(months if months is not None else cfg["run"]["months"])
        self.month = 0
        gens = cfg["generations"]
        self.gen_names = list(gens)
        self.G = len(self.gen_names)
        self.perf = np.array([gens[g]["perf"] for g in self.gen_names])
        self.kw = np.array([gens[g]["kw_per_gpu"] for g in self.gen_names])
        self.liquid = np.array([gens[g]["liquid_cooling"] for g in self.gen_names])
        self.list_price = np.array([gens[g]["list_price_usd"] for g in self.gen_names])
        self.release_month = release_months(cfg)
        self.base_rate = cfg["credit"]["base_rate_start"]

        # agents and per-agent state
        world.build_agent_table(self)
        n = self.n
        self.status = np.full(n, ACTIVE, dtype=np.int64)
        self.acct = Accounts(n)
        for name in (
            "hashrate_eh",
            "mining_mw",
            "hosting_mw",
            "site_value_usd",
            "sga_usd",
            "sga_share",
            "outside_funding_usd",
            "appetite",
            "capital_ratio_start",
            "written_off_usd",
            "lost_revenue_usd",
            "budget_left",
            "mw_left",
            "contracted_share",
            "ig_share",
        ):
            setattr(self, name, np.zeros(n))
        self.appetite[self.lender_idx] = 1.0
        self.default_event = np.full(n, -1, dtype=np.int64)
        self.lost_revenue_event = np.full(n, -1, dtype=np.int64)
        self.lost_revenue_month = np.full(n, -10_000, dtype=np.int64)
        self.ebitda_hist = np.zeros((n, 12))
        self.service_hist = np.zeros((n, 12))
        self.hist_months = 0
        self.lots, self.loans = LotBook(256), LoanBook(256)
        self.contracts, self.leases, self.conversions = (
            ContractBook(64),
            LeaseBook(64),
            ConversionBook(16),
        )
        self.lot_origin_event = {}  # lot row -> seizure event id
        self.buyer_lots = {}  # (buyer, generation, exported) -> the buyer's lot row for bought units
        # each borrower's open GPU-loan tranche, and the lot of its latest generation bought under it
        self.tranche_row = np.full(n, -1, dtype=np.int64)
        self.tranche_lot = np.full(n, -1, dtype=np.int64)
        self.tranche_lot_gen = np.full(n, -1, dtype=np.int64)
        # each provider's open customer contract per grade (0 non-IG, 1 IG) and when it opened
        self.contract_row = np.full((n, 2), -1, dtype=np.int64)
        self.contract_opened = np.full((n, 2), -10_000, dtype=np.int64)
        self.default_month = np.full(n, -1, dtype=np.int64)
        self.open_estates: set[int] = (
            set()
        )  # defaulted borrowers with claims still being worked out
        self.btc_sale_events: list[int] = []
        # borrower -> [(month, event id)] of the margin calls and refused rollovers that drained
        # its cash: the parents of a later payment default (debt.py::_cash_drains)
        self.drain_events: dict[int, list[tuple[int, int]]] = {}
        self.outside_funder_losses_usd = 0.0
        self.unmet_hosting_mw = 0.0
        self.credit_supply_usd = 0.0
        self.monthly_opex_usd = np.zeros(n)
        self.monthly_outflow_usd = np.zeros(n)

        # markets
        self.compute = ComputeMarket(cfg["compute"], self.perf, self.kw, self.release_month)
        self.crypto = CryptoMarket(
            cfg["crypto"], month_index(cfg["crypto"]["halving"], self.start), self.market_rng
        )
        self.crypto.depth_channel = 1.0 if cfg["channels"]["margin_calls"] else 0.0
        self.shocks = Shocks(cfg["shocks"], self.start, self.market_rng)
        self.compute.clear(1.0, 1.0 / cfg["compute"]["utilisation_ref"])
        self.compute.update_fundamentals(0)
        index = self.compute.fundamental_value * (1.0 - cfg["compute"]["calm_market_discount"])
        self.index_history = [index]  # market marks month by month (appraisals average them)
        self.mark_market = index.copy()
        self.mark_appraisal = index.copy()
        self.last_trade_price = np.full(self.G, np.nan)
        self.last_trade_month = np.full(self.G, -10_000, dtype=np.int64)
        self.last_trade_weight = np.zeros(self.G)
        self.last_trade_events: list[list[int]] = [[] for _ in range(self.G)]
        self.last_trade_sellers: list[set] = [set() for _ in range(self.G)]

        # balance sheets and the lending network
        load = np.zeros(n)
        world.build_neoclouds(self, load)
        world.build_contracts(self)
        world.build_miners(self, load)
        world.build_leases(self)
        world.build_miner_debt(self, load)
        world.build_buyers(self)
        world.initial_cash_for_borrowers(self)
        world.build_lender_funding(self, load)
        self.primary_lender = netmod.primary_lenders(self)
        self.initial_lending_usd = float(
            self.loans.principal_usd[self.loans.kind != INTERBANK].sum()
        )
        self.capital_ratio_start[self.lender_idx] = self.lender_equity() / np.maximum(
            self.lender_assets(), 1.0
        )
        demand0 = self.in_service_perf_units() * cfg["compute"]["utilisation_ref"]
        self.demand_base_perf_units = demand0
        self.log_demand_level = 0.0
        self.demand_shock = 0.0
        self.compute.clear(demand0, self.in_service_perf_units())
        self.graph = netmod.build_graph(self)
        self.grid = Network(self.graph, random=self.random)
        self.agent_objects = []
        for i in range(n):
            cls = AGENT_CLASSES[int(self.type[i])]
            self.agent_objects.append(cls(self, i, self.grid._cells[i]))
        self.agent_ids = np.array([a.unique_id for a in self.agent_objects], dtype=np.int64)
        # AgentSets by type (Mesa 3): e.g. model.neoclouds.select(lambda a: a.status == "active")
        self.miners = self.agents.select(agent_type=Miner)
        self.neoclouds = self.agents.select(agent_type=Neocloud)
        self.lenders = self.agents.select(agent_type=Lender)
        self.buyers = self.agents.select(agent_type=SecondaryBuyer)
        self.events = EventLog(self.agent_ids, [TYPE_NAMES[t] for t in self.type])

        # accounting baselines and output accumulators
        self.initial_cash_usd = float(self.acct.cash.sum())
        self.initial_btc = self.total_btc()
        self.initial_gpu_units = int(self.lots.units.sum())
        self.gpu_delivered = 0
        self.gpu_scrapped = 0
        self.fire_sale_units = 0
        self.lender_losses_usd = 0.0
        self.loss_history: list[float] = []
        phases.environment.reset_month(self)
        self.defaults = {"miner": 0, "neocloud": 0, "lender": 0}
        self.timeseries_rows: list[dict] = []
        self.panel_rows: list[np.ndarray] = []
        self.cascade_rounds_used = 0
        self.running = True
        sheets = self.balance_sheets()
        self.start_snapshot = {
            "lender": self.loans.lender.copy(),
            "borrower": self.loans.borrower.copy(),
            "principal_usd": self.loans.principal_usd.copy(),
            "equity_usd": sheets["equity"].copy(),
            "assets_usd": sheets["assets"].copy(),
        }
        self.datacollector = mesa.DataCollector(
            model_reporters=phases.collect.model_reporters(self)
        )

    # ------------------------------------------------------------------ the monthly schedule
    def step(self) -> None:
        self.month = t = self.steps - 1
        phases.environment.shocks_and_markets(self, t)  # 1-2
        phases.operations.run(self, t)  # 3
        phases.debt.service(self, t)  # 4
        for r in range(self.cfg["run"]["max_cascade_rounds"]):  # 5-9
            new_defaults = phases.debt.tests_and_responses(self, t, r)
            traded = phases.market.secondary_round(self, t, r)
            phases.market.update_marks(self, t)
            phases.debt.settle_arrears(self)
            new_defaults |= phases.debt.unpaid_suppliers(self, t)
            self.cascade_rounds_used = r + 1
            if not new_defaults and not traded:
                break
        lender_sheet = phases.lenders.run(self, t)  # 10
        phases.investment.run(self, t, lender_sheet)  # 11
        phases.collect.collect(self, t)  # 12
        self.datacollector.collect(self)
        if self.steps >= self.months:
            self.running = False

    def run(self) -> None:
        while self.running:
            self.step()

    # ------------------------------------------------------------------ valuation helpers
    @property
    def date(self) -> str:
        return month_label(self.month, self.start)

    def total_btc(self) -> float:
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
        """Rows of the lots earning rent (ascending): units owned by an active miner, neocloud or
        buyer and used in this market (not exported)."""
        lots = self.lots
        earning_owner = (self.status == ACTIVE) & (self.type != LENDER)  # per agent, then per lot
        return np.flatnonzero(earning_owner.take(lots.owner) & (lots.units > 0) & ~lots.exported)

    def in_service_perf_units(self) -> float:
        """Performance units (GPUs x relative performance) of the lots earning rent."""
        live, lots = self.in_service_lots(), self.lots
        return float((lots.units.take(live) * self.perf.take(lots.gen.take(live))).sum())

    def it_kw_of(self, i: int) -> float:
        mine = self.lots.owner == i
        return float((self.lots.units[mine] * self.kw[self.lots.gen[mine]]).sum())

    def gpu_units_by_agent(self) -> np.ndarray:
        return np.bincount(self.lots.owner, weights=self.lots.units, minlength=self.n)

    def gpu_value_by_agent(self) -> np.ndarray:
        value = self.lots.units * self.mark_market[self.lots.gen]
        return np.bincount(self.lots.owner, weights=value, minlength=self.n)

    def loan_rates(self) -> np.ndarray:
        loans = self.loans
        return np.where(loans.floating, self.base_rate + loans.spread, loans.fixed_rate)

    def collateral_value(self) -> np.ndarray:
        """USD value of each loan's collateral at its lender's marks (GPU lots, or BTC)."""
        loans, lots = self.loans, self.lots
        pledged, loan, key = self._pledged_lots()
        # each lot's mark picked from one table [appraisal marks, market marks] by its lender's
        # policy: the same values as np.where(policy, market[gen], appraisal[gen])
        table = np.concatenate((self.mark_appraisal, self.mark_market))
        value = np.bincount(loan, weights=lots.units[pledged] * table[key], minlength=loans.n)
        value = value.astype(np.float64, copy=False)  # int64 when no lot is pledged at all
        btc = self._btc_loan_rows()
        value[btc] = loans.collateral_btc[btc] * self.crypto.price_usd
        return value

    def _pledged_lots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(``flatnonzero(lots.loan >= 0)``, their loans, their keys ``gen + G * market_policy[lender
        of the loan]``), read-only. A lot is pledged only when it is added and can only be released
        afterwards (:class:`~abm.finance.instruments.LotBook`); its generation, its loan's lender and
        the lender's policy never change. So the pledged rows of the last call, plus the rows added
        since, still pledged now, are all the pledged rows (ascending), with the same keys."""
        lots = self.lots
        cached = getattr(self, "_pledged_cache", None)
        if cached is None:
            seen, rows, keys = 0, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        else:
            seen, rows, keys = cached
        if lots.n > seen:
            new = seen + np.flatnonzero(lots.loan[seen:] >= 0)
            new_keys = (
                lots.gen[new] + self.G * self.market_policy[self.loans.lender[lots.loan[new]]]
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

    def _btc_loan_rows(self) -> np.ndarray:
        """``flatnonzero(loans.kind == BTC_LOAN)`` (see :meth:`loan_rows_of_kind`)."""
        return self.loan_rows_of_kind(BTC_LOAN)

    def loan_rows_of_kind(self, kind: int) -> np.ndarray:
        """``flatnonzero(loans.kind == kind)``, read-only. A loan's kind never changes and rows are
        only appended, so the rows found for the first ``n`` loans stay valid: only new rows are
        scanned."""
        loans = self.loans
        caches = self.__dict__.setdefault("_kind_rows_cache", {})
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
        marks = np.where(
            self.market_policy[loans.lender[loan_rows[pos]]],
            self.mark_market[gen],
            self.mark_appraisal[gen],
        )
        value = np.bincount(pos, weights=lots.units[rows] * marks, minlength=len(loan_rows))
        # without any pledged lot, bincount returns int64 and would cut BTC values to whole USD
        value = value.astype(np.float64, copy=False)
        btc = loans.kind[loan_rows] == BTC_LOAN
        value[btc] = loans.collateral_btc[loan_rows[btc]] * self.crypto.price_usd
        return value

    def claims_value(self) -> np.ndarray:
        """Lenders' carrying value of each loan: principal if performing, expected recovery if defaulted."""
        loans = self.loans
        value = np.where(loans.status == LOAN_ACTIVE, loans.principal_usd, 0.0)
        dflt = loans.status == LOAN_DEFAULTED
        value[dflt] = loans.principal_usd[dflt] * self.cfg["credit"]["recovery_estimate"]
        return value

    def claims_and_inventory(self) -> tuple[np.ndarray, np.ndarray]:
        """Per agent (USD): carrying value of the loans it holds (:meth:`claims_value`), and its GPUs
        at market marks (:meth:`gpu_value_by_agent`). Both balance-sheet views use these parts."""
        claims = np.bincount(self.loans.lender, weights=self.claims_value(), minlength=self.n)
        return claims, self.gpu_value_by_agent()

    def lender_assets(self, parts: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Total assets of every lender (USD), lender rows only. ``parts``: the current
        :meth:`claims_and_inventory`, when the caller has them."""
        claims, inventory = self.claims_and_inventory() if parts is None else parts
        return (self.acct.cash + claims + inventory)[self.lender_idx]

    def lender_liabilities(self) -> np.ndarray:
        loans = self.loans
        interbank = self.loan_rows_of_kind(INTERBANK)  # the only loans lenders owe
        owed = np.where(loans.status[interbank] != LOAN_CLOSED, loans.principal_usd[interbank], 0.0)
        owed_by = np.bincount(loans.borrower[interbank], weights=owed, minlength=self.n)
        return (self.outside_funding_usd + owed_by)[self.lender_idx]

    def lender_equity(self) -> np.ndarray:
        return self.lender_assets() - self.lender_liabilities()

    def lender_assets_and_equity(
        self, parts: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(assets, equity) of every lender (USD, lender rows), computing the assets only once.
        ``parts``: the current :meth:`claims_and_inventory`, when the caller has them."""
        assets = self.lender_assets(parts)
        return assets, assets - self.lender_liabilities()

    def lender_equity_of(self, lenders: np.ndarray) -> np.ndarray:
        eq = np.zeros(self.n)
        eq[self.lender_idx] = self.lender_equity()
        return eq[lenders]

    def lender_assets_of(self, lenders: np.ndarray) -> np.ndarray:
        assets = np.zeros(self.n)
        assets[self.lender_idx] = self.lender_assets()
        return assets[lenders]

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
        )
        liabilities = debt + deferred + self.outside_funding_usd
        return {
            "assets": assets,
            "liabilities": liabilities,
            "equity": assets - liabilities,
            "debt": debt,
            "btc": btc,
        }

    def balance_sheet(self, i: int) -> dict:
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
        cached = getattr(self, "_coverage_cache", None)
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

    def lending_graph(self) -> nx.MultiDiGraph:
        """The lending network with current attributes (for export and drawing)."""
        return netmod.refresh_graph(self)
