"""abm sweep: same results on any executor, resume after a kill, failures recorded, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.cli import main
from abm.sweep import analyze, load_experiment, run_seed, run_sweep
from abm.sweep.metrics import METRICS
from abm.sweep.runner import runs_schema

TINY = """
name = "tiny"
scenario = "correlated_crash"
months = {months}
master_seed = 11
replications = 2
design = "grid"

[overrides]
"run.max_cascade_rounds" = 4

[[parameters]]
name = "rent_deflation"
path = "compute.rent_deflation_per_year"
values = [0.15, 0.35]

[[parameters]]
name = "ltv_scale"
path = "lenders.kinds.*.origination_ltv"
mode = "scale"
range = [0.8, 1.2]
steps = {steps}

[outputs]
timeseries = true
"""


def _experiment(tmp_path: Path, months: int = 12, steps: int = 2, text: str | None = None) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text if text is not None else TINY.format(months=months, steps=steps))
    return path


def _assert_runs_schema(exp, out: Path) -> None:
    """runs.parquet has the fixed schema whatever mix of ok and failed parts it stacks."""
    schema = pq.read_schema(out / "runs.parquet")
    assert schema.names == runs_schema(exp).names
    assert [f.type for f in schema] == [f.type for f in runs_schema(exp)]
    assert (
        str(schema.field("seed").type) == "int64" and str(schema.field("defaults").type) == "double"
    )


def _runs(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "runs.parquet")
    return df.drop(columns=["wall_s"]).sort_values("run_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    exp = load_experiment(_experiment(tmp))
    manifest = run_sweep(exp, tmp / "out", executor="serial", progress=False)
    return exp, tmp / "out", manifest


def test_experiment_resolves_design_and_wildcards(serial_sweep):
    exp, out, manifest = serial_sweep
    assert exp.n_runs == 8 and len(exp.points) == 4
    ltv = exp.parameters[1]
    assert len(ltv.targets) == len(exp.base_config["lenders"]["kinds"]) > 1
    cfg = exp.point_config(1)  # rent 0.15, ltv x 1.2
    for kind, base in exp.base_config["lenders"]["kinds"].items():
        assert cfg["lenders"]["kinds"][kind]["origination_ltv"] == pytest.approx(
            1.2 * base["origination_ltv"]
        )
    assert cfg["run"]["max_cascade_rounds"] == 4  # the fixed override
    assert manifest["status"] == "complete"
    assert manifest["counts"] == {"runs": 8, "ok": 8, "failed": 0, "missing": 0}
    runs = _runs(out)
    assert list(runs["run_id"]) == list(range(8))
    assert set(METRICS) <= set(runs.columns)
    assert {"rent_deflation", "ltv_scale", "seed", "point", "replicate", "status"} <= set(runs)
    expected = [exp.seed(p, r) for p in range(4) for r in range(2)]
    assert list(runs["seed"]) == expected
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert len(ts) == 8 * 12 and set(ts["run_id"]) == set(range(8))
    design = pd.read_csv(out / "design.csv")
    assert len(design) == 4 and list(design.columns) == ["point", "rent_deflation", "ltv_scale"]


def test_runs_match_a_direct_run(serial_sweep):
    """A sweep row is exactly the metrics of abm.run on that point's config and seed."""
    import abm
    from abm.sweep import run_metrics

    exp, out, _ = serial_sweep
    row = _runs(out).iloc[5]
    result = abm.run(exp.point_config(int(row["point"])), seed=int(row["seed"]), months=12)
    direct = run_metrics(result)
    for name, value in direct.items():
        assert row[name] == pytest.approx(value, nan_ok=True), name


@pytest.mark.slow  # starts Dask clusters
@pytest.mark.parametrize("workers", [1, 2])
def test_dask_gives_the_serial_result(serial_sweep, tmp_path, workers):
    exp, serial_out, _ = serial_sweep
    out = tmp_path / f"dask{workers}"
    manifest = run_sweep(exp, out, executor="dask", workers=workers, progress=False)
    assert manifest["status"] == "complete"
    assert manifest["sessions"][-1]["workers"] == workers
    pd.testing.assert_frame_equal(_runs(out), _runs(serial_out))
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "timeseries.parquet"),
        pd.read_parquet(serial_out / "timeseries.parquet"),
    )


def test_resume_after_kill_finishes_only_the_missing_runs(serial_sweep, tmp_path):
    exp_path = _experiment(tmp_path, months=24, steps=3)  # 12 runs of about 0.2 s
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "abm.cli", "sweep", str(exp_path), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--executor", "serial", "--no-progress"])
    deadline = time.time() + 120
    parts = out / "parts"
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("runs-*.arrow"))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("runs-*.arrow")}
    assert 3 <= len(before) < 12
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    assert main(["sweep", str(exp_path), "--out", str(out), "--executor", "serial"]) == 2
    assert main(["sweep", str(exp_path), "--out", str(out), "--resume", "--no-progress",
                 "--executor", "serial"]) == 0  # fmt: skip
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("runs-*.arrow")}
    assert len(after) == 12
    assert all(after[name] == mtime for name, mtime in before.items()), "finished runs redone"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["sessions"][-1]["runs_executed"] == 12 - len(before)
    assert manifest["sessions"][-1]["runs_before"] == len(before)

    fresh = tmp_path / "fresh"
    run_sweep(load_experiment(exp_path), fresh, executor="serial", progress=False)
    pd.testing.assert_frame_equal(_runs(out), _runs(fresh))


@pytest.mark.slow  # starts a Dask cluster
def test_resume_on_dask_runs_only_what_is_missing(serial_sweep, tmp_path):
    exp, serial_out, _ = serial_sweep
    out = tmp_path / "partial"
    run_sweep(exp, out, executor="serial", progress=False)
    for rid in (1, 6):
        (out / "parts" / f"runs-{rid:07d}.arrow").unlink()
    manifest = run_sweep(exp, out, executor="dask", workers=2, resume=True, progress=False)
    assert manifest["sessions"][-1]["runs_executed"] == 2
    assert len(manifest["sessions"]) == 2
    pd.testing.assert_frame_equal(_runs(out), _runs(serial_out))


def test_a_raising_run_is_recorded_and_the_sweep_goes_on(serial_sweep, tmp_path, monkeypatch):
    exp, serial_out, _ = serial_sweep
    monkeypatch.setenv("ABM_SWEEP_FAULTS", "raise:3")
    out = tmp_path / "faulty"
    manifest = run_sweep(exp, out, executor="serial", progress=False)
    assert manifest["counts"] == {"runs": 8, "ok": 7, "failed": 1, "missing": 0}
    runs = _runs(out)
    failed = runs[runs["status"] == "failed"]
    assert list(failed["run_id"]) == [3]
    assert "fault injected" in failed["error"].iloc[0]
    assert failed[list(METRICS)].isna().all(axis=None)
    trace = (out / "failures" / "run-0000003.txt").read_text()
    assert "Traceback" in trace and "RuntimeError" in trace
    _assert_runs_schema(exp, out)
    ok = runs[runs["status"] == "ok"]
    pd.testing.assert_frame_equal(ok, _runs(serial_out).drop(index=3))

    monkeypatch.delenv("ABM_SWEEP_FAULTS")  # --retry-failed runs it again, now successfully
    manifest = run_sweep(
        exp, out, executor="serial", resume=True, retry_failed=True, progress=False
    )
    assert manifest["counts"]["failed"] == 0 and manifest["sessions"][-1]["runs_executed"] == 1
    assert not (out / "failures" / "run-0000003.txt").exists()
    pd.testing.assert_frame_equal(_runs(out), _runs(serial_out))


@pytest.mark.slow  # waits for a killed Dask worker to be replaced
def test_a_killed_worker_does_not_stop_the_sweep(serial_sweep, tmp_path, monkeypatch):
    exp, serial_out, _ = serial_sweep
    monkeypatch.setenv("ABM_SWEEP_FAULTS", "exit:2")  # run 2 kills whichever worker runs it
    out = tmp_path / "killed_worker"
    manifest = run_sweep(exp, out, executor="dask", workers=2, progress=False)
    runs = _runs(out)
    assert manifest["counts"]["ok"] == 7 and manifest["counts"]["failed"] == 1
    assert runs.loc[runs["run_id"] == 2, "error"].iloc[0].startswith("KilledWorker")
    _assert_runs_schema(exp, out)
    pd.testing.assert_frame_equal(runs[runs["status"] == "ok"], _runs(serial_out).drop(index=2))


def test_analyze_summaries_and_ci(serial_sweep, capsys):
    exp, out, _ = serial_sweep
    assert main(["analyze", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "default_share_borrowers" in printed and "interval" in printed
    # two replicates per point: no interval, said in the table and on screen
    assert "too_few_replicates: 4 of 4 points" in printed and "no CI" in printed
    summary = pd.read_csv(out / "analysis" / "summary_by_point.csv")
    runs = _runs(out)
    for point in range(4):
        x = runs.loc[runs["point"] == point, "lender_loss_rate"].to_numpy()
        row = summary[(summary["point"] == point) & (summary["metric"] == "lender_loss_rate")]
        row = row.iloc[0]
        assert row["n"] == 2 and row["mean"] == pytest.approx(x.mean())
        assert row["too_few_replicates"] and row["ci_method"] == "none"
        assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
        assert row["q50"] == pytest.approx(np.median(x))
    headline = pd.read_csv(out / "analysis" / "headline_means.csv")
    assert list(headline.columns[:3]) == ["point", "rent_deflation", "ltv_scale"]


def test_sobol_indices_recover_the_ishigami_function(tmp_path):
    """Known result: Ishigami's S1 = (0.314, 0.442, 0), ST = (0.558, 0.442, 0.244)."""
    from SALib.sample import sobol as sobol_sample
    from SALib.test_functions import Ishigami

    from abm.sweep.analyze import sobol_indices

    names = ["x1", "x2", "x3"]
    bounds = [[-np.pi, np.pi]] * 3
    problem = {"num_vars": 3, "names": names, "bounds": bounds}
    x = sobol_sample.sample(problem, 2048, calc_second_order=False, seed=1)
    y = Ishigami.evaluate(x)
    runs = pd.DataFrame({"point": np.arange(len(y)), "status": "ok", "lender_loss_rate": y})
    manifest = {
        "design": {
            "points": len(y),
            "parameters": [{"name": n, "range": b} for n, b in zip(names, bounds, strict=True)],
        }
    }
    si = sobol_indices(runs, manifest, ["lender_loss_rate"], seed=1).set_index("parameter")
    assert si["S1"].to_numpy() == pytest.approx([0.314, 0.442, 0.0], abs=0.05)
    assert si["ST"].to_numpy() == pytest.approx([0.558, 0.442, 0.244], abs=0.05)


def test_sobol_sweep_end_to_end(tmp_path):
    text = textwrap.dedent(
        """
        name = "sobol_tiny"
        scenario = "correlated_crash"
        months = 14
        design = "sobol"
        samples = 4
        master_seed = 3
        [[parameters]]
        name = "deflation"
        path = "compute.rent_deflation_per_year"
        range = [0.1, 0.4]
        [[parameters]]
        name = "buyer_budget"
        path = "buyers.stress_budget_multiplier"
        range = [0.2, 1.0]
        [analysis]
        metrics = ["lender_loss_rate", "defaults"]
        """
    )
    exp = load_experiment(_experiment(tmp_path, text=text))
    assert len(exp.points) == 4 * (2 + 2)
    run_sweep(exp, tmp_path / "out", executor="serial", progress=False)
    result = analyze(tmp_path / "out")
    sobol = pd.read_csv(tmp_path / "out" / "analysis" / "sobol.csv")
    assert set(sobol["parameter"]) == {"deflation", "buyer_budget"}
    assert set(sobol["metric"]) == {"lender_loss_rate", "defaults"}
    assert list(result["sobol"].columns) == [
        "metric",
        "parameter",
        "S1",
        "S1_conf",
        "ST",
        "ST_conf",
    ]


def test_lhs_points_stratify_each_range(tmp_path):
    text = TINY.format(months=6, steps=2).replace('design = "grid"', 'design = "lhs"\nsamples = 10')
    text = text.replace("values = [0.15, 0.35]", "range = [0.1, 0.4]").replace("steps = 2\n", "")
    exp = load_experiment(_experiment(tmp_path, text=text))
    x = np.array([p["rent_deflation"] for p in exp.points])
    strata = np.floor((x - 0.1) / 0.03).astype(int)
    assert sorted(strata) == list(range(10))  # one sample in each tenth of the range


@settings(max_examples=50, deadline=None)
@given(
    master=st.integers(0, 2**63 - 1),
    point=st.integers(0, 10_000),
    rep=st.integers(0, 1000),
)
def test_seeds_depend_only_on_master_point_and_replicate(master, point, rep):
    seed = run_seed(master, point, rep)
    assert 0 <= seed < 2**63
    assert seed == run_seed(master, point, rep)
    assert seed != run_seed(master, point + 1, rep)
    assert seed != run_seed(master, point, rep + 1)
    assert run_seed(master, point, rep, common=True) == run_seed(master, point + 7, rep, True)


def test_seeds_are_distinct_across_a_large_design():
    seeds = {run_seed(2026, p, r) for p in range(300) for r in range(30)}
    assert len(seeds) == 9000


BAD = [
    ('bogus = 1\nname = "x"', "experiment bogus: unknown key"),
    ('name = "x"\ndesign = "factorial"', "experiment design: must be one of"),
    ('name = "x"\ndesign = "sobol"\nsamples = 10\n[[parameters]]\nname="a"\npath="compute.pue"\n'
     "range=[1.1,1.5]", "experiment samples: a sobol design needs a power of 2"),
    ('name = "x"\n[[parameters]]\nname="a"\npath="compute.no_such"\nvalues=[1.0]',
     "experiment parameters[0].path: 'compute.no_such' matches no parameter"),
    ('name = "x"\n[[parameters]]\nname="a"\npath="compute.pue"\nvalues=[1.2, 7.0]',
     "compute.pue"),
    ('name = "x"\ndesign = "lhs"\nsamples = 4\n[[parameters]]\nname="a"\npath="compute.pue"\n'
     "values=[1.2]", "experiment parameters[0].values: a 'lhs' design samples a range"),
    ('name = "x"\nreplications = 0', "experiment replications: must be an integer in [1, 100000]"),
    ('name = "x"\nmaster_seed = -1', "experiment master_seed: must be an integer"),
    ('name = "x"\nmonths = 0', "experiment months: must be an integer in [1, 600]"),
    ('name = "x"\nscenario = "nope"', "experiment scenario/overrides"),
    ('name = "x"\n[overrides]\n"compute.pue" = "high"', "compute.pue"),
    ('name = "x"\n[[parameters]]\nname="a"\npath="channels.fire_sale"\nmode="scale"\n'
     "values=[1.0]", "experiment parameters[0].mode: 'scale' needs numeric fields"),
    ('name = "x"\n[analysis]\nmetrics = ["happiness"]', "experiment analysis.metrics: unknown"),
    ('name = "x"\n[[parameters]]\nname="a"\npath="compute.pue"\nrange=[1.5, 1.1]\nsteps=3',
     "experiment parameters[0].range: low must be < high"),
    ("name = [", "not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_experiment_files_exit_2_and_write_nothing(tmp_path, capsys, text, message):
    exp = tmp_path / "bad.toml"
    exp.write_text(text)
    out = tmp_path / "never"
    assert main(["sweep", str(exp), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()


def test_bad_destinations_and_options(serial_sweep, tmp_path, capsys):
    exp, out, _ = serial_sweep
    path = _experiment(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["sweep", str(path), "--out", str(foreign)]) == 2
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    (tmp_path / "o").mkdir()
    other = _experiment(tmp_path / "o", months=13)
    before = (out / "manifest.json").read_text()
    assert main(["sweep", str(other), "--out", str(out), "--resume"]) == 2
    assert "different experiment" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == before
    with pytest.raises(SystemExit) as exc:  # argparse: exit 2 before anything runs
        main(["sweep", str(path), "--workers", "0"])
    assert exc.value.code == 2
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert main(["sweep", str(path), "--retry-failed", "--out", str(tmp_path / "x")]) == 2
    assert main(["analyze", str(foreign)]) == 2
    assert not (tmp_path / "x").exists()


def test_every_packaged_experiment_file_validates():
    """Each experiments/*.toml loads: every field and every design point's scenario is valid."""
    files = sorted((Path(__file__).parent.parent / "experiments").glob("*.toml"))
    assert len(files) >= 7
    for path in files:
        exp = load_experiment(path)
        assert exp.n_runs > 0 and exp.name == path.stem
