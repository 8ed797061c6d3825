"""Figures of a sweep folder: phase diagrams, fan charts, cascade-size distributions, Sobol indices.

Each builder returns a matplotlib Figure drawn outside pyplot (tests read its axes and data; a
notebook shows it inline); ``plot_sweep`` writes them all as PNG and PDF into ``DIR/figures/``.
Only the sweep's own files are read.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from abm.io import write_atomic
from abm.sweep.analyze import load_runs
from abm.sweep.metrics import METRICS
from abm.sweep.tasks import STATUS_OK
from abm.viz.style import new_figure

FAN_QUANTILES = ((0.05, 0.95), (0.25, 0.75))
FAN_COLUMNS = ("lender_losses_usd", "btc_price", "credit_supply_usd")


def _labels(metric: str) -> str:
    return METRICS.get(metric, metric)


def phase_diagram(
    runs: pd.DataFrame, x: str, y: str, metric: str = "default_share_borrowers"
) -> Figure:
    """Heatmap of the replicate mean of ``metric`` over two varied parameters (x, y)."""
    ok = runs[runs["status"] == STATUS_OK]
    table = ok.groupby([y, x])[metric].mean().unstack(x).sort_index()
    fig = new_figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    data = table.to_numpy(dtype=float)
    image = ax.imshow(data, origin="lower", aspect="auto", cmap="magma_r", interpolation="nearest")
    ax.set_xticks(range(table.shape[1]), [f"{v:g}" for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [f"{v:g}" for v in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    counts = ok.groupby([y, x]).size().unstack(x).reindex_like(table)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                shade = image.norm(data[i, j]) if image.norm.vmax > image.norm.vmin else 0.0
                ax.text(j, i, f"{data[i, j]:.2g}", ha="center", va="center", fontsize=8,
                        color="white" if shade > 0.6 else "black")  # fmt: skip
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(f"{metric} (mean)")
    n = int(counts.min().min()) if counts.size else 0
    ax.set_title(f"{metric}: mean over {n}+ replicates per cell", fontsize=10)
    fig.suptitle("Phase diagram", fontsize=11)
    return fig


def response_figure(runs: pd.DataFrame, x: str, metrics: list[str]) -> Figure:
    """Replicate mean and 95 % t-interval of each metric against one varied parameter."""
    from scipy import stats

    ok = runs[runs["status"] == STATUS_OK]
    fig = new_figure(figsize=(3.6 * len(metrics), 3.4))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    numeric = pd.api.types.is_numeric_dtype(ok[x])
    for ax, metric in zip(axes[0], metrics, strict=True):
        g = ok.groupby(x)[metric]
        mean, sd, n = g.mean(), g.std(ddof=1), g.count()
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        pos = mean.index.to_numpy() if numeric else np.arange(len(mean))
        ax.errorbar(pos, mean.to_numpy(), yerr=half.to_numpy(), fmt="o-", capsize=3,
                    color="#4477AA", lw=1.5)  # fmt: skip
        if not numeric:
            ax.set_xticks(pos, [str(v) for v in mean.index])
        ax.set_xlabel(x)
        ax.set_title(metric, fontsize=9)
    fig.suptitle("Replicate mean and 95 % confidence interval", fontsize=10)
    return fig


def _spread(groups: list, most: int = 6) -> list:
    """At most ``most`` of ``groups``, evenly spread (first and last kept), in order."""
    if len(groups) <= most:
        return groups
    keep = np.linspace(0, len(groups) - 1, most).round().astype(int)
    return [groups[i] for i in keep]


def fan_chart(
    timeseries: pd.DataFrame, runs: pd.DataFrame, column: str, by: str | None = None
) -> Figure:
    """Median and 50 % / 90 % bands of a monthly ``column`` across runs, one fan per value of
    ``by`` (a varied parameter; at most 6 values drawn)."""
    ok = runs.loc[runs["status"] == STATUS_OK, ["run_id", *([by] if by else [])]]
    ts = timeseries.merge(ok, on="run_id")
    groups = [(None, ts)] if by is None else list(ts.groupby(by))
    groups = _spread(groups)
    fig = new_figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.9, len(groups)))
    for (value, sub), colour in zip(groups, colours, strict=True):
        wide = sub.pivot(index="month", columns="run_id", values=column)
        months = wide.index.to_numpy()
        for lo, hi in FAN_QUANTILES:
            ax.fill_between(
                months,
                wide.quantile(lo, axis=1),
                wide.quantile(hi, axis=1),
                color=colour,
                alpha=0.15 if hi - lo > 0.6 else 0.3,
                linewidth=0,
            )
        label = (
            f"{by} = {value:g}"
            if by is not None and isinstance(value, float)
            else (f"{by} = {value}" if by is not None else "median")
        )
        ax.plot(
            months, wide.median(axis=1), color=colour, lw=1.8, label=f"{label} (n={wide.shape[1]})"
        )
    ax.set_xlabel("month")
    ax.set_ylabel(column)
    ax.set_title(f"{column}: median, 50 % and 90 % bands across runs", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


def cascade_ccdf(runs: pd.DataFrame, metric: str = "defaults", by: str | None = None) -> Figure:
    """Complementary CDF P(X >= x) of cascade sizes on log-log axes (x > 0), per ``by`` value."""
    ok = runs[runs["status"] == STATUS_OK]
    groups = [(None, ok)] if by is None else list(ok.groupby(by))
    groups = _spread(groups)
    fig = new_figure(figsize=(5.6, 4.4))
    ax = fig.subplots()
    colours = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.85, len(groups)))
    for (value, sub), colour in zip(groups, colours, strict=True):
        x, p = ccdf(sub[metric].to_numpy(dtype=float))
        if len(x) == 0:
            continue
        label = "all runs" if by is None else f"{by} = {value}"
        ax.step(x, p, where="post", color=colour, lw=1.6, label=f"{label} (n={len(sub)})")
        ax.plot(x, p, "o", color=colour, ms=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{metric} per run (x > 0)")
    ax.set_ylabel("P(X ≥ x)")
    ax.set_title("Distribution of cascade sizes (complementary CDF)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
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

    Phase diagrams need two varied numeric parameters (the first two), fan charts need the kept
    monthly time series, Sobol bars a ``sobol`` design analysed by ``abm analyze``."""
    sweep_dir = Path(sweep_dir)
    runs, manifest = load_runs(sweep_dir)
    design = manifest["design"]
    params = [p["name"] for p in design["parameters"]]
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(runs[p])]
    metric = metric or (design.get("headline_metrics") or ["default_share_borrowers"])[0]
    target = Path(out_dir) if out_dir else sweep_dir / "figures"
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if design["design"] == "grid" and len(numeric) >= 2:
        written += _save(
            phase_diagram(runs, numeric[0], numeric[1], metric), target / "phase_diagram", formats
        )
    if design["design"] == "grid" and params:
        headline = [m for m in design.get("headline_metrics", [metric]) if m in runs][:5]
        written += _save(response_figure(runs, params[0], headline), target / "response", formats)
    by = params[0] if params and design["design"] == "grid" else None
    written += _save(cascade_ccdf(runs, "defaults", by), target / "cascade_ccdf", formats)
    ts_path = sweep_dir / "timeseries.parquet"
    if ts_path.is_file():
        ts = pd.read_parquet(ts_path)
        for column in FAN_COLUMNS:
            if column in ts:
                written += _save(fan_chart(ts, runs, column, by), target / f"fan_{column}", formats)
    if design["design"] == "sobol":
        sobol_csv = sweep_dir / "analysis" / "sobol.csv"
        if not sobol_csv.is_file():
            from abm.sweep.analyze import analyze

            analyze(sweep_dir)
        written += _save(sobol_figure(pd.read_csv(sobol_csv)), target / "sobol_indices", formats)
    return written
