"""The calibration report (``abm calibration``): run the scenarios the targets need over a declared
set of seeds, compute each target's statistic per run, and write the table.

Each scenario x seed is run once, serially, with :func:`abm.run` (a probe records, after every
month, the model state the tables do not keep: :func:`abm.calibration_targets.probe_month`). Per
target the table gives the source's value, the model's statistic over seeds (the median, or the
pooled mean for a frequency), the 10-90 % range of the per-run values, the tolerance band and
pass/fail. The folder written (``calibration.csv``, ``calibration.md``, ``runs.csv`` with every
per-run value, ``manifest.json`` of kind ``"abm-calibration"``) replaces an earlier report
atomically and never anything else (:func:`abm.io.write_owned_folder`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from abm.calibration_targets import TARGETS, TARGETS_BY_ID, RunObservation, Target, probe_month
from abm.config import ConfigError

MAX_SEEDS = 1000
DEFAULT_SEEDS = 12
TABLE_COLUMNS = (
    "id",
    "description",
    "source",
    "unit",
    "scenario",
    "months",
    "target",
    "statistic",
    "model",
    "p10",
    "p90",
    "low",
    "high",
    "tolerance_basis",
    "passes",
    "runs",
)


def select_targets(ids: Sequence[str] | None = None) -> list[Target]:
    """The targets named by ``ids`` (all of them when None or empty), in the order of ``TARGETS``.
    Raises :class:`ConfigError` naming ``--target`` for an unknown id."""
    if not ids:
        return list(TARGETS)
    unknown = [i for i in ids if i not in TARGETS_BY_ID]
    if unknown:
        raise ConfigError(
            f"--target: unknown target {unknown[0]!r}; one of {', '.join(TARGETS_BY_ID)}"
        )
    wanted = set(ids)
    return [t for t in TARGETS if t.id in wanted]


def check_seeds(n_seeds: object) -> list[int]:
    """Seeds ``0 .. n_seeds - 1``; ``n_seeds`` must be an integer in [1, MAX_SEEDS]."""
    if not isinstance(n_seeds, int) or isinstance(n_seeds, bool) or not 1 <= n_seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds: must be an integer in [1, {MAX_SEEDS}], got {n_seeds!r}")
    return list(range(n_seeds))


def run_targets(
    targets: Sequence[Target], seeds: Sequence[int], progress: bool = False
) -> pd.DataFrame:
    """Per-run values: one row per (target, seed) with columns ``id``, ``scenario``, ``seed``,
    ``value`` (in the target's unit). Each scenario the targets need runs once per seed."""
    from abm.results import run

    scenarios = list(dict.fromkeys(t.scenario for t in targets))
    jobs = [(s, seed) for s in scenarios for seed in seeds]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="calibration", unit="run")
    rows = []
    for scenario, seed in jobs:
        probes: list[dict] = []
        result = run(
            scenario, seed=seed, observe=lambda m, t, out=probes: out.append(probe_month(m, t))
        )
        observation = RunObservation(result, pd.DataFrame(probes))
        for target in targets:
            if target.scenario == scenario:
                value = float(target.extract(observation))
                rows.append({"id": target.id, "scenario": scenario, "seed": seed, "value": value})
        del result, observation  # one run's tables at a time
    return pd.DataFrame(rows, columns=["id", "scenario", "seed", "value"])


def summarise(targets: Sequence[Target], values: pd.DataFrame) -> pd.DataFrame:
    """The report table (columns ``TABLE_COLUMNS``), one row per target: the statistic over seeds
    (median, or mean for a frequency), the 10th and 90th percentiles of the per-run values
    (non-finite values are left out; ``runs`` counts the finite ones) and whether the statistic
    lies in the tolerance band."""
    rows = []
    for t in targets:
        v = values.loc[values["id"] == t.id, "value"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if len(v):
            model = float(np.mean(v) if t.statistic == "mean" else np.median(v))
            p10, p90 = (float(x) for x in np.percentile(v, [10, 90]))
        else:
            model = p10 = p90 = float("nan")
        rows.append(
            {
                "id": t.id,
                "description": t.description,
                "source": t.source,
                "unit": t.unit,
                "scenario": t.scenario,
                "months": t.months,
                "target": t.target,
                "statistic": t.statistic,
                "model": model,
                "p10": p10,
                "p90": p90,
                "low": t.low,
                "high": t.high,
                "tolerance_basis": t.tolerance_basis,
                "passes": t.passes(model),
                "runs": len(v),
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def fmt_number(x: float) -> str:
    """A number for the table: whole numbers (thousands separated) from 100 up, one decimal from
    10, two below ("n/a" for a missing value)."""
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def format_markdown(table: pd.DataFrame, seeds: Sequence[int]) -> str:
    """The table in markdown: target, source, where it is read, the source's value, the model's
    statistic with its 10-90 % range, the tolerance band and pass/fail."""
    lines = [
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} runs per scenario). Model: median over the "
        "seeds (mean for a frequency); 10-90 %: percentiles of the per-run values.",
        "",
        "| target | unit | source | scenario, months | source value | model | 10-90 % | "
        "tolerance | pass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        stat = " (mean)" if r.statistic == "mean" else ""
        lines.append(
            f"| `{r.id}`: {r.description} | {r.unit} | {r.source} | {r.scenario}, {r.months} | "
            f"{r.target} | {fmt_number(r.model)}{stat} | {fmt_number(r.p10)} - "
            f"{fmt_number(r.p90)} | {fmt_number(r.low)} - {fmt_number(r.high)} "
            f"({r.tolerance_basis}) | {'pass' if r.passes else '**fail**'} |"
        )
    passed = int(table["passes"].sum())
    lines += ["", f"{passed} of {len(table)} targets inside their tolerance."]
    return "\n".join(lines) + "\n"


def write_report(
    table: pd.DataFrame,
    values: pd.DataFrame,
    seeds: Sequence[int],
    out_dir: str | Path,
    manifest: dict | None = None,
) -> Path:
    """Write ``calibration.csv``, ``calibration.md``, ``runs.csv`` and the manifest to ``out_dir``
    atomically (an earlier calibration report there is replaced; anything else is refused)."""
    from abm.io import CALIBRATION_KIND, write_owned_folder

    markdown = format_markdown(table, seeds)
    writers = {
        "calibration.csv": lambda p: table.to_csv(p, index=False),
        "calibration.md": lambda p: p.write_text(markdown),
        "runs.csv": lambda p: values.to_csv(p, index=False),
    }
    info = {
        "seeds": list(seeds),
        "targets": list(table["id"]),
        "scenarios": sorted(set(table["scenario"])),
        "passed": int(table["passes"].sum()),
        **(manifest or {}),
    }
    return write_owned_folder(out_dir, writers, info, CALIBRATION_KIND)


def calibration(
    n_seeds: int = DEFAULT_SEEDS,
    out_dir: str | Path = "results/calibration",
    target_ids: Sequence[str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Check the input, run, summarise and write the report; returns the table. Bad input
    (seeds, target ids, destination) raises :class:`ConfigError` before anything runs."""
    from abm.io import check_destination

    seeds = check_seeds(n_seeds)
    targets = select_targets(target_ids)
    check_destination(out_dir, kind="calibration")
    started = time.time()
    t0 = time.perf_counter()
    values = run_targets(targets, seeds, progress=progress)
    table = summarise(targets, values)
    manifest = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "runtime_s": round(time.perf_counter() - t0, 2),
    }
    write_report(table, values, seeds, out_dir, manifest)
    return table
