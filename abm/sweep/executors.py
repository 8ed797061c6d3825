"""Executors of a sweep's runs: serially in this process, or on Dask (embedded or remote); the
forked-process executor is in :mod:`abm.sweep.processes`.

Both yield ``(task, output)`` pairs as runs end; ``output`` is :func:`abm.sweep.tasks.run_task`'s
(or :func:`failed_output`'s for a run whose worker process died on every attempt).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator

from abm.config import ConfigError
from abm.sweep.metrics import METRICS
from abm.sweep.tasks import STATUS_FAILED, run_task, run_task_on_worker

MAX_ATTEMPTS = 2  # a run whose worker process dies is tried on a fresh worker once more
CONNECT_TIMEOUT_S = 10  # to reach a --scheduler before giving up (exit 2, nothing written)

# Without a dashboard nothing reads the workers' statistical profiler (a
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


# The embedded cluster's worker processes are forked from one server process that has imported
# Dask and the model once, instead of each being a fresh interpreter importing them again
# (Dask's default, "spawn": ~1.5 s of imports per worker, then the model's on its first run).
FORKSERVER = {"distributed.worker.multiprocessing-method": "forkserver"}
MODEL_MODULES = ("abm.results", "abm.sweep.metrics", "abm.sweep.tasks", "abm.sweep.dask_plugin")


def _preload_the_model_in_the_forkserver() -> None:
    """Add the model to the modules Dask's forkserver imports before it forks workers.

    Dask sets its own preload list (distributed and its dependencies) the first time it makes
    the forkserver context; the model's modules are appended to it. The server starts with the
    first worker, so this takes effect for a cluster started afterwards in this process."""
    from multiprocessing import forkserver

    from distributed.utils import get_mp_context

    ctx = get_mp_context()  # with FORKSERVER in effect: Dask's preload list is set
    server = getattr(forkserver, "_forkserver", None)
    dask_preload = list(getattr(server, "_preload_modules", None) or ["distributed"])
    ctx.set_forkserver_preload(dask_preload + [m for m in MODEL_MODULES if m not in dask_preload])


def failed_output(task: dict, error: str, tb: str) -> dict:
    """The output of a run that never returned (its worker died): a failed row."""
    row = {k: task[k] for k in ("run_id", "point", "replicate", "seed")}
    row.update(task["params"])
    row.update({name: float("nan") for name in METRICS})
    row.update({"status": STATUS_FAILED, "error": error[:500], "wall_s": float("nan")})
    return {"row": row, "timeseries": None, "agents": None, "traceback": tb}


def run_serially(tasks: list[dict], base: dict) -> Iterator[tuple[dict, dict]]:
    """Every task in this process, in order: (task, output) pairs."""
    for task in tasks:
        yield task, run_task(task, base)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None, dashboard: bool = False):
    """A Dask client: to the scheduler at ``scheduler`` (ConfigError when it cannot be reached
    within ``CONNECT_TIMEOUT_S``), else to an embedded LocalCluster of ``workers`` processes.

    The embedded cluster serves no dashboard unless ``dashboard`` (then on 127.0.0.1:8787, or
    the next free port); without it the scheduler's bare HTTP endpoint listens on a random
    loopback port (Dask always starts one; a fixed 8787 would also collide between sweeps)."""
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        # A worker death fails every task on that worker at once (allowed-failures 0); the loop
        # in run_on_dask resubmits each such run up to MAX_ATTEMPTS times, so runs that merely shared
        # the worker are redone and only a run that kills every worker it lands on is failed.
        stack.enter_context(
            dask.config.set(
                {
                    "distributed.scheduler.allowed-failures": 0,
                    "distributed.scheduler.worker-saturation": 1.0,
                    # Dask's default (64 KiB) makes glibc return memory to the OS after almost
                    # every numpy temporary; a model month allocates thousands of them
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": str(2**28),
                    **({} if scheduler or dashboard else QUIET_CLUSTER),
                }
            )
        )
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s"))
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(
                    f"--scheduler: cannot reach a Dask scheduler at {scheduler} within "
                    f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__}); is it running?"
                ) from None
        else:
            stack.enter_context(dask.config.set(FORKSERVER))
            _preload_the_model_in_the_forkserver()
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:8787" if dashboard else None,
                    scheduler_kwargs=None if dashboard else {"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                    # workers fork from a server that keeps the environment it started with
                    # (the first cluster of this process): give them this one, as spawn would
                    env=dict(os.environ),
                )
            )
            client = stack.enter_context(Client(cluster))
            if dashboard:
                print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


def run_on_dask(tasks: list[dict], base: dict, client, tag: str) -> Iterator[tuple[dict, dict]]:
    """Every task on the Dask ``client``, as each ends: (task, output) pairs. A run whose worker
    dies is resubmitted up to ``MAX_ATTEMPTS`` times, then recorded failed."""
    from distributed import as_completed

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
