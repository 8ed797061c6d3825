"""Running an experiment: executors, durable per-run results, resume and the sweep manifest.

Layout of a sweep folder::

    manifest.json        kind "abm-sweep", abm_output_schema, experiment, resolved design,
                         versions, git commit, status, sessions and timings
    .lock                flock'ed by the one session writing the sweep (abm.sweep.folder)
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
import errno
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from abm.config import ConfigError
from abm.io import git_commit, provenance, versions, write_atomic, write_json_atomic
from abm.sweep.design import Experiment
from abm.sweep.executors import dask_client, run_on_dask, run_serially
from abm.sweep.folder import (
    LOCK_NAME,
    OUTPUT_SCHEMA,
    SWEEP_KIND,
    SweepLock,
    check_is_ours,
    check_scheduler_address,
    effective_status,
    read_manifest,  # noqa: F401  (re-exported: abm.cli and abm.sweep.analyze read it from here)
)
from abm.sweep.parts import (  # noqa: F401  (consolidate, PART_SUFFIX: re-exported for callers of abm.sweep.runner)
    PART_SUFFIX,
    _atomic_text,
    _consolidate,
    _write_part,
    consolidate,
    finished_runs,
    runs_schema,
)
from abm.sweep.processes import run_on_processes
from abm.sweep.tasks import STATUS_OK

EXECUTORS = ("processes", "dask", "serial")
# Disk held during a session for the final manifest (abm.io's temp-file naming, so the sweep
# folder check recognises a leftover one).
RESERVE_NAME = ".manifest.json.reserve"
SWEEP_PACKAGES = ("dask", "distributed", "pyarrow", "SALib")


def check_sweep_destination(out_dir: Path, exp: Experiment, resume: bool) -> dict | None:
    """Refuse a destination we must not write into; return the earlier manifest when resuming.

    Nothing is written. A new or empty folder is fine; a non-empty one must be provably a sweep
    of ours (:func:`abm.sweep.folder.check_is_ours`: manifest kind and schema, no foreign entry,
    no symlink where the sweep writes), holding this very experiment, and ``resume`` given."""
    out_dir = Path(out_dir)
    try:
        return _check_destination(out_dir, exp, resume)
    except OSError as exc:  # a name too long, a permission denied on the way
        raise ConfigError(f"--out: cannot use {out_dir} ({exc.strerror})") from None


def _check_destination(out_dir: Path, exp: Experiment, resume: bool) -> dict | None:
    if out_dir.is_symlink() and not out_dir.exists():
        raise ConfigError(f"--out: {out_dir} is a dangling symlink")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out: {out_dir} exists and is not a folder")
    if not out_dir.exists() or not any(e.name != LOCK_NAME for e in os.scandir(out_dir)):
        return None  # empty, or only the lock file of a session that never started
    manifest = check_is_ours(out_dir)
    if not resume:
        raise ConfigError(
            f"--out: {out_dir} already holds a sweep ({effective_status(out_dir, manifest)}); "
            "pass --resume to finish it, or choose another folder"
        )
    if manifest.get("fingerprint") != exp.fingerprint():
        raise ConfigError(
            f"--resume: {out_dir} holds a different experiment or design "
            f"({manifest.get('experiment', {}).get('name')}); use a new --out for this one"
        )
    return manifest


class SweepTerminated(KeyboardInterrupt):
    """SIGTERM during a sweep: handled like Ctrl-C (the session ends "interrupted")."""


@contextlib.contextmanager
def _sigterm_interrupts():
    """Turn SIGTERM into :class:`SweepTerminated` while a sweep session runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SweepTerminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _make_folder(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` (and missing parents); return the folders created, deepest first.
    ConfigError naming --out when it cannot be created."""
    created = []
    path = out_dir
    try:
        while not path.exists() and path != path.parent:
            created.append(path)
            path = path.parent
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {out_dir} ({exc.strerror})") from None
    return created


def _remove_created(out_dir: Path, created: list[Path]) -> None:
    """Undo :func:`_make_folder` when the session never started (only the lock file inside)."""
    with contextlib.suppress(OSError):
        (out_dir / LOCK_NAME).unlink()
    for folder in created:  # deepest first; rmdir leaves any folder someone else wrote into
        with contextlib.suppress(OSError):
            folder.rmdir()


def run_sweep(
    exp: Experiment,
    out_dir: str | Path,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    dashboard: bool = False,
) -> dict:
    """Run every missing run of ``exp`` into ``out_dir``; return the sweep's manifest.

    ``executor`` is "processes" (``workers`` processes forked from this one,
    :mod:`abm.sweep.processes`), "dask" (an embedded LocalCluster with ``workers`` processes, or
    the scheduler at ``scheduler`` / ``$DASK_SCHEDULER_ADDRESS``) or "serial" (in this process, for
    debugging). ``None`` (the default) means "dask" when a scheduler is given (argument or
    environment) or ``dashboard`` is asked for, else "processes": on one machine forked workers
    start in milliseconds, where the embedded Dask cluster takes seconds.

    Everything that can be checked is checked before anything is written (ConfigError): the
    options, the scheduler address's syntax, the destination; then the folder is created and
    locked (a second writer gets ConfigError at once) and the cluster started or the scheduler
    reached (a failure removes the folder again if this call created it). A session stopped by
    Ctrl-C, SIGTERM or a failed write (disk full, read-only) re-raises after recording the
    manifest as "interrupted" (when the manifest itself cannot be written, the "running" it
    still says is read as "interrupted" once the lock is free); the runs finished so far stay
    in ``parts/`` for ``resume``.
    """
    if executor is None:
        wants_dask = scheduler is not None or dashboard or os.environ.get("DASK_SCHEDULER_ADDRESS")
        executor = "dask" if wants_dask else "processes"
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: must be one of {list(EXECUTORS)}, got {executor!r}")
    if scheduler is not None:
        check_scheduler_address(scheduler, "--scheduler")
    elif executor == "dask" and os.environ.get("DASK_SCHEDULER_ADDRESS"):
        scheduler = check_scheduler_address(
            os.environ["DASK_SCHEDULER_ADDRESS"], "$DASK_SCHEDULER_ADDRESS"
        )
    if executor == "processes" and scheduler is not None:
        raise ConfigError("--scheduler: only with --executor dask (processes runs on this machine)")
    if executor == "serial":
        scheduler = None
    if dashboard and (executor != "dask" or scheduler):
        raise ConfigError("--dashboard: only for the embedded Dask cluster (no --scheduler)")
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4096:
        raise ConfigError(f"--workers: must be an integer in [1, 4096], got {workers!r}")
    out_dir = Path(out_dir)
    check_sweep_destination(out_dir, exp, resume)  # fails before anything is written
    exp.fingerprint()  # seconds for a large design: before the folder exists

    created = _make_folder(out_dir)
    lock = SweepLock(out_dir)
    try:
        lock.acquire()
    except BaseException:
        _remove_created(out_dir, created)
        raise
    try:
        # again under the lock: another session may have written the folder meanwhile
        earlier = check_sweep_destination(out_dir, exp, resume)
        with contextlib.ExitStack() as stack:
            client = None
            if executor == "dask":
                try:
                    client = stack.enter_context(dask_client(workers, scheduler, dashboard))
                except BaseException:
                    lock.release()
                    if earlier is None:
                        _remove_created(out_dir, created)
                    raise
            return _session(
                exp,
                out_dir,
                earlier,
                client,
                executor,
                workers,
                scheduler,
                retry_failed,
                progress,
                private_fds=(lock.fd,),
            )
    finally:
        lock.release()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _session(
    exp: Experiment,
    out_dir: Path,
    earlier: dict | None,
    client,
    executor: str,
    workers: int,
    scheduler: str | None,
    retry_failed: bool,
    progress: bool,
    private_fds: tuple[int, ...] = (),
) -> dict:
    """One writing session of ``run_sweep``, with the lock held and the executor ready;
    ``private_fds`` (the lock) are closed in forked workers."""
    t0 = time.perf_counter()
    sessions = list((earlier or {}).get("sessions", []))
    if earlier is not None and earlier.get("status") == "running" and sessions:
        # we hold the lock, so the session that wrote "running" died without a word
        sessions[-1] = {**sessions[-1], "ended": "interrupted (found running at the next start)"}
    try:
        (out_dir / "parts").mkdir(exist_ok=True)
        (out_dir / "failures").mkdir(exist_ok=True)
        if exp.text:
            _atomic_text(exp.text, out_dir / "experiment.toml")
        design = exp.design_table()
        write_atomic(out_dir / "design.csv", lambda tmp: design.to_csv(tmp, index=False))
    except OSError as exc:
        raise ConfigError(f"--out: cannot write into {out_dir} ({exc.strerror})") from None

    all_tasks = exp.tasks()
    done = finished_runs(out_dir)
    redo = {rid for rid, status in done.items() if status != STATUS_OK} if retry_failed else set()
    todo = [t for t in all_tasks if t["run_id"] not in done or t["run_id"] in redo]
    session = {
        "started_at": _now(),
        "executor": executor,
        "workers": None if executor == "serial" or scheduler else workers,
        "scheduler": scheduler if executor == "dask" else None,
        "runs_before": len(done),
        "runs_to_do": len(todo),
    }
    manifest = {
        "kind": SWEEP_KIND,
        "abm_output_schema": OUTPUT_SCHEMA,
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
        "sessions": [*sessions, session],
        "status": "running",
    }
    write_json_atomic(manifest, out_dir / "manifest.json")
    _reserve_space(out_dir, 2 * (out_dir / "manifest.json").stat().st_size + 65536)

    n_failed = sum(1 for s in done.values() if s != STATUS_OK) - len(redo)
    n_new = 0
    stopped_by = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(all_tasks), initial=len(done) - len(redo), unit="run", desc=exp.name)
        bar.set_postfix(failed=n_failed, refresh=False)  # shown with the first update
    try:
        with _sigterm_interrupts():
            if executor == "serial":
                stream = run_serially(todo, exp.base_config)
            elif executor == "processes":
                stream = run_on_processes(todo, exp.base_config, workers, close_fds=private_fds)
            else:
                stream = run_on_dask(todo, exp.base_config, client, manifest["fingerprint"][:10])
            with contextlib.closing(stream):  # an interrupt shuts the cluster down at once
                schema = runs_schema(exp)
                for _task, output in stream:
                    _write_part(out_dir, exp, output, schema)
                    n_new += 1
                    if output["row"]["status"] != STATUS_OK:
                        n_failed += 1
                    if bar is not None:  # postfix, then one refresh: one write per run in a log
                        bar.set_postfix(failed=n_failed, refresh=False)
                        bar.update(1)
    except BaseException as exc:
        stopped_by = str(exc) if isinstance(exc, SweepTerminated) else type(exc).__name__
        if isinstance(exc, OSError):
            stopped_by = f"OSError: {exc.strerror} ({exc.filename})"
        raise
    finally:
        if bar is not None:
            bar.close()
        _finish(manifest, session, out_dir, len(all_tasks), n_new, t0, stopped_by)
    return manifest


def _finish(
    manifest: dict,
    session: dict,
    out_dir: Path,
    n_runs: int,
    n_new: int,
    t0: float,
    stopped_by: str | None,
) -> None:
    """Consolidate and record the session's end; on a full or read-only disk, as much as
    possible (the parts on disk are the truth; a manifest left "running" reads "interrupted")."""
    try:
        _, runs = _consolidate(out_dir)
        final = (
            dict(zip(runs["run_id"].to_pylist(), runs["status"].to_pylist(), strict=True))
            if runs is not None
            else {}
        )
        run_time_s = float(np.nansum(runs["wall_s"].to_numpy())) if runs is not None else 0.0
    except (OSError, ConfigError):  # cannot write the tables, or a foreign part: count parts
        final = finished_runs(out_dir)
        run_time_s = float("nan")
    missing = n_runs - len(final)
    status = "complete" if stopped_by is None and not missing else "interrupted"
    if stopped_by is None and missing:
        status = "incomplete"
    session.update(
        finished_at=_now(),
        wall_s=round(time.perf_counter() - t0, 3),
        runs_executed=n_new,
        run_time_s_all_runs=round(run_time_s, 3),
    )
    if stopped_by is not None:
        session["ended"] = f"interrupted by {stopped_by}"[:300]
    manifest.update(
        status=status,
        counts={
            "runs": n_runs,
            "ok": sum(1 for s in final.values() if s == STATUS_OK),
            "failed": sum(1 for s in final.values() if s != STATUS_OK),
            "missing": missing,
        },
    )
    reserve = out_dir / RESERVE_NAME
    try:
        write_json_atomic(manifest, out_dir / "manifest.json")
    except OSError as exc:
        # a full disk: give back the space held for this write and try once more
        if exc.errno == errno.ENOSPC and reserve.exists():
            reserve.unlink()
            with contextlib.suppress(OSError):
                write_json_atomic(manifest, out_dir / "manifest.json")
    with contextlib.suppress(OSError):
        reserve.unlink()


def _reserve_space(out_dir: Path, n_bytes: int) -> None:
    """Hold ``n_bytes`` of disk in a spare file, so the final manifest can still be written (as
    "interrupted") when the runs fill the disk; a failure to reserve is not an error."""
    with contextlib.suppress(OSError), open(out_dir / RESERVE_NAME, "wb") as fh:
        fh.write(b"\0" * n_bytes)
