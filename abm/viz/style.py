"""Figure plumbing shared by every viz module: figures made outside pyplot.

Nothing in :mod:`abm.viz` imports ``matplotlib.pyplot`` or calls ``matplotlib.use``: a figure is a
:class:`matplotlib.figure.Figure` with its own Agg canvas, so writing files needs no backend and
importing the package never switches the backend of the process (in Jupyter the inline backend
stays on; ``%matplotlib inline`` shows a returned Figure as a PNG).
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(**kwargs) -> Figure:
    """A Figure with an Agg canvas, outside pyplot (no global figure registry to leak).

    Keyword arguments go to :class:`~matplotlib.figure.Figure`; the layout defaults to
    ``"constrained"``.
    """
    kwargs.setdefault("layout", "constrained")
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
