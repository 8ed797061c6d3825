"""Figure plumbing and palettes shared by every viz module: figures made outside pyplot.

Nothing in :mod:`abm.viz` imports ``matplotlib.pyplot`` or calls ``matplotlib.use``: a figure is a
:class:`matplotlib.figure.Figure` with its own Agg canvas, so writing files needs no backend and
importing the package never switches the backend of the process (in Jupyter the inline backend
stays on; ``%matplotlib inline`` shows a returned Figure as a PNG).

Palettes of agent types, channels and causes come from :mod:`abm.vocabulary`; the figure style, the
status colours and the generation colormap are defined here (colourblind-safe throughout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.colors
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from abm.vocabulary import (  # re-exported: the figures' palettes are the vocabulary's
    AGENT_TYPE_COLOURS,
    AGENT_TYPE_MARKERS,
    CAUSE_COLOURS,
    CHANNEL_COLOURS,
    DEFAULTING_TYPES,
)

if TYPE_CHECKING:
    from abm.viz.run_data import RunData

__all__ = [
    "AGENT_TYPE_COLOURS",
    "AGENT_TYPE_MARKERS",
    "CAUSE_COLOURS",
    "CHANNEL_COLOURS",
    "DEFAULTING_TYPES",
    "STATUS_COLOURS",
    "STYLE",
    "date_axis",
    "generation_colours",
    "new_figure",
    "shade_stress",
    "stress_handle",
    "styled",
    "suptitle",
    "usd_bn",
    "usd_short",
]

#: Agent status at a month (abm.vocabulary.AGENT_STATUSES); "" means the type colour.
STATUS_COLOURS: dict[str, str] = {"active": "", "defaulted": "#D55E00", "failed": "#000000"}
#: GPU generations are ordered by release, so they get an ordered (perceptually uniform) colormap.
GENERATION_CMAP = "viridis"
STRESS_SHADE = {"color": "0.5", "alpha": 0.12, "lw": 0}
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "0.9",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.4,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
}


def generation_colours(generations: Iterable[str]) -> dict[str, str]:
    """One colour per GPU generation, in release order (older = darker)."""
    gens = list(generations)
    cmap = matplotlib.colormaps[GENERATION_CMAP]
    if len(gens) == 1:
        return {gens[0]: matplotlib.colors.to_hex(cmap(0.0))}
    return {
        g: matplotlib.colors.to_hex(cmap(0.85 * k / (len(gens) - 1))) for k, g in enumerate(gens)
    }


def styled(builder: Callable) -> Callable:
    """Run a figure builder inside the package style (rcParams are applied when artists are made)."""

    @wraps(builder)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return builder(*args, **kwargs)

    return wrapper


def new_figure(**kwargs) -> Figure:
    """A Figure with an Agg canvas, outside pyplot (no global figure registry to leak).

    Keyword arguments go to :class:`~matplotlib.figure.Figure`; the layout defaults to
    ``"constrained"``.
    """
    kwargs.setdefault("layout", "constrained")
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------------------------------
# Shared axis helpers (time axes of a run folder's figures)
# --------------------------------------------------------------------------------------------------


def date_axis(ax, run: RunData) -> None:
    """Concise date ticks over the run's months."""
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    half = pd.Timedelta(days=16)
    ax.set_xlim(run.dates[0] - half, run.dates[-1] + half)


def shade_stress(ax, run: RunData) -> bool:
    """Grey bands over stress-regime months; True if any was drawn."""
    stress = (run.timeseries["regime"].astype(str) == "stress").to_numpy()
    dates = run.dates
    drawn = False
    k = 0
    while k < len(stress):
        if stress[k]:
            j = k
            while j + 1 < len(stress) and stress[j + 1]:
                j += 1
            end = dates[j] + pd.offsets.MonthBegin(1)
            ax.axvspan(dates[k], end, zorder=0, **STRESS_SHADE)
            drawn = True
            k = j + 1
        else:
            k += 1
    return drawn


def stress_handle() -> Patch:
    """A legend entry for the stress-regime shading."""
    return Patch(
        facecolor=STRESS_SHADE["color"], alpha=STRESS_SHADE["alpha"], label="stress regime"
    )


def usd_short(x: float) -> str:
    """A USD amount in a few characters: $1.2B, $340M, $25k."""
    x = float(x)
    if abs(x) >= 1e9:
        return f"${x / 1e9:,.1f}B"
    if abs(x) >= 1e6:
        return f"${x / 1e6:,.0f}M"
    return f"${x / 1e3:,.0f}k"


def usd_bn(x):
    """USD amounts as a float array in billions."""
    return np.asarray(x, dtype=float) / 1e9


def suptitle(fig: Figure, run: RunData, what: str) -> None:
    """The figure title: what it shows and which run (scenario, seed)."""
    fig.suptitle(f"{what} ({run.title})", fontsize=11, fontweight="bold")
