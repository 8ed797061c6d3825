"""abm sweep on forked worker processes (the default executor on one machine): the serial
results bit for bit, a worker that dies costs only its own run, the folder lock stays the
sweep's, and an interrupted sweep stops its workers."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from abm.config import ConfigError
from abm.sweep import load_experiment, run_sweep
from abm.sweep.folder import SweepLock
from abm.sweep.processes import run_on_processes

TINY = """
name = "tiny"
scenario = "correlated_crash"
months = 12
master_seed = 11
replications = 2
design = "grid"

[[parameters]]
name = "rent_deflation"
path = "compute.rent_deflation_per_year"
values = [0.15, 0.35]

[[parameters]]
name = "ltv_scale"
path = "lenders.kinds.*.origination_ltv"
mode = "scale"
range = [0.8, 1.2]
steps = 2

[outputs]
timeseries = true
"""


def _experiment(tmp_path, months: int = 12):
    path = tmp_path / "exp.toml"
    path.write_text(TINY.replace("months = 12", f"months = {months}"))
    return path


def _runs(out) -> pd.DataFrame:
    df = pd.read_parquet(out / "runs.parquet")
    return df.drop(columns=["wall_s"]).sort_values("run_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial_ref")
    exp = load_experiment(_experiment(tmp))
    out = tmp / "out"
    run_sweep(exp, out, executor="serial", progress=False)
    return exp, out


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_processes_give_the_serial_result(serial, tmp_path, workers):
    exp, serial_out = serial
    out = tmp_path / f"p{workers}"
    manifest = run_sweep(exp, out, workers=workers, progress=False)  # the default executor
    session = manifest["sessions"][-1]
    assert manifest["status"] == "complete"
    assert session["executor"] == "processes" and session["workers"] == workers
    pd.testing.assert_frame_equal(_runs(out), _runs(serial_out))
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "timeseries.parquet"),
        pd.read_parquet(serial_out / "timeseries.parquet"),
    )


def test_workers_do_not_hold_the_sweep_lock(serial, tmp_path, monkeypatch):
    """The lock's descriptor is closed in each worker, so a parent killed with -9 frees the
    folder at once (a worker still running a run would otherwise keep the flock)."""
    exp, _ = serial
    lock = SweepLock(tmp_path).acquire()
    real = run_on_processes.__globals__["run_task"]

    def reports_the_fd(task, base):
        out = real(task, base)
        try:
            os.fstat(lock.fd)
            out["row"]["error"] = "lock fd open"
        except OSError:
            out["row"]["error"] = "lock fd closed"
        return out

    monkeypatch.setitem(run_on_processes.__globals__, "run_task", reports_the_fd)
    tasks = exp.tasks()[:3]
    rows = [o["row"] for _, o in run_on_processes(tasks, exp.base_config, 2, (lock.fd,))]
    assert [r["error"] for r in rows] == ["lock fd closed"] * 3
    rows = [o["row"] for _, o in run_on_processes(tasks, exp.base_config, 2)]
    assert [r["error"] for r in rows] == ["lock fd open"] * 3  # the check can fail
    lock.release()


def test_a_worker_that_dies_costs_only_its_own_run(serial, tmp_path, monkeypatch):
    exp, serial_out = serial
    monkeypatch.setenv("ABM_SWEEP_FAULTS", "exit:2,raise:5")  # run 2 kills its worker every time
    out = tmp_path / "killed"
    manifest = run_sweep(exp, out, executor="processes", workers=2, progress=False)
    runs = _runs(out)
    assert manifest["counts"] == {"runs": 8, "ok": 6, "failed": 2, "missing": 0}
    assert runs.loc[runs["run_id"] == 2, "error"].iloc[0].startswith("WorkerProcessDied")
    assert runs.loc[runs["run_id"] == 5, "error"].iloc[0].startswith("RuntimeError")
    assert (out / "failures" / "run-0000002.txt").is_file()
    assert list(pd.read_parquet(out / "runs.parquet").columns) == list(
        pd.read_parquet(serial_out / "runs.parquet").columns
    )
    ok = runs[runs["status"] == "ok"]
    pd.testing.assert_frame_equal(ok, _runs(serial_out).drop(index=[2, 5]))


def test_a_run_that_kills_one_worker_once_is_retried(serial, tmp_path, monkeypatch):
    """A death on the first attempt only: the run is redone and the sweep equals serial."""
    exp, serial_out = serial
    flag = tmp_path / "died_once"
    tasks = exp.tasks()
    real = run_on_processes.__globals__["run_task"]

    def dies_once(task, base):
        if task["run_id"] == 3 and not flag.exists():
            flag.write_text("x")
            os._exit(9)
        return real(task, base)

    monkeypatch.setitem(run_on_processes.__globals__, "run_task", dies_once)
    outputs = dict((t["run_id"], o) for t, o in run_on_processes(tasks, exp.base_config, workers=2))
    assert flag.exists() and sorted(outputs) == list(range(8))
    assert all(o["row"]["status"] == "ok" for o in outputs.values())
    serial_rows = _runs(serial_out).set_index("run_id")
    assert outputs[3]["row"]["seed"] == serial_rows.loc[3, "seed"]
    assert outputs[3]["row"]["defaults"] == serial_rows.loc[3, "defaults"]


def test_closing_the_stream_stops_the_workers(serial):
    """An interrupt closes the generator: no worker outlives it."""
    exp, _ = serial
    stream = run_on_processes(exp.tasks(), exp.base_config, workers=2)
    next(stream)
    import multiprocessing

    assert len(multiprocessing.active_children()) == 2
    stream.close()
    assert multiprocessing.active_children() == []


def test_processes_refuse_a_scheduler(serial, tmp_path):
    exp, _ = serial
    with pytest.raises(ConfigError, match="--scheduler: only with --executor dask"):
        run_sweep(exp, tmp_path / "x", executor="processes", scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "x").exists()


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signalled_sweep_stops_its_workers_and_resumes(tmp_path, sig, code):
    """SIGTERM or Ctrl-C (SIGINT) during a sweep on worker processes: the workers are gone with
    the sweep, the manifest says interrupted, and --resume finishes only the missing runs."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # 60-month runs (~0.3 s each, 8 runs on 2 workers): the sweep is still running when its first
    # part appears (12-month runs finished before the signal once the model got faster)
    exp_path = _experiment(tmp_path, months=60)
    out = tmp_path / "signalled"
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "abm.cli", "sweep", str(exp_path), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--workers", "2", "--no-progress"], env=env, cwd=root)
    parts = out / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("runs-*.arrow"))) >= 1:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep finished before it could be signalled"
    workers = _children_of(proc.pid)
    assert len(workers) == 2
    os.kill(proc.pid, getattr(signal, sig))
    assert proc.wait(timeout=60) == code
    gone_by = time.time() + 10  # reaped by the sweep; allow init a moment for any orphan
    while time.time() < gone_by and any(os.path.exists(f"/proc/{pid}") for pid in workers):
        time.sleep(0.05)
    assert all(not os.path.exists(f"/proc/{pid}") for pid in workers)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    before = {p.name for p in parts.glob("runs-*.arrow")}
    assert 1 <= len(before) < 8
    resumed = run_sweep(load_experiment(exp_path), out, resume=True, progress=False)
    assert resumed["status"] == "complete" and resumed["sessions"][-1]["runs_to_do"] == 8 - len(
        before
    )
