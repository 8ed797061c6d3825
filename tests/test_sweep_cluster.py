"""The multi-node recipe of docs/cluster.md, as far as one machine allows: a ``dask scheduler``
and ``dask worker`` processes started from the command line, as on a cluster's nodes, and
``abm sweep --scheduler tcp://...`` pointed at them. The results equal a serial sweep's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from abm.cli import main
from abm.sweep import load_experiment, run_sweep

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENT = """
name = "cluster_check"
scenario = "correlated_crash"
months = 12
master_seed = 5
replications = 2
design = "grid"

[[parameters]]
name = "rent_deflation"
path = "compute.rent_deflation_per_year"
values = [0.15, 0.35, 0.55]
"""


def _runs(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "runs.parquet")
    return df.drop(columns=["wall_s"]).sort_values("run_id").reset_index(drop=True)


def _wait_for(path: Path, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_size:
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:  # written, not yet complete
                pass
        time.sleep(0.2)
    raise TimeoutError(f"{path} did not appear within {timeout_s} s")


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded worker processes, as `dask scheduler` and
    `dask worker --nworkers 2 --nthreads 1` would run on a head node and a compute node."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # workers import this checkout's abm
    file = tmp_path / "scheduler.json"
    common = ["--scheduler-file", str(file), "--no-dashboard"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *common,
            ],  # fmt: skip
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        address = _wait_for(file)["address"]
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    *common,
                ],  # fmt: skip
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow  # starts a scheduler and two worker processes
def test_a_sweep_on_a_running_scheduler_equals_the_serial_sweep(cluster, tmp_path, capsys):
    exp_path = tmp_path / "exp.toml"
    exp_path.write_text(EXPERIMENT)
    serial = tmp_path / "serial"
    run_sweep(load_experiment(exp_path), serial, executor="serial", progress=False)

    out = tmp_path / "on_cluster"
    argv = ["sweep", str(exp_path), "--out", str(out), "--scheduler", cluster, "--no-progress"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    session = manifest["sessions"][-1]
    assert session["executor"] == "dask" and session["scheduler"] == cluster
    assert session["workers"] is None  # the cluster's own, not ours
    assert manifest["counts"] == {"runs": 6, "ok": 6, "failed": 0, "missing": 0}
    pd.testing.assert_frame_equal(_runs(out), _runs(serial))


@pytest.mark.slow
def test_the_scheduler_address_from_the_environment(cluster, tmp_path, monkeypatch):
    """$DASK_SCHEDULER_ADDRESS alone makes abm sweep use that scheduler (no --executor)."""
    exp_path = tmp_path / "exp.toml"
    exp_path.write_text(EXPERIMENT)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster)
    out = tmp_path / "env"
    assert main(["sweep", str(exp_path), "--out", str(out), "--no-progress"]) == 0
    session = json.loads((out / "manifest.json").read_text())["sessions"][-1]
    assert session["executor"] == "dask" and session["scheduler"] == cluster


def test_an_unreachable_scheduler_writes_nothing(tmp_path, capsys, monkeypatch):
    """The recipe's failure mode: a wrong or stopped scheduler is one line, exit 2, no folder."""
    monkeypatch.setattr("abm.sweep.executors.CONNECT_TIMEOUT_S", 1)
    exp_path = tmp_path / "exp.toml"
    exp_path.write_text(EXPERIMENT)
    out = tmp_path / "never"
    code = main(["sweep", str(exp_path), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("abm: error: --scheduler: cannot reach a Dask scheduler")
    assert not out.exists()


def _model_imported() -> bool:
    return "abm.results" in sys.modules


def _env(name: str) -> str | None:
    return os.environ.get(name)


@pytest.mark.slow  # starts two embedded clusters
def test_embedded_workers_start_with_the_model_and_this_environment(monkeypatch):
    """The embedded cluster's workers fork from a server that imported the model once (no
    import on the first run), and see the environment of the moment the cluster starts, even
    when an earlier cluster of this process started that server."""
    from abm.sweep.executors import dask_client

    with dask_client(1, None) as client:
        assert client.submit(_model_imported, pure=False).result() is True
    monkeypatch.setenv("ABM_TEST_MARKER", "second cluster")
    with dask_client(1, None) as client:
        assert client.submit(_env, "ABM_TEST_MARKER", pure=False).result() == "second cluster"
