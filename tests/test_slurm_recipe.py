"""Recipe 2 of docs/cluster.md (SLURM with dask-jobqueue), run as far as one machine allows.

There is no SLURM here, so ``sbatch`` and ``scancel`` are stand-ins on ``PATH``: ``sbatch`` runs
the job script dask-jobqueue wrote, unchanged, as a background process group and prints SLURM's
``Submitted batch job <id>`` line; ``scancel <id>`` kills that group. Everything else is real: the
``SLURMCluster`` is built from the keyword arguments of the recipe's code block in docs/cluster.md
(read from the document, so the recipe and the test cannot drift apart), its job script starts a
real ``dask worker`` that joins the recipe's scheduler, and ``abm sweep --scheduler`` runs an
experiment on it. What this cannot check: SLURM's queue, ``#SBATCH`` directives being honoured,
networking between nodes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import stat
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from abm.cli import main
from abm.sweep import load_experiment, run_sweep

dask_jobqueue = pytest.importorskip("dask_jobqueue")  # in the dev extra; needed only for SLURM

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cluster.md"

EXPERIMENT = """
name = "slurm_check"
scenario = "correlated_crash"
months = 12
master_seed = 11
replications = 2
design = "grid"

[[parameters]]
name = "rent_deflation"
path = "compute.rent_deflation_per_year"
values = [0.2, 0.45]
"""

FAKE_SBATCH = """#!/usr/bin/env bash
# stand-in for SLURM's sbatch: run the job script in the background as its own process group
set -eu
job="$JOBS/job_$$.sh"
cp "$1" "$job"   # dask-jobqueue deletes its temporary script once sbatch returns
setsid bash "$job" > "$job.log" 2>&1 < /dev/null &
echo "$!" >> "$JOBS/ids"
echo "Submitted batch job $!"
"""

FAKE_SCANCEL = """#!/usr/bin/env bash
# stand-in for SLURM's scancel: stop the job's whole process group (the worker and its nanny)
for id in "$@"; do kill -TERM -- "-$id" 2>/dev/null || true; done
"""


def recipe_keywords() -> dict:
    """The keyword arguments of the ``SLURMCluster(...)`` call in docs/cluster.md's recipe 2."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    recipe = next(b for b in blocks if "SLURMCluster(" in b)
    call = next(
        node
        for node in ast.walk(ast.parse(recipe))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SLURMCluster"
    )
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def test_the_recipe_block_is_the_one_documented():
    """What the test below relies on: one process per job, one thread, a memory limit and the
    environment activated by the prologue, as the recipe's prose says."""
    kw = recipe_keywords()
    assert kw["cores"] == 1 and kw["processes"] == 1
    assert kw["memory"] == "2GB" and kw["walltime"] == "04:00:00"
    assert any("activate" in line for line in kw["job_script_prologue"])


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _runs(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "runs.parquet")
    return df.drop(columns=["wall_s"]).sort_values("run_id").reset_index(drop=True)


@pytest.mark.slow  # starts a scheduler and two worker jobs
def test_the_slurm_recipe_runs_a_sweep_equal_to_the_serial_one(tmp_path, monkeypatch):
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("JOBS", str(jobs))

    kw = recipe_keywords()
    # the one line a user adapts: start this environment (here: this checkout) in the job
    kw["job_script_prologue"] = [f"export PYTHONPATH={ROOT}"]
    cluster = dask_jobqueue.SLURMCluster(
        **kw,
        python=sys.executable,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"},
        worker_extra_args=["--host", "127.0.0.1"],
    )
    ids: list[int] = []
    try:
        script = cluster.job_script()
        assert "#SBATCH --partition=compute" in script  # the recipe's directives reach the job
        assert "#SBATCH -t 04:00:00" in script
        # one single-threaded worker process per job, memory limit from the job's memory
        assert re.search(r"--nthreads 1\b", script) and "--nworkers" not in script
        assert "--memory-limit 1.86GiB" in script
        assert cluster.scheduler_address in script

        cluster.scale(jobs=2)
        from distributed import Client

        with Client(cluster, timeout="60s") as client:
            client.wait_for_workers(2, timeout=180)
        ids = [int(x) for x in (jobs / "ids").read_text().split()]
        assert len(ids) == 2

        exp_path = tmp_path / "exp.toml"
        exp_path.write_text(EXPERIMENT)
        serial = tmp_path / "serial"
        run_sweep(load_experiment(exp_path), serial, executor="serial", progress=False)
        out = tmp_path / "on_slurm"
        address = cluster.scheduler_address
        argv = ["sweep", str(exp_path), "--out", str(out), "--scheduler", address, "--no-progress"]
        assert main(argv) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["sessions"][-1]["scheduler"] == address
        assert manifest["counts"] == {"runs": 4, "ok": 4, "failed": 0, "missing": 0}
        pd.testing.assert_frame_equal(_runs(out), _runs(serial))
    finally:
        cluster.close()  # scancel of every job
        deadline = time.monotonic() + 30
        while any(_alive(i) for i in ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftover = [i for i in ids if _alive(i)]
        for i in leftover:
            os.killpg(i, signal.SIGKILL)
    assert not leftover, "scancel left worker jobs running"
