"""Solara components of the interactive app (``abm/app.py``).

The components wrap the figures of :mod:`abm.viz.app_figures` for Mesa's ``SolaraViz``: each
re-draws when Mesa's ``update_counter`` ticks (after every step or reset) and shows the figure as a
PNG that scales to the width of its card. The model-state helpers (:mod:`abm.viz.app_state`) and
the figures are re-exported here, so ``app_components.network_figure`` etc. keep working.
"""

from __future__ import annotations

import numpy as np
import solara
from mesa.visualization.utils import update_counter

from abm.viz.app_figures import defaults_figure, figure_png, network_figure, prices_figure
from abm.viz.app_state import (
    TYPE_LABELS,
    default_generation,
    layout_positions,
    node_states,
    state_counts,
    timeseries,
)

__all__ = [
    "DefaultsView",
    "NetworkView",
    "PricesView",
    "SummaryView",
    "defaults_figure",
    "figure_png",
    "layout_positions",
    "network_figure",
    "node_states",
    "prices_figure",
    "state_counts",
    "summary_markdown",
]


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
