"""Design building: varied parameters, the size of a design, its points, the runs to do.

:mod:`abm.sweep.experiment` validates an experiment file's fields and turns each
``[[parameters]]`` table into a :class:`Parameter`; this module counts the design's points from
the parameters alone (:func:`design_size`, cheap, so an oversized sweep is refused before any
point exists) and then builds them (:func:`design_points`: a full grid, or a Latin hypercube or
Sobol sample drawn with SALib); :class:`Experiment` holds the result and turns each point into
scenario overrides, seeds and run tasks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from abm.config import apply_overrides

DESIGNS = ("grid", "lhs", "sobol")


@dataclass(frozen=True)
class Parameter:
    """One varied parameter: a dotted path (``*`` matches every key of a table) and its domain."""

    name: str
    path: str
    mode: str  # "set": the value itself; "scale": a multiplier of the scenario's value(s)
    kind: str  # "float", "int", "bool" or "str": the type of the scenario field(s)
    targets: tuple[str, ...]  # the concrete dotted keys the path matches
    base_values: tuple[Any, ...]  # the scenario's values at those keys
    values: tuple[Any, ...] | None = None  # grid values
    bounds: tuple[float, float] | None = None  # lhs / sobol range

    def overrides(self, value) -> dict[str, Any]:
        """The concrete scenario overrides for one value of this parameter."""
        out = {}
        for key, base in zip(self.targets, self.base_values, strict=True):
            v = value * base if self.mode == "scale" else value
            if self.kind == "int":
                v = int(round(v))
            elif self.kind == "float":
                v = float(v)
            out[key] = v
        return out


@dataclass
class Experiment:
    """A validated experiment: the resolved design and every run to do."""

    name: str
    description: str
    source: str  # the experiment file's path, or "<dict>"
    text: str  # the experiment file's text (kept in the manifest)
    scenario: str
    base_config: dict
    fixed_overrides: dict
    parameters: list[Parameter]
    design: str
    samples: int | None
    replications: int
    master_seed: int
    common_random_numbers: bool
    months: int
    keep_timeseries: bool
    keep_agents: bool
    headline_metrics: tuple[str, ...]
    confidence: float
    points: list[dict] = field(default_factory=list)  # parameter name -> value, per design point

    @property
    def n_runs(self) -> int:
        return len(self.points) * self.replications

    def point_overrides(self, point: int) -> dict[str, Any]:
        """The concrete scenario overrides (dotted key -> value) of one design point."""
        return self.values_overrides(self.points[point])

    def values_overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        """The concrete scenario overrides of parameter values ``{parameter name: value}``."""
        out: dict[str, Any] = {}
        for p in self.parameters:
            out.update(p.overrides(values[p.name]))
        return out

    def point_config(self, point: int) -> dict:
        """The full scenario of one design point (base scenario + overrides + point values)."""
        return self.values_config(self.points[point])

    def values_config(self, values: dict[str, Any]) -> dict:
        """The full scenario for parameter values ``{parameter name: value}``."""
        return apply_overrides(self.base_config, self.values_overrides(values))

    def seed(self, point: int, replicate: int) -> int:
        return run_seed(self.master_seed, point, replicate, self.common_random_numbers)

    def tasks(self) -> list[dict]:
        """Every run as a small picklable dict, in run-id order (point-major)."""
        out = []
        for point in range(len(self.points)):
            ov = self.point_overrides(point)
            for rep in range(self.replications):
                out.append(
                    {
                        "run_id": point * self.replications + rep,
                        "point": point,
                        "replicate": rep,
                        "seed": self.seed(point, rep),
                        "months": self.months,
                        "overrides": ov,
                        "params": dict(self.points[point]),
                        "keep_timeseries": self.keep_timeseries,
                        "keep_agents": self.keep_agents,
                    }
                )
        return out

    def design_table(self):
        import pandas as pd

        df = pd.DataFrame(self.points, columns=[p.name for p in self.parameters])
        df.insert(0, "point", np.arange(len(df)))
        return df

    def salib_problem(self) -> dict:
        return {
            "num_vars": len(self.parameters),
            "names": [p.name for p in self.parameters],
            "bounds": [list(p.bounds) for p in self.parameters],
        }

    def describe(self) -> dict:
        """The resolved design, for the manifest."""
        return {
            "name": self.name,
            "scenario": self.scenario,
            "design": self.design,
            "samples": self.samples,
            "replications": self.replications,
            "master_seed": self.master_seed,
            "common_random_numbers": self.common_random_numbers,
            "months": self.months,
            "points": len(self.points),
            "runs": self.n_runs,
            "fixed_overrides": self.fixed_overrides,
            "parameters": [
                {
                    "name": p.name,
                    "path": p.path,
                    "mode": p.mode,
                    "kind": p.kind,
                    "targets": list(p.targets),
                    "values": list(p.values) if p.values is not None else None,
                    "range": list(p.bounds) if p.bounds is not None else None,
                }
                for p in self.parameters
            ],
            "outputs": {"timeseries": self.keep_timeseries, "agents": self.keep_agents},
            "headline_metrics": list(self.headline_metrics),
        }

    def fingerprint(self) -> str:
        """sha256 of everything that determines the runs' results (base scenario, tasks).

        Computed once (seconds for 100,000 runs); the experiment must not change afterwards."""
        if "_fingerprint" in self.__dict__:
            return self.__dict__["_fingerprint"]
        payload = {
            "base_config": self.base_config,
            "tasks": [
                {k: t[k] for k in ("run_id", "seed", "months", "overrides", "keep_timeseries")}
                | {"keep_agents": t["keep_agents"]}
                for t in self.tasks()
            ],
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        self.__dict__["_fingerprint"] = hashlib.sha256(blob).hexdigest()
        return self.__dict__["_fingerprint"]


def run_seed(master_seed: int, point: int, replicate: int, common: bool = False) -> int:
    """The model seed of one run: ``SeedSequence(master_seed, spawn_key=(point, replicate))``.

    With ``common`` (common random numbers) the spawn key is ``(replicate,)``: replicate r faces
    the same random draws at every design point, so differences between points are not noise."""
    key = (int(replicate),) if common else (int(point), int(replicate))
    state = np.random.SeedSequence(int(master_seed), spawn_key=key).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))  # 63 bits: fits a signed 64-bit parquet column


def get_dotted(cfg: dict, dotted: str):
    """The value at a dotted key of a nested dict (KeyError when absent)."""
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def expand_path(cfg: dict, path: str) -> list[str]:
    """Concrete dotted keys matching ``path`` (``*`` = every key of a table) that hold values
    (not tables or lists); empty when nothing matches."""
    found = [("", cfg)]
    for part in path.split("."):
        nxt = []
        for prefix, node in found:
            if not isinstance(node, dict):
                continue
            keys = list(node) if part == "*" else [part] if part in node else []
            nxt.extend((f"{prefix}.{k}" if prefix else k, node[k]) for k in keys)
        found = nxt
    return [key for key, node in found if not isinstance(node, dict | list)]


def value_kind(value) -> str:
    """ "bool", "int", "float" or "str": the type of a scenario field's value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def grid_values(low: float, high: float, steps: int, integer: bool) -> tuple:
    """``steps`` evenly spaced values from ``low`` to ``high`` (both included); rounded to
    distinct integers when ``integer`` (so there may be fewer than ``steps``)."""
    grid = np.linspace(low, high, steps)
    if integer:
        return tuple(dict.fromkeys(int(round(v)) for v in grid))
    return tuple(float(round(v, 12)) for v in grid)


def design_size(design: str, params: list[Parameter], samples: int | None) -> int:
    """The number of design points, computed from the parameters alone (no point is built).

    grid: the product of the parameters' value counts (1 without parameters); lhs: ``samples``;
    sobol (first and total order, as SALib's Saltelli scheme draws it without second-order
    indices): ``samples * (D + 2)`` for D parameters."""
    if design == "grid":
        return math.prod(len(p.values) for p in params)
    if design == "lhs":
        return int(samples)
    return int(samples) * (len(params) + 2)


def design_points(
    design: str, params: list[Parameter], samples: int | None, seed: int
) -> list[dict]:
    """Every design point as ``{parameter name: value}``, in design order (``[{}]`` without
    parameters). The caller checks :func:`design_size` first: this builds them all."""
    if not params:
        return [{}]
    names = [p.name for p in params]
    if design == "grid":
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(p.values for p in params))
        ]
    problem = {"num_vars": len(params), "names": names, "bounds": [list(p.bounds) for p in params]}
    if design == "lhs":
        from SALib.sample import latin

        matrix = latin.sample(problem, samples, seed=seed)
    else:
        from SALib.sample import sobol

        matrix = sobol.sample(problem, samples, calc_second_order=False, scramble=True, seed=seed)
    integer = [p.kind == "int" and p.mode == "set" for p in params]
    return [
        {
            p.name: int(round(v)) if is_int else float(v)
            for p, v, is_int in zip(params, row, integer, strict=True)
        }
        for row in matrix
    ]


def extreme_points(params: list[Parameter], points: list[dict]) -> list[dict] | None:
    """The corners of the design's bounding box, or None when they are not fewer than the points.

    Per parameter: the smallest and largest value the design uses (numeric), or every value it
    uses (true/false, strings); the corners are every combination. Each scenario field a point
    sets is a linear, monotone function of its parameter's value (``set`` or ``scale``), and every
    numeric scenario rule is an interval or a linear inequality, so the valid region is convex:
    when every corner is valid, every point inside the box is. Validating the corners instead of
    100,000 Latin-hypercube points takes milliseconds instead of minutes. (A grid's corners are
    design points; an lhs/sobol box whose corner breaks a cross-field rule is refused, since its
    samples would almost surely break it too. Each run also validates its own scenario.)"""
    axes = []
    for p in params:
        used = [pt[p.name] for pt in points]
        if p.kind in ("int", "float") or p.mode == "scale":
            axes.append(tuple(dict.fromkeys((min(used), max(used)))))
        else:
            axes.append(tuple(dict.fromkeys(used)))
    if math.prod(len(a) for a in axes) >= len(points):
        return None
    names = [p.name for p in params]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


def flatten(table: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` and ``{"a.b": 1}`` both become ``{"a.b": 1}``."""
    out = {}
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, full))
        else:
            out[full] = value
    return out
