"""Lender capital of a run folder: :func:`capital_figure` and the equity indices it draws.

Each lender's equity (or capital ratio) against its start, and the lender sector's capital, realised
losses and lending capacity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from abm.viz.run_data import RunData
from abm.viz.style import (
    AGENT_TYPE_COLOURS,
    date_axis,
    new_figure,
    shade_stress,
    styled,
    suptitle,
    usd_bn,
    usd_short,
)


def lender_equity_index(run: RunData) -> pd.DataFrame:
    """Each lender's equity (at market marks) as % of its equity in the first month (month x id)."""
    a = run.agents
    eq = a[a["agent_type"] == "lender"].pivot(
        index="month", columns="agent_id", values="equity_usd"
    )
    eq = eq.reindex(run.months)
    start = eq.iloc[0].where(eq.iloc[0].abs() > 0)
    return 100.0 * eq / start


def lender_capital_index(run: RunData) -> tuple[pd.DataFrame, bool]:
    """Each lender's capital ratio (equity / assets, agents.csv) as % of its start ratio (the
    ``capital_ratio_start`` node attribute of network.graphml), month x lender id, and True.

    The model's thresholds are multiples of that start ratio (``credit.min_capital_ratio_multiple``,
    ``target_capital_ratio_multiple``), so they are horizontal lines on this scale. Runs written
    before ``assets_usd`` existed fall back to :func:`lender_equity_index` (and False)."""
    a = run.agents
    lend = a[a["agent_type"] == "lender"]
    start = {int(n): d.get("capital_ratio_start") for n, d in run.graph.nodes(data=True)}
    ids = sorted(lend["agent_id"].unique())
    if "assets_usd" not in a or not all(start.get(int(i)) for i in ids):
        return lender_equity_index(run), False
    ratio = lend["equity_usd"] / lend["assets_usd"].where(lend["assets_usd"] > 0)
    piv = (
        lend.assign(ratio=ratio)
        .pivot(index="month", columns="agent_id", values="ratio")
        .reindex(run.months)
    )
    base = pd.Series({i: float(start[int(i)]) for i in piv.columns})
    return 100.0 * piv / base, True


@styled
def capital_figure(run: RunData) -> Figure:
    """Lender capital.

    (a) Each lender's capital ratio at market marks (agents.csv ``equity_usd / assets_usd``) as % of
    its start ratio (:func:`lender_capital_index`), with the model's thresholds, which are multiples
    of that start ratio: the target (``credit.target_capital_ratio_multiple``: below it lending
    appetite falls below 1), the floor (``credit.min_capital_ratio_multiple``: at or below it a
    lender has no room for new loans) and 0 % (negative equity: the lender fails). Failed lenders are drawn in black with an X
    at the month they fail. Runs without ``assets_usd`` show equity as % of first-month equity.
    (b) The lender sector: total equity (timeseries ``lender_capital_usd``), cumulative realised
    losses (``lender_losses_usd``) and lending capacity (``credit_supply_usd``), USD billion.
    """
    idx, ratios = lender_capital_index(run)
    credit = run.config.get("credit", {})
    target = 100.0 * float(credit.get("target_capital_ratio_multiple", 1.0)) if ratios else 100.0
    floor = 100.0 * float(credit["min_capital_ratio_multiple"]) if ratios and credit else None
    what = "capital ratio (equity / assets)" if ratios else "equity"
    unit = "% of start ratio" if ratios else "% of first-month equity"
    dates = run.dates
    status = run.status_panel()
    a = run.agents
    start_eq = (
        a[(a["agent_type"] == "lender") & (a["month"] == run.months[0])]
        .set_index("agent_id")["equity_usd"]
        .reindex(idx.columns)
    )
    order = list(start_eq.sort_values(ascending=False, kind="stable").index)
    n = len(order)
    small_multiples = 0 < n <= 16
    ncols = 4 if n > 9 else 3
    nrows = int(np.ceil(n / ncols)) if small_multiples else 1
    fig = new_figure(figsize=(12, max(4.6, 1.55 * nrows + 1.3)))
    left, right = fig.subfigures(1, 2, width_ratios=[2.2 if small_multiples else 1.3, 1])
    lender_colour = AGENT_TYPE_COLOURS["lender"]
    ylo = min(-10.0, float(np.nanmin(idx.to_numpy())) - 10.0) if n else -10.0
    yhi = max(150.0, float(np.nanmax(idx.to_numpy())) + 10.0) if n else 150.0
    lender_axes = []

    def failed_month(lid):
        col = status[lid] if lid in status else pd.Series(dtype=object)
        hit = col.index[col == "failed"]
        return int(hit[0]) if len(hit) else None

    def draw(ax, lid, label_line: bool):
        y = idx[lid].to_numpy(dtype=float)
        fm = failed_month(lid)
        colour = "k" if fm is not None else lender_colour
        (line,) = ax.plot(dates, y, color=colour, lw=1.5,
                          label=f"lender {lid}" if label_line else None)  # fmt: skip
        line.set_gid(f"lender-equity:{lid}")
        if fm is not None:
            k = run.month_index(fm)
            ax.plot(dates[k], y[k], marker="X", ms=9, color="k", mec="white", ls="none",
                    label="lender fails" if label_line else None)  # fmt: skip
        return fm

    if small_multiples:
        grid = left.add_gridspec(nrows, ncols)
        for k, lid in enumerate(order):
            ax = left.add_subplot(grid[k // ncols, k % ncols],
                                 sharex=lender_axes[0] if lender_axes else None,
                                 sharey=lender_axes[0] if lender_axes else None)  # fmt: skip
            lender_axes.append(ax)
            shade_stress(ax, run)
            ax.axhline(target, color="0.5", lw=0.8, ls=":")
            if floor is not None:
                ax.axhline(floor, color="#E69F00", lw=1.0, ls="-.")
            ax.axhline(0, color="#D55E00", lw=1.1, ls="--")
            fm = draw(ax, lid, False)
            tag = " — FAILED" if fm is not None else ""
            ax.set_title(f"lender {lid} (E₀ {usd_short(start_eq[lid])}){tag}",
                         fontsize=8, fontweight="normal", loc="left")  # fmt: skip
            ax.set_ylim(ylo, yhi)
            ax.tick_params(labelsize=7)
            if k % ncols:
                ax.tick_params(labelleft=False)
            if k // ncols < nrows - 1 and k + ncols < n:
                ax.tick_params(labelbottom=False)
        for ax in lender_axes[::ncols]:
            ax.set_ylabel(unit, fontsize=7.5)
        handles = [
            Line2D([], [], color=lender_colour, lw=1.5, label=f"{what} at market marks"),
            Line2D([], [], color="0.5", lw=0.8, ls=":",
                   label=f"{target:.0f} %: " + ("target (appetite 1)" if ratios
                                               else "first-month equity")),
            *([Line2D([], [], color="#E69F00", lw=1.0, ls="-.",
                      label=f"{floor:.0f} %: floor, no room for new loans")] if floor is not None else []),
            Line2D([], [], color="#D55E00", lw=1.1, ls="--",
                   label="0 %: negative equity ⇒ lender fails"),
            Line2D([], [], color="k", marker="X", mec="white", ms=8, lw=1.5,
                   label="failed lender (X: month of failure)"),
        ]  # fmt: skip
        left.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7.5)
        left.suptitle(f"(a) Each lender's {what} relative to its start", fontsize=10,
                      fontweight="bold")  # fmt: skip
    else:
        ax = left.add_subplot()
        lender_axes.append(ax)
        shade_stress(ax, run)
        if n:
            arr = idx.to_numpy(dtype=float)
            lo, med, hi = np.nanpercentile(arr, [10, 50, 90], axis=1)
            ax.fill_between(dates, lo, hi, color=lender_colour, alpha=0.25,
                            label="10th-90th percentile")  # fmt: skip
            ax.plot(dates, med, color=lender_colour, label="median lender")
            for lid in order:
                if failed_month(lid) is not None:
                    draw(ax, lid, True)
        ax.axhline(target, color="0.5", lw=0.8, ls=":")
        if floor is not None:
            ax.axhline(floor, color="#E69F00", lw=1.0, ls="-.", label=f"{floor:.0f} %: floor")
        ax.axhline(0, color="#D55E00", lw=1.1, ls="--", label="0 %: negative equity, fails")
        ax.set_title(f"(a) {what.capitalize()} of {n} lenders relative to their start")
        ax.set_ylabel(f"{what} at market marks, {unit}")
        ax.legend(loc="best")
    ax2 = right.add_subplot()

    ts = run.timeseries
    shade_stress(ax2, run)
    ax2.plot(dates, usd_bn(ts["lender_capital_usd"]), color=AGENT_TYPE_COLOURS["lender"],
             label="sector equity (capital)")  # fmt: skip
    ax2.plot(dates, usd_bn(ts["lender_losses_usd"]), color="#D55E00",
             label="cumulative realised losses")  # fmt: skip
    ax2.plot(dates, usd_bn(ts["credit_supply_usd"]), color="#0072B2", ls="--",
             label="lending capacity (credit supply)")  # fmt: skip
    ax2.set_title("(b) Lender sector")
    ax2.set_ylabel("USD billion")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="best")
    for ax in (*lender_axes, ax2):
        date_axis(ax, run)
    suptitle(fig, run, "Lender capital")
    return fig
