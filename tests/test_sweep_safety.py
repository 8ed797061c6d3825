"""abm sweep / abm analyze under hostile conditions (the bad-input corpus of
tests/bad_inputs/cases_sweep.py runs in tests/test_bad_input_corpus.py): a second writer, dead sessions, SIGTERM, a full or read-only
disk, an unreachable scheduler, failed runs, sizes refused before any design point is built."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abm.cli import main
from abm.config import ConfigError
from abm.sweep import load_experiment, run_sweep
from abm.sweep import runner as sweep_runner
from abm.sweep.folder import SweepLock, effective_status, read_manifest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "cases_sweep", ROOT / "tests" / "bad_inputs" / "cases_sweep.py"
)
cases_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases_sweep)
CASES = cases_sweep.CASES

EXP = """
name = "safety"
scenario = "baseline"
months = {months}
replications = {reps}

[[parameters]]
name = "pue"
path = "compute.pue"
values = [1.1, 1.2]
"""


# --------------------------------------------------------------------------- sizes, timings


@pytest.mark.parametrize(
    "case_id", ["sweep-huge-grid", "sweep-sobol-2-19", "sweep-lhs-times-replications"]
)
def test_oversized_designs_are_refused_within_a_second(case_id, tmp_path):
    case = next(c for c in CASES if c["id"] == case_id)
    path = tmp_path / "exp.toml"
    path.write_text(case["files"]["exp.toml"])
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=case["field"]):
        load_experiment(path)
    assert time.perf_counter() - t0 < 1.0


def test_a_large_lhs_design_is_ready_in_seconds_not_minutes(tmp_path):
    """100,000 LHS points: validated at the design's corners, not point by point (minutes)."""
    path = tmp_path / "exp.toml"
    path.write_text(
        'name = "big"\ndesign = "lhs"\nsamples = 100000\n'
        '[[parameters]]\nname = "pue"\npath = "compute.pue"\nrange = [1.1, 1.5]\n'
    )
    t0 = time.perf_counter()
    exp = load_experiment(path)
    assert len(exp.points) == 100_000
    assert time.perf_counter() - t0 < 10.0


def test_interior_points_of_a_valid_box_are_valid(tmp_path):
    """The corner argument: with valid corners, sampled interior points validate too."""
    from abm.config import validate

    path = tmp_path / "exp.toml"
    path.write_text(
        'name = "box"\ndesign = "lhs"\nsamples = 64\n'
        '[[parameters]]\nname = "call"\npath = "miners.btc_margin_call_ltv"\nrange = [0.3, 0.5]\n'
        '[[parameters]]\nname = "liq"\npath = "miners.btc_liquidation_ltv"\nrange = [0.6, 0.8]\n'
    )
    exp = load_experiment(path)
    for point in range(len(exp.points)):
        validate(exp.point_config(point))
    crossing = path.read_text().replace("[0.6, 0.8]", "[0.45, 0.8]")
    path.write_text(crossing)  # margin call above liquidation at a corner: refused up front
    with pytest.raises(ConfigError, match="btc_margin_call_ltv"):
        load_experiment(path)


# --------------------------------------------------------------------------- sessions


def _exp(tmp_path: Path, months: int = 2, reps: int = 2) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(EXP.format(months=months, reps=reps))
    return path


def test_manifest_says_what_it_is(tmp_path):
    exp = load_experiment(_exp(tmp_path))
    manifest = run_sweep(exp, tmp_path / "out", executor="serial", progress=False)
    on_disk = read_manifest(tmp_path / "out")
    assert on_disk["kind"] == "abm-sweep" and on_disk["abm_output_schema"] == 1
    assert (
        manifest["status"] == "complete"
        and not (tmp_path / "out" / ".manifest.json.reserve").exists()
    )


def test_a_second_writer_is_refused_at_once(tmp_path):
    exp = load_experiment(_exp(tmp_path))
    out = tmp_path / "out"
    run_sweep(exp, out, executor="serial", progress=False)
    with SweepLock(out):  # another session holds the folder
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="another abm sweep is writing"):
            run_sweep(exp, out, executor="serial", progress=False, resume=True)
        assert time.perf_counter() - t0 < 2.0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "complete" and len(manifest["sessions"]) == 1


def test_a_dead_sessions_running_status_reads_interrupted(tmp_path, capsys):
    exp_path = _exp(tmp_path)
    exp = load_experiment(exp_path)
    out = tmp_path / "out"
    run_sweep(exp, out, executor="serial", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["status"] = "running"  # as a kill -9 leaves it
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert effective_status(out, manifest) == "interrupted"
    with SweepLock(out):
        assert effective_status(out, manifest) == "running"
    assert main(["sweep", str(exp_path), "--out", str(out), "--executor", "serial"]) == 2
    err = capsys.readouterr().err
    assert "(interrupted)" in err and "(running)" not in err
    resumed = run_sweep(exp, out, executor="serial", progress=False, resume=True)
    assert resumed["status"] == "complete"
    assert resumed["sessions"][0]["ended"].startswith("interrupted")


def test_sigterm_ends_the_session_interrupted_and_resumable(tmp_path):
    exp_path = _exp(tmp_path, months=120, reps=40)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "abm.cli", "sweep", str(exp_path), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*cmd, "--executor", "serial", "--no-progress"], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "parts").glob("runs-*"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert 2 <= manifest["counts"]["ok"] < 80


def test_failed_runs_exit_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ABM_SWEEP_FAULTS", "raise:1")
    exp_path = _exp(tmp_path)
    code = main(["sweep", str(exp_path), "--out", str(tmp_path / "out"), "--executor", "serial"])
    assert code == 3
    assert "1 failed" in capsys.readouterr().out


def test_an_unreachable_scheduler_exits_2_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("abm.sweep.executors.CONNECT_TIMEOUT_S", 2)
    exp_path = _exp(tmp_path)
    out = tmp_path / "new" / "out"
    code = main(["sweep", str(exp_path), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "--scheduler: cannot reach" in err
    assert not (tmp_path / "new").exists()


def test_the_embedded_cluster_serves_no_dashboard():
    """Dask always runs a bare HTTP endpoint; without --dashboard it is on a random loopback
    port and serves no dashboard page (/status is 404)."""
    import urllib.error
    import urllib.request

    from abm.sweep.executors import dask_client

    with dask_client(1, None) as client:
        port = client.scheduler_info()["services"]["dashboard"]
        assert port != 8787
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10)
        assert info.value.code == 404


def _write_fails_after(n_ok: int, err: int):
    real = sweep_runner._write_part
    calls = {"n": 0}

    def write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(err, os.strerror(err), "parts/runs-x.arrow")
        return real(*args, **kwargs)

    return write


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC])
def test_a_failed_write_mid_sweep_stops_cleanly_and_resumes(tmp_path, monkeypatch, capsys, err):
    exp_path = _exp(tmp_path, reps=3)
    out = tmp_path / "out"
    argv = ["sweep", str(exp_path), "--out", str(out), "--executor", "serial", "--no-progress"]
    with monkeypatch.context() as m:
        m.setattr(sweep_runner, "_write_part", _write_fails_after(2, err))
        code = main(argv)
    stderr = capsys.readouterr().err
    assert code == 1 and os.strerror(err) in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["counts"]["ok"] == 2
    assert main([*argv, "--resume"]) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"]["ok"] == 6


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root for tmpfs")
def test_a_full_disk_leaves_an_interrupted_resumable_sweep(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        exp_path = _exp(tmp_path, reps=200)
        out = mnt / "out"
        cmd = [sys.executable, "-m", "abm.cli", "sweep", str(exp_path), "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [*cmd, "--executor", "serial", "--no-progress"], env=env, capture_output=True, text=True
        )
        assert run.returncode == 1, run.stderr
        assert "No space left on device" in run.stderr and "Traceback" not in run.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "interrupted"
        kept = manifest["counts"]["ok"]
        assert 0 < kept < 400 and len(list((out / "parts").glob("runs-*"))) == kept
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        resumed = subprocess.run(
            [*cmd, "--executor", "serial", "--no-progress", "--resume"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads((out / "manifest.json").read_text())["counts"]["ok"] == 400
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", str(mnt)], check=False)


def test_analyze_rebuilds_a_damaged_runs_parquet_from_the_parts(tmp_path, capsys):
    exp = load_experiment(_exp(tmp_path))
    out = tmp_path / "out"
    run_sweep(exp, out, executor="serial", progress=False)
    (out / "runs.parquet").write_bytes(b"PAR1 damaged")
    assert main(["analyze", str(out)]) == 0
    assert "runs: 4 (0 failed)" in capsys.readouterr().out
