"""What the interactive app reads from a live model: each agent's state, node sizes and layout.

Node states shown in the app are the model's own status plus "distressed" for an active agent
under pressure (see :func:`node_states`).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from abm.agents.base import ACTIVE, BUYER, DEFAULTED, FAILED, LENDER, MINER, NEOCLOUD
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import BTC_LOAN, INTERBANK
from abm.vocabulary import AGENT_TYPE_COLOURS, AGENT_TYPE_MARKERS, AGENT_TYPES, DEFAULTING_TYPES

# node states shown in the app: the model's own status, plus "distressed" for an active agent under
# pressure: a borrower with a loan in covenant breach or arrears or a BTC loan past its margin-call
# LTV; a lender with negative equity or appetite below the level at which it still rolls loans over
HEALTHY, DISTRESSED, DEFAULTED_STATE, FAILED_STATE = range(4)
STATE_NAMES = ("healthy", "distressed", "defaulted", "failed")
STATE_COLOURS = ("#2ca25f", "#f0a202", "#d7301f", "#4a1486")
TYPE_MARKERS = AGENT_TYPE_MARKERS
TYPE_LABELS = {"miner": "miners", "neocloud": "neoclouds", "lender": "lenders", "buyer": "buyers"}
DEFAULT_COLOURS = {t: AGENT_TYPE_COLOURS[t] for t in DEFAULTING_TYPES}
FIGSIZE = (5.2, 3.7)
DPI = 100


def node_states(m) -> np.ndarray:
    """Each agent's state code (HEALTHY, DISTRESSED, DEFAULTED_STATE, FAILED_STATE) from live books."""
    n = m.n
    state = np.full(n, HEALTHY, dtype=np.int64)
    loans = m.loans
    live = loans.status == LOAN_ACTIVE
    pressed = live & ((loans.breach_months > 0) | (loans.arrears_usd > 0))
    btc = live & (loans.kind == BTC_LOAN) & (loans.collateral_btc > 0)
    if btc.any():
        value = loans.collateral_btc[btc] * m.crypto.price_usd
        over = loans.principal_usd[btc] >= loans.margin_call_ltv[btc] * value
        pressed[np.flatnonzero(btc)[over]] = True
    troubled = np.zeros(n, dtype=bool)
    troubled[loans.borrower[pressed & (loans.kind != INTERBANK)]] = True
    lenders = m.lender_idx
    if len(lenders):
        troubled[lenders] |= (m.appetite[lenders] < m.cfg["credit"]["roll_min_appetite"]) | (
            m.lender_equity() < 0
        )
    state[troubled] = DISTRESSED
    state[m.status == DEFAULTED] = DEFAULTED_STATE
    state[m.status == FAILED] = FAILED_STATE
    state[(m.status != ACTIVE) & (m.status != DEFAULTED) & (m.status != FAILED)] = DEFAULTED_STATE
    return state


def state_counts(m) -> dict[str, dict[str, int]]:
    """Agents per type and state: ``{"miner": {"healthy": 8, ...}, ...}``."""
    state = node_states(m)
    out = {}
    for code, name in enumerate(AGENT_TYPES):
        mine = m.type == code
        if not mine.any():
            continue
        out[name] = {s: int(((state == k) & mine).sum()) for k, s in enumerate(STATE_NAMES)}
    return out


def layout_positions(m, seed: int = 0) -> np.ndarray:
    """Fixed node positions (n x 2) for the network drawing, computed once per model.

    Small models: a seeded spring layout of the connected part of the start network (as in the run
    overview), with unconnected agents (secondary buyers, lenders without loans) in rows below it.
    Large ones (where a spring layout takes seconds): lenders on an inner ring, borrowers grouped by
    their main lender on the outer ring, buyers in a row below.
    """
    n = m.n
    out = np.zeros((n, 2))
    rng = np.random.default_rng(seed)
    simple = nx.Graph(m.graph)
    # the largest connected part is laid out; small detached parts (buyers, lenders without loans,
    # two lenders funding only each other) go in rows below it
    linked = np.zeros(n, dtype=bool)
    if simple.number_of_edges():
        linked[list(max(nx.connected_components(simple), key=len))] = True

    def row(idx, y):
        """Agents outside the largest connected part, in a row below the network."""
        idx = np.asarray(idx)
        if len(idx):
            out[idx] = np.column_stack(
                [np.linspace(-1.0, 1.0, len(idx) + 2)[1:-1], np.full(len(idx), y)]
            )

    if n <= 400:
        core = np.flatnonzero(linked)
        if len(core):
            pos = nx.spring_layout(
                simple.subgraph(core.tolist()), seed=seed, k=2.0 / np.sqrt(max(len(core), 1))
            )
            xy = np.array([pos[i] for i in core])
            xy -= (xy.max(axis=0) + xy.min(axis=0)) / 2
            out[core] = xy / np.maximum(np.abs(xy).max(axis=0), 1e-9)  # fill [-1, 1] both ways
        loose = np.flatnonzero(~linked)
        buyers = loose[m.type[loose] == BUYER]
        row(loose[m.type[loose] != BUYER], -1.14)
        row(buyers, -1.42 if len(buyers) < len(loose) else -1.25)
        return out

    def ring(idx, radius, jitter):
        idx = np.asarray(idx)
        if len(idx) == 0:
            return
        angle = np.linspace(0.0, 2 * np.pi, len(idx), endpoint=False)
        r = radius + jitter * rng.uniform(-1, 1, len(idx))
        out[idx] = np.column_stack([r * np.cos(angle), r * np.sin(angle)])

    lenders = np.flatnonzero(m.type == LENDER)
    borrowers = np.flatnonzero((m.type == MINER) | (m.type == NEOCLOUD))
    ring(lenders, 0.35, 0.05)
    main = m.primary_lender[borrowers]
    ring(borrowers[np.argsort(main, kind="stable")], 0.95, 0.08)
    row(np.flatnonzero(m.type == BUYER), -1.25)
    return out


def node_sizes(m) -> np.ndarray:
    """Marker areas that stay put while the run goes on: a borrower's debt at the start, a lender's
    or a buyer's assets at the start, each relative to the largest of its group."""
    snap = m.start_snapshot
    debt = np.bincount(snap["borrower"], weights=snap["principal_usd"], minlength=m.n)[: m.n]
    weight = np.maximum(np.where(m.type >= LENDER, snap["assets_usd"], debt), 0.0)
    scale = np.zeros(m.n)
    for group in ((MINER, NEOCLOUD), (LENDER,), (BUYER,)):
        mine = np.isin(m.type, group)
        if mine.any():
            scale[mine] = 15 + 200 * np.sqrt(weight[mine] / max(weight[mine].max(), 1.0))
    return scale * (0.15 if m.n > 400 else 1.0)


def timeseries(m) -> pd.DataFrame:
    """The rows Mesa's DataCollector has recorded so far (one per month stepped)."""
    return m.datacollector.get_model_vars_dataframe()


def default_generation(m) -> str:
    """The generation with the most GPUs at the start (H100 in the packaged scenarios)."""
    units = np.bincount(m.lots.gen, weights=m.lots.units, minlength=m.G)
    return m.gen_names[int(np.argmax(units))] if units.sum() > 0 else m.gen_names[0]
