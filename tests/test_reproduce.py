"""abm reproduce: a run or sweep re-run from its manifest; provenance recorded in manifests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import abm
from abm import io as abm_io
from abm.cli import main

SWEEP = """
name = "four_runs"
scenario = "correlated_crash"
months = 12
master_seed = 5
replications = 2
design = "lhs"
samples = 2

[[parameters]]
name = "rent_deflation"
path = "compute.rent_deflation_per_year"
range = [0.1, 0.4]
"""


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``folder`` with its size and modification time (ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture()
def run_dir(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--scenario", "correlated_crash", "--seed", "1", "--months", "24",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    return out


def _lines(text: str) -> dict[str, str]:
    """``name -> status`` from the report's per-output lines."""
    out = {}
    for line in text.splitlines():
        if line.startswith("  "):
            name, _, rest = line.strip().partition("  ")
            out[name] = rest.strip().split("  ")[0]
    return out


def test_fresh_run_reproduces_identically_and_nothing_is_written(run_dir, capsys):
    capsys.readouterr()
    before = _listing(run_dir)
    assert main(["reproduce", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    statuses = _lines(printed)
    assert set(statuses) == set(manifest["files"])  # every listed file, and only those
    assert set(statuses.values()) == {"identical"}
    assert "result: identical" in printed
    assert _listing(run_dir) == before  # nothing written, touched or left in DIR


def test_an_edited_byte_of_agents_csv_is_reported_different(run_dir, capsys):
    path = run_dir / "agents.csv"
    data = bytearray(path.read_bytes())
    data[200] = ord("7") if data[200] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["reproduce", str(run_dir)]) == 1
    printed = capsys.readouterr().out
    statuses = _lines(printed)
    assert statuses["agents.csv"] == "different"
    assert "changed since abm wrote it" in printed
    assert {s for n, s in statuses.items() if n != "agents.csv"} == {"identical"}
    assert "result: DIFFERENT (1 of" in printed


def test_another_matplotlib_skips_the_png_and_names_the_version(run_dir, capsys):
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["versions"]["matplotlib"] = "0.0.1"
    path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["reproduce", str(run_dir)]) == 0  # the tables are still identical
    printed = capsys.readouterr().out
    assert _lines(printed)["overview.png"] == "not compared"
    assert "matplotlib 0.0.1 ->" in printed


def test_a_manifest_with_sorted_keys_from_before_provenance_still_reproduces(run_dir, capsys):
    """Manifests used to be written with sorted keys, which loses the generations' order."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["provenance"]
    path.write_text(json.dumps(manifest, sort_keys=True))
    assert list(json.loads(path.read_text())["config"]["generations"])[0] == "A100"
    assert list(json.loads(path.read_text())["config"]["generations"])[1] == "B200"  # sorted
    capsys.readouterr()
    assert main(["reproduce", str(run_dir)]) == 0
    assert "table order was restored" in capsys.readouterr().out


def test_manifest_keeps_the_scenario_order_and_records_provenance(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    cfg = abm.load_scenario("correlated_crash")
    assert list(manifest["config"]["generations"]) == list(cfg["generations"])
    assert list(manifest["config"]["lenders"]["kinds"]) == list(cfg["lenders"]["kinds"])
    prov = manifest["provenance"]
    assert prov["abm_version"] == abm.__version__
    assert set(prov) == {
        "abm_version",
        "abm_installed_version",
        "git_commit",
        "git_dirty",
        "git_diff_sha256",
    }
    assert manifest["git_commit"] == prov["git_commit"]
    if prov["git_commit"] is not None:  # tests run from a checkout
        assert isinstance(prov["git_dirty"], bool)
        assert (prov["git_diff_sha256"] is not None) == prov["git_dirty"]


def test_sweep_of_four_runs_reproduced_with_a_sample_of_two(tmp_path, capsys):
    exp = tmp_path / "exp.toml"
    exp.write_text(SWEEP)
    out = tmp_path / "sweep"
    assert main(["sweep", str(exp), "--out", str(out), "--executor", "serial",
                 "--no-progress"]) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["abm_version"] == abm.__version__
    before = _listing(out)
    capsys.readouterr()
    assert main(["reproduce", str(out), "--sample", "2"]) == 0
    printed = capsys.readouterr().out
    statuses = _lines(printed)
    assert len(statuses) == 2 and set(statuses.values()) == {"identical"}
    assert all(name.startswith("run ") for name in statuses)
    assert "2 of 4 stored runs" in printed and "fingerprint" not in printed
    # the same seed picks the same runs; another seed may pick others
    main(["reproduce", str(out), "--sample", "2"])
    assert _lines(capsys.readouterr().out) == statuses
    assert _listing(out) == before

    runs = pd.read_parquet(out / "runs.parquet")
    runs["lender_losses_usd"] = runs["lender_losses_usd"] + 1.0
    runs.to_parquet(out / "runs.parquet", index=False)
    assert main(["reproduce", str(out)]) == 1
    printed = capsys.readouterr().out
    statuses = _lines(printed)
    assert len(statuses) == 4 and set(statuses.values()) == {"different"}
    assert "lender_losses_usd" in printed


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing", "is not a folder"),
        (lambda d: d, "has no manifest.json"),
        (lambda d: (d / "manifest.json").write_text("{not json") and d, "not readable JSON"),
        (lambda d: (d / "manifest.json").write_text('{"kind": "other"}') and d, "kind 'other'"),
        (
            lambda d: (d / "manifest.json").write_text('{"kind": "abm-run", "seed": 0}') and d,
            "config: missing",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, make, message):
    folder = tmp_path / "dir"
    folder.mkdir()
    target = make(folder)
    before = _listing(tmp_path)
    assert main(["reproduce", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("abm: error:") and message in err
    assert _listing(tmp_path) == before


def test_sample_on_a_run_folder_is_bad_input(run_dir, capsys):
    assert main(["reproduce", str(run_dir), "--sample", "2"]) == 2
    assert "--sample: only for a sweep folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- provenance


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True,
        env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"},
    )  # fmt: skip


def test_provenance_dirty_flag_and_diff_hash(tmp_path, monkeypatch):
    """A checkout is dirty when a tracked file changed or an untracked file lies under abm/;
    the diff hash follows the change; no checkout gives None fields."""
    repo = tmp_path / "repo"
    (repo / "abm").mkdir(parents=True)
    (repo / "abm" / "__init__.py").write_text("x = 1\n")
    (repo / "README.md").write_text("readme\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "start")
    monkeypatch.setattr(abm, "__file__", str(repo / "abm" / "__init__.py"))

    clean = abm_io.provenance()
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] is False
    assert clean["git_diff_sha256"] is None

    (repo / "notes.txt").write_text("untracked, outside the package\n")
    assert abm_io.provenance()["git_dirty"] is False

    (repo / "abm" / "new_module.py").write_text("y = 2\n")
    untracked = abm_io.provenance()
    assert untracked["git_dirty"] is True and untracked["git_diff_sha256"] is not None

    (repo / "abm" / "new_module.py").write_text("y = 3\n")
    assert abm_io.provenance()["git_diff_sha256"] != untracked["git_diff_sha256"]
    (repo / "abm" / "new_module.py").unlink()

    (repo / "README.md").write_text("edited\n")
    tracked = abm_io.provenance()
    assert tracked["git_dirty"] is True
    assert tracked["git_diff_sha256"] not in (None, untracked["git_diff_sha256"])
    assert tracked["git_commit"] == clean["git_commit"]

    installed = tmp_path / "site-packages" / "abm"
    installed.mkdir(parents=True)
    monkeypatch.setattr(abm, "__file__", str(installed / "__init__.py"))
    none = abm_io.provenance()
    assert none["git_commit"] is None and none["git_dirty"] is None
    assert none["git_diff_sha256"] is None and none["abm_version"] == abm.__version__


def test_citation_file_names_this_version_and_the_licence():
    import re
    import tomllib

    root = Path(__file__).resolve().parent.parent
    text = (root / "CITATION.cff").read_text()
    assert text.startswith("cff-version: 1.2.0\n")
    version = re.search(r'^version: "([^"]+)"$', text, re.M)
    assert version and version.group(1) == abm.__version__
    licence = tomllib.loads((root / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert re.search(rf"^license: {licence}$", text, re.M)
    assert re.search(r'^date-released: "\d{4}-\d{2}-\d{2}"$', text, re.M)
