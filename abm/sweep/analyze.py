"""``abm analyze DIR``: per-point summaries with confidence intervals, and Sobol indices.

For every design point and metric: the number of successful replicates, the mean with a
confidence interval that stays inside the metric's declared range (``abm.sweep.intervals``: a
seeded percentile bootstrap over replicates, or Wilson for a 0/1 outcome per run; the method in
the ``ci_method`` column; no interval and ``too_few_replicates`` below 5 replicates), the
standard deviation and quantiles across replicates. For a
``sobol`` design, SALib's first-order (S1) and total-order (ST) indices with their bootstrap
confidence half-widths, for each headline metric (the model output is the replicate mean of each
design point). Results go to ``DIR/analysis/`` as CSV and are printed as tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from abm.config import ConfigError
from abm.io import write_atomic, write_json_atomic
from abm.sweep.folder import read_manifest, symlinks_inside
from abm.sweep.intervals import MIN_REPLICATES, interval_seed, mean_interval
from abm.sweep.metrics import ALIASES, CATALOGUE, METRICS, canonical, metric_bounds
from abm.sweep.parts import PART_SUFFIX, consolidate, finished_runs
from abm.sweep.tasks import STATUS_OK

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _check_manifest(manifest: dict, sweep_dir: Path) -> None:
    """ConfigError naming manifest.json unless it holds the design fields analyze reads."""
    design = manifest.get("design")
    ok = (
        isinstance(design, dict)
        and design.get("design") in ("grid", "lhs", "sobol")
        and isinstance(design.get("points"), int)
        and not isinstance(design.get("points"), bool)
        and isinstance(design.get("master_seed"), int)
        and isinstance(design.get("parameters"), list)
        and all(
            isinstance(p, dict) and isinstance(p.get("name"), str) for p in design["parameters"]
        )
    )
    if ok and design["design"] == "sobol":
        ok = all(
            isinstance(p.get("range"), list) and len(p["range"]) == 2 for p in design["parameters"]
        )
    if not ok:
        raise ConfigError(
            f"DIR: {sweep_dir / 'manifest.json'} lacks the sweep's design (design, points, "
            "master_seed, parameters); not a complete abm sweep manifest"
        )


def _read_runs(runs_path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(runs_path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ConfigError(
            f"DIR: {runs_path} is not a readable runs table ({type(exc).__name__}); delete it "
            "and analyze again to rebuild it from parts/"
        ) from None


def load_runs(sweep_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """The runs table and manifest of a sweep folder (re-consolidated if parts are newer).

    ConfigError (one line naming the file) for a folder that is not an abm sweep, a symlink
    where analyze reads or writes, a damaged part, or an unreadable runs.parquet that the parts
    cannot rebuild."""
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        raise ConfigError(f"DIR: {sweep_dir} is not an abm sweep folder (no sweep manifest.json)")
    links = symlinks_inside(sweep_dir)
    if links:
        raise ConfigError(f"DIR: {sweep_dir / links[0]} is a symlink; refusing to follow it")
    _check_manifest(manifest, sweep_dir)
    runs_path = sweep_dir / "runs.parquet"
    n_parts = len(finished_runs(sweep_dir))
    n_files = len(list((sweep_dir / "parts").glob(f"runs-*{PART_SUFFIX}")))
    # stale, damaged or a part unreadable: rebuild from the parts (which names a damaged one)
    if n_files and (n_files != n_parts or _n_rows(runs_path) != n_parts):
        consolidate(sweep_dir)
    if not runs_path.is_file():
        raise ConfigError(f"DIR: {sweep_dir} has no finished runs yet")
    runs = _read_runs(runs_path)
    # a sweep written before a metric was renamed: its columns under the current names
    runs = runs.rename(columns={old: new for old, new in ALIASES.items() if new not in runs})
    params = [p["name"] for p in manifest["design"]["parameters"]]
    missing = [c for c in ("run_id", "point", "status", *params) if c not in runs.columns]
    if missing:
        raise ConfigError(
            f"DIR: {runs_path} has no column {missing[0]!r}; not a sweep's runs table"
        )
    return runs, manifest


def _n_rows(runs_path: Path) -> int | None:
    """Rows of runs.parquet from its footer, or None when it cannot be read."""
    try:
        return pq.ParquetFile(runs_path).metadata.num_rows
    except (pa.ArrowException, OSError, ValueError):
        return None


def summarize(
    runs: pd.DataFrame,
    params: list[str],
    confidence: float = 0.95,
    master_seed: int = 0,
    months: int | None = None,
) -> pd.DataFrame:
    """Long table: one row per (design point, metric) with n, mean, interval, sd and quantiles.

    ``ci_low``/``ci_high`` bound the replicate mean inside the metric's range (``ci_method``
    names the method, seeded by ``master_seed``); with fewer than ``MIN_REPLICATES`` finite
    values they are NaN and ``too_few_replicates`` is True. ``months`` (the run length) bounds
    month-valued metrics."""
    ok = runs[runs["status"] == STATUS_OK]
    keys = ["point", *params]
    counts = runs.groupby("point").size()
    fails = runs[runs["status"] != STATUS_OK].groupby("point").size()
    design = runs.drop_duplicates("point").set_index("point")[params] if params else None
    rows = []
    metrics = [m for m in METRICS if m in runs]
    for point in sorted(runs["point"].unique()):
        sub = ok[ok["point"] == point]
        for metric in metrics:
            x = sub[metric].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            n = len(x)
            lo, hi, method = mean_interval(
                x,
                CATALOGUE[metric].kind,
                confidence,
                interval_seed(master_seed, int(point), metric),
                metric_bounds(metric, months),
            )
            q = np.quantile(x, QUANTILES) if n else [np.nan] * len(QUANTILES)
            row = {"point": int(point)}
            if design is not None:
                row.update(design.loc[point].to_dict())
            row.update(
                metric=metric,
                runs=int(counts.get(point, 0)),
                failed=int(fails.get(point, 0)),
                n=n,
                mean=float(np.mean(x)) if n else np.nan,
                ci_low=lo,
                ci_high=hi,
                ci_method=method,
                too_few_replicates=n < MIN_REPLICATES,
                sd=float(np.std(x, ddof=1)) if n > 1 else np.nan,
            )
            row.update(
                {f"q{int(p * 100):02d}": float(v) for p, v in zip(QUANTILES, q, strict=True)}
            )
            rows.append(row)
    out = pd.DataFrame(rows)
    return out[[*keys, *[c for c in out.columns if c not in keys]]]


def sobol_indices(
    runs: pd.DataFrame, manifest: dict, metrics: list[str], seed: int = 0
) -> pd.DataFrame:
    """First- and total-order Sobol indices (SALib) of each metric's replicate mean per point."""
    from SALib.analyze import sobol

    design = manifest["design"]
    params = design["parameters"]
    problem = {
        "num_vars": len(params),
        "names": [p["name"] for p in params],
        "bounds": [p["range"] for p in params],
    }
    n_points = design["points"]
    ok = runs[runs["status"] == STATUS_OK]
    rows = []
    for metric in metrics:
        y = ok.groupby("point")[metric].mean().reindex(range(n_points)).to_numpy(dtype=float)
        if not np.all(np.isfinite(y)):
            bad = int(np.sum(~np.isfinite(y)))
            raise ConfigError(
                f"sobol: {metric} is undefined at {bad} of {n_points} design points (failed runs "
                "or a metric without data, e.g. no trades); Sobol indices need every point"
            )
        if np.ptp(y) == 0:
            si = {k: np.full(len(params), np.nan) for k in ("S1", "S1_conf", "ST", "ST_conf")}
        else:
            si = sobol.analyze(
                problem, y, calc_second_order=False, print_to_console=False, seed=seed
            )
        for i, p in enumerate(params):
            rows.append(
                {
                    "metric": metric,
                    "parameter": p["name"],
                    "S1": float(si["S1"][i]),
                    "S1_conf": float(si["S1_conf"][i]),
                    "ST": float(si["ST"][i]),
                    "ST_conf": float(si["ST_conf"][i]),
                }
            )
    return pd.DataFrame(rows)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def analyze(
    sweep_dir: str | Path, metrics: list[str] | None = None, confidence: float | None = None
) -> dict[str, pd.DataFrame]:
    """Summaries (and Sobol indices for a sobol design) of a sweep; written to DIR/analysis/."""
    sweep_dir = Path(sweep_dir)
    runs, manifest = load_runs(sweep_dir)
    design = manifest["design"]
    params = [p["name"] for p in design["parameters"]]
    metrics = metrics or design.get("headline_metrics") or ["default_share_borrowers"]
    metrics = [canonical(m) for m in metrics]  # names of earlier versions (metrics.ALIASES)
    for metric in metrics:
        if metric not in METRICS:
            raise ConfigError(f"--metric: unknown metric {metric!r}; allowed: {list(METRICS)}")
    if confidence is None:
        confidence = 0.95
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"--confidence: must be in [0.5, 1), got {confidence}")
    out = {
        "summary": summarize(runs, params, confidence, design["master_seed"], design.get("months"))
    }
    headline = out["summary"][out["summary"]["metric"].isin(metrics)]
    out["headline"] = (
        headline.pivot(index=["point", *params], columns="metric", values="mean")
        .reindex(columns=metrics)
        .reset_index()
    )
    out["headline"].columns.name = None
    if design["design"] == "sobol":
        out["sobol"] = sobol_indices(runs, manifest, metrics, seed=design["master_seed"] % 2**32)
    target = sweep_dir / "analysis"
    _write_csv(out["summary"], target / "summary_by_point.csv")
    _write_csv(out["headline"], target / "headline_means.csv")
    if "sobol" in out:
        _write_csv(out["sobol"], target / "sobol.csv")
    info = {
        "confidence": confidence,
        "metrics": metrics,
        "runs": int(len(runs)),
        "failed": int((runs["status"] != STATUS_OK).sum()),
        "complete": manifest.get("status") == "complete",
        "min_replicates": MIN_REPLICATES,
        "ci_methods": sorted(set(out["summary"]["ci_method"]) - {"none"}),
    }
    write_json_atomic(info, target / "analysis.json")
    out["info"] = info
    return out


def format_report(result: dict[str, pd.DataFrame], max_rows: int = 40) -> str:
    """Printed tables: headline means with confidence intervals per point, Sobol indices."""
    info = result["info"]
    summary = result["summary"]
    lines = [
        f"runs: {info['runs']} ({info['failed']} failed)"
        + ("" if info["complete"] else "  [sweep incomplete: resume it for the full design]"),
        f"mean [{info['confidence']:.0%} interval] across replicates, per design point; "
        f"intervals: {', '.join(info['ci_methods']) or 'none'} (per metric in the ci_method "
        "column of analysis/summary_by_point.csv; see docs/metrics.md)",
    ]
    params = [c for c in summary.columns if c not in ("point", "metric") and c not in _STAT_COLS]
    table = summary[summary["metric"].isin(info["metrics"])].copy()
    table["value"] = [
        _fmt(m) + (f" [{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(lo) else f" (n={n}, no CI)")
        for m, lo, hi, n in zip(
            table["mean"], table["ci_low"], table["ci_high"], table["n"], strict=True
        )
    ]
    few = table[table["too_few_replicates"]]
    if len(few):
        lines.append(
            f"too_few_replicates: {few['point'].nunique()} of {table['point'].nunique()} points "
            f"have a metric with fewer than {info['min_replicates']} replicates: no interval "
            "(raise replications)"
        )
    wide = table.pivot(index=["point", *params], columns="metric", values="value")
    wide = wide[info["metrics"]].reset_index()
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        lines.append(wide.head(max_rows).to_string(index=False))
        if len(wide) > max_rows:
            lines.append(f"... {len(wide) - max_rows} more points in analysis/summary_by_point.csv")
        if "sobol" in result:
            lines.append("Sobol indices (S1 first order, ST total order, +- 95 % bootstrap):")
            lines.append(result["sobol"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return "\n".join(lines)


_STAT_COLS = {
    "runs",
    "failed",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "ci_method",
    "too_few_replicates",
    "sd",
} | {f"q{int(p * 100):02d}" for p in QUANTILES}


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "nan"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
