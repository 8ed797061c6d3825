"""The ``processes`` executor: a sweep's runs on worker processes forked from this one.

Forked workers start in milliseconds with everything this process has imported (the model,
Mesa, pandas), where a Dask ``LocalCluster`` spawns fresh interpreters that import them again
(~1.5-3 s on 2 cores, benchmarks/README.md). Each worker keeps ``PREFETCH`` runs queued in its
pipe, so it starts the next run as soon as one ends, without a round trip to this process;
results come back one run at a time (the progress bar and the parts on disk move per run).

Rules, the same as on Dask: a run that raises is a failed row (``run_task`` catches it); a
worker process that dies (killed, out of memory, ``os._exit``) costs only the run it was
executing, which is tried again on a fresh worker up to ``MAX_ATTEMPTS`` times and then recorded
failed; the runs queued behind it go back to the queue without losing an attempt. Results do not
depend on the worker count or the order runs end in (each run's seed is in its task).
Linux and macOS only (``fork``); elsewhere use ``--executor dask`` or ``serial``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import wait

from abm.config import ConfigError
from abm.sweep.executors import MAX_ATTEMPTS, failed_output
from abm.sweep.tasks import run_task

PREFETCH = 2  # runs queued per worker: the one it runs and the next
STOP = None  # sent to a worker: no more runs
SHUTDOWN_TIMEOUT_S = 5.0


def _worker_main(conn, base_config: dict, close_fds: tuple[int, ...], others: list) -> None:
    """A worker's loop: receive a task, send back ``(run_id, output)``, until ``STOP`` or the
    parent is gone (EOF on the pipe, or a broken pipe when sending)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent terminates us on the way out
    for fd in close_fds:  # e.g. the sweep folder's lock: only the parent may hold it
        with contextlib.suppress(OSError):
            os.close(fd)
    for other in others:  # parent ends of sibling pipes: EOF must reach each worker alone
        other.close()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is STOP:
            return
        output = run_task(task, base_config)
        try:
            conn.send((task["run_id"], output))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx, base_config: dict, close_fds: tuple[int, ...], siblings: list):
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.assigned: deque[dict] = deque()  # sent, not yet returned, oldest first
        others = [w.conn for w in siblings] + [self.conn]
        self.process = ctx.Process(
            target=_worker_main,
            args=(child_conn, base_config, close_fds, others),
            daemon=True,
            name="abm-sweep-worker",
        )
        self.process.start()
        child_conn.close()

    def send(self, task: dict) -> bool:
        """Queue ``task`` on this worker; False when its pipe is broken (it died)."""
        try:
            self.conn.send(task)
        except (BrokenPipeError, OSError):
            return False
        self.assigned.append(task)
        return True

    def stop(self, timeout_s: float = SHUTDOWN_TIMEOUT_S, kill: bool = False) -> None:
        with contextlib.suppress(OSError):
            if not kill:
                self.conn.send(STOP)
        self.conn.close()
        if kill:
            self.process.terminate()
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run_on_processes(
    tasks: list[dict], base_config: dict, workers: int, close_fds: tuple[int, ...] = ()
) -> Iterator[tuple[dict, dict]]:
    """Every task on ``workers`` forked processes, as each ends: (task, output) pairs.

    ``close_fds`` are closed in each worker (descriptors only this process may hold). Closing
    the generator (an interrupt, a failed write) terminates the workers at once."""
    if not fork_available():
        raise ConfigError("--executor processes: needs fork (Linux, macOS); use dask or serial")
    ctx = multiprocessing.get_context("fork")
    queue: deque[dict] = deque(tasks)
    attempts: dict[int, int] = {}
    pool: list[_Worker] = []

    def start_worker() -> _Worker:
        worker = _Worker(ctx, base_config, tuple(close_fds), pool)
        pool.append(worker)
        return worker

    def fill(worker: _Worker) -> None:
        while len(worker.assigned) < PREFETCH and queue:
            task = queue.popleft()
            if not worker.send(task):
                queue.appendleft(task)
                return

    try:
        for _ in range(min(workers, len(queue))):
            fill(start_worker())
        while any(w.assigned for w in pool):
            busy = [w for w in pool if w.assigned]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                died = False
                if worker.conn in ready or worker.process.sentinel in ready:
                    # results sent before a death are still in the pipe: read them first
                    while worker.assigned:
                        try:
                            if not worker.conn.poll():
                                break
                            run_id, output = worker.conn.recv()
                        except (EOFError, OSError):
                            died = True
                            break
                        task = worker.assigned.popleft()
                        assert task["run_id"] == run_id, (task["run_id"], run_id)
                        yield task, output
                    died = died or worker.process.sentinel in ready
                if not died:
                    fill(worker)
                    continue
                worker.process.join()
                code = worker.process.exitcode
                pool.remove(worker)
                worker.conn.close()
                if worker.assigned:  # the oldest was running; the rest never started
                    culprit = worker.assigned.popleft()
                    queue.extendleft(reversed(worker.assigned))
                    rid = culprit["run_id"]
                    attempts[rid] = attempts.get(rid, 1) + 1
                    if attempts[rid] <= MAX_ATTEMPTS:
                        queue.appendleft(culprit)
                    else:
                        yield (
                            culprit,
                            failed_output(
                                culprit,
                                f"WorkerProcessDied: exit code {code} in each of "
                                f"{MAX_ATTEMPTS} attempts",
                                f"worker process for run {rid} exited with code {code}\n",
                            ),
                        )
                if queue and len(pool) < workers:
                    fill(start_worker())
            for worker in pool:  # a worker that died took runs back to the queue
                fill(worker)
            if queue and not pool:
                fill(start_worker())
        for worker in pool:
            worker.stop()
        pool.clear()
    finally:
        for worker in pool:  # interrupted: do not wait for runs in flight
            worker.stop(timeout_s=1.0, kill=True)
