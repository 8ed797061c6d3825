"""Figures of a sweep folder: phase diagrams, response curves, fan charts, cascade-size
distributions, Sobol indices.

Every factor of a grid design stays visible: the response figure puts the first numeric factor on
the x axis, draws one series per level of the second and one row of panels per combination of the
others; fan charts and the cascade-size CCDF draw one series per level of the first factor and one
panel per combination of the others, so each series is one design point (its replicates). A
categorical factor (strings, booleans) is drawn on a categorical axis, as points, never joined by
a line. Intervals are those of ``abm analyze`` (:mod:`abm.sweep.intervals`: inside the metric's
range, method named in the title). Each builder returns a matplotlib Figure drawn outside pyplot
(tests read its axes and data); ``plot_sweep`` writes them all as PNG and PDF into ``DIR/figures/``.

Over ~450 lines because the four design-aware figures share their faceting helpers here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from abm.io import write_atomic
from abm.sweep.analyze import load_runs, summarize
from abm.sweep.intervals import MIN_REPLICATES
from abm.sweep.metrics import CATALOGUE, canonical
from abm.sweep.tasks import STATUS_OK
from abm.viz.style import new_figure

FAN_QUANTILES = ((0.05, 0.95), (0.25, 0.75))
FAN_COLUMNS = ("lender_losses_usd", "btc_price", "credit_supply_usd")
MOST_SERIES = 6  # series per panel (evenly spread levels beyond that, said in the title)
MOST_PANELS = 6  # panels of a faceted figure


def _unit_label(metric: str) -> str:
    m = CATALOGUE.get(metric)
    return f"{metric} ({m.unit})" if m else metric


def is_categorical(values: pd.Series) -> bool:
    """Strings and booleans are categories (no order, no distance between them)."""
    return pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values)


def _levels(runs: pd.DataFrame, factor: str) -> list:
    """The levels of a factor: sorted numbers, categories in design order."""
    if is_categorical(runs[factor]):
        return list(pd.unique(runs.sort_values("point")[factor]))
    return sorted(pd.unique(runs[factor]))


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)


def _spread(groups: list, most: int = MOST_SERIES) -> list:
    """At most ``most`` of ``groups``, evenly spread (first and last kept), in order."""
    if len(groups) <= most:
        return groups
    keep = np.linspace(0, len(groups) - 1, most).round().astype(int)
    return [groups[i] for i in keep]


def _facets(runs: pd.DataFrame, factors: list[str], most: int = MOST_PANELS):
    """(label, mask) per combination of the levels of ``factors`` present in ``runs`` (at most
    ``most``, evenly spread) and the number of combinations left out. No factors: one panel."""
    if not factors:
        return [("", np.ones(len(runs), dtype=bool))], 0
    combos = [
        c
        for c in itertools.product(*(_levels(runs, f) for f in factors))
        if (runs[factors] == pd.Series(c, index=factors)).all(axis=1).any()
    ]
    shown = _spread(combos, most)
    out = []
    for combo in shown:
        mask = (runs[factors] == pd.Series(combo, index=factors)).all(axis=1).to_numpy()
        out.append(
            (", ".join(f"{f} = {_text(v)}" for f, v in zip(factors, combo, strict=True)), mask)
        )
    return out, len(combos) - len(shown)


def _left_out(n: int, what: str) -> str:
    return f" ({n} {what} not shown)" if n else ""


def phase_diagram(
    runs: pd.DataFrame,
    x: str,
    y: str,
    metric: str = "default_share_borrowers",
    others: list[str] | None = None,
) -> Figure:
    """Heatmap of the replicate mean of ``metric`` over two numeric factors (x, y); one panel
    per combination of the ``others`` (the design's remaining factors), on one colour scale."""
    ok = runs[runs["status"] == STATUS_OK]
    facets, left = _facets(ok, list(others or []))
    tables = [ok[mask].groupby([y, x])[metric].mean().unstack(x).sort_index() for _, mask in facets]
    values = np.concatenate([t.to_numpy(dtype=float).ravel() for t in tables])
    finite = values[np.isfinite(values)]
    vmin, vmax = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    fig = new_figure(figsize=(1.0 + 4.6 * len(facets), 4.6))
    axes = fig.subplots(1, len(facets), squeeze=False)[0]
    counts = ok.groupby("point").size()
    for ax, (label, _), table in zip(axes, facets, tables, strict=True):
        data = table.to_numpy(dtype=float)
        image = ax.imshow(data, origin="lower", aspect="auto", cmap="magma_r",
                          interpolation="nearest", vmin=vmin, vmax=vmax)  # fmt: skip
        ax.set_xticks(range(table.shape[1]), [_text(v) for v in table.columns])
        ax.set_yticks(range(table.shape[0]), [_text(v) for v in table.index])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                if np.isfinite(data[i, j]):
                    shade = image.norm(data[i, j]) if vmax > vmin else 0.0
                    ax.text(j, i, f"{data[i, j]:.2g}", ha="center", va="center", fontsize=8,
                            color="white" if shade > 0.6 else "black")  # fmt: skip
        if label:
            ax.set_title(label, fontsize=9)
    bar = fig.colorbar(image, ax=list(axes))
    bar.set_label(f"{_unit_label(metric)}, mean")
    n_lo, n_hi = (int(counts.min()), int(counts.max())) if len(counts) else (0, 0)
    n_text = f"{n_lo}" if n_lo == n_hi else f"{n_lo}-{n_hi}"
    fig.suptitle(
        f"{metric}: mean over {n_text} replicates per design point{_left_out(left, 'panels')}",
        fontsize=10,
    )
    return fig


def response_figure(
    runs: pd.DataFrame,
    params: list[str],
    metrics: list[str],
    confidence: float = 0.95,
    master_seed: int = 0,
    months: int | None = None,
) -> Figure:
    """Replicate mean and interval of each metric (columns of panels) against ``params[0]``,
    one series per level of ``params[1]``, one row of panels per combination of ``params[2:]``.

    Numeric x: points joined by lines; categorical x: points side by side on a categorical
    axis. Intervals as in ``abm analyze`` (``summarize``): none below ``MIN_REPLICATES``."""
    x, hue, rest = params[0], (params[1] if len(params) > 1 else None), list(params[2:])
    ok = runs[runs["status"] == STATUS_OK]
    table = summarize(runs, params, confidence, master_seed, months)
    facets, left = _facets(ok, rest, most=4)
    x_levels = _levels(ok, x)
    hue_levels = _spread(_levels(ok, hue)) if hue else [None]
    series_left = len(_levels(ok, hue)) - len(hue_levels) if hue else 0
    categorical = is_categorical(ok[x])
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.85, len(hue_levels)))
    fig = new_figure(figsize=(3.8 * len(metrics), 0.6 + 3.2 * len(facets)))
    axes = fig.subplots(len(facets), len(metrics), squeeze=False)
    width = 0.6 / len(hue_levels)
    span = float(np.ptp(x_levels)) if not categorical and len(x_levels) > 1 else 1.0
    for row, (label, mask) in enumerate(facets):
        points = set(ok.loc[mask, "point"])
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            part = table[(table["metric"] == metric) & table["point"].isin(points)]
            for k, (level, colour) in enumerate(zip(hue_levels, colours, strict=True)):
                sub = part if hue is None else part[part[hue] == level]
                sub = sub.set_index(x).reindex(x_levels).dropna(subset=["mean"])
                offset = (k - (len(hue_levels) - 1) / 2) * width
                if categorical:
                    pos = np.array([x_levels.index(v) for v in sub.index]) + offset
                else:  # dodged by a few % of the x range so equal means stay apart
                    pos = sub.index.to_numpy(dtype=float) + offset * 0.08 * span
                mean = sub["mean"].to_numpy(dtype=float)
                err = np.nan_to_num(
                    np.vstack(
                        [
                            mean - sub["ci_low"].to_numpy(float),
                            sub["ci_high"].to_numpy(float) - mean,
                        ]
                    )
                )
                name = "mean" if hue is None else f"{hue} = {_text(level)}"
                ax.errorbar(pos, mean, yerr=err, fmt="o" if categorical else "o-", capsize=3,
                            color=colour, lw=1.5, ms=5, label=name)  # fmt: skip
            if categorical:
                ax.set_xticks(range(len(x_levels)), [_text(v) for v in x_levels])
                ax.set_xlim(-0.6, len(x_levels) - 0.4)
            else:  # every panel on the design's x range, whatever its metric has values for
                ax.set_xlim(min(x_levels) - 0.1 * span, max(x_levels) + 0.1 * span)
            ax.set_xlabel(x)
            low = CATALOGUE[metric].low
            if low is not None:  # the range's floor drawn; a sliver below keeps markers whole
                bottom, top = ax.get_ylim()
                ax.set_ylim(bottom=max(bottom, low - 0.03 * (top - low)))
                ax.axhline(low, color="0.75", lw=0.6, zorder=0)
            methods = sorted(set(part["ci_method"]) - {"none"})
            method = " / ".join(m.replace("_", " ") for m in methods)
            method = f"{confidence:.0%} {method} interval" if method else "no interval (n < 5)"
            title = f"{_unit_label(metric)}\n{method}"
            ok_runs = part["runs"] - part["failed"]
            if len(part) and (part["n"] < ok_runs).any():  # NaN where undefined (e.g. no default)
                lo, hi = int(part["n"].min()), int(part["n"].max())
                title += f"; n = {lo if lo == hi else f'{lo}-{hi}'} runs with a value"
            ax.set_title(title + (f"\n{label}" if label else ""), fontsize=9)
    if hue is not None:
        axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(
        _response_title(table[table["metric"].isin(metrics)], confidence)
        + _left_out(left, "panel rows")
        + _left_out(series_left, f"levels of {hue}"),
        fontsize=10,
    )
    return fig


def _response_title(table: pd.DataFrame, confidence: float) -> str:
    n = table.drop_duplicates("point")["runs"] - table.drop_duplicates("point")["failed"]
    n_text = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    if (table["ci_method"] == "none").all():
        bars = f"no interval: fewer than {MIN_REPLICATES} replicates"
    else:
        bars = f"error bars: {confidence:.0%} interval, method under each panel title"
        if table["too_few_replicates"].any():
            bars += f" (none where n < {MIN_REPLICATES})"
    return f"Mean over {n_text} replicates per design point; {bars}"


def fan_chart(
    timeseries: pd.DataFrame, runs: pd.DataFrame, column: str, params: list[str] | None = None
) -> Figure:
    """Median and 50 % / 90 % bands of a monthly ``column`` across the replicates of each design
    point: one fan per level of ``params[0]`` (at most 6, evenly spread), one panel per
    combination of ``params[1:]``. Without ``params`` one fan pools every run."""
    params = list(params or [])
    ok = runs.loc[runs["status"] == STATUS_OK, ["run_id", "point", *params]]
    ts = timeseries.merge(ok, on="run_id")
    facets, left = _facets(ok, params[1:])
    fig = new_figure(figsize=(0.6 + 5.2 * min(len(facets), 3), 0.6 + 3.8 * -(-len(facets) // 3)))
    axes = fig.subplots(
        -(-len(facets) // 3), min(len(facets), 3), squeeze=False, sharey=True
    ).ravel()
    levels = _spread(_levels(ok, params[0])) if params else [None]
    series_left = len(_levels(ok, params[0])) - len(levels) if params else 0
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.9, len(levels)))
    for ax, (label, mask) in zip(axes, facets, strict=False):
        in_facet = ts[ts["run_id"].isin(ok.loc[mask, "run_id"])]
        for level, colour in zip(levels, colours, strict=True):
            sub = in_facet if level is None else in_facet[in_facet[params[0]] == level]
            if sub.empty:
                continue
            wide = sub.pivot(index="month", columns="run_id", values=column)
            months = wide.index.to_numpy()
            for lo, hi in FAN_QUANTILES:
                ax.fill_between(months, wide.quantile(lo, axis=1), wide.quantile(hi, axis=1),
                                color=colour, alpha=0.15 if hi - lo > 0.6 else 0.3, linewidth=0)  # fmt: skip
            name = "all runs" if level is None else f"{params[0]} = {_text(level)}"
            ax.plot(
                months,
                wide.median(axis=1),
                color=colour,
                lw=1.8,
                label=f"{name} (n={wide.shape[1]})",
            )
        ax.set_xlabel("month")
        ax.set_ylabel(column)
        if label:
            ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[len(facets) :]:
        ax.set_visible(False)
    pooled = "" if params else " (all runs pooled over the design)"
    fig.suptitle(
        f"{column}: median, 50 % and 90 % bands across the replicates of each design point"
        f"{pooled}{_left_out(left, 'panels')}"
        f"{_left_out(series_left, f'levels of {params[0]}' if params else '')}",
        fontsize=10,
    )
    return fig


def cascade_ccdf(
    runs: pd.DataFrame, metric: str = "defaults", params: list[str] | None = None
) -> Figure:
    """Complementary CDF P(X >= x) of cascade sizes on log-log axes (x > 0): one series per level
    of ``params[0]``, one panel per combination of ``params[1:]`` (all runs without params)."""
    params = list(params or [])
    ok = runs[runs["status"] == STATUS_OK]
    facets, left = _facets(ok, params[1:])
    levels = _spread(_levels(ok, params[0])) if params else [None]
    series_left = len(_levels(ok, params[0])) - len(levels) if params else 0
    colours = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.85, len(levels)))
    fig = new_figure(figsize=(0.6 + 4.6 * len(facets), 4.4))
    axes = fig.subplots(1, len(facets), squeeze=False, sharex=True, sharey=True)[0]
    positive = bool((ok[metric] > 0).any())
    for ax, (label, mask) in zip(axes, facets, strict=True):
        in_facet = ok[mask]
        for level, colour in zip(levels, colours, strict=True):
            sub = in_facet if level is None else in_facet[in_facet[params[0]] == level]
            x, p = ccdf(sub[metric].to_numpy(dtype=float))
            name = "all runs" if level is None else f"{params[0]} = {_text(level)}"
            if len(x) == 0:  # said in the legend, not silently left out
                ax.plot([], [], color=colour, lw=1.6, label=f"{name} (n={len(sub)}): all zero")
                continue
            ax.step(x, p, where="post", color=colour, lw=1.6, label=f"{name} (n={len(sub)})")
            ax.plot(x, p, "o", color=colour, ms=3)
        if positive:
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:  # no log axis without a positive value: say so instead
            ax.text(0.5, 0.5, f"no run with {metric} > 0", ha="center", transform=ax.transAxes)
        ax.set_xlabel(f"{metric} per run (x > 0)")
        ax.set_ylabel("P(X ≥ x)")
        if label:
            ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    pooled = "" if params else "; all runs pooled over the design"
    fig.suptitle(
        f"Cascade sizes (complementary CDF) over the replicates of each design point{pooled}"
        f"{_left_out(left, 'panels')}"
        f"{_left_out(series_left, f'levels of {params[0]}' if params else '')}",
        fontsize=10,
    )
    return fig


def ccdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positive values x and P(X >= x) over all (finite) values, zeros included."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.empty(0), np.empty(0)
    xs = np.unique(values[values > 0])
    p = np.array([(values >= x).mean() for x in xs])
    return xs, p


def sobol_figure(sobol: pd.DataFrame) -> Figure:
    """First- and total-order Sobol indices with confidence bars, one panel per metric."""
    metrics = list(dict.fromkeys(sobol["metric"]))
    fig = new_figure(figsize=(4.6 * len(metrics), 4.0))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = sobol[sobol["metric"] == metric]
        pos = np.arange(len(sub))
        ax.barh(pos - 0.2, sub["S1"], 0.4, xerr=sub["S1_conf"], label="S1 (first order)",
                color="#4477AA", capsize=2)  # fmt: skip
        ax.barh(pos + 0.2, sub["ST"], 0.4, xerr=sub["ST_conf"], label="ST (total order)",
                color="#EE6677", capsize=2)  # fmt: skip
        ax.set_yticks(pos, sub["parameter"])
        ax.invert_yaxis()
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_xlabel("Sobol index")
        ax.set_title(metric, fontsize=10)
    axes[0][0].legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle("Global sensitivity (Saltelli / Sobol, SALib)", fontsize=11)
    return fig


def _save(fig: Figure, path: Path, formats) -> list[Path]:
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        write_atomic(target, lambda tmp: fig.savefig(tmp, dpi=160), suffix=f".{fmt}")
        written.append(target)
    return written


def plot_sweep(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    metric: str | None = None,
    formats=("png", "pdf"),
) -> list[Path]:
    """Write every figure the sweep supports; return the files written.

    Phase diagrams need two varied numeric parameters (the first two; the other factors become
    panels), response curves a grid, fan charts the kept monthly time series, Sobol bars a
    ``sobol`` design analysed by ``abm analyze``. Metric names of earlier versions are accepted
    (``abm.sweep.metrics.ALIASES``)."""
    sweep_dir = Path(sweep_dir)
    runs, manifest = load_runs(sweep_dir)
    design = manifest["design"]
    params = [p["name"] for p in design["parameters"]]
    numeric = [p for p in params if not is_categorical(runs[p])]
    headline = [canonical(m) for m in design.get("headline_metrics") or []]
    metric = canonical(metric) if metric else (headline or ["default_share_borrowers"])[0]
    target = Path(out_dir) if out_dir else sweep_dir / "figures"
    target.mkdir(parents=True, exist_ok=True)
    grid = design["design"] == "grid"
    # a numeric factor first: it is the x axis of the response curves, the fans' colour scale
    order = [*numeric[:1], *[p for p in params if p not in numeric[:1]]] if grid else []
    written: list[Path] = []
    if grid and len(numeric) >= 2:
        others = [p for p in params if p not in numeric[:2]]
        fig = phase_diagram(runs, numeric[0], numeric[1], metric, others)
        written += _save(fig, target / "phase_diagram", formats)
    if grid and params:
        shown = [m for m in (headline or [metric]) if m in runs][:5]
        fig = response_figure(
            runs, order, shown, design.get("confidence", 0.95), design["master_seed"],
            design.get("months"),
        )  # fmt: skip
        written += _save(fig, target / "response", formats)
    written += _save(cascade_ccdf(runs, "defaults", order), target / "cascade_ccdf", formats)
    ts_path = sweep_dir / "timeseries.parquet"
    if ts_path.is_file():
        ts = pd.read_parquet(ts_path)
        for column in FAN_COLUMNS:
            if column in ts:
                fig = fan_chart(ts, runs, column, order)
                written += _save(fig, target / f"fan_{column}", formats)
    if design["design"] == "sobol":
        sobol_csv = sweep_dir / "analysis" / "sobol.csv"
        if not sobol_csv.is_file():
            from abm.sweep.analyze import analyze

            analyze(sweep_dir)
        written += _save(sobol_figure(pd.read_csv(sobol_csv)), target / "sobol_indices", formats)
    return written
