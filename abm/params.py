"""``abm params``: every parameter of a scenario with its value, allowed range, unit and source.

The parameters are the leaves of the validated scenario, walked along the schema of
:mod:`abm.config` (``neoclouds.gen_mix.H100``, ``lenders.kinds.bank.origination_ltv``,
``shocks.pinned[0].start``...). For each leaf:

- **allowed**: the schema's type and range (what ``--set`` accepts);
- **unit**: the unit column of ``docs/calibration.md`` when it has a row for the parameter, else
  derived from the name's suffix (``_usd`` -> USD, ``_per_year`` -> per year, ``_months`` ->
  months ...), else empty;
- **source**: for a value set by ``baseline.toml``, the source column of ``docs/calibration.md``,
  else the comment next to the key in ``baseline.toml``; for a value set by another scenario file
  (``extends`` chain, or a file given by path), that file's name and its row in the
  "Scenarios" part of ``docs/calibration.md`` or the comment next to the key (or the file's
  header comment). ``docs/calibration.md`` is found beside the package in a source checkout; an
  installed copy without it falls back to the TOML comments.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from abm.config import (
    SCHEMA,
    ConfigError,
    F,
    ListOf,
    MapOf,
    _resolve_path,
    load_scenario,
    read_toml_file,
)

FORMATS = ("table", "csv", "json")
IDENTITY = ("name", "description")  # leaves that name a scenario rather than parameterise it
CALIBRATION_DOC = Path(__file__).resolve().parent.parent / "docs" / "calibration.md"
TABLE_SOURCE_CHARS = 70  # the table cuts sources here; csv and json give them in full
TABLE_ALLOWED_CHARS = 40  # ... and the allowed range and the unit here

# name suffix -> unit, first match wins (longer, more specific suffixes first)
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_per_perf_hour_usd", "USD per H100-equivalent GPU-hour"),
    ("_usd_per_kwh", "USD per kWh"),
    ("_usd_per_kw_month", "USD per kW-month"),
    ("_usd_per_mw_month", "USD per MW-month"),
    ("_usd_per_mining_mw", "USD per MW of mining"),
    ("_usd_per_mw", "USD per MW"),
    ("_usd_per_gpu", "USD per GPU"),
    ("_usd_per_th", "USD per TH/s"),
    ("_usd", "USD"),
    ("_mw_per_month", "MW per month"),
    ("_mw", "MW"),
    ("_per_10k_btc", "per 10,000 BTC sold"),
    ("_btc", "BTC"),
    ("btc_holdings", "BTC"),
    ("_j_per_th", "J/TH"),
    ("kw_per_gpu", "kW per GPU"),
    ("_eh", "EH/s"),
    ("_per_year", "per year"),
    ("_per_month", "per month"),
    ("_months", "months"),
    ("_units", "GPUs"),
    ("_multiplier", "x"),
    ("_share", "share"),
    ("_ltv", "loan / collateral"),
    ("_change", "relative change"),
    ("count", "agents"),
    ("th_per_unit", "TH/s per machine"),
    ("j_per_th", "J/TH"),
)


@dataclass(frozen=True)
class Parameter:
    """One leaf of a scenario: dotted ``path``, ``value``, schema ``kind`` and ``allowed`` range,
    ``unit``, ``source`` (where the value comes from) and the schema's ``description``."""

    path: str
    value: Any
    kind: str
    allowed: str
    unit: str
    source: str
    description: str


def unit_from_name(path: str, kind: str = "float") -> str:
    """The unit a parameter's name states (``UNIT_SUFFIXES``), "YYYY-MM" for a month, else ""."""
    if kind == "month":
        return "YYYY-MM"
    leaf = path.rsplit(".", 1)[-1]
    for suffix, unit in UNIT_SUFFIXES:
        if leaf.endswith(suffix):
            return unit
    return ""


# ----------------------------------------------------------------------------- TOML comments


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one TOML line: the first ``#`` outside a string starts the comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == "\\" and quote == '"':
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1 :].strip()
    return line, ""


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _bracket_depth(code: str) -> int:
    """Open ``[``/``{`` minus closed ones outside strings (a value continuing on later lines)."""
    depth, quote = 0, None
    for ch in code:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def toml_comments(text: str) -> dict[str, str]:
    """Dotted key -> the comment next to it in a TOML file: the comment lines right above the key
    (no blank line between) and the comment at the end of its line. A table header's comment is
    kept under the table's name (``shocks.pinned[0]`` for the first ``[[shocks.pinned]]``), the
    comment block that opens the file under ``""``. Values spread over several lines are
    skipped whole; multi-line strings are not supported (scenario files do not use them)."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    table, seen_code, depth = "", False, 0
    arrays: dict[str, int] = {}
    for raw in text.splitlines():
        code, comment = _split_comment(raw)
        code = code.strip()
        if depth > 0:  # inside a value spread over several lines
            depth += _bracket_depth(code)
            continue
        if not code:
            if comment:
                pending.append(comment)
            else:
                if pending and not seen_code:
                    comments[""] = " ".join(pending)
                pending = []
            continue
        if not seen_code and pending:  # the block that opens the file describes the file
            comments[""] = " ".join(pending)
            pending = []
        seen_code = True
        if code.startswith("["):
            is_array = code.startswith("[[")
            name = _dotted(code.strip("[]"))
            if is_array:
                arrays[name] = arrays.get(name, -1) + 1
                name = f"{name}[{arrays[name]}]"
            table = name
            key = name
        else:
            left, _, right = code.partition("=")
            key = f"{table}.{_dotted(left)}" if table else _dotted(left)
            depth = _bracket_depth(right)
        words = " ".join([*pending, comment] if comment else pending)
        if words:
            comments[key] = words
        pending = []
    if pending and not seen_code:
        comments[""] = " ".join(pending)
    return comments


# ----------------------------------------------------------------------------- calibration.md

_ROW = re.compile(r"^\|(.+)\|\s*$")
_BACKTICKED = re.compile(r"^`([^`]+)`$")


def calibration_sources(text: str) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, str]]]:
    """Parse ``docs/calibration.md``: (dotted path -> (unit, source)) for the baseline tables,
    and (scenario -> dotted path -> change) for the tables of its "Scenarios" part.

    Sections are ``## [compute]`` / ``### [lenders.kinds.bank]`` with rows
    ``| `key` | value | unit | source |``; under ``## [generations]`` each ``### `field` (unit)``
    has rows ``| A100, H100 | value | source |``; under ``## Scenarios`` each ``### name`` has rows
    ``| `dotted.key` | change |``."""
    base: dict[str, tuple[str, str]] = {}
    scenarios: dict[str, dict[str, str]] = {}
    prefix = scenario = gen_field = None
    gen_unit, false_column = "", False
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            level = len(line) - len(line.lstrip("#"))
            section = re.fullmatch(r"\[([\w.]+)\]", title)
            if section:
                prefix, scenario, gen_field = section.group(1), None, None
            elif level == 2:
                prefix = gen_field = None
                scenario = "" if title == "Scenarios" else None
            elif scenario is not None and level == 3:
                scenario = title
            elif prefix == "generations":
                field = re.match(r"`(\w+)`\s*\((.*)\)", title)
                gen_field, gen_unit = (field.group(1), field.group(2)) if field else (None, "")
            continue
        row = _ROW.match(line.strip())
        if not row or set(line.strip()) <= set("|-: "):
            continue
        cells = [c.strip() for c in row.group(1).split("|")]
        if cells[0] in ("parameter", "generation", "change", "quantity"):
            false_column = "false" in cells[-1]
            continue
        key = _BACKTICKED.match(cells[0])
        if scenario and key and len(cells) >= 2:
            scenarios.setdefault(scenario, {})[key.group(1)] = cells[-1]
        elif prefix == "generations" and gen_field and len(cells) >= 3:
            for name in (n.strip() for n in cells[0].split(",")):
                base[f"generations.{name}.{gen_field}"] = (gen_unit, cells[-1])
        elif prefix and key and len(cells) >= 4:
            source = f"false: {cells[3]}" if false_column else cells[3]
            base[f"{prefix}.{key.group(1)}"] = (cells[2], source)
    return base, scenarios


def _lookup(table: dict, path: str, through_arrays: bool = True):
    """The entry for ``path`` or for its nearest parent (``neoclouds.gen_mix`` for
    ``neoclouds.gen_mix.H100``, ``shocks.pinned[0]`` for ``shocks.pinned[0].start``); without
    ``through_arrays``, not above an array item (an array's row does not describe its fields)."""
    while path:
        if path in table:
            return table[path]
        if not through_arrays and path.endswith("]"):
            return None
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


# ----------------------------------------------------------------------------- the parameters


def _leaves(cfg: dict, schema: dict, prefix: str = ""):
    """(path, spec, value, description) of every leaf of ``cfg`` along ``schema``."""
    for key, spec in schema.items():
        if key not in cfg:
            continue
        path, value = f"{prefix}{key}", cfg[key]
        if isinstance(spec, F):
            yield path, spec, value, spec.doc
        elif isinstance(spec, MapOf):
            for name, item in value.items():
                if isinstance(spec.item, F):
                    yield f"{path}.{name}", spec.item, item, spec.item.doc or spec.doc
                else:
                    yield from _leaves(item, spec.item, f"{path}.{name}.")
        elif isinstance(spec, ListOf):
            if not value:
                yield path, spec, value, spec.doc
            for i, item in enumerate(value):
                yield from _leaves(item, spec.item, f"{path}[{i}].")
        else:
            yield from _leaves(value, spec, f"{path}.")


def _flat_keys(raw: dict, prefix: str = "") -> set[str]:
    """The dotted keys a scenario file sets: its values, not its tables (tables merge with the
    file it extends); an array is set whole (it replaces the inherited one), with its items."""
    out = set()
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat_keys(value, f"{path}.")
            continue
        out.add(path)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out |= _flat_keys(item, f"{path}[{i}].")
    return out


def _chain(scenario: str | Path) -> list[tuple[str, set[str], dict[str, str]]]:
    """The scenario's ``extends`` chain, most derived first: (file name, keys it sets, comments)."""
    out, name, base_dir = [], scenario, None
    for _ in range(32):
        path = _resolve_path(name, base_dir, "scenario").resolve()
        raw = read_toml_file(path, "scenario")
        comments = toml_comments(path.read_text(encoding="utf-8"))
        out.append((path.name, _flat_keys(raw), comments))
        name, base_dir = raw.get("extends"), path.parent
        if not isinstance(name, str):
            break
    return out


def parameters(scenario: str | Path = "baseline") -> list[Parameter]:
    """Every leaf parameter of ``scenario`` (validated by :func:`abm.load_scenario`), in schema
    order, with its value, allowed range, unit and source (see the module docstring)."""
    cfg = load_scenario(scenario)
    chain = _chain(scenario)
    try:
        base_rows, scenario_rows = calibration_sources(CALIBRATION_DOC.read_text(encoding="utf-8"))
    except OSError:
        base_rows, scenario_rows = {}, {}
    out = []
    for path, spec, value, doc in _leaves(cfg, SCHEMA):
        kind = spec.kind if isinstance(spec, F) else "array of tables"
        allowed = spec.allowed() if isinstance(spec, F) else f"an array of tables ({spec.doc})"
        setter = next(
            ((file, comments) for file, keys, comments in chain if _lookup_set(keys, path)),
            (chain[-1][0], chain[-1][2]),
        )
        file, comments = setter
        calibrated = _lookup(base_rows, path)
        row_unit = _lookup(base_rows, path, through_arrays=False)
        unit = _unit(path, kind, row_unit[0] if row_unit else "")
        comment = _lookup(comments, path)
        if path in IDENTITY:
            source = f"{file}: names the scenario (not a calibrated value)"
        elif file == "baseline.toml":
            source = calibrated[1] if calibrated else comment or "baseline.toml (no comment)"
        else:
            stem = file[: -len(".toml")] if file.endswith(".toml") else file
            change = _lookup(scenario_rows.get(stem, {}), path)
            source = f"{file}: " + (change or comment or comments.get("", "") or "set here")
        out.append(Parameter(path, value, kind, allowed, unit, source, doc))
    return out


def _unit(path: str, kind: str, calibrated: str) -> str:
    """The unit column of calibration.md, else the name's; none for switches and choices.
    Generations' unit comes from the name first: their calibration.md headings describe the
    field ("volume release month") rather than give a unit."""
    if kind in ("bool", "choice", "str", "name", "array of tables"):
        return ""
    by_name = unit_from_name(path, kind)
    if path.startswith("generations."):
        return by_name or calibrated
    return calibrated or by_name


def _lookup_set(keys: set[str], path: str) -> bool:
    """Whether a file that sets ``keys`` sets ``path`` (itself or a whole table/array above it)."""
    return _lookup({k: True for k in keys}, path) is not None


# ----------------------------------------------------------------------------- output


def select(rows: list[Parameter], prefix: str) -> list[Parameter]:
    """The rows whose path starts with ``prefix``; a prefix matching none raises ConfigError."""
    chosen = [r for r in rows if r.path.startswith(prefix)]
    if not chosen:
        sections = sorted({r.path.split(".")[0].split("[")[0] for r in rows})
        raise ConfigError(
            f"PREFIX: no parameter starts with {prefix!r}; sections: {', '.join(sections)}"
        )
    return chosen


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_text(value: Any) -> str:
    return json.dumps(value)


def format_parameters(rows: list[Parameter], fmt: str = "table") -> str:
    """``rows`` as an aligned text table (sources cut to ``TABLE_SOURCE_CHARS``), CSV or JSON."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "value", "kind", "allowed", "unit", "source", "description"])
        for r in rows:
            writer.writerow(
                [r.path, _value_text(r.value), r.kind, r.allowed, r.unit, r.source, r.description]
            )
        return buffer.getvalue().rstrip("\n")
    if fmt != "table":
        raise ConfigError(f"--format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    cells = [("parameter", "value", "allowed", "unit", "source")]
    for r in rows:
        cells.append(
            (
                r.path,
                _cut(_value_text(r.value), TABLE_ALLOWED_CHARS),
                _cut(r.allowed, TABLE_ALLOWED_CHARS),
                _cut(r.unit, TABLE_ALLOWED_CHARS),
                _cut(r.source, TABLE_SOURCE_CHARS),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)
