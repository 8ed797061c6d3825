"""Output folders: abm replaces only what it provably wrote, and a full or read-only disk, a kill or
an error mid-write leaves no half-written folder and the earlier result intact.

The full-disk and read-only-disk tests mount a small tmpfs, so they run as root only (skipped
otherwise); the read-only-folder test uses permissions, so it runs as a normal user only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from abm.cli import main
from abm.io import owned_output, remove_stale_staging, write_run

RUN = ["run", "--months", "2", "--no-figure"]


def _tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (None for folders) of everything under ``root``."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
    }


def _run(out: Path, *extra: str) -> int:
    return main([*RUN, "--out", str(out), *extra])


def _one_error_line(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A complete run folder written by abm run (2 months, no figure), to copy per test."""
    out = tmp_path_factory.mktemp("earlier") / "run"
    assert _run(out) == 0
    return out


def _copy_run(earlier_run: Path, dest: Path) -> Path:
    shutil.copytree(earlier_run, dest)
    return dest


# ----------------------------------------------------------------------------- what is ours


def test_a_run_folder_records_kind_schema_and_every_file(earlier_run):
    manifest = json.loads((earlier_run / "manifest.json").read_text())
    assert manifest["kind"] == "abm-run" and manifest["abm_output_schema"] == 1
    assert set(manifest["files"]) | {"manifest.json"} == {p.name for p in earlier_run.iterdir()}
    assert owned_output(earlier_run) == "run"


def test_ownership_is_lost_by_any_foreign_or_changed_entry(earlier_run, tmp_path):
    extra = _copy_run(earlier_run, tmp_path / "extra")
    (extra / "notes.txt").write_text("mine")
    edited = _copy_run(earlier_run, tmp_path / "edited")
    (edited / "events.csv").write_text("edited\n")
    linked = _copy_run(earlier_run, tmp_path / "linked")
    shutil.copy(linked / "agents.csv", tmp_path / "agents_copy.csv")
    (linked / "agents.csv").unlink()
    (linked / "agents.csv").symlink_to(tmp_path / "agents_copy.csv")  # same bytes, via a link
    sub = _copy_run(earlier_run, tmp_path / "sub")
    (sub / "figures").mkdir()
    link_to_run = tmp_path / "link_to_run"
    link_to_run.symlink_to(earlier_run)
    for folder in (extra, edited, linked, sub, link_to_run):
        assert owned_output(folder) is None, folder.name
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "manifest.json").write_text(json.dumps({"kind": "abm-sweep"}))
    assert owned_output(sweep) == "sweep"


def test_a_run_with_its_abm_plot_figures_stays_ours(earlier_run, tmp_path, capsys):
    """abm plot writes figures/ with a manifest: the run folder is still ours (a new run may
    replace it), a later abm plot may redraw there, and a foreign file in figures/ ends both."""
    run = _copy_run(earlier_run, tmp_path / "run")
    assert main(["plot", str(run), "--no-animation"]) == 0
    figures = json.loads((run / "figures" / "manifest.json").read_text())
    assert figures["kind"] == "abm-figures" and "market.png" in figures["files"]
    assert owned_output(run / "figures") == "figures"
    assert owned_output(run) == "run"
    assert main(["plot", str(run), "--no-animation"]) == 0  # redrawn over its own figures
    (run / "figures" / "market.png").write_bytes(b"edited by the user")
    assert owned_output(run) is None
    capsys.readouterr()
    assert main(["plot", str(run), "--no-animation"]) == 2
    _one_error_line(capsys, "--out", "figures")
    assert (run / "figures" / "market.png").read_bytes() == b"edited by the user"
    assert _run(run) == 2
    _one_error_line(capsys, "--out", "figures")
    (run / "figures" / "market.png").unlink()
    (run / "figures" / "manifest.json").unlink()
    (run / "figures" / "notes.txt").write_text("mine")
    assert owned_output(run) is None
    fresh = _copy_run(earlier_run, tmp_path / "fresh")
    assert main(["plot", str(fresh), "--no-animation"]) == 0
    assert _run(fresh) == 0  # replaced, figures and all
    assert not (fresh / "figures").exists()


def test_legacy_run_folder_is_recognised_only_with_its_exact_files(earlier_run, tmp_path):
    legacy = _copy_run(earlier_run, tmp_path / "legacy")
    manifest = json.loads((legacy / "manifest.json").read_text())
    del manifest["kind"], manifest["abm_output_schema"]
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    assert owned_output(legacy) == "run"
    assert _run(legacy) == 0  # replaced by a current run
    assert json.loads((legacy / "manifest.json").read_text())["kind"] == "abm-run"
    (legacy / "x.txt").write_text("x")
    assert owned_output(legacy) is None


# ----------------------------------------------------------------------------- abm run --out


def test_issue_reproducer_pwa_site_is_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "manifest.json").write_text('{"name":"PWA"}\n')
    (site / "index.html").write_text("x\n")
    before = _tree(tmp_path)
    assert main([*RUN, "--out", "site"]) == 2
    _one_error_line(capsys, "--out", "site")
    assert _tree(tmp_path) == before


def test_a_sweep_is_never_replaced_by_a_run(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    (sweep / "parts").mkdir(parents=True)
    (sweep / "manifest.json").write_text(json.dumps({"kind": "abm-sweep", "status": "complete"}))
    (sweep / "parts" / "part-0.parquet").write_bytes(b"PAR1")
    before = _tree(tmp_path)
    assert _run(sweep) == 2
    _one_error_line(capsys, "--out", "sweep")
    assert _tree(tmp_path) == before


def test_an_earlier_run_is_replaced_by_a_complete_new_one(earlier_run, tmp_path):
    out = _copy_run(earlier_run, tmp_path / "run")
    assert _run(out, "--seed", "7") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and owned_output(out) == "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temp or old folder left


def test_out_as_a_symlink_is_refused_and_left_alone(earlier_run, tmp_path, capsys):
    target = _copy_run(earlier_run, tmp_path / "target")
    link = tmp_path / "link"
    link.symlink_to(target)
    before = _tree(target)
    assert _run(link) == 2
    _one_error_line(capsys, "--out", "symbolic link")
    assert link.is_symlink() and _tree(target) == before


def test_name_from_data_cannot_leave_results(tmp_path, monkeypatch, capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert main([*RUN, "--set", "name=../../victim"]) == 2
    _one_error_line(capsys, "name")
    scenario = work / "s.toml"
    scenario.write_text('extends = "baseline"\nname = "/tmp/abm-victim"\n')
    assert main([*RUN, "--scenario", str(scenario)]) == 2
    _one_error_line(capsys, "name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "s.toml"]
    assert not Path("/tmp/abm-victim-seed0").exists()


# ----------------------------------------------------------------------------- kills and errors


def test_stale_temp_folders_are_removed_only_when_provably_ours(earlier_run, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now (reuse within this test is practically impossible)
    host = os.uname().nodename

    def staging(name: str, pid: int | None, complete_run: bool = False) -> Path:
        folder = tmp_path / name
        if complete_run:
            _copy_run(earlier_run, folder)
        else:
            folder.mkdir()
            (folder / "timeseries.csv").write_text("half\n")
        if pid is not None:
            (folder / ".abm-staging").write_text(json.dumps({"pid": pid, "host": host}))
        return folder

    ours_marked = staging(f".run.tmp-{dead.pid}-abcd1234", dead.pid)
    ours_complete = staging(f".run.old-{dead.pid}-0a1b2c3d", None, complete_run=True)
    live_owner = staging(f".run.tmp-{os.getppid()}-abcd1234", os.getppid())
    no_proof = staging(f".run.tmp-{dead.pid}-ffff0000", None)
    other_pid_in_marker = staging(f".run.tmp-{dead.pid}-eeee0000", dead.pid + 1)
    other_name = staging(f".runs.tmp-{dead.pid}-abcd1234", dead.pid)
    write_run(_result(), tmp_path / "run", figure=False)
    left = {p.name for p in tmp_path.iterdir()}
    assert ours_marked.name not in left and ours_complete.name not in left
    for kept in (live_owner, no_proof, other_pid_in_marker, other_name):
        assert kept.name in left, kept.name
    assert remove_stale_staging(tmp_path / "run") == []


_KILL_DURING = """
import os, signal, sys
import abm.io
where = sys.argv[1]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "swap":
    abm.io._replace_dir = die
else:
    abm.io.write_graphml = die
from abm.cli import main
main(["run", "--months", "2", "--no-figure", "--out", sys.argv[2]])
"""


def test_a_kill_mid_write_keeps_the_earlier_run_and_is_cleaned_up_next_time(earlier_run, tmp_path):
    out = _copy_run(earlier_run, tmp_path / "run")
    before = _tree(out)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for where in ("write", "swap"):
        proc = subprocess.run(
            [sys.executable, "-c", _KILL_DURING, where, str(out)], env=env, capture_output=True
        )
        assert proc.returncode == -9, proc.stderr
        assert _tree(out) == before  # the earlier result is untouched by a killed write
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.tmp-")]
    assert len(hidden) == 2  # one half-written, one complete but not swapped in
    assert _run(out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_error_mid_write_exits_2_and_keeps_the_earlier_run(
    earlier_run, tmp_path, monkeypatch, capsys
):
    out = _copy_run(earlier_run, tmp_path / "run")
    before = _tree(tmp_path)

    def disk_error(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("abm.io.write_graphml", disk_error)
    assert _run(out) == 2
    _one_error_line(capsys, "--out", "Read-only file system")
    assert _tree(tmp_path) == before


def _result():
    import abm

    return abm.run("baseline", seed=0, months=2)


# ----------------------------------------------------------------------------- full and read-only disks


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size_kib) -> a fresh tmpfs of that size (root only); unmounted afterwards."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size_kib: int) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(point)]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_full_disk_leaves_nothing_half_written(tmpfs, capsys):
    disk = tmpfs(64)  # a 2-month run without figure needs about 84 KiB
    assert _run(disk / "run") == 2
    _one_error_line(capsys, "--out", "No space left on device")
    assert list(disk.iterdir()) == []


def test_full_disk_keeps_the_earlier_run(earlier_run, tmpfs, capsys):
    disk = tmpfs(128)  # room for one result, not two
    out = _copy_run(earlier_run, disk / "run")
    before = _tree(disk)
    assert _run(out, "--seed", "3") == 2
    _one_error_line(capsys, "--out", "No space left on device")
    assert _tree(disk) == before


def test_read_only_disk_is_refused_before_the_model_runs(earlier_run, tmpfs, monkeypatch, capsys):
    disk = tmpfs(1024)
    out = _copy_run(earlier_run, disk / "run")
    before = _tree(disk)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    monkeypatch.setattr("abm.results.run", lambda *a, **k: pytest.fail("the model ran"))
    for dest in (out, disk / "new"):
        assert _run(dest) == 2
        _one_error_line(capsys, "--out", "read-only file system")
    assert _tree(disk) == before


def test_read_only_folder_is_refused_before_the_model_runs(tmp_path, monkeypatch, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; see the read-only disk test")
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    monkeypatch.setattr("abm.results.run", lambda *a, **k: pytest.fail("the model ran"))
    try:
        assert _run(parent / "run") == 2
        _one_error_line(capsys, "--out", "permission denied")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)
