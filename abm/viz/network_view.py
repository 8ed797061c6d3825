"""The lending network of a run folder at one month, drawn so that frames can be updated in place.

What is exact and what is reconstructed
---------------------------------------
``network.graphml`` is the network at the END of the run: it lists every loan, funding and lease
contract the run ever had (lender -> borrower, funder -> lender, tenant -> host), but its principals
are end-of-run values (zero for repaid and closed loans) and it carries no origination month. So a
month's picture combines:

* exact, from agents.csv at that month: every node's status (active / defaulted / failed), which
  sets its colour and the X marks, and its debt (``debt_usd``), which sets its size;
* exact, from events.csv up to that month: which borrowers have had collateral seized (GPU seizure
  or BTC liquidation by a lender; ring around the node), and the fire-sale trades of that month
  (seller -> buyer, dotted);
* reconstructed: the exposure on each credit edge. A borrower's total debt at the month (exact) is
  split over the lenders it borrowed from during the run in proportion to the number of its
  contracts with each (the per-lender split at a month is not in the outputs). Every credit
  relationship of the run is drawn in every month; one with nothing outstanding is a hairline.
  Lease edges (grey, dashed) are drawn for the whole run.

The layout is computed once per run from the whole-run graph with a fixed seed and reused for every
month, so frames of an animation line up and the same run always gives the same positions.
"""

from __future__ import annotations

import matplotlib
import matplotlib.dates as mdates
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from abm.viz.network_data import (
    agent_types,
    credit_pairs,
    debt_panel,
    edge_exposures,
    first_seizure_month,
    lease_pairs,
    network_layout,
    trades_in_month,
)
from abm.viz.run_data import RunData
from abm.viz.style import (
    AGENT_TYPE_COLOURS,
    AGENT_TYPE_MARKERS,
    STATUS_COLOURS,
    STYLE,
    new_figure,
    shade_stress,
)

EDGE_COLOURS = {
    "performing": "#6E6E6E",
    "defaulted": STATUS_COLOURS["defaulted"],  # exposure to a borrower in default
    "funding": "#117733",  # interbank funding (funder -> lender)
    "idle": "#D9D9D9",  # nothing outstanding at this month
    "lease": "#9E9E9E",
    "trade": "#EE7733",
}


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


class NetworkView:
    """A network figure whose artists are made once and updated per month (:meth:`update`)."""

    def __init__(
        self, run: RunData, seed: int = 0, figsize=(10.5, 8.0), labels: bool | None = None
    ):
        self.run = run
        with matplotlib.rc_context(STYLE):
            self._build(seed, figsize, labels)

    # ---- construction -------------------------------------------------------------------------
    def _build(self, seed, figsize, labels) -> None:
        run = self.run
        self.pos = network_layout(run, seed)
        self.types = agent_types(run)
        self.ids = np.array(sorted(self.pos), dtype=np.int64)
        self.xy = np.array([self.pos[i] for i in self.ids]).reshape(-1, 2)
        self.row_of = {int(a): k for k, a in enumerate(self.ids)}
        self.status = run.status_panel().reindex(columns=self.ids)
        self.debt = debt_panel(run).reindex(columns=self.ids, fill_value=0.0).to_numpy()
        dmax = max(float(self.debt.max()) if self.debt.size else 0.0, 1.0)
        self._size = lambda d: 28.0 + 520.0 * np.sqrt(np.asarray(d, dtype=float) / dmax)
        self.dmax = dmax
        self.pairs = credit_pairs(run)
        self.expo = edge_exposures(run)
        emax = max(float(self.expo.max()) if self.expo.size else 0.0, 1.0)
        self._width = lambda e: 0.25 + 5.0 * np.sqrt(np.asarray(e, dtype=float) / emax)
        self.emax = emax
        self.seized = first_seizure_month(run)
        borrower_rows = [self.row_of.get(int(b), -1) for b in self.pairs["borrower"]]
        self.pair_borrower_row = np.array(borrower_rows, dtype=np.int64)
        self.pair_is_funding = (self.pairs["edge_type"] == "funding").to_numpy()

        fig = new_figure(figsize=figsize)
        gs = fig.add_gridspec(2, 2, height_ratios=[5.2, 1.0], width_ratios=[3.0, 1.0])
        ax = fig.add_subplot(gs[0, 0])
        lg = fig.add_subplot(gs[0, 1])
        tl = fig.add_subplot(gs[1, :])
        self.fig, self.ax, self.timeline, self.legend_ax = fig, ax, tl, lg
        ax.set_axis_off()
        lg.set_axis_off()
        ax.set_aspect("equal")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.12, 1.08)

        segs = self._segments(list(zip(self.pairs["lender"], self.pairs["borrower"], strict=True)))
        self.loan_lines = LineCollection(segs, zorder=1, capstyle="round")
        self.loan_lines.set_gid("credit-edges")
        ax.add_collection(self.loan_lines)
        lease = self._segments(lease_pairs(run))
        self.lease_lines = LineCollection(lease, colors=EDGE_COLOURS["lease"], linewidths=0.7,
                                          linestyles=(0, (3, 2)), zorder=0.5, alpha=0.8)  # fmt: skip
        self.lease_lines.set_gid("lease-edges")
        ax.add_collection(self.lease_lines)
        self.trade_lines = LineCollection([], colors=EDGE_COLOURS["trade"], linewidths=1.1,
                                          linestyles=(0, (1, 1.5)), zorder=1.5)  # fmt: skip
        self.trade_lines.set_gid("trade-edges")
        ax.add_collection(self.trade_lines)

        self.node_sets = {}
        for t, marker in AGENT_TYPE_MARKERS.items():
            rows = np.flatnonzero([self.types.get(int(a)) == t for a in self.ids])
            if not len(rows):
                continue
            sc = ax.scatter(self.xy[rows, 0], self.xy[rows, 1], s=30, marker=marker,
                            c=AGENT_TYPE_COLOURS[t], edgecolors="white", linewidths=0.8,
                            zorder=3)  # fmt: skip
            sc.set_gid(f"nodes:{t}")
            self.node_sets[t] = (rows, sc)
        self.ring = ax.scatter([], [], s=[], marker="o", facecolors="none", edgecolors="k",
                               linewidths=1.1, zorder=2.5)  # fmt: skip
        self.ring.set_gid("seized")
        self.x_defaulted = ax.scatter([], [], s=46, marker="x", c="k", linewidths=1.6, zorder=4)
        self.x_defaulted.set_gid("defaulted")
        self.x_failed = ax.scatter([], [], s=46, marker="x", c="white", linewidths=1.8, zorder=4)
        self.x_failed.set_gid("failed")
        if labels is None:
            labels = len(self.ids) <= 60
        if labels:
            for (x, y), a in zip(self.xy, self.ids, strict=True):
                ax.annotate(str(a), (x, y), xytext=(0, -9), textcoords="offset points",
                            ha="center", va="top", fontsize=6, color="0.35", zorder=5)  # fmt: skip
        self.title = ax.set_title("", fontsize=11, loc="left")
        fig.suptitle(f"Lending network ({run.title})", fontsize=11, fontweight="bold")
        self._legend(lg)

        # timeline strip: cumulative defaults and a cursor at the month drawn
        ts = run.timeseries
        total = ts[["defaults_miner", "defaults_neocloud", "defaults_lender"]].sum(axis=1)
        shade_stress(tl, run)
        tl.step(
            run.dates, total.to_numpy(), where="post", color=STATUS_COLOURS["defaulted"], lw=1.4
        )
        tl.set_ylabel("defaults\n(cumulative)")
        tl.set_ylim(0, max(float(total.max()) * 1.15, 1.0))
        tl.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=3))
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
        tl.xaxis.set_major_locator(locator)
        tl.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        tl.set_xlim(run.dates[0] - pd.Timedelta(days=16), run.dates[-1] + pd.Timedelta(days=16))
        self.cursor = tl.axvline(run.dates[0], color="k", lw=1.2)
        self.month = None

    def _segments(self, pairs) -> list:
        segs = []
        for u, v in pairs:
            ru, rv = self.row_of.get(int(u)), self.row_of.get(int(v))
            if ru is None or rv is None:
                segs.append(np.zeros((2, 2)))
            else:
                segs.append(np.array([self.xy[ru], self.xy[rv]]))
        return segs

    def _legend(self, ax) -> None:
        handles = [
            Line2D(
                [],
                [],
                ls="none",
                marker=AGENT_TYPE_MARKERS[t],
                mfc=AGENT_TYPE_COLOURS[t],
                mec="white",
                ms=8,
                label=f"{t} (active)",
            )  # fmt: skip
            for t in AGENT_TYPE_MARKERS
            if t in self.node_sets
        ]
        handles += [
            (Line2D([], [], ls="none", marker="o", mfc=STATUS_COLOURS["defaulted"], mec="white",
                    ms=8),
             Line2D([], [], ls="none", marker="x", mec="k", mew=1.6, ms=6, label="defaulted")),
            (Line2D([], [], ls="none", marker="D", mfc=STATUS_COLOURS["failed"], mec="white",
                    ms=9),
             Line2D([], [], ls="none", marker="x", mec="white", mew=1.6, ms=5.5,
                    label="failed (lender)")),
            Line2D([], [], ls="none", marker="o", mfc="none", mec="k", mew=1.1, ms=10,
                   label="collateral seized (to date)"),
            Line2D([], [], color=EDGE_COLOURS["performing"], lw=2.5, label="loan exposure"),
            Line2D([], [], color=EDGE_COLOURS["defaulted"], lw=2.5,
                   label="exposure to defaulted"),
            Line2D([], [], color=EDGE_COLOURS["funding"], lw=2.5, label="interbank funding"),
            Line2D([], [], color=EDGE_COLOURS["idle"], lw=1.0, label="nothing outstanding"),
            Line2D([], [], color=EDGE_COLOURS["lease"], lw=1.0, ls=(0, (3, 2)),
                   label="site lease (tenant-host)"),
            Line2D([], [], color=EDGE_COLOURS["trade"], lw=1.2, ls=(0, (1, 1.5)),
                   label="fire-sale trade this month"),
        ]  # fmt: skip
        labels = [h[-1].get_label() if isinstance(h, tuple) else h.get_label() for h in handles]
        leg = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, 1.0),
                        title="shape = type, colour = status", title_fontsize=8,
                        fontsize=7.5, borderaxespad=0.0, alignment="left")  # fmt: skip
        ax.add_artist(leg)
        size_handles = []
        for usd in self._size_refs():
            ms = np.sqrt(float(self._size(usd)))
            size_handles.append(Line2D([], [], ls="none", marker="o", mfc="0.75", mec="white", ms=ms,
                                       label=_usd(usd)))  # fmt: skip
        width_handles = []
        for usd in self._width_refs():
            width_handles.append(Line2D([], [], color=EDGE_COLOURS["performing"],
                                        lw=float(self._width(usd)), label=_usd(usd)))  # fmt: skip
        ax.legend(handles=size_handles + width_handles, loc="lower left",
                  bbox_to_anchor=(0.0, 0.0), title="node size: debt | edge width: exposure",
                  title_fontsize=8, fontsize=7.5, labelspacing=1.1, borderaxespad=0.0,
                  ncol=2 if width_handles else 1, alignment="left")  # fmt: skip

    def _size_refs(self) -> list[float]:
        return _nice_refs(self.dmax)

    def _width_refs(self) -> list[float]:
        return _nice_refs(self.emax)

    # ---- per month ----------------------------------------------------------------------------
    def update(self, month: int) -> list:
        """Redraw the artists for ``month`` (a model month of the run); returns the changed artists."""
        run = self.run
        k = run.month_index(month)
        status = self.status.iloc[k].to_numpy() if len(self.status) else np.array([])
        status = np.where(pd.isna(status), "active", status).astype(str)
        debt = self.debt[k]
        distressed = (status == "defaulted") | (status == "failed")
        # agents in default keep a visible size even with no debt left (status must be readable)
        sizes = np.where(distressed, np.maximum(self._size(debt), 110.0), self._size(debt))
        for t, (rows, sc) in self.node_sets.items():
            st = status[rows]
            colours = [STATUS_COLOURS[s] if STATUS_COLOURS.get(s) else AGENT_TYPE_COLOURS[t]
                       for s in st]  # fmt: skip
            sc.set_facecolor(colours)
            sc.set_sizes(sizes[rows])
        dflt = status == "defaulted"
        failed = status == "failed"
        self.x_defaulted.set_offsets(self.xy[dflt] if dflt.any() else np.empty((0, 2)))
        self.x_defaulted.set_sizes(np.clip(0.45 * sizes[dflt], 45.0, 110.0))
        self.x_failed.set_offsets(self.xy[failed] if failed.any() else np.empty((0, 2)))
        self.x_failed.set_sizes(np.clip(0.45 * sizes[failed], 45.0, 110.0))
        seized = np.array([0 <= self.seized.get(int(a), 10**9) <= month for a in self.ids])
        self.ring.set_offsets(self.xy[seized] if seized.any() else np.empty((0, 2)))
        self.ring.set_sizes((np.sqrt(sizes[seized]) + 7.0) ** 2)

        expo = self.expo[k] if self.expo.size else np.zeros(0)
        in_default = np.zeros(len(expo), dtype=bool)
        ok = self.pair_borrower_row >= 0
        in_default[ok] = np.isin(status[self.pair_borrower_row[ok]], ("defaulted", "failed"))
        colours = np.where(
            expo <= 0,
            EDGE_COLOURS["idle"],
            np.where(
                in_default,
                EDGE_COLOURS["defaulted"],
                np.where(self.pair_is_funding, EDGE_COLOURS["funding"], EDGE_COLOURS["performing"]),
            ),
        )
        self.loan_lines.set_color(list(colours))
        self.loan_lines.set_linewidth(np.where(expo <= 0, 0.4, self._width(expo)))
        self.loan_lines.set_alpha(0.75)

        self.trade_lines.set_segments(self._segments(trades_in_month(run, month)))

        date = run.timeseries["date"].iloc[k]
        n_def, n_fail = int(dflt.sum()), int(failed.sum())
        extra = f", {n_fail} failed" if n_fail else ""
        self.title.set_text(f"{date} (month {month}): {n_def} in default{extra}")
        self.cursor.set_xdata([run.dates[k], run.dates[k]])
        self.month = month
        return [*(sc for _, sc in self.node_sets.values()), self.x_defaulted, self.x_failed,
                self.ring, self.loan_lines, self.trade_lines, self.title, self.cursor]  # fmt: skip

    def drawn_agents(self, gid: str) -> set[int]:
        """Agent ids at the offsets of a marker layer ("defaulted", "failed", "seized")."""
        layer = {"defaulted": self.x_defaulted, "failed": self.x_failed, "seized": self.ring}[gid]
        return positions_to_agents(layer.get_offsets(), self.pos)


def positions_to_agents(offsets, pos: dict[int, np.ndarray]) -> set[int]:
    ids = np.array(sorted(pos))
    xy = np.array([pos[i] for i in ids]).reshape(-1, 2)
    out = set()
    for p in np.asarray(offsets).reshape(-1, 2):
        d = np.abs(xy - p).sum(axis=1)
        j = int(np.argmin(d))
        if d[j] < 1e-9:
            out.add(int(ids[j]))
    return out


def _nice_refs(vmax: float) -> list[float]:
    """Up to three round USD amounts below ``vmax`` for a size legend."""
    if vmax <= 1.0:
        return []
    top = 10 ** np.floor(np.log10(vmax))
    for mult in (5, 2, 1):
        if mult * top <= vmax:
            top = mult * top
            break
    refs = [top, top / 5, top / 25]
    return [r for r in refs if r >= 1e6][::-1]


def _usd(x: float) -> str:
    if x >= 1e9:
        return f"${x / 1e9:g}B"
    return f"${x / 1e6:g}M"


def network_figure(run: RunData, month=None, seed: int = 0, labels: bool | None = None) -> Figure:
    """The lending network at ``month`` (model month or 'YYYY-MM'; default: the month with most
    agents in default, else the last).

    Node shape = agent type; node colour = status in agents.csv at that month (type colour if active,
    vermillion + black X if defaulted, black + white X if a failed lender); node area ~ sqrt(debt_usd).
    Edges: lender -> borrower credit relationships with width ~ sqrt(exposure), vermillion when the
    borrower is in default, green for interbank funding; dashed grey site leases; dotted orange
    fire-sale trades of the month; a black ring marks borrowers whose collateral has been seized.
    Exposures are reconstructed (see the module docstring): graphml holds end-of-run principals only.
    The layout is :func:`network_layout` (seeded, the same for every month).
    """
    month = run.resolve_month(month)
    view = NetworkView(run, seed=seed, labels=labels)
    view.update(month)
    view.fig.network_view = view  # tests and callers can read what was drawn
    return view.fig


__all__ = [
    "NetworkView",
    "credit_pairs",
    "edge_exposures",
    "network_figure",
    "network_layout",
]
