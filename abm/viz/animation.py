"""An animation of the lending network, one frame per month of the run.

The figure and its artists are made once (:class:`abm.viz.network_view.NetworkView`) and the static
part (legends, labels, leases, the timeline) is rendered once as a background. Each frame restores
that background, redraws only the artists that change (node colours and sizes, X marks, seizure
rings, edge widths and colours, trades, title, cursor) and hands the canvas buffer to the writer,
so a 60-month run encodes in a few seconds instead of re-rendering every text for every frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.animation import FFMpegWriter, PillowWriter, writers
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from abm.viz.network_view import NetworkView
from abm.viz.run_data import RunData


class _Blitter:
    """Renders frames of a NetworkView by blitting its changing artists onto a cached background."""

    def __init__(self, view: NetworkView, dpi: float, last_month: int):
        self.view = view
        fig = view.fig
        self.canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        self.dynamic = view.update(last_month)  # the busiest title fixes the layout
        for artist in self.dynamic:
            artist.set_animated(True)
        self.canvas.draw()  # runs the layout engine once, without the animated artists
        fig.set_layout_engine("none")
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def render(self, month: int) -> np.ndarray:
        """RGBA pixels (height, width, 4) of the frame for ``month``."""
        self.view.update(month)
        self.canvas.restore_region(self.background)
        for artist in self.dynamic:
            self.view.fig.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())


class _BlitPillowWriter(PillowWriter):
    """PillowWriter fed from the blitted canvas buffer instead of a full savefig per frame."""

    def grab_pixels(self, rgba: np.ndarray) -> None:
        self._frames.append(Image.fromarray(rgba[..., :3].copy(), "RGB"))

    def finish(self) -> None:
        """Quantise every frame to one shared palette (fast, and no colour flicker between frames)."""
        frames = self._frames
        sample = frames[:: max(len(frames) // 3, 1)] + [frames[-1]]
        w, h = frames[0].size
        sheet = Image.new("RGB", (w, h * len(sample)))
        for k, im in enumerate(sample):
            sheet.paste(im, (0, h * k))
        palette = sheet.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        self._frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in frames]
        super().finish()


class _BlitFFMpegWriter(FFMpegWriter):
    """FFMpegWriter (raw RGBA frames on ffmpeg's stdin) fed from the blitted canvas buffer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frame_format = "rgba"

    def grab_pixels(self, rgba: np.ndarray) -> None:
        self._proc.stdin.write(np.ascontiguousarray(rgba).tobytes())


def animate_network(
    run: RunData,
    path: str | Path,
    fps: float = 4,
    dpi: int = 80,
    seed: int = 0,
    fmt: str | None = None,
) -> int:
    """Write the network animation to ``path``; returns the number of frames (one per month).

    The format follows ``fmt`` or the suffix of ``path``: ``gif`` (matplotlib PillowWriter) or
    ``mp4`` (matplotlib FFMpegWriter, H.264 yuv420p; needs ffmpeg). Each frame is the figure of
    :func:`abm.viz.network_view.network_figure` for one month, with the same seeded layout.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt == "gif":
        writer = _BlitPillowWriter(fps=fps)
    elif fmt == "mp4":
        if not writers.is_available("ffmpeg"):
            raise RuntimeError("mp4 animation needs ffmpeg, which was not found")
        writer = _BlitFFMpegWriter(fps=fps, codec="libx264",
                                   extra_args=["-pix_fmt", "yuv420p", "-preset", "veryfast"])  # fmt: skip
    else:
        raise ValueError(f"animation format {fmt!r}: use .gif or .mp4")
    months = [int(m) for m in run.months]
    view = NetworkView(run, seed=seed)
    blitter = _Blitter(view, dpi, months[-1])
    width, height = blitter.canvas.get_width_height()
    if fmt == "mp4" and (width % 2 or height % 2):  # yuv420p needs even sizes
        raise ValueError(f"frame size {width}x{height} must be even for mp4; change dpi")
    frames = 0
    with writer.saving(view.fig, str(path), dpi=dpi):
        for month in months:
            writer.grab_pixels(blitter.render(month))
            frames += 1
    return frames
