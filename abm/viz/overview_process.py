"""Drawing ``overview.png`` in a forked child process, while the parent imports and runs the model.

``abm run`` spends ~0.3 s running the baseline, then ~0.6 s importing matplotlib and drawing
the overview, one after the other. :class:`OverviewProcess` forks a child once the model's
libraries are imported (Mesa, pandas, networkx: the child shares them and imports only
matplotlib and the figure module); the child imports those and makes the empty figure on the
second core while the parent runs the model. The parent then hands over exactly what
:func:`abm.viz.overview.overview_figure` reads (:func:`abm.viz.overview_inputs.overview_inputs`,
pickled through a pipe) and writes the result tables while the child draws. The child sends the
PNG's bytes back; the parent writes them into the run's temp folder, so the figure lands in the
run folder with everything else in one rename, before the manifest is written.

Rules:

* The bytes are those of ``overview_figure(result, path)`` in the parent (the same drawing on
  the same data; ``tests/test_overview_process.py`` compares them). The child makes the empty
  figure and axes (:func:`abm.viz.overview.prepared_overview`) before the inputs arrive.
* An error in the child (an exception while drawing, a crash, a kill) raises
  :class:`FigureProcessError` in the parent with one line saying what happened; ``write_run``
  then removes its temp folder, so nothing is half-written.
* No child outlives its parent's run: :meth:`OverviewProcess.close` (called on every way out,
  also Ctrl-C and SIGTERM, which ``abm run`` turns into an exception) kills and reaps it; the
  child resets SIGINT and SIGTERM to their default (die quietly), and if the parent is killed
  outright (SIGKILL) the child finds its pipe closed and exits after at most one drawing.
* Use :func:`start_overview_process` inside :func:`held_signals`: it returns None where fork
  is unavailable (Windows), only one core is usable (the child would only add its imports) or
  other threads run (``abm.cli.main`` called from a threaded program), and the caller then draws
  in its own process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from pathlib import Path

from abm.viz.overview_inputs import overview_inputs

CHILD_FAILED = 1  # exit code of a child whose drawing raised (it also reports the error)


class FigureProcessError(RuntimeError):
    """The figure process could not draw ``overview.png``; the message says why, on one line."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def start_overview_process() -> OverviewProcess | None:
    """A forked figure process, or None where fork is unavailable, only one core is usable, or
    this process runs other threads (a fork copies only the calling thread, and a lock another
    thread holds, e.g. the import lock, would stay locked in the child forever)."""
    if not hasattr(os, "fork") or usable_cores() < 2 or threading.active_count() > 1:
        return None
    return OverviewProcess()


HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def held_signals():
    """Hold SIGINT and SIGTERM (``pthread_sigmask``) inside the block; one that arrived is
    delivered when the block ends. Fork the child and store it inside the block, so that Ctrl-C
    or SIGTERM cannot strike between the fork and the ``try`` that closes it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _child_main(inputs_fd: int, reply_fd: int) -> None:  # pragma: no cover - runs in the child
    """Import the figure module, make the empty figure, wait for the inputs, draw, send ``("ok", png bytes)`` or
    ``("error", "Type: message")`` back, and leave with ``os._exit`` (never the parent's
    clean-up: atexit handlers, stdio buffers, pytest)."""
    code = CHILD_FAILED
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C reaches both: die quietly
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if hasattr(signal, "pthread_sigmask"):  # forked inside held_signals(): release them
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
        import io

        import matplotlib

        from abm.viz.overview import prepared_overview

        png = io.BytesIO()
        # a file object has no extension: say PNG (a matplotlibrc may set another default);
        # the empty figure and axes are made while the parent still runs the model
        with matplotlib.rc_context({"savefig.format": "png"}), prepared_overview() as draw:
            payload = _read_all(inputs_fd)
            if not payload:  # the parent closed the pipe without inputs: nothing to draw
                os._exit(0)
            draw(pickle.loads(payload), png)
        reply = ("ok", png.getvalue())
        code = 0
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        reply = ("error", f"{type(exc).__name__}: {exc}")
    try:
        _write_all(reply_fd, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:  # noqa: BLE001 - the parent is gone: nobody to tell
        code = CHILD_FAILED
    os._exit(code)


class OverviewProcess:
    """A forked child that draws one ``overview.png``: :meth:`submit` the run's result when it is
    ready, then call :meth:`write` as ``write_run``'s figure writer (``figure(result, path)``);
    :meth:`close` on the way out. Also a context manager (closes on exit)."""

    def __init__(self) -> None:
        inputs_r, self._inputs_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        self._sender: threading.Thread | None = None
        self._send_error: BaseException | None = None
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.close(self._inputs_w)
            os.close(self._reply_r)
            _child_main(inputs_r, reply_w)
        os.close(inputs_r)
        os.close(reply_w)
        self._status: int | None = None  # the child's wait status once reaped

    def submit(self, result) -> None:
        """Send what the overview of ``result`` (an :class:`abm.RunResult`) needs to the child,
        from a thread: the pipe holds 64 kB, and the parent need not wait for the child to
        finish its imports to go on writing the tables."""
        if self._sender is not None:
            raise RuntimeError("OverviewProcess: submit() was already called")
        payload = pickle.dumps(overview_inputs(result), protocol=pickle.HIGHEST_PROTOCOL)

        def send() -> None:
            try:
                _write_all(self._inputs_w, payload)
            except BaseException as exc:  # noqa: BLE001 - reported by write()
                self._send_error = exc
            finally:
                os.close(self._inputs_w)
                self._inputs_w = -1

        self._sender = threading.Thread(target=send, name="abm-overview-inputs", daemon=True)
        self._sender.start()

    def png_bytes(self) -> bytes:
        """Wait for the child's drawing and return the PNG; raises :class:`FigureProcessError`
        when the child reported an error, crashed or was killed."""
        if self._sender is None:
            raise RuntimeError("OverviewProcess: submit() a result first")
        data = _read_all(self._reply_r)
        self._sender.join()
        self._reap()
        try:
            kind, value = pickle.loads(data)
        except Exception:  # noqa: BLE001 - no or a cut reply: the child died
            raise FigureProcessError(f"the figure process {self._how_it_ended()}") from None
        if kind != "ok":
            raise FigureProcessError(f"drawing overview.png failed: {value}")
        return value

    def write(self, result, path: str | Path) -> None:
        """``write_run``'s figure writer: write the child's PNG of ``result`` to ``path``
        (submitting ``result`` first if :meth:`submit` was not called)."""
        if self._sender is None:
            self.submit(result)
        png = self.png_bytes()
        with open(path, "wb") as fh:
            fh.write(png)

    def _how_it_ended(self) -> str:
        status = self._status
        if status is None:
            return "ended without a reply"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            return f"was killed by {name} before it sent overview.png"
        return f"exited with code {os.waitstatus_to_exitcode(status)} before it sent overview.png"

    def _reap(self) -> None:
        if self._status is None:
            _, self._status = os.waitpid(self.pid, 0)

    def close(self) -> None:
        """Kill the child if it still runs, reap it and close the pipes. Safe to call twice."""
        if self._status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()
        if self._inputs_w >= 0 and self._sender is None:
            os.close(self._inputs_w)
            self._inputs_w = -1
        if self._reply_r >= 0:
            os.close(self._reply_r)
            self._reply_r = -1

    def __enter__(self) -> OverviewProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
