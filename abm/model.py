"""The Mesa model: builds the world from a scenario and runs the monthly schedule (docs/ARCHITECTURE.md).

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
import numpy as np
from mesa.discrete_space import Network

from abm import network as netmod
from abm import phases, policy, world
from abm.accounts import Accounts
from abm.agent_table import agent_table
from abm.agents import (
    BUYER,
    LENDER,
    MINER,
    NEOCLOUD,
    TYPE_NAMES,
    Lender,
    Miner,
    Neocloud,
    Populations,
    SecondaryBuyer,
)
from abm.agents.base import ACTIVE
from abm.config import load_scenario, month_index, month_label, release_months
from abm.counters import MonthCounters
from abm.events import EventLog
from abm.finance.funding import FundingState
from abm.finance.instruments import (
    INTERBANK,
    ContractBook,
    ConversionBook,
    LeaseBook,
    LoanBook,
    LotBook,
)
from abm.finance.site_assets import SiteAssets, capitalise_initial_sites
from abm.markets.asic import AsicEconomics, check_pinned_paths, generation_arrays
from abm.markets.compute import ComputeMarket
from abm.markets.crypto import CryptoMarket
from abm.markets.shocks import Shocks
from abm.valuation import Valuation
from abm.world_miner_asics import build_miner_asic_fleets
from abm.world_miner_gpus import build_miner_gpu_fleets

AGENT_CLASSES = {MINER: Miner, NEOCLOUD: Neocloud, LENDER: Lender, BUYER: SecondaryBuyer}


class AIComputeCreditModel(Valuation, mesa.Model):
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
        self.init_valuation_caches()
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
        # both equipment classes (GPUs, ASICs) per generation (abm/markets/asic.py)
        equipment = generation_arrays(cfg)
        self.perf = equipment["perf"]  # 0 for ASICs: not in the compute market
        self.kw = equipment["kw"]
        self.liquid = equipment["liquid"]
        self.list_price = equipment["list_price"]
        self.is_asic = equipment["is_asic"]
        self.th_per_unit = equipment["th_per_unit"]
        self.release_month = release_months(cfg)
        self.base_rate = cfg["credit"]["base_rate_start"]

        # agents and per-agent state
        table = agent_table(cfg, self.rng)
        self.n = n = table.n
        self.type = table.type  # MINER, NEOCLOUD, LENDER, BUYER per agent
        self.miner_idx, self.neocloud_idx = table.miner_idx, table.neocloud_idx
        self.lender_idx, self.buyer_idx = table.lender_idx, table.buyer_idx
        self.borrower_idx = table.borrower_idx
        self.lender_kind_names, self.lender_kind = table.lender_kind_names, table.lender_kind
        self.lk = table.lk  # lender parameters by name, per agent
        self.market_policy = table.market_policy  # lenders marking to market (else appraisal)
        # appraisal beliefs by lender kind (rows in lender_kind_names order): haircut and lag
        kinds = [cfg["lenders"]["kinds"][k] for k in self.lender_kind_names]
        self.appraisal_haircut_by_kind = np.array([k["appraisal_haircut"] for k in kinds])
        self.appraisal_lag_months_by_kind = np.array(
            [k["appraisal_lag_months"] or cfg["compute"]["appraisal_lag_months"] for k in kinds],
            dtype=np.int64,
        )
        # each agent's row of the mark table (Valuation.mark_table): its kind's appraisal marks,
        # or the last row (market marks) for a lender marking to market (and for non-lenders)
        self.lender_mark_row = np.where(
            self.market_policy | (self.lender_kind < 0), len(kinds), self.lender_kind
        ).astype(np.int64)
        self.lender_size_weight = table.lender_size_weight
        self.buyer_kind_names, self.buyer_kind = table.buyer_kind_names, table.buyer_kind
        self.budget_usd, self.absorption_mw = table.budget_usd, table.absorption_mw
        self.hurdle, self.integration_usd = table.hurdle, table.integration_usd
        self.buyer_liquid, self.buyer_max_perf = table.buyer_liquid, table.buyer_max_perf
        self.buyer_installed = table.buyer_installed
        self.buyer_asic = table.buyer_asic  # buyers whose kind buys ASICs (not GPUs)
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
            "inventory_loss_usd",
            "inventory_seized_usd",
            "inventory_book_out_usd",
            "inventory_proceeds_usd",
            "funding_written_down_usd",
            "budget_left",
            "mw_left",
            "contracted_share",
            "ig_share",
            "gpu_mw",  # miners' facility MW turned into halls for their own GPUs
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
        # each provider's open customer contract per grade (0 non-IG, 1 IG, 2 its anchor customer)
        # and when it opened
        self.contract_row = np.full((n, 3), -1, dtype=np.int64)
        self.contract_opened = np.full((n, 3), -10_000, dtype=np.int64)
        # compute demand served (abm/phases/operations.py): each neocloud's anchor customer (-1 none)
        # and its share of the contracted GPUs; the month's contract usage and spot utilisation;
        # paid and take-or-pay-obliged idle H100-equivalents; idle take-or-pay paid (USD, per
        # provider, cumulative)
        self.anchor_of = np.full(n, -1, dtype=np.int64)
        self.anchor_share = np.zeros(n)
        self.contract_usage = cfg["compute"]["utilisation_max"]
        self.spot_utilisation = cfg["compute"]["utilisation_ref"]
        self.paid_compute_perf_units = 0.0
        self.idle_take_or_pay_perf_units = 0.0
        self.idle_take_or_pay_usd = np.zeros(n)
        self.default_month = np.full(n, -1, dtype=np.int64)
        self.open_estates: set[int] = (
            set()
        )  # defaulted borrowers with claims still being worked out
        self.btc_sale_events: list[int] = []
        # borrower -> [(month, event id)] of the margin calls and refused rollovers that drained
        # its cash: the parents of a later payment default (debt_service.py::cash_drains)
        self.drain_events: dict[int, list[tuple[int, int]]] = {}
        self.outside_funder_losses_usd = 0.0
        self.unmet_hosting_mw = 0.0
        self.credit_supply_usd = 0.0
        self.current_row: dict = {}  # this month's time-series row (the DataCollector reads it)
        self.monthly_opex_usd = np.zeros(n)
        self.monthly_outflow_usd = np.zeros(n)
        # finite lender funding (abm/finance/funding.py): USD a lender must still raise after cash
        # and outside funding (filled in the lender phase; the market phase makes a lender with a
        # need sell seized GPUs at the best bid), and its runs, redemptions and caps
        self.funding_need_usd = np.zeros(n)
        self.funding_state = FundingState(n)

        # markets
        self.compute = ComputeMarket(
            cfg["compute"],
            self.perf,
            self.kw,
            self.release_month,
            salvage_usd_per_gpu=self.list_price * cfg["compute"]["salvage_share_of_list"],
            rent_per_perf_multiple=equipment["rent_multiple"],
        )
        self.crypto = CryptoMarket(
            cfg["crypto"], month_index(cfg["crypto"]["halving"], self.start), self.market_rng
        )
        check_pinned_paths(cfg, self.months)
        # ASIC generations' revenue and power, and the DCF hook into the compute market
        self.asic = AsicEconomics(
            self.is_asic,
            self.th_per_unit,
            self.kw,
            cfg["miners"]["power_price_usd_per_kwh"],
            self.crypto,
        )
        if self.is_asic.any():
            self.asic.attach(self.compute)
        self.miner_revenue_usd = 0.0  # the month's mining revenue of the modelled miners (USD)
        self.crypto.depth_channel = 1.0 if cfg["channels"]["margin_calls"] else 0.0
        self.shocks = Shocks(cfg["shocks"], self.start, self.market_rng)
        self.compute.clear(1.0, 1.0 / cfg["compute"]["utilisation_ref"])
        self.compute.update_fundamentals(0)
        index = self.compute.fundamental_value * (1.0 - cfg["compute"]["calm_market_discount"])
        self.index_history = [index]  # market marks month by month (appraisals average them)
        self.mark_market = index.copy()
        self.mark_appraisal = index.copy()
        # appraisal marks by lender kind (K, G): the kind's haircut off its lagged average
        self.mark_appraisal_by_kind = (1.0 - self.appraisal_haircut_by_kind)[:, None] * index
        self.last_trade_price = np.full(self.G, np.nan)
        self.last_trade_month = np.full(self.G, -10_000, dtype=np.int64)
        self.last_trade_weight = np.zeros(self.G)
        self.last_trade_events: list[list[int]] = [[] for _ in range(self.G)]
        self.last_trade_sellers: list[set] = [set() for _ in range(self.G)]
        # the month's evidence for the marks, per generation (phases/market.py): units offered, their
        # value at the clearing price (sold) or the best bid left (unsold), USD, and its month
        self.mark_offered_units = np.zeros(self.G)
        self.mark_evidence_usd = np.zeros(self.G)
        self.mark_evidence_month = np.full(self.G, -10_000, dtype=np.int64)

        # balance sheets and the lending network
        load = np.zeros(n)
        world.build_neoclouds(self, load)
        world.build_contracts(self)
        world.build_miners(self, load)
        world.build_leases(self)
        world.build_miner_debt(self, load)
        build_miner_asic_fleets(self, load)  # miners' ASICs as lots on machine-backed loans
        build_miner_gpu_fleets(self, load)  # miners' own GPUs on GPU-backed loans
        world.build_buyers(self)
        world.initial_cash_for_borrowers(self)
        world.build_lender_funding(self, load)
        self.site_assets = SiteAssets(n)  # miners' fixed assets, depreciated
        capitalise_initial_sites(self)
        self.primary_lender = netmod.primary_lenders(self)
        self.initial_lending_usd = float(
            self.loans.principal_usd[self.loans.kind != INTERBANK].sum()
        )
        self.capital_ratio_start[self.lender_idx] = self.lender_equity() / np.maximum(
            self.lender_assets(), 1.0
        )
        self.funding_state.equity_peak_usd[self.lender_idx] = self.lender_equity()
        self.funding_state.equity_after_usd[self.lender_idx] = self.lender_equity()
        # starting demand consistent with the contract book: reserved GPUs busy at utilisation_max,
        # spot GPUs at utilisation_ref (the balance utilisation, ODD 7.1)
        self.compute.set_balance(
            phases.operations.reserved_perf_units(self), self.in_service_perf_units()
        )
        demand0 = self.in_service_perf_units() * self.compute.next_balance_utilisation
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
        self.populations = Populations.of(self)  # the agent types' decision rules
        self.policy = policy.PolicyState(self)  # the policy levers' memory (all off by default)
        self.this_month = MonthCounters(self.G)  # the month's counters (reset monthly)
        self.defaults = {"miner": 0, "neocloud": 0, "lender": 0}
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
        production_sale_btc = phases.operations.run(self, t)  # 3
        phases.debt_service.service(self, t, production_sale_btc)  # 4
        for r in range(self.cfg["run"]["max_cascade_rounds"]):  # 5-9
            new_defaults = phases.debt.tests_and_responses(self, t, r)
            traded = phases.market.secondary_round(self, t, r)
            phases.market.update_marks(self, t)
            phases.debt_service.settle_arrears(self)
            new_defaults |= phases.debt_service.unpaid_suppliers(self, t)
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

    @property
    def date(self) -> str:
        return month_label(self.month, self.start)
