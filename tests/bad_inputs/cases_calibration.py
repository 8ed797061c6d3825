"""Bad input to ``abm calibration``: seed counts, target ids and ``--out`` destinations (including
folders written by something else: a run, a sweep, a foreign or tampered report). Every case must be
refused before a model runs. Format: see ``__init__``."""

from __future__ import annotations

import hashlib
import json

CASES: list[dict] = []


def _case(case_id: str, argv: list[str], field: str, files: dict | None = None) -> None:
    CASES.append(
        {"id": f"calibration-{case_id}", "argv": argv, "files": files or {}, "field": field}
    )


def _owned(folder: str, kind: str, files: dict, tamper: bool = False) -> dict:
    """A folder shaped like an abm output of ``kind`` (files + manifest with their sha256)."""
    manifest = {
        "kind": kind,
        "abm_output_schema": 1,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    out = {f"{folder}/{name}": (data + b"x" if tamper else data) for name, data in files.items()}
    out[f"{folder}/manifest.json"] = json.dumps(manifest)
    return out


for _id, _value in [
    ("zero", "0"),
    ("negative", "-1"),
    ("above", "1001"),
    ("huge", "9" * 50),
    ("fraction", "1.5"),
    ("text", "many"),
    ("empty", ""),
]:
    _case(f"seeds-{_id}", ["calibration", "--seeds", _value, "--out", "{tmp}/c"], "--seeds")

for _id, _value in [("unknown", "no_such_target"), ("empty", ""), ("case", "HASHPRICE_2025_11")]:
    _case(f"target-{_id}", ["calibration", "--target", _value, "--out", "{tmp}/c"], "--target")
_case(
    "target-one-bad-of-two",
    ["calibration", "--target", "hashprice_2025_11", "--target", "x", "--out", "{tmp}/c"],
    "--target",
)
_case("target-missing-value", ["calibration", "--target"], "--target")

_TABLE = {"calibration.csv": b"id\nx\n", "calibration.md": b"| a |\n"}
for _id, _out, _files in [
    ("empty", "", {}),
    ("dot", ".", {}),
    ("cwd", "{tmp}", {}),
    ("file", "f.txt", {"f.txt": "x"}),
    ("under-file", "f.txt/sub", {"f.txt": "x"}),
    ("foreign", "mine", {"mine/notes.txt": "my notes"}),
    ("foreign-manifest", "mine", {"mine/manifest.json": '{"kind": "other"}'}),
    ("run-folder", "r", _owned("r", "abm-run", {"timeseries.csv": b"month\n0\n"})),
    ("sweep-folder", "s", {"s/manifest.json": '{"kind": "abm-sweep"}'}),
    ("tampered-report", "c", _owned("c", "abm-calibration", _TABLE, tamper=True)),
    ("report-extra-file", "c", {**_owned("c", "abm-calibration", _TABLE), "c/extra.txt": "x"}),
    ("name-300", "a" * 300, {}),
]:
    _case(f"out-{_id}", ["calibration", "--out", _out], "--out", _files)
