"""The bad-input corpus (tests/bad_inputs/cases_*.py): every case exits 2 with one line naming its
field, prints no traceback, and writes or deletes nothing - inside its folder or outside it.

Each case runs in-process (``abm.cli.main``) in a fresh temp folder that is also the working folder.
A model run, the app server and the figure writers are replaced by functions that fail the test:
every case must be refused before any of them starts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from abm import cli

CASE_DIR = Path(__file__).parent / "bad_inputs"


def _load_cases() -> list[dict]:
    cases = []
    for path in sorted(CASE_DIR.glob("cases_*.py")):
        spec = importlib.util.spec_from_file_location(f"bad_inputs_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for case in module.CASES:
            cases.append({**case, "source": path.name})
    return cases


CASES = _load_cases()


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


def _snapshot(root: Path) -> dict:
    """Every path under ``root`` (and root itself): kind, mtime in ns, and the bytes of files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath) / name
            st = os.lstat(path)
            link = os.readlink(path) if path.is_symlink() else None
            regular = name in filenames and link is None and path.is_file()
            content = path.read_bytes() if regular else None
            out[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, content, link)
    return out


def _refuse(*_args, **_kwargs):
    raise AssertionError("a bad-input case got past validation and started real work")


@pytest.fixture
def guarded(monkeypatch):
    import abm.results
    import abm.viz.run_figures
    import abm.viz.sweep_figures

    monkeypatch.setattr(abm.results, "run", _refuse)
    monkeypatch.setattr(cli, "cmd_app", _refuse)
    monkeypatch.setattr(abm.viz.run_figures, "plot_run", _refuse)
    monkeypatch.setattr(abm.viz.sweep_figures, "plot_sweep", _refuse)


def test_corpus_is_large_and_well_formed():
    assert len(CASES) >= 300
    ids = [c["id"] for c in CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique across files"
    for case in CASES:
        assert {"id", "argv", "files", "field", "source"} <= set(case), case["id"]
        assert set(case) <= {"id", "argv", "files", "field", "source", "symlinks"}, case["id"]
        assert isinstance(case["argv"], list) and all(isinstance(a, str) for a in case["argv"])
        assert case["field"], case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_exits_2_names_field_changes_nothing(
    case, tmp_path, monkeypatch, capsys, guarded
):
    work = tmp_path / "work"
    sentinel = tmp_path / "sentinel"
    work.mkdir()
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("outside the case folder")
    for rel, data in case["files"].items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
    for rel, target in case.get("symlinks", {}).items():  # link path -> target ({tmp} filled)
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(_fill(target, work))
    monkeypatch.chdir(work)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    before, before_outside = _snapshot(work), _snapshot(sentinel)

    try:
        code = cli.main([_fill(arg, work) for arg in case["argv"]])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()

    assert code == 2, f"{case['id']}: exit {code}; stderr: {captured.err!r}"
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.splitlines()  # exactly one line: the error
    assert len(lines) == 1, f"{case['id']}: expected one error line, got {lines!r}"
    assert case["field"] in lines[0], f"{case['id']}: {case['field']!r} not in {lines[0]!r}"
    assert not (work / "results").exists()
    assert _snapshot(work) == before, f"{case['id']}: the case folder changed"
    assert _snapshot(sentinel) == before_outside
