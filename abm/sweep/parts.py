"""A sweep's per-run parts and the tables consolidated from them.

Every finished run is one ``parts/runs-<id>.arrow`` (a one-row table with the fixed schema of
:func:`runs_schema`), written atomically after the run's optional ``timeseries-<id>.arrow`` /
``agents-<id>.arrow``, so a runs part on disk means a complete run. :func:`consolidate` stacks the
parts into ``runs.parquet`` (and ``timeseries.parquet`` / ``agents.parquet``), sorted by run id.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from abm.config import ConfigError
from abm.io import write_atomic
from abm.sweep.design import Experiment
from abm.sweep.metrics import METRICS

# Parts are Arrow IPC files: a one-row table costs ~0.3 ms to write and to read, Parquet ~3 ms
# (the main process writes one per run while the workers compute, and reads them all to resume
# and to consolidate). The consolidated tables are Parquet.
PART_SUFFIX = ".arrow"


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    write_atomic(path, lambda tmp: pq.write_table(table, str(tmp)))


def _atomic_part(table: pa.Table, path: Path) -> None:
    write_atomic(
        path, lambda tmp: feather.write_feather(table, str(tmp), compression="uncompressed")
    )


def _read_part(path: Path, columns: list[str] | None = None) -> pa.Table:
    return feather.read_table(str(path), columns=columns, memory_map=False)


def _read_part_checked(path: Path) -> pa.Table:
    """A part for consolidation; ConfigError naming the file when it is not a readable part."""
    try:
        return _read_part(path)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(
            f"DIR: {path} is not a readable sweep part ({type(exc).__name__}); delete it and run "
            "abm sweep --resume to redo that run"
        ) from None


def _atomic_text(text: str, path: Path) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def runs_schema(exp: Experiment) -> pa.Schema:
    """Arrow schema of ``runs.parquet`` (and of every run's part): fixed types, so parts written
    in different sessions, failed or not, always stack."""
    fields = [pa.field(name, pa.int64()) for name in ("run_id", "point", "replicate", "seed")]
    for p in exp.parameters:
        fields.append(pa.field(p.name, pa.array([pt[p.name] for pt in exp.points]).type))
    fields += [pa.field(name, pa.float64()) for name in METRICS]
    fields += [
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("wall_s", pa.float64()),
    ]
    return pa.schema(fields)


def finished_runs(out_dir: Path) -> dict[int, str]:
    """run id -> status of every run with a complete part on disk."""
    parts = Path(out_dir) / "parts"
    done: dict[int, str] = {}
    if not parts.is_dir():
        return done
    for path in parts.glob(f"runs-*{PART_SUFFIX}"):
        try:
            table = _read_part(path, columns=["run_id", "status"])
        except Exception:  # a torn or foreign file: treat the run as missing
            continue
        if table.num_rows == 1:
            done[int(table["run_id"][0].as_py())] = str(table["status"][0].as_py())
    return done


def _write_part(
    out_dir: Path, exp: Experiment, output: dict, schema: pa.Schema | None = None
) -> None:
    row = output["row"]
    rid = int(row["run_id"])
    parts = out_dir / "parts"
    for table in ("timeseries", "agents"):
        if output.get(table) is not None:
            frame = pa.Table.from_pandas(output[table], preserve_index=False)
            _atomic_part(frame, parts / f"{table}-{rid:07d}{PART_SUFFIX}")
    if output.get("traceback"):
        _atomic_text(output["traceback"], out_dir / "failures" / f"run-{rid:07d}.txt")
    else:
        (out_dir / "failures" / f"run-{rid:07d}.txt").unlink(missing_ok=True)
    schema = schema if schema is not None else runs_schema(exp)
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names}], schema=schema)
    _atomic_part(table, parts / f"runs-{rid:07d}{PART_SUFFIX}")  # last: marks the run complete


def consolidate(out_dir: Path) -> dict[str, int]:
    """Rebuild runs.parquet (and timeseries/agents.parquet) from the parts, sorted by run id
    (then month; the sort is stable, so agents keep their order within a month). Returns the
    number of rows of each table."""
    return _consolidate(out_dir)[0]


def _consolidate(out_dir: Path) -> tuple[dict[str, int], pa.Table | None]:
    """``consolidate``, also returning the consolidated runs table (None without runs)."""
    out_dir = Path(out_dir)
    parts = out_dir / "parts"
    counts = {}
    runs = None
    for name, prefix in (("runs", "runs-"), ("timeseries", "timeseries-"), ("agents", "agents-")):
        files = sorted(parts.glob(f"{prefix}*{PART_SUFFIX}"))
        if not files:
            counts[name] = 0
            continue
        tables = [_read_part_checked(f) for f in files]
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
            keys = (
                ["run_id", "month"]
                if name != "runs" and "month" in table.column_names
                else ["run_id"]
            )
            table = table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))
        except (pa.ArrowException, KeyError) as exc:
            raise ConfigError(
                f"DIR: the {prefix}* parts in {parts} do not stack into one table "
                f"({type(exc).__name__}); a part is foreign or damaged"
            ) from None
        _atomic_parquet(table, out_dir / f"{name}.parquet")
        counts[name] = table.num_rows
        if name == "runs":
            runs = table
    return counts, runs
