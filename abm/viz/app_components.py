"""Figures and Solara components of the interactive app (``abm/app.py``).

The drawing functions take a live model and return a matplotlib ``Figure`` (object API, no pyplot,
so they are safe in the worker thread Mesa's play button steps the model in). The components wrap
them for Mesa's ``SolaraViz``: each re-draws when Mesa's ``update_counter`` ticks (after every step
or reset) and shows the figure as a PNG that scales to the width of its card.
"""

from __future__ import annotations

import io

import networkx as nx
import numpy as np
import pandas as pd
import solara
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from mesa.visualization.utils import update_counter

from abm.agents.base import ACTIVE, DEFAULTED, FAILED, TYPE_NAMES
from abm.config import month_label
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import BTC_LOAN, INTERBANK
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED

# node states shown in the app: the model's own status, plus "distressed" for an active agent under
# pressure: a borrower with a loan in covenant breach or arrears or a BTC loan past its margin-call
# LTV; a lender with negative equity or appetite below the level at which it still rolls loans over
HEALTHY, DISTRESSED, DEFAULTED_STATE, FAILED_STATE = range(4)
STATE_NAMES = ("healthy", "distressed", "defaulted", "failed")
STATE_COLOURS = ("#2ca25f", "#f0a202", "#d7301f", "#4a1486")
TYPE_MARKERS = {"miner": "s", "neocloud": "o", "lender": "D", "buyer": "^"}
TYPE_LABELS = {"miner": "miners", "neocloud": "neoclouds", "lender": "lenders", "buyer": "buyers"}
DEFAULT_COLOURS = {"miner": "#e69f00", "neocloud": "#0072b2", "lender": "#009e73"}
FIGSIZE = (5.2, 3.7)
DPI = 100


# ----------------------------------------------------------------------------- model state


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
    for code, name in enumerate(TYPE_NAMES):
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
        buyers = loose[m.type[loose] == 3]
        row(loose[m.type[loose] != 3], -1.14)
        row(buyers, -1.42 if len(buyers) < len(loose) else -1.25)
        return out

    def ring(idx, radius, jitter):
        idx = np.asarray(idx)
        if len(idx) == 0:
            return
        angle = np.linspace(0.0, 2 * np.pi, len(idx), endpoint=False)
        r = radius + jitter * rng.uniform(-1, 1, len(idx))
        out[idx] = np.column_stack([r * np.cos(angle), r * np.sin(angle)])

    lenders = np.flatnonzero(m.type == 2)
    borrowers = np.flatnonzero((m.type == 0) | (m.type == 1))
    ring(lenders, 0.35, 0.05)
    main = m.primary_lender[borrowers]
    ring(borrowers[np.argsort(main, kind="stable")], 0.95, 0.08)
    row(np.flatnonzero(m.type == 3), -1.25)
    return out


def node_sizes(m) -> np.ndarray:
    """Marker areas that stay put while the run goes on: a borrower's debt at the start, a lender's
    or a buyer's assets at the start, each relative to the largest of its group."""
    snap = m.start_snapshot
    debt = np.bincount(snap["borrower"], weights=snap["principal_usd"], minlength=m.n)[: m.n]
    weight = np.maximum(np.where(m.type >= 2, snap["assets_usd"], debt), 0.0)
    scale = np.zeros(m.n)
    for group in ((0, 1), (2,), (3,)):
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


def _when(m) -> str:
    if m.steps == 0:
        return f"start ({m.start})"
    return f"month {m.steps} of {m.months} ({m.date})"


def _time_axis(ax, m) -> None:
    """Months on the x axis, fixed to the whole run so curves grow without rescaling."""
    ax.set_xlim(-0.5, m.months - 0.5)
    ticks = [t for t in range(m.months) if month_label(t, m.start).endswith("-01")]
    if len(ticks) > 8:
        ticks = ticks[:: int(np.ceil(len(ticks) / 8))]
    ax.set_xticks(ticks)
    ax.set_xticklabels([month_label(t, m.start)[:4] for t in ticks])
    ax.grid(alpha=0.25, lw=0.6)


def _shade_stress(ax, ts) -> None:
    """Shade stress-regime months (one polygon, not one patch per month)."""
    if len(ts) == 0 or not (ts["regime"] == "stress").any():
        return
    x = ts["month"].to_numpy()
    ax.fill_between(
        x,
        0,
        1,
        where=(ts["regime"] == "stress").to_numpy(),
        step="mid",
        transform=ax.get_xaxis_transform(),
        color="#d7301f",
        alpha=0.08,
        lw=0,
    )


def _usd(value, _pos=None) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _waiting(ax) -> None:
    ax.text(
        0.5,
        0.5,
        "press Step or \u25b6 to run",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.45",
        fontsize=10,
    )


# ----------------------------------------------------------------------------- figures


def network_figure(m, positions: np.ndarray | None = None) -> Figure:
    """The lending network now: nodes filled by state, shaped by type, sized by debt at the start
    (lenders and buyers by assets); open loans grey (red when defaulted), interbank funding blue,
    active leases dotted purple. Loans made during the run appear as they are made."""
    pos = positions if positions is not None else layout_positions(m)
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    fig.subplots_adjust(left=0.01, right=0.73, bottom=0.02, top=0.92)
    ax = fig.subplots()
    loans = m.loans
    seg = np.stack([pos[loans.lender], pos[loans.borrower]], axis=1)
    live = loans.status == LOAN_ACTIVE
    funding = loans.kind == INTERBANK
    ls = m.leases
    lease = ls.active & (ls.host >= 0) & (ls.tenant >= 0)
    segments = {
        "loan": seg[live & ~funding],
        "funding": seg[live & funding],
        "lease": np.stack([pos[ls.tenant[lease]], pos[ls.host[lease]]], axis=1),
        "bad": seg[loans.status == LOAN_DEFAULTED],
    }
    styles = {
        "loan": {"colors": "0.55", "linewidths": 0.6, "alpha": 0.35},
        "funding": {"colors": "#3182bd", "linewidths": 0.9, "alpha": 0.55},
        "lease": {"colors": "#756bb1", "linewidths": 0.9, "alpha": 0.6, "linestyles": ":"},
        "bad": {"colors": "#d7301f", "linewidths": 1.3, "alpha": 0.8},
    }
    faint = 0.12 if m.n > 400 else 1.0  # thousands of edges: keep the nodes visible
    for key, segs in segments.items():
        if len(segs):
            style = dict(styles[key], alpha=styles[key]["alpha"] * (1.0 if key == "bad" else faint))
            ax.add_collection(LineCollection(segs, zorder=1, **style))

    state = node_states(m)
    scale = node_sizes(m)
    colours = np.array(STATE_COLOURS)[state]
    for code, name in enumerate(TYPE_NAMES):
        idx = np.flatnonzero(m.type == code)
        if len(idx) == 0:
            continue
        ax.scatter(
            pos[idx, 0],
            pos[idx, 1],
            s=scale[idx],
            c=colours[idx],
            marker=TYPE_MARKERS[name],
            edgecolors="white" if m.n <= 400 else "none",
            linewidths=0.7,
            zorder=3,
        )
    counts = np.bincount(state, minlength=4)
    handles = [
        Patch(color=STATE_COLOURS[k], label=f"{STATE_NAMES[k]} ({counts[k]})") for k in range(4)
    ]
    handles += [
        Line2D([], [], ls="", marker=TYPE_MARKERS[t], color="0.35", label=TYPE_LABELS[t])
        for t in TYPE_NAMES
        if (m.type == TYPE_NAMES.index(t)).any()
    ]
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        handletextpad=0.4,
    )
    ax.set_title(f"Lending network, {_when(m)}", fontsize=11)
    buyers = np.flatnonzero(m.type == 3)
    if len(buyers):
        ax.text(
            pos[buyers, 0].min(),
            pos[buyers, 1].max() + 0.07,
            "secondary buyers",
            fontsize=8,
            color="0.45",
            va="bottom",
        )
    ax.margins(0.06)
    ax.set_axis_off()
    return fig


def prices_figure(m, generation: str | None = None) -> Figure:
    """Top: one GPU generation's secondary (fire-sale) clearing price against its fundamental value
    and the market mark, with fire-sale volume. Bottom: the BTC price. Stress months shaded."""
    gen = generation if generation in m.gen_names else default_generation(m)
    ts = timeseries(m)
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    fig.subplots_adjust(left=0.14, right=0.86, bottom=0.08, top=0.92, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    if len(ts):
        x = ts["month"].to_numpy()
        dot = "." if len(ts) < 3 else None  # a line needs two points; show the first ones
        top.plot(
            x,
            ts[f"fundamental_value_{gen}"],
            color="#0072b2",
            lw=1.8,
            marker=dot,
            label="fundamental",
        )
        top.plot(
            x, ts[f"mark_{gen}"], color="#0072b2", lw=1.2, ls="--", marker=dot, label="market mark"
        )
        top.scatter(
            x,
            ts[f"secondary_price_{gen}"],
            color="#d7301f",
            marker="v",
            s=22,
            zorder=4,
            label="fire-sale clearing",
        )
        vol = top.twinx()
        vol.vlines(x, 0, ts["fire_sale_units"], color="0.5", alpha=0.35, lw=4)
        vol.set_ylabel("GPUs sold / month (all generations)", fontsize=8, color="0.4")
        vol.tick_params(labelsize=8, colors="0.4")
        vol.set_ylim(0, max(float(ts["fire_sale_units"].max()), 1.0) * 3.0)
        top.set_zorder(vol.get_zorder() + 1)
        top.patch.set_visible(False)
        bottom.plot(x, ts["btc_price"] / 1e3, color="k", lw=1.4, marker=dot)
        _shade_stress(top, ts)
        _shade_stress(bottom, ts)
        top.legend(fontsize=8, loc="upper right", frameon=False)
        if np.nanmax(ts[f"fundamental_value_{gen}"].to_numpy(dtype=float), initial=0) > 0:
            top.set_yscale("log")
            top.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            top.yaxis.set_major_formatter(FuncFormatter(_usd))
            top.yaxis.set_minor_formatter(NullFormatter())
    else:
        _waiting(top)
    top.set_title(f"{gen}: secondary price vs fundamental value", fontsize=11)
    top.set_ylabel("USD per GPU", fontsize=9)
    bottom.set_ylabel("BTC (USD k)", fontsize=9)
    for ax in (top, bottom):
        _time_axis(ax, m)
        ax.tick_params(labelsize=8)
    if top.get_yscale() != "log":
        top.set_ylim(bottom=0)
    return fig


def defaults_figure(m) -> Figure:
    """Cumulative defaults by agent type and cumulative realised lender losses."""
    ts = timeseries(m)
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.88, bottom=0.08, top=0.92)
    ax = fig.subplots()
    if len(ts):
        x = ts["month"].to_numpy()
        for kind, colour in DEFAULT_COLOURS.items():
            y = ts[f"defaults_{kind}"].to_numpy()
            ax.step(x, y, where="post", color=colour, lw=2, label=f"{kind} ({int(y[-1])})")
        losses = ax.twinx()
        losses.plot(
            x, ts["lender_losses_usd"] / 1e9, color="0.3", ls="--", lw=1.2, label="lender losses"
        )
        losses.set_ylabel("lender losses (USD bn, dashed)", fontsize=8, color="0.3")
        losses.tick_params(labelsize=8, colors="0.3")
        losses.set_ylim(bottom=0, top=max(float(ts["lender_losses_usd"].max()) / 1e9, 1.0) * 1.1)
        _shade_stress(ax, ts)
        ax.legend(fontsize=8, loc="upper left", frameon=False, title="defaults", title_fontsize=8)
        top = max(int(ts[[f"defaults_{k}" for k in DEFAULT_COLOURS]].to_numpy().max()), 1)
        ax.set_ylim(0, top + 1)
    else:
        ax.set_ylim(0, 1)
        _waiting(ax)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Defaults over time by type (cumulative)", fontsize=11)
    ax.set_ylabel("defaults", fontsize=9)
    _time_axis(ax, m)
    ax.tick_params(labelsize=8)
    return fig


def figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


# ----------------------------------------------------------------------------- components


def _positions(model) -> np.ndarray:
    pos = getattr(model, "layout", None)
    if pos is None:
        pos = model.layout = layout_positions(model)
    return pos


@solara.component
def NetworkView(model):  # noqa: N802 (Solara components are CamelCase)
    """The lending network, coloured by each agent's state this month."""
    tick = update_counter.get()
    png = solara.use_memo(
        lambda: figure_png(network_figure(model, _positions(model))),
        dependencies=[id(model), model.steps, tick],
    )
    with solara.Column(gap="0px", style={"width": "100%"}):
        solara.Image(png, width="100%", classes=["abm-network"])


@solara.component
def PricesView(model):  # noqa: N802 (Solara components are CamelCase)
    """Secondary price vs fundamental value of a chosen generation, and BTC."""
    tick = update_counter.get()
    gen, set_gen = solara.use_state(None)
    chosen = gen if gen in model.gen_names else default_generation(model)
    png = solara.use_memo(
        lambda: figure_png(prices_figure(model, chosen)),
        dependencies=[id(model), model.steps, tick, chosen],
    )
    with solara.Column(gap="0px", style={"width": "100%"}):
        solara.Select(
            "GPU generation", value=chosen, values=list(model.gen_names), on_value=set_gen
        )
        solara.Image(png, width="100%", classes=["abm-prices"])


@solara.component
def DefaultsView(model):  # noqa: N802 (Solara components are CamelCase)
    """Cumulative defaults by type and lender losses."""
    tick = update_counter.get()
    png = solara.use_memo(
        lambda: figure_png(defaults_figure(model)),
        dependencies=[id(model), model.steps, tick],
    )
    with solara.Column(gap="0px", style={"width": "100%"}):
        solara.Image(png, width="100%", classes=["abm-defaults"])


def summary_markdown(model) -> str:
    """The state of the run as Markdown: month, regime, agents by state, effective parameters."""
    ts = timeseries(model)
    regime = ts["regime"].iloc[-1] if len(ts) else "calm"
    lines = [
        f"### Month {model.steps} / {model.months}"
        + (
            f" &nbsp; ({model.date}, {regime})" if model.steps else f" &nbsp; (start {model.start})"
        ),
        "",
        "| agents | healthy | distressed | defaulted | failed |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, c in state_counts(model).items():
        lines.append(
            f"| {TYPE_LABELS[kind]} | {c['healthy']} | {c['distressed']} | "
            f"{c['defaulted']} | {c['failed']} |"
        )
    if len(ts):
        last = ts.iloc[-1]
        lines += [
            "",
            f"BTC **${last['btc_price']:,.0f}** &nbsp;·&nbsp; fire-sale units so far "
            f"**{int(last['fire_sale_units_cum']):,}** &nbsp;·&nbsp; lender losses "
            f"**${last['lender_losses_usd'] / 1e9:,.2f} bn**",
        ]
    describe = getattr(model, "describe", None)
    if callable(describe):
        lines += ["", describe()]
    return "\n".join(lines)


@solara.component
def SummaryView(model):  # noqa: N802 (Solara components are CamelCase)
    """Text summary; also the step counter the browser test reads."""
    update_counter.get()
    with solara.Column(style={"width": "100%", "padding": "4px 12px"}, classes=["abm-summary"]):
        solara.Markdown(summary_markdown(model))
