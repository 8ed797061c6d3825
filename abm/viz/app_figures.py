"""Figures of the interactive app, drawn from a live model.

Each function takes the model and returns a matplotlib ``Figure`` (object API, no pyplot, so they
are safe in the worker thread Mesa's play button steps the model in); :func:`figure_png` renders one
as PNG bytes for the components of :mod:`abm.viz.app_components`.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from abm.agents.base import BUYER
from abm.config import month_label
from abm.finance.instruments import ACTIVE as LOAN_ACTIVE
from abm.finance.instruments import DEFAULTED as LOAN_DEFAULTED
from abm.finance.instruments import INTERBANK
from abm.viz.app_state import (
    DEFAULT_COLOURS,
    DPI,
    FIGSIZE,
    STATE_COLOURS,
    STATE_NAMES,
    TYPE_LABELS,
    TYPE_MARKERS,
    default_generation,
    layout_positions,
    node_sizes,
    node_states,
    timeseries,
)
from abm.vocabulary import AGENT_TYPES


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
    for code, name in enumerate(AGENT_TYPES):
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
        for t in AGENT_TYPES
        if (m.type == AGENT_TYPES.index(t)).any()
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
    buyers = np.flatnonzero(m.type == BUYER)
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
