"""``abm run`` draws ``overview.png`` in a forked child (abm/viz/overview_process.py, issue 16):
the same bytes as drawing it in-process, a clean error and nothing written when the child fails,
and no child left behind after a run, a failure, Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import abm
from abm import cli
from abm.viz import overview, overview_process
from abm.viz.overview import overview_figure
from abm.viz.overview_process import FigureProcessError, OverviewProcess

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the figure process needs fork")


def children(pid: int) -> set[int]:
    """Process ids of the live children of ``pid`` (Linux /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def two_cores(monkeypatch):
    """The CLI forks the figure process only with two usable cores: say there are two."""
    monkeypatch.setattr(overview_process, "usable_cores", lambda: 2)


@pytest.mark.parametrize(
    ("scenario", "seed", "months"),
    [("baseline", 0, None), ("calm", 0, 24), ("correlated_crash", 1, None)],
)
def test_the_child_draws_the_same_bytes_as_the_parent(tmp_path, scenario, seed, months):
    """baseline seed 0 has defaults, fire sales and the stress regime; calm 24 months has none
    (the panels' "no ... in this run" branches); correlated_crash seed 1 has miner, neocloud
    and lender-side defaults and an outer ring. The child gets only overview_inputs(result)."""
    before_children = children(os.getpid())  # e.g. another test's Dask forkserver
    result = abm.run(scenario, seed=seed, months=months)
    overview_figure(result, tmp_path / "here.png")
    with OverviewProcess() as drawer:
        drawer.submit(result)
        drawer.write(result, tmp_path / "child.png")
    assert (tmp_path / "child.png").read_bytes() == (tmp_path / "here.png").read_bytes()
    assert children(os.getpid()) <= before_children  # none of ours left


def test_abm_run_writes_the_childs_figure_byte_identical(tmp_path, two_cores, monkeypatch, capsys):
    before_children = children(os.getpid())
    started = []

    def start():
        started.append(OverviewProcess())
        return started[-1]

    monkeypatch.setattr(overview_process, "start_overview_process", start)
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "--no-progress"]) == 0
    assert len(started) == 1  # the figure came from a child
    overview_figure(abm.run("baseline", seed=0), tmp_path / "here.png")
    assert (out / "overview.png").read_bytes() == (tmp_path / "here.png").read_bytes()
    assert children(os.getpid()) <= before_children  # none of ours left


def test_one_core_draws_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(overview_process, "usable_cores", lambda: 1)

    def no_fork():
        raise AssertionError("forked a figure process on one core")

    monkeypatch.setattr(overview_process, "OverviewProcess", no_fork)
    assert cli.main(["run", "--months", "3", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "overview.png").stat().st_size > 10_000


@pytest.mark.parametrize("cores", [2, 1])
def test_a_failing_drawing_is_one_error_line_and_nothing_is_written(
    tmp_path, monkeypatch, capsys, cores
):
    """The child inherits the patched module (fork; two cores), or the drawing fails in this
    process (one core): the same one line and exit code; the earlier run in the folder survives."""
    monkeypatch.setattr(overview_process, "usable_cores", lambda: cores)
    before_children = children(os.getpid())
    out = tmp_path / "run"
    assert cli.main(["run", "--months", "3", "--out", str(out), "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    def broken(fig, axes, result, path, seed):
        raise ValueError("no axes today")

    monkeypatch.setattr(overview, "_panels", broken)
    code = cli.main(["run", "--months", "4", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FIGURE_FAILED == 1
    assert err.splitlines() == [
        f"abm: error: drawing overview.png failed: ValueError: no axes today; nothing was "
        f"written to {out} (abm run --no-figure skips the figure)"
    ]
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no temp folder left beside it
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert children(os.getpid()) <= before_children  # none of ours left


def test_a_threaded_caller_draws_in_process(two_cores, monkeypatch):
    """A fork copies only the calling thread: with other threads running, no child is forked."""
    monkeypatch.setattr(overview_process.threading, "active_count", lambda: 2)
    assert overview_process.start_overview_process() is None
    monkeypatch.setattr(overview_process.threading, "active_count", lambda: 1)
    drawer = overview_process.start_overview_process()
    assert isinstance(drawer, OverviewProcess)
    drawer.close()


def test_a_killed_child_is_reported_not_hung_on(tmp_path):
    result = abm.run("baseline", seed=0, months=3)
    drawer = OverviewProcess()
    try:
        os.kill(drawer.pid, signal.SIGKILL)
        drawer.submit(result)
        with pytest.raises(FigureProcessError, match="was killed by SIGKILL before it sent"):
            drawer.write(result, tmp_path / "overview.png")
    finally:
        drawer.close()
    assert not (tmp_path / "overview.png").exists()
    assert not alive(drawer.pid) or drawer.pid not in children(os.getpid())


def test_closing_without_submitting_reaps_the_child():
    drawer = OverviewProcess()
    drawer.close()
    drawer.close()  # twice is harmless
    assert drawer.pid not in children(os.getpid())


@pytest.mark.parametrize(
    ("how", "exit_code"), [("SIGTERM", cli.EXIT_SIGTERM), ("Ctrl-C", cli.EXIT_SIGINT)]
)
def test_no_child_outlives_an_interrupted_run(tmp_path, how, exit_code):
    """SIGTERM to ``abm run``, or Ctrl-C (SIGINT to its whole process group), while the figure
    process exists: exit 143 / 130, the child is gone, nothing is written."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "abm.cli", "run", "--months", "240", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    try:
        deadline = time.monotonic() + 60
        figure_child = None
        while figure_child is None and time.monotonic() < deadline and proc.poll() is None:
            for pid in children(proc.pid):  # the fork runs the same command line (no exec)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if cmdline == Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                    figure_child = pid
            time.sleep(0.005)
        assert figure_child is not None, "no figure process seen"
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == exit_code, err
    assert not alive(figure_child)
    assert os.listdir(tmp_path) == []
