"""``abm reproduce DIR``: run a run folder or a sweep again from its manifest and compare.

A run folder is re-run from its ``manifest.json`` alone (resolved config, seed, months) into a
temporary folder outside ``DIR``; the sha256 of every file the manifest lists is compared with the
file in ``DIR``. ``overview.png`` is compared only when the matplotlib version is the one that drew
it (its bytes depend on matplotlib). A sweep folder is re-run run by run (all, or a seeded sample)
from its manifest (base scenario, design) and ``design.csv`` with the sweep's own task function,
and each run's metrics are compared with its row of ``runs.parquet``, exactly (NaN equals NaN).

Nothing is written inside ``DIR``. The report also names every version that differs between the
manifest and now (Python, numpy, pandas, mesa, networkx, matplotlib, abm, git commit, modified
checkout). A folder that is not an abm run or sweep, or a corrupt manifest, raises
:class:`abm.config.ConfigError` (the CLI exits 2); ``Report.identical`` says whether every
compared output was identical (the CLI exits 0, else 1).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from abm.config import ConfigError, validate
from abm.io import LEGACY_RUN_KEYS, RUN_KIND, SWEEP_KIND, provenance, sha256, versions

COMPARED_PACKAGES = ("python", "numpy", "pandas", "mesa", "networkx", "matplotlib", "abm")
FIGURE = "overview.png"


@dataclass
class Check:
    """One compared output: a file of a run folder, or one run of a sweep."""

    name: str
    status: str  # "identical", "different", "missing" or "not compared"
    note: str = ""


@dataclass
class Report:
    """What ``reproduce`` found: the checks, the versions that changed, and notes."""

    kind: str  # "run" or "sweep"
    directory: str
    header: str
    checks: list[Check] = field(default_factory=list)
    version_changes: list[tuple[str, object, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when every compared output is identical (a check "not compared" does not count)."""
        return all(c.status in ("identical", "not compared") for c in self.checks)


def _read_manifest(directory: Path) -> dict:
    if directory.is_symlink() or not directory.is_dir():
        raise ConfigError(
            f"DIR: {str(directory)!r} is not a folder written by abm run or abm sweep"
        )
    path = directory / "manifest.json"
    if not path.is_file():
        raise ConfigError(
            f"DIR: {directory} has no manifest.json; not a folder written by abm run or abm sweep"
        )
    import json

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"DIR: {directory}/manifest.json is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"DIR: {directory}/manifest.json is not a JSON object")
    return data


def _version_changes(manifest: dict) -> list[tuple[str, object, object]]:
    """(name, then, now) for every compared package, the git commit and the modified flag that
    differ between ``manifest`` and the running code ("not recorded" when the manifest lacks it)."""
    then_versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
    now_versions = versions()
    changes = []
    for name in COMPARED_PACKAGES:
        then = then_versions.get(name, "not recorded")
        if then != now_versions.get(name):
            changes.append((name, then, now_versions.get(name)))
    prov_then = manifest.get("provenance") if isinstance(manifest.get("provenance"), dict) else {}
    prov_now = provenance()
    then_commit = prov_then.get("git_commit", manifest.get("git_commit", "not recorded"))
    if then_commit != prov_now["git_commit"]:
        changes.append(("git commit", then_commit, prov_now["git_commit"]))
    for key, label in (("git_dirty", "modified checkout"), ("git_diff_sha256", "diff sha256")):
        then = prov_then.get(key, "not recorded")
        if then != prov_now[key]:
            changes.append((label, then, prov_now[key]))
    return changes


def reproduce(directory: str | Path, sample: int | None = None, sample_seed: int = 0) -> Report:
    """Re-run the run or sweep in ``directory`` and compare; see the module docstring.

    ``sample`` (sweeps only) re-runs that many runs, chosen with ``sample_seed``; None re-runs
    every run stored in ``runs.parquet``."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    kind = manifest.get("kind")
    if kind == SWEEP_KIND:
        return _reproduce_sweep(directory, manifest, sample, sample_seed)
    if kind == RUN_KIND or (kind is None and all(k in manifest for k in LEGACY_RUN_KEYS)):
        if sample is not None:
            raise ConfigError("--sample: only for a sweep folder; a run folder is one run")
        return _reproduce_run(directory, manifest)
    raise ConfigError(
        f"DIR: {directory}/manifest.json is not from abm run or abm sweep (kind {kind!r})"
    )


# ----------------------------------------------------------------------------- a run folder


def _run_inputs(manifest: dict) -> tuple[dict, int, int, dict]:
    config, seed, months = manifest.get("config"), manifest.get("seed"), manifest.get("months")
    files = manifest.get("files")
    if not isinstance(config, dict):
        raise ConfigError("manifest.json config: missing or not a table; cannot re-run")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"manifest.json seed: must be an integer >= 0, got {seed!r}")
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 600:
        raise ConfigError(f"manifest.json months: must be an integer in [1, 600], got {months!r}")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and "/" not in k and isinstance(v, str) for k, v in files.items()
    ):
        raise ConfigError("manifest.json files: missing or not a table of file name -> sha256")
    try:
        validate(config)
    except ConfigError as exc:
        raise ConfigError(f"manifest.json config: {exc}") from None
    return config, seed, months, files


def _ordered_like(value, template):
    """``value`` with every table's keys in ``template``'s order (keys it lacks keep theirs, after)."""
    if not isinstance(value, dict) or not isinstance(template, dict):
        return value
    keys = [k for k in template if k in value] + [k for k in value if k not in template]
    return {k: _ordered_like(value[k], template.get(k)) for k in keys}


def restore_order(config: dict) -> tuple[dict, str]:
    """A scenario read from a manifest written before abm kept key order (its tables sorted
    alphabetically), in the order the model needs: the packaged scenario of the same name (else
    baseline) gives the order of the tables (generations, lender and buyer kinds are built in that
    order), and generations are then put in release order. Returns the config and a note."""
    from abm.config import load_scenario, packaged_scenarios

    name = config.get("name")
    template_name = name if name in packaged_scenarios() else "baseline"
    ordered = _ordered_like(config, load_scenario(template_name))
    gens = ordered.get("generations")
    if isinstance(gens, dict):
        ordered["generations"] = dict(
            sorted(gens.items(), key=lambda kv: str(kv[1].get("release", "")))
        )
    note = (
        "the manifest predates key order in manifests (no provenance recorded): the config's "
        f"table order was restored from the packaged scenario {template_name!r}"
    )
    return ordered, note


def _reproduce_run(directory: Path, manifest: dict) -> Report:
    from abm.io import write_run
    from abm.results import run

    order_note = None
    if "provenance" not in manifest and isinstance(manifest.get("config"), dict):
        manifest = dict(manifest)
        manifest["config"], order_note = restore_order(manifest["config"])
    config, seed, months, files = _run_inputs(manifest)
    report = Report(
        "run",
        str(directory),
        f"run {directory}: scenario {config.get('name', '?')}, seed {seed}, {months} months",
    )
    if order_note:
        report.notes.append(order_note)
    report.version_changes = _version_changes(manifest)
    changed = {name for name, *_ in report.version_changes}
    draw = FIGURE in files and "matplotlib" not in changed
    result = run(config, seed=seed, months=months)
    figure = None
    if draw:
        from abm.viz.overview import overview_figure as figure
    with tempfile.TemporaryDirectory(prefix="abm-reproduce-") as tmp:
        fresh = write_run(result, Path(tmp) / "run", figure=figure)
        for name in sorted(files):
            stored = directory / name
            if name == FIGURE and not draw:
                then = (manifest.get("versions") or {}).get("matplotlib") or "(not recorded)"
                report.checks.append(
                    Check(
                        name,
                        "not compared",
                        f"drawn with matplotlib {then}, now {versions()['matplotlib']}: "
                        "PNG bytes depend on the matplotlib version",
                    )
                )
                continue
            if not stored.is_file() or stored.is_symlink():
                report.checks.append(
                    Check(name, "missing", f"listed in the manifest, not in {directory}")
                )
                continue
            if not (fresh / name).is_file():
                report.checks.append(Check(name, "different", "the re-run wrote no such file"))
                continue
            stored_hash = sha256(stored)
            note = "" if stored_hash == files[name] else "changed since abm wrote it"
            same = sha256(fresh / name) == stored_hash
            report.checks.append(Check(name, "identical" if same else "different", note))
        new_files = sorted({p.name for p in fresh.iterdir()} - set(files) - {"manifest.json"})
    if new_files:
        report.notes.append(
            f"the re-run also writes {', '.join(new_files)} (not in the stored run)"
        )
    return report


# ----------------------------------------------------------------------------- a sweep folder


def _sweep_experiment(directory: Path, manifest: dict):
    """The :class:`abm.sweep.design.Experiment` of a sweep folder, rebuilt from its manifest
    (base scenario, resolved design) and its ``design.csv``; raises ConfigError if impossible."""
    import pandas as pd

    from abm.sweep.design import Experiment, Parameter, get_dotted

    base, design = manifest.get("base_config"), manifest.get("design")
    if not isinstance(base, dict) or not isinstance(design, dict):
        raise ConfigError("manifest.json: a sweep manifest needs base_config and design tables")
    if "provenance" not in manifest:
        base, _ = restore_order(base)
    try:
        validate(base)
    except ConfigError as exc:
        raise ConfigError(f"manifest.json base_config: {exc}") from None
    design_csv = directory / "design.csv"
    if not design_csv.is_file():
        raise ConfigError(f"DIR: {directory} has no design.csv; cannot rebuild the design points")
    try:
        params = [
            Parameter(
                name=p["name"],
                path=p["path"],
                mode=p["mode"],
                kind=p["kind"],
                targets=tuple(p["targets"]),
                base_values=tuple(get_dotted(base, t) for t in p["targets"]),
                values=tuple(p["values"]) if p.get("values") is not None else None,
                bounds=tuple(p["range"]) if p.get("range") is not None else None,
            )
            for p in design["parameters"]
        ]
        points_frame = pd.read_csv(design_csv, float_precision="round_trip")
        columns = {p.name: points_frame[p.name].tolist() for p in params}  # native Python types
        outputs = design.get("outputs", {})
        exp = Experiment(
            name=str(design["name"]),
            description="",
            source="manifest.json",
            text="",
            scenario=str(design["scenario"]),
            base_config=base,
            fixed_overrides=dict(design.get("fixed_overrides", {})),
            parameters=params,
            design=str(design["design"]),
            samples=design.get("samples"),
            replications=int(design["replications"]),
            master_seed=int(design["master_seed"]),
            common_random_numbers=bool(design["common_random_numbers"]),
            months=int(design["months"]),
            keep_timeseries=bool(outputs.get("timeseries", False)),
            keep_agents=bool(outputs.get("agents", False)),
            headline_metrics=tuple(design.get("headline_metrics", ())),
            confidence=0.95,
        )
        exp.points = [
            {p.name: columns[p.name][i] for p in params} for i in range(len(points_frame))
        ] or [{}]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"manifest.json design: cannot rebuild the sweep's runs ({exc!r})"
        ) from None
    return exp


def _stored_runs(directory: Path):
    import pyarrow.parquet as pq

    path = directory / "runs.parquet"
    if not path.is_file():
        raise ConfigError(f"DIR: {directory} has no runs.parquet; nothing to compare with")
    try:
        return pq.read_table(str(path)).to_pandas()
    except Exception as exc:  # a torn or foreign file
        raise ConfigError(f"DIR: {directory}/runs.parquet is not readable ({exc})") from None


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _reproduce_sweep(directory: Path, manifest: dict, sample: int | None, sample_seed: int):
    from abm.sweep.metrics import METRICS
    from abm.sweep.tasks import run_task

    exp = _sweep_experiment(directory, manifest)
    stored = _stored_runs(directory)
    run_ids = sorted(int(r) for r in stored["run_id"])
    if not run_ids:
        raise ConfigError(f"DIR: {directory}/runs.parquet holds no runs")
    if sample is not None and not 1 <= sample <= len(run_ids):
        raise ConfigError(f"--sample: must be an integer in [1, {len(run_ids)}], got {sample}")
    chosen = run_ids
    if sample is not None:
        rng = np.random.default_rng(sample_seed)
        chosen = sorted(int(r) for r in rng.choice(run_ids, size=sample, replace=False))
    report = Report(
        "sweep",
        str(directory),
        f"sweep {directory}: experiment {exp.name}, {len(chosen)} of {len(run_ids)} stored runs "
        + (f"(sample seeded {sample_seed})" if sample is not None else "(all)"),
    )
    report.version_changes = _version_changes(manifest)
    if "provenance" not in manifest:
        report.notes.append(
            "the manifest predates key order in manifests: the base scenario's table order was "
            "restored from the packaged scenario of the same name"
        )
    if exp.fingerprint() != manifest.get("fingerprint"):
        report.notes.append(
            "the design rebuilt from the manifest has another fingerprint than the stored one: "
            "the base scenario, the seeds or the overrides differ (seeds come from the code)"
        )
    tasks = {t["run_id"]: t for t in exp.tasks()}
    metrics_stored = [m for m in stored.columns if m in METRICS]
    only_now = sorted(set(METRICS) - set(stored.columns))
    only_then = sorted(
        set(stored.columns)
        - set(METRICS)
        - {"run_id", "point", "replicate", "seed", "status", "error", "wall_s"}
        - {p.name for p in exp.parameters}
    )
    if only_now or only_then:
        report.notes.append(
            f"metric names changed: only in runs.parquet {only_then or 'none'}, "
            f"only now {only_now or 'none'}"
        )
    rows = stored.set_index("run_id")
    for rid in chosen:
        if rid not in tasks:
            report.checks.append(Check(f"run {rid}", "different", "no such run in the design"))
            continue
        task = dict(tasks[rid], keep_timeseries=False, keep_agents=False)
        row = rows.loc[rid]
        if int(row["seed"]) != task["seed"]:
            report.checks.append(
                Check(f"run {rid}", "different", f"seed {task['seed']} now, {row['seed']} stored")
            )
            continue
        fresh = run_task(task, exp.base_config)["row"]
        diffs = [
            f"{m} {row[m]!r} -> {fresh.get(m)!r}"
            for m in metrics_stored
            if not _same(float(row[m]), float(fresh.get(m, float("nan"))))
        ]
        if str(row["status"]) != fresh["status"]:
            diffs.insert(0, f"status {row['status']} -> {fresh['status']}")
        status = "different" if diffs or only_now or only_then else "identical"
        note = "; ".join(diffs[:4]) + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        report.checks.append(Check(f"run {rid}", status, note))
    return report


# ----------------------------------------------------------------------------- the report


def format_report(report: Report) -> str:
    """The report as text: one line per compared output, the version changes and the verdict."""
    width = max((len(c.name) for c in report.checks), default=0)
    lines = [f"reproduce {report.header}"]
    for c in report.checks:
        lines.append(f"  {c.name:<{width}}  {c.status}" + (f"  ({c.note})" if c.note else ""))
    lines.extend(f"note: {n}" for n in report.notes)
    if report.version_changes:
        lines.append(
            "versions that differ (manifest -> now): "
            + "; ".join(f"{name} {then} -> {now}" for name, then, now in report.version_changes)
        )
    else:
        lines.append("versions: the same as in the manifest (packages, git commit, modified flag)")
    different = [c.name for c in report.checks if c.status in ("different", "missing")]
    compared = sum(c.status != "not compared" for c in report.checks)
    if different:
        lines.append(f"result: DIFFERENT ({len(different)} of {compared}: {', '.join(different)})")
    else:
        lines.append(f"result: identical ({compared} of {compared} compared)")
    return "\n".join(lines)
