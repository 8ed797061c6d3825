"""Running an experiment: executors, durable per-run results, resume and the sweep manifest.

Layout of a sweep folder::

    manifest.json        experiment, resolved design, versions, git commit, sessions and timings
    experiment.toml      the experiment file as given
    design.csv           one row per design point: the values of the varied parameters
    parts/               runs-<id>.arrow per finished run (Arrow IPC, written atomically as it
                         ends; plus timeseries-<id>.arrow / agents-<id>.arrow when kept)
    failures/            run-<id>.txt: the traceback of every failed run
    runs.parquet         one row per run (consolidated from parts/, sorted by run id)
    timeseries.parquet   run_id + the monthly table of every run, when the experiment keeps it
    agents.parquet       run_id + the agent panel of every run, when asked for

A run's ``runs-<id>.arrow`` part is written last, after its tables, so a part on disk means the
run is complete; ``--resume`` runs exactly the runs without one. The consolidated files are
rebuilt from the parts at the end of every session (and by ``abm analyze`` when they are stale).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from abm.config import ConfigError
from abm.io import git_commit, provenance, versions, write_atomic, write_json_atomic
from abm.sweep.experiment import Experiment
from abm.sweep.metrics import METRICS
from abm.sweep.tasks import STATUS_FAILED, STATUS_OK, run_task, run_task_on_worker

SWEEP_KIND = "abm-sweep"
EXECUTORS = ("dask", "serial")
SWEEP_PACKAGES = ("dask", "distributed", "pyarrow", "SALib")
MAX_ATTEMPTS = 2  # a run whose worker process dies is tried on a fresh worker once more


# The embedded cluster has no dashboard, so nothing reads the workers' statistical profiler (a
# stack sample every 10 ms), the 20 ms event-loop health ticks or the 0.5 s system monitor, and
# with one queued run per worker there is nothing to steal. Each of them wakes a thread that takes
# the GIL (and a core) from the running models; idle, they cost the main process 7 % of a core
# and each worker 5 %, and 1 % and 0.4 % without them (benchmarks/README.md, "Sweep").
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


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


def failed_output(task: dict, error: str, tb: str) -> dict:
    """The output of a run that never returned (its worker died): a failed row."""
    row = {k: task[k] for k in ("run_id", "point", "replicate", "seed")}
    row.update(task["params"])
    row.update({name: float("nan") for name in METRICS})
    row.update({"status": STATUS_FAILED, "error": error[:500], "wall_s": float("nan")})
    return {"row": row, "timeseries": None, "agents": None, "traceback": tb}


def read_manifest(out_dir: Path) -> dict | None:
    import json

    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("kind") == SWEEP_KIND else None


def check_sweep_destination(out_dir: Path, exp: Experiment, resume: bool) -> dict | None:
    """Refuse a destination we must not write into; return the earlier manifest when resuming."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out: {out_dir} exists and is not a folder")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return None
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise ConfigError(
            f"--out: {out_dir} exists, is not empty and is not an abm sweep; choose another folder"
        )
    if not resume:
        raise ConfigError(
            f"--out: {out_dir} already holds a sweep ({manifest.get('status')}); "
            "pass --resume to finish it, or choose another folder"
        )
    if manifest.get("fingerprint") != exp.fingerprint():
        raise ConfigError(
            f"--resume: {out_dir} holds a different experiment or design "
            f"({manifest.get('experiment', {}).get('name')}); use a new --out for this one"
        )
    return manifest


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
        tables = [_read_part(f) for f in files]
        table = pa.concat_tables(tables, promote_options="permissive")
        keys = (
            ["run_id", "month"] if name != "runs" and "month" in table.column_names else ["run_id"]
        )
        table = table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))
        _atomic_parquet(table, out_dir / f"{name}.parquet")
        counts[name] = table.num_rows
        if name == "runs":
            runs = table
    return counts, runs


def _serial(tasks: list[dict], base: dict) -> Iterator[tuple[dict, dict]]:
    for task in tasks:
        yield task, run_task(task, base)


def _dask(
    tasks: list[dict], base: dict, workers: int, scheduler: str | None, tag: str
) -> Iterator[tuple[dict, dict]]:
    import dask
    from distributed import Client, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        # A worker death fails every task on that worker at once (allowed-failures 0); the loop
        # below resubmits each such run up to MAX_ATTEMPTS times, so runs that merely shared the
        # worker are redone and only a run that kills every worker it lands on is recorded failed.
        stack.enter_context(
            dask.config.set(
                {
                    "distributed.scheduler.allowed-failures": 0,
                    "distributed.scheduler.worker-saturation": 1.0,
                    # Dask's default (64 KiB) makes glibc return memory to the OS after almost
                    # every numpy temporary; a model month allocates thousands of them
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": str(2**28),
                    **({} if scheduler else QUIET_CLUSTER),
                }
            )
        )
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="30s"))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))
        from abm.sweep.dask_plugin import BaseScenarioPlugin

        client.register_plugin(BaseScenarioPlugin(tag, base))

        def submit(task: dict, attempt: int):
            key = f"abm-{tag}-run-{task['run_id']}-attempt-{attempt}"
            return client.submit(run_task_on_worker, task, tag, key=key, pure=False)

        futures = {submit(t, 1): (t, 1) for t in tasks}
        pending = as_completed(list(futures))
        try:
            for future in pending:
                task, attempt = futures.pop(future)
                try:
                    output = future.result()
                except Exception as exc:  # KilledWorker, lost connection: not the model's error
                    future.release()
                    if attempt < MAX_ATTEMPTS:
                        retry = submit(task, attempt + 1)
                        futures[retry] = (task, attempt + 1)
                        pending.add(retry)
                        continue
                    output = failed_output(
                        task,
                        f"{type(exc).__name__} after {attempt} attempts: {exc}",
                        traceback.format_exc(),
                    )
                future.release()
                yield task, output
        finally:
            for future in futures:
                future.cancel()


def run_sweep(
    exp: Experiment,
    out_dir: str | Path,
    executor: str = "dask",
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict:
    """Run every missing run of ``exp`` into ``out_dir``; return the sweep's manifest.

    ``executor`` is "dask" (an embedded LocalCluster with ``workers`` processes, or the scheduler
    at ``scheduler`` / ``$DASK_SCHEDULER_ADDRESS``) or "serial" (in this process, for debugging).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: must be one of {list(EXECUTORS)}, got {executor!r}")
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4096:
        raise ConfigError(f"--workers: must be an integer in [1, 4096], got {workers!r}")
    out_dir = Path(out_dir)
    earlier = check_sweep_destination(out_dir, exp, resume)

    started = time.time()
    t0 = time.perf_counter()
    (out_dir / "parts").mkdir(parents=True, exist_ok=True)
    (out_dir / "failures").mkdir(exist_ok=True)
    if exp.text:
        _atomic_text(exp.text, out_dir / "experiment.toml")
    design = exp.design_table()
    write_atomic(out_dir / "design.csv", lambda tmp: design.to_csv(tmp, index=False))

    all_tasks = exp.tasks()
    done = finished_runs(out_dir)
    redo = {rid for rid, status in done.items() if status != STATUS_OK} if retry_failed else set()
    todo = [t for t in all_tasks if t["run_id"] not in done or t["run_id"] in redo]
    session = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "executor": executor,
        "workers": None if executor == "serial" or scheduler else workers,
        "scheduler": scheduler if executor == "dask" else None,
        "runs_before": len(done),
        "runs_to_do": len(todo),
    }
    manifest = {
        "kind": SWEEP_KIND,
        "experiment": {
            "name": exp.name,
            "description": exp.description,
            "file": exp.source,
            "text": exp.text,
        },
        "design": exp.describe(),
        "fingerprint": exp.fingerprint(),
        "base_config": exp.base_config,
        "versions": versions(SWEEP_PACKAGES),
        "git_commit": git_commit(),
        "provenance": provenance(),
        "sessions": [*(earlier or {}).get("sessions", []), session],
        "status": "running",
    }
    write_json_atomic(manifest, out_dir / "manifest.json")

    n_failed = sum(1 for s in done.values() if s != STATUS_OK) - len(redo)
    n_new = 0
    status = "interrupted"
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(all_tasks), initial=len(done) - len(redo), unit="run", desc=exp.name)
        bar.set_postfix(failed=n_failed, refresh=False)  # shown with the first update
    try:
        if executor == "serial":
            stream = _serial(todo, exp.base_config)
        else:
            stream = _dask(todo, exp.base_config, workers, scheduler, manifest["fingerprint"][:10])
        with contextlib.closing(stream):  # an interrupt shuts the cluster down at once
            schema = runs_schema(exp)
            for _task, output in stream:
                _write_part(out_dir, exp, output, schema)
                n_new += 1
                if output["row"]["status"] != STATUS_OK:
                    n_failed += 1
                if bar is not None:  # postfix first, then one refresh: one write per run in a log
                    bar.set_postfix(failed=n_failed, refresh=False)
                    bar.update(1)
        status = "complete"
    finally:
        if bar is not None:
            bar.close()
        counts, runs = _consolidate(out_dir)
        final = (
            dict(zip(runs["run_id"].to_pylist(), runs["status"].to_pylist(), strict=True))
            if runs is not None
            else {}
        )
        missing = len(all_tasks) - len(final)
        if missing:
            status = "interrupted" if status != "complete" else "incomplete"
        session.update(
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            wall_s=round(time.perf_counter() - t0, 3),
            runs_executed=n_new,
            run_time_s_all_runs=round(
                float(np.nansum(runs["wall_s"].to_numpy())) if runs is not None else 0.0, 3
            ),
        )
        manifest.update(
            status=status,
            counts={
                "runs": len(all_tasks),
                "ok": sum(1 for s in final.values() if s == STATUS_OK),
                "failed": sum(1 for s in final.values() if s != STATUS_OK),
                "missing": missing,
            },
        )
        write_json_atomic(manifest, out_dir / "manifest.json")
    return manifest
