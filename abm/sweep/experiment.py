"""Experiment files: a base scenario, the parameters to vary, the design, replications and seeds.

An experiment file (TOML) names a base scenario, fixes some of its parameters (``[overrides]``),
varies others (``[[parameters]]``) over a design (``grid``, ``lhs`` or ``sobol``, the last two
sampled with SALib) and replicates every design point ``replications`` times. Each run's seed comes
from the master seed and the run's (point, replicate) index through ``numpy.random.SeedSequence``,
so a run's result does not depend on scheduling, worker count or executor.

Everything is validated before anything is written, cheapest first: the file (a regular UTF-8
file of at most 1 MB), the experiment's own fields (each within a stated range; a plain ``name``,
since it names the default sweep folder), the number of runs computed from the parameters
before any design point is built (at most ``MAX_RUNS``), then every design point's resolved
scenario (a point outside a scenario field's range is an error naming both). Design building
lives in :mod:`abm.sweep.design`.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from abm.config import ConfigError, load_scenario, validate
from abm.sweep.design import (
    DESIGNS,
    Experiment,
    Parameter,
    design_points,
    design_size,
    expand_path,
    extreme_points,
    flatten,
    get_dotted,
    grid_values,
    value_kind,
)

MODES = ("set", "scale")
TOP_KEYS = {
    "name",
    "description",
    "scenario",
    "months",
    "master_seed",
    "replications",
    "design",
    "samples",
    "common_random_numbers",
    "overrides",
    "parameters",
    "outputs",
    "analysis",
}
PARAM_KEYS = {"name", "path", "mode", "values", "range", "steps", "doc"}
OUTPUT_KEYS = {"timeseries", "agents"}
ANALYSIS_KEYS = {"metrics", "confidence"}
DEFAULT_HEADLINE = (
    "default_share_borrowers",
    "lender_loss_rate",
    "min_price_to_fundamental",
    "cascade_depth",
)
MAX_RUNS = 1_000_000  # runs (design points x replications) of one sweep
MAX_STEPS = 10_000  # values of one grid range
MAX_SAMPLES = 1_000_000  # lhs / sobol base samples
MAX_REPLICATIONS = 100_000
MAX_FILE_BYTES = 1_000_000  # an experiment file is a few kB; this refuses /dev/zero and the like
# The name becomes the default sweep folder results/sweeps/<name>: one plain path component.
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _err(field_name: str, message: str) -> ConfigError:
    return ConfigError(f"experiment {field_name}: {message}")


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _err(where, f"must be a finite number, got {value!r}")
    return float(value)


def _int_field(raw: dict, key: str, lo: int, hi: int, default=None) -> int:
    value = raw.get(key, default)
    if value is None:
        raise _err(key, f"is required (an integer in [{lo}, {hi}])")
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _err(key, f"must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _parameter(raw: Any, index: int, cfg: dict, design: str) -> Parameter:
    where = f"parameters[{index}]"
    if not isinstance(raw, dict):
        raise _err(where, "must be a table with name, path and values or range")
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise _err(f"{where}.{sorted(unknown)[0]}", f"unknown key; allowed: {sorted(PARAM_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise _err(f"{where}.name", f"must be an identifier-like string, got {name!r}")
    path = raw.get("path")
    paths = path if isinstance(path, list) else [path]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise _err(
            f"{where}.path",
            "must be a dotted scenario key such as compute.pue (or a list of them)",
        )
    mode = raw.get("mode", "set")
    if mode not in MODES:
        raise _err(f"{where}.mode", f"must be one of {list(MODES)}, got {mode!r}")
    targets = []
    for p in paths:
        found = expand_path(cfg, p)
        if not found:
            raise _err(f"{where}.path", f"{p!r} matches no parameter of the scenario")
        targets.extend(found)
    targets = list(dict.fromkeys(targets))
    path = " + ".join(paths)
    base_values = tuple(get_dotted(cfg, t) for t in targets)
    kinds = {value_kind(v) for v in base_values}
    if len(kinds) != 1:
        raise _err(f"{where}.path", f"{path!r} matches fields of different types {sorted(kinds)}")
    kind = kinds.pop()
    if mode == "scale" and kind not in ("int", "float"):
        raise _err(f"{where}.mode", f"'scale' needs numeric fields; {path!r} is {kind}")
    values = bounds = None
    if "values" in raw and "range" in raw:
        raise _err(where, "give either values or range, not both")
    if "values" in raw:
        if design != "grid":
            raise _err(f"{where}.values", f"a '{design}' design samples a range; give range")
        vals = raw["values"]
        if not isinstance(vals, list) or not vals:
            raise _err(f"{where}.values", "must be a non-empty list")
        if len(vals) > MAX_RUNS:
            raise _err(f"{where}.values", f"at most {MAX_RUNS} values, got {len(vals)}")
        if len(set(map(repr, vals))) != len(vals):
            raise _err(f"{where}.values", "must not repeat a value")
        if kind in ("int", "float") or mode == "scale":
            values = tuple(_number(v, f"{where}.values") for v in vals)
            if kind == "int" and mode == "set":
                if any(v != int(v) for v in values):
                    raise _err(f"{where}.values", f"{path} takes integers, got {vals}")
                values = tuple(int(v) for v in values)
        elif kind == "bool":
            if not all(isinstance(v, bool) for v in vals):
                raise _err(f"{where}.values", f"{path} takes true/false, got {vals}")
            values = tuple(vals)
        else:
            if not all(isinstance(v, str) for v in vals):
                raise _err(f"{where}.values", f"{path} takes strings, got {vals}")
            values = tuple(vals)
    elif "range" in raw:
        rng = raw["range"]
        if not isinstance(rng, list) or len(rng) != 2:
            raise _err(f"{where}.range", "must be [low, high]")
        lo, hi = (_number(v, f"{where}.range") for v in rng)
        if not lo < hi:
            raise _err(f"{where}.range", f"low must be < high, got {rng}")
        if kind not in ("int", "float") and mode == "set":
            raise _err(f"{where}.range", f"{path} is {kind}: give values, not a range")
        if design == "grid":
            steps = raw.get("steps")
            if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_STEPS:
                raise _err(
                    f"{where}.steps", f"a grid range needs steps in [2, {MAX_STEPS}], got {steps!r}"
                )
            values = grid_values(lo, hi, steps, integer=kind == "int" and mode == "set")
        else:
            bounds = (lo, hi)
    else:
        raise _err(where, "needs values (grid) or range")
    if "steps" in raw and ("values" in raw or design != "grid"):
        raise _err(f"{where}.steps", "only with a range in a grid design")
    return Parameter(name, path, mode, kind, tuple(targets), base_values, values, bounds)


def read_experiment_text(path: Path) -> str:
    """The text of an experiment file: a regular file of at most ``MAX_FILE_BYTES``, UTF-8."""
    where = f"experiment {str(path)!r}"[:300]
    if not path.exists():
        raise ConfigError(f"{where}: no such file")
    if not path.is_file():
        raise ConfigError(f"{where}: not a regular file (a folder or a device)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_FILE_BYTES} bytes; not an experiment file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None


def load_experiment(source: str | Path | dict) -> Experiment:
    """Read and validate an experiment file (or an already-parsed dict).

    Raises :class:`abm.config.ConfigError` naming the field and what is allowed."""
    if isinstance(source, dict):
        raw, text, origin, base_dir = copy.deepcopy(source), "", "<dict>", Path.cwd()
    else:
        path = Path(source)
        text = read_experiment_text(path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"experiment {path}: not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"experiment {path}: not valid TOML (nested too deeply)") from None
        origin, base_dir = str(path), path.parent

    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise _err(sorted(unknown)[0], f"unknown key; allowed: {sorted(TOP_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise _err(
            "name",
            "must be a plain name of 1-100 letters, digits, '_', '-' or '.' (no '..', no "
            f"separators; it names the sweep folder), got {name!r}"[:300],
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _err("description", "must be a string")
    scenario = raw.get("scenario", "baseline")
    if not isinstance(scenario, str):
        raise _err("scenario", f"must be a scenario name or path, got {scenario!r}")
    if scenario.endswith(".toml") and not Path(scenario).is_absolute():
        candidate = base_dir / scenario
        scenario = str(candidate) if candidate.exists() else scenario
    fixed = raw.get("overrides", {})
    if not isinstance(fixed, dict):
        raise _err("overrides", 'must be a table of "dotted.key" = value')
    fixed = flatten(fixed)
    try:
        base = load_scenario(scenario, fixed or None)
    except ConfigError as exc:
        raise _err("scenario/overrides", str(exc)) from None

    design = raw.get("design", "grid")
    if design not in DESIGNS:
        raise _err("design", f"must be one of {list(DESIGNS)}, got {design!r}")
    samples = None
    if design in ("lhs", "sobol"):
        samples = _int_field(raw, "samples", 2, MAX_SAMPLES)
        if design == "sobol" and samples & (samples - 1):
            raise _err("samples", f"a sobol design needs a power of 2, got {samples}")
    elif "samples" in raw:
        raise _err("samples", "only for lhs and sobol designs")
    replications = _int_field(raw, "replications", 1, MAX_REPLICATIONS, default=1)
    master_seed = _int_field(raw, "master_seed", 0, 2**63 - 1, default=0)
    months = _int_field(raw, "months", 1, 600, default=base["run"]["months"])
    crn = raw.get("common_random_numbers", False)
    if not isinstance(crn, bool):
        raise _err("common_random_numbers", f"must be true or false, got {crn!r}")

    raw_params = raw.get("parameters", [])
    if not isinstance(raw_params, list):
        raise _err("parameters", "must be an array of tables ([[parameters]])")
    if design != "grid" and not raw_params:
        raise _err("parameters", f"a '{design}' design needs at least one parameter")
    params = [_parameter(p, i, base, design) for i, p in enumerate(raw_params)]
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise _err("parameters", f"names must be unique, got {names}")
    claimed: dict[str, str] = {}
    for p in params:
        for t in p.targets:
            if t in claimed:
                raise _err("parameters", f"{p.name} and {claimed[t]} both set {t}")
            claimed[t] = p.name
    # The sweep's size from the parameters alone, before a single design point is built: an
    # oversized design is refused in milliseconds, not after minutes and gigabytes.
    n_points = design_size(design, params, samples)
    if n_points * replications > MAX_RUNS:
        field_name = (
            ("parameters" if design == "grid" else "samples")
            if n_points > MAX_RUNS
            else "replications"
        )
        raise _err(
            field_name,
            f"the design has {n_points:,} points x {replications:,} replications = "
            f"{n_points * replications:,} runs; at most {MAX_RUNS:,}",
        )

    outputs = raw.get("outputs", {})
    if not isinstance(outputs, dict) or set(outputs) - OUTPUT_KEYS:
        raise _err("outputs", f"a table with keys {sorted(OUTPUT_KEYS)} (true/false)")
    for key in OUTPUT_KEYS:
        if not isinstance(outputs.get(key, False), bool):
            raise _err(f"outputs.{key}", "must be true or false")
    analysis = raw.get("analysis", {})
    if not isinstance(analysis, dict) or set(analysis) - ANALYSIS_KEYS:
        raise _err("analysis", f"a table with keys {sorted(ANALYSIS_KEYS)}")
    headline = analysis.get("metrics", list(DEFAULT_HEADLINE))
    from abm.sweep.metrics import METRICS, canonical

    if not isinstance(headline, list) or not headline:
        raise _err("analysis.metrics", "must be a non-empty list of metric names")
    # a name of an earlier version (metrics.ALIASES) is read as the current name
    headline = [canonical(m) if isinstance(m, str) else m for m in headline]
    for metric in headline:
        if metric not in METRICS:
            raise _err("analysis.metrics", f"unknown metric {metric!r}; allowed: {list(METRICS)}")
    confidence = analysis.get("confidence", 0.95)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, float)
        or not 0.5 <= confidence < 1
    ):
        raise _err("analysis.confidence", f"must be a number in [0.5, 1), got {confidence!r}")

    exp = Experiment(
        name=name,
        description=description,
        source=origin,
        text=text,
        scenario=scenario,
        base_config=base,
        fixed_overrides=fixed,
        parameters=params,
        design=design,
        samples=samples,
        replications=replications,
        master_seed=master_seed,
        common_random_numbers=crn,
        months=months,
        keep_timeseries=outputs.get("timeseries", False),
        keep_agents=outputs.get("agents", False),
        headline_metrics=tuple(headline),
        confidence=float(confidence),
    )
    exp.points = design_points(design, params, samples, master_seed)
    corners = extreme_points(params, exp.points)
    if corners is not None:
        for corner in corners:
            try:
                validate(exp.values_config(corner))
            except ConfigError as exc:
                values = ", ".join(f"{k}={v!r}" for k, v in corner.items())
                raise _err(
                    "parameters", f"the design's corner ({values}) is invalid: {exc}"
                ) from None
        return exp
    for point in range(len(exp.points)):
        try:
            validate(exp.point_config(point))
        except ConfigError as exc:
            values = ", ".join(f"{k}={v!r}" for k, v in exp.points[point].items())
            raise _err("parameters", f"design point {point} ({values}) is invalid: {exc}") from None
    return exp
