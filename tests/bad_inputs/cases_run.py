"""Bad input to ``abm run``, ``abm scenarios``, ``abm plot``, ``abm app`` and the top-level command.

Generated: every leaf of the scenario schema gets values out of range, of the wrong type and out of
float range (NaN, infinities, 400-digit integers) through ``--set``; then hand-written cases for
``--set`` syntax, scenario and ``extends`` files, ``--out`` destinations, integer options, ports,
hosts and ``abm plot``. Every case must be refused before a model runs. Format: see ``__init__``.
"""

from __future__ import annotations

import hashlib
import json
import math

from abm.config import SCHEMA, F, ListOf, MapOf

CASES: list[dict] = []

# one representative key of each free-named table (all keys of a table share one schema)
_MAP_KEYS = {
    "generations": "H100",
    "lenders.kinds": "bank",
    "buyers.kinds": "hyperscaler",
    "lenders.mix": "bank",
    "neoclouds.gen_mix": "H100",
    "miners.gpu_gen_mix": "H100",
    "miners.asic_gen_mix": "H100",
}
# cycled over numeric leaves: values a float field must refuse besides its range
_SPECIAL = ("nan", "inf", "-inf", "9" * 400, "-" + "9" * 400, "1e400", "+nan", "-inf")


def _case(case_id: str, argv: list[str], field: str, files: dict | None = None) -> None:
    CASES.append({"id": case_id, "argv": argv, "files": files or {}, "field": field})


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _leaves(prefix: str, spec):
    """(dotted path, F) of every schema leaf; free-named tables by one representative key."""
    if isinstance(spec, F):
        yield prefix, spec
    elif isinstance(spec, MapOf):
        yield from _leaves(f"{prefix}.{_MAP_KEYS[prefix]}", spec.item)
    elif isinstance(spec, ListOf):
        return  # pinned shocks: covered by scenario-file cases below
    elif isinstance(spec, dict):
        for key, item in spec.items():
            yield from _leaves(f"{prefix}.{key}" if prefix else key, item)


def _bad_values(spec: F, k: int) -> list[tuple[str, str]]:
    """(label, TOML text) of values ``spec`` must refuse."""
    out = []
    if spec.kind in ("float", "int"):
        if math.isfinite(spec.hi):
            out.append(
                ("above", _toml(int(spec.hi) + 1 if spec.kind == "int" else spec.hi * 10 + 1))
            )
        if math.isfinite(spec.lo):
            below = int(spec.lo) - 1 if spec.kind == "int" else spec.lo - max(1.0, abs(spec.lo))
            out.append(("below", _toml(below)))
        out.append(("text", '"many"'))
        out.append(("special", _SPECIAL[k % len(_SPECIAL)]))
        if spec.kind == "int":
            out.append(("fraction", "2.5"))
    elif spec.kind == "range":
        out.append(("reversed", _toml([spec.hi, spec.lo])))
        out.append(("above", _toml([spec.lo, spec.hi * 10 + 1])))
        out.append(("one", "[1]"))
        out.append(("nan", "[nan, 1]"))
    elif spec.kind == "floats":
        out.append(("scalar", "5"))
        out.append(("text", '["many"]'))
        out.append(("below", _toml([spec.lo / 10.0])))
        out.append(("special", "[1.0, nan]"))
        out.append(("too_short", "[1.0]"))  # fewer values than run.months
    elif spec.kind == "bool":
        out += [("text", '"yes"'), ("number", "1")]
    elif spec.kind == "choice":
        out += [("unknown", '"bogus"'), ("number", "1")]
    elif spec.kind == "month":
        out += [("month13", '"2025-13"'), ("short", '"2025-1"'), ("number", "202501")]
    elif spec.kind == "name":
        for label, text in (
            ("parent", "../../victim"),
            ("absolute", "/tmp/x"),
            ("dotdot", ".."),
            ("hidden", ".hidden"),
            ("inner_dotdot", "a..b"),
            ("space", "a b"),
            ("slash", "a/b"),
            ("backslash", "a\\b"),
            ("empty", ""),
            ("long", "a" * 65),
            ("unicode", "caf\u00e9"),
        ):
            out.append((label, json.dumps(text)))
        out.append(("number", "5"))
    elif spec.kind == "str":
        out += [("number", "5"), ("table", "{a = 1}")]
    return out


for _k, (_path, _spec) in enumerate(_leaves("", SCHEMA)):
    if _path == "extends":
        continue  # reserved: refused by --set itself (below)
    for _label, _text in _bad_values(_spec, _k):
        _case(f"set-{_path}-{_label}", ["run", "--set", f"{_path}={_text}"], _path)

# ----------------------------------------------------------------------------- --set syntax
for _id, _text, _field in [
    ("multiline", "compute.pue=1.2\ncompute.bogus=1", "--set"),
    ("multiline-cr", "compute.pue=1.2\rcompute.bogus=1", "--set"),
    ("nul", "compute.pue=1.2\x00", "--set"),
    ("escape", "compute.pue=\x1b[31m1", "--set"),
    ("extends", "extends=calm", "--set"),
    ("extends-path", "extends=/etc/passwd", "--set"),
    ("extends-sub", "extends.x=1", "--set"),
    ("replace", 'replace=["generations"]', "--set"),
    ("replace-sub", "replace.x=1", "--set"),
    ("empty-first", ".pue=1", "--set"),
    ("empty-middle", "compute..pue=1", "--set"),
    ("empty-last", "compute.=1", "--set"),
    ("only-dot", ".=1", "--set"),
    ("no-equals", "compute.pue", "--set"),
    ("no-key", "=1", "--set"),
    ("blank-key", "  =1", "--set"),
    ("space-in-key", "com pute.pue=1", "--set"),
    ("slash-in-key", "compute/pue=1", "--set"),
    ("quote-in-key", '"compute".pue=1', "--set"),
    ("bracket-in-key", "shocks.pinned[0].start=2026-01", "--set"),
    ("deep-array", "neoclouds.fleet_units=" + "[" * 5000 + "]" * 5000, "neoclouds.fleet_units"),
    ("unknown-section", "nosuch.key=1", "nosuch"),
    ("unknown-key", "compute.no_such_key=1", "compute.no_such_key"),
    ("value-is-table", "compute.pue.x=1", "compute.pue"),
    ("table-is-value", "compute=1", "compute"),
    ("table-is-string", "run=fast", "run"),
    ("generations-value", "generations=1", "generations"),
    ("unknown-generation", "generations.X9.perf=1", "generations.X9"),
    ("gen-mix-unknown", "neoclouds.gen_mix.X200=0.3", "neoclouds.gen_mix.X200"),
    ("lender-mix-unknown", "lenders.mix.shadow_bank=2", "lenders.mix.shadow_bank"),
    ("lender-kinds-partial", "lenders.kinds.shadow.capital_ratio=0.1", "lenders.kinds.shadow"),
    ("pinned-not-list", "shocks.pinned=1", "shocks.pinned"),
    ("pinned-bad-item", "shocks.pinned=[1]", "shocks.pinned[0]"),
    ("pinned-missing", 'shocks.pinned=[{variable = "btc"}]', "shocks.pinned[0]"),
    ("margin-above-liquidation", "miners.btc_margin_call_ltv=1.9", "btc_margin_call_ltv"),
    ("gen-release-order", "generations.B200.release=2020-01", "generations"),
    ("halving-before-start", "crypto.halving=2020-01", "crypto.halving"),
    ("gen-mix-zero", "neoclouds.gen_mix={}", "neoclouds.gen_mix"),
    ("miner-gen-mix-unknown", "miners.gpu_gen_mix.X200=0.3", "miners.gpu_gen_mix.X200"),
    ("miner-gen-mix-zero", "miners.gpu_gen_mix={}", "miners.gpu_gen_mix"),
    ("name-traversal", "name=../../victim", "name"),
    ("name-absolute", "name=/tmp/x", "name"),
    ("name-dotdot", "name=..", "name"),
    ("name-dot", "name=.", "name"),
    ("name-tilde", "name=~root", "name"),
    ("description-number", "description=5", "description"),
]:
    _case(f"set-syntax-{_id}", ["run", "--set", _text, "--out", "{tmp}/out"], _field)
_case("set-missing-value", ["run", "--set"], "--set")

# ----------------------------------------------------------------------------- scenario files
_BASE = 'extends = "baseline"\nname = "mine"\n'
_BIG = "# " + "x" * (1 << 20) + "\n"


def _chain(n: int, cyclic: bool = False) -> dict[str, str]:
    files = {f"c{i}.toml": f'extends = "c{i + 1}.toml"\n' for i in range(n)}
    files[f"c{n}.toml"] = 'extends = "c0.toml"\n' if cyclic else _BASE
    return files


for _id, _files, _scenario, _field in [
    ("missing", {}, "nope.toml", "scenario"),
    ("unknown-name", {}, "no_such", "scenario"),
    ("empty-name", {}, "", "scenario"),
    ("dir", {"dir.toml/x": ""}, "dir.toml", "scenario"),
    ("dir-slash", {"d/x": ""}, "{tmp}/d", "scenario"),
    ("dev-zero", {}, "/dev/zero", "scenario"),
    ("dev-null", {}, "/dev/null", "scenario"),
    ("dev-urandom", {}, "/dev/urandom", "scenario"),
    ("proc-self", {}, "/proc/self/", "scenario"),
    ("too-large", {"big.toml": _BIG}, "big.toml", "scenario"),
    ("latin1", {"l.toml": b'name = "caf\xe9"\n'}, "l.toml", "scenario"),
    ("utf16", {"u.toml": _BASE.encode("utf-16")}, "u.toml", "scenario"),
    ("binary", {"b.toml": bytes(range(256))}, "b.toml", "scenario"),
    ("bom", {"bom.toml": b"\xef\xbb\xbf" + _BASE.encode()}, "bom.toml", "scenario"),
    ("invalid-toml", {"bad.toml": "[compute\npue = 1.2\n"}, "bad.toml", "scenario"),
    ("duplicate-key", {"dup.toml": _BASE + "name = 'x'\n"}, "dup.toml", "scenario"),
    ("deep-nesting", {"n.toml": "x = " + "[" * 20000 + "]" * 20000}, "n.toml", "scenario"),
    ("nul-in-path", {}, "a\x00b.toml", "scenario"),
    ("long-path", {}, "a" * 300 + ".toml", "scenario"),
    ("empty-file", {"e.toml": ""}, "e.toml", "missing"),
    (
        "huge-int",
        {"h.toml": _BASE + "[compute]\npue = " + "9" * 400 + "\n"},
        "h.toml",
        "compute.pue",
    ),
    ("nan", {"n.toml": _BASE + "[compute]\npue = nan\n"}, "n.toml", "compute.pue"),
    (
        "inf",
        {"i.toml": _BASE + "[crypto]\nbtc_price_usd = inf\n"},
        "i.toml",
        "crypto.btc_price_usd",
    ),
    (
        "huge-float",
        {"f.toml": _BASE + "[crypto]\nvol_per_year = 1e400\n"},
        "f.toml",
        "vol_per_year",
    ),
    (
        "range-nan",
        {"r.toml": _BASE + "[neoclouds]\nfleet_units = [nan, 5]\n"},
        "r.toml",
        "fleet_units",
    ),
    ("name-path", {"p.toml": 'extends = "baseline"\nname = "/tmp/x"\n'}, "p.toml", "name"),
    ("name-parent", {"p.toml": 'extends = "baseline"\nname = ".."\n'}, "p.toml", "name"),
    ("stem-not-plain", {"my scenario.toml": "[run]\nmonths = 2\n"}, "my scenario.toml", "name"),
    ("unknown-key", {"k.toml": _BASE + "bogus = 1\n"}, "k.toml", "bogus"),
    ("date-type", {"d.toml": _BASE + "[run]\nstart = 2025-01-01\n"}, "d.toml", "run.start"),
    ("table-type", {"t.toml": _BASE + "compute = 5\n"}, "t.toml", "compute"),
    ("key-newline", {"q.toml": _BASE + '[compute]\n"a\\nb" = 1\n'}, "q.toml", "compute.a"),
    (
        "long-string",
        {"s.toml": _BASE + 'description = 5\nx = "' + "y" * 5000 + '"\n'},
        "s.toml",
        "description",
    ),
    (
        "pinned-bad",
        {"pin.toml": _BASE + '[[shocks.pinned]]\nvariable = "btc"\n'},
        "pin.toml",
        "shocks.pinned[0]",
    ),
    (
        "pinned-order",
        {
            "pin.toml": _BASE
            + '[[shocks.pinned]]\nvariable = "btc"\nstart = "2026-05"\nend = "2026-01"\ntotal_change = -0.5\nforce_stress = true\n'
        },
        "pin.toml",
        "shocks.pinned[0].end",
    ),
    (
        "pinned-change",
        {
            "pin.toml": _BASE
            + '[[shocks.pinned]]\nvariable = "btc"\nstart = "2026-01"\nend = "2026-05"\ntotal_change = -5\nforce_stress = true\n'
        },
        "pin.toml",
        "shocks.pinned[0].total_change",
    ),
    # extends
    ("extends-chain-40", _chain(40), "c0.toml", "extends"),
    ("extends-chain-1200", _chain(1200), "c0.toml", "extends"),
    ("extends-cycle-2", _chain(1, cyclic=True), "c0.toml", "extends"),
    ("extends-cycle-5", _chain(4, cyclic=True), "c0.toml", "extends"),
    ("extends-self", {"s.toml": 'extends = "s.toml"\n'}, "s.toml", "extends"),
    ("extends-dir", {"e.toml": 'extends = "d.toml"\n', "d.toml/x": ""}, "e.toml", "extends"),
    ("extends-dev-zero", {"e.toml": 'extends = "/dev/zero"\n'}, "e.toml", "extends"),
    (
        "extends-latin1",
        {"e.toml": 'extends = "l.toml"\n', "l.toml": b"x = '\xff'\n"},
        "e.toml",
        "extends",
    ),
    (
        "extends-too-large",
        {"e.toml": 'extends = "big.toml"\n', "big.toml": _BIG},
        "e.toml",
        "extends",
    ),
    ("extends-invalid", {"e.toml": 'extends = "b.toml"\n', "b.toml": "= 1\n"}, "e.toml", "extends"),
    ("extends-missing", {"e.toml": 'extends = "gone.toml"\n'}, "e.toml", "extends"),
    ("extends-unknown", {"e.toml": 'extends = "no_such"\n'}, "e.toml", "extends"),
    ("extends-empty", {"e.toml": 'extends = ""\n'}, "e.toml", "extends"),
    ("extends-number", {"e.toml": "extends = 5\n"}, "e.toml", "extends"),
    ("extends-list", {"e.toml": 'extends = ["baseline"]\n'}, "e.toml", "extends"),
    ("extends-nul", {"e.toml": 'extends = "a\\u0000b.toml"\n'}, "e.toml", "extends"),
    # replace (tables of the parent taken whole instead of merged)
    ("replace-string", {"r.toml": _BASE + 'replace = "generations"\n'}, "r.toml", "replace"),
    ("replace-number", {"r.toml": _BASE + "replace = [5]\n"}, "r.toml", "replace"),
    ("replace-table", {"r.toml": _BASE + "replace = {generations = true}\n"}, "r.toml", "replace"),
    ("replace-unknown", {"r.toml": _BASE + 'replace = ["bogus"]\n'}, "r.toml", "replace"),
    (
        "replace-unknown-sub",
        {"r.toml": _BASE + 'replace = ["compute.bogus"]\n'},
        "r.toml",
        "replace",
    ),
    ("replace-value", {"r.toml": _BASE + 'replace = ["compute.pue"]\n'}, "r.toml", "replace"),
    (
        "replace-under-value",
        {"r.toml": _BASE + 'replace = ["compute.pue.x"]\n'},
        "r.toml",
        "replace",
    ),
    (
        "replace-empty-part",
        {"r.toml": _BASE + 'replace = ["miners..gpu_gen_mix"]\n'},
        "r.toml",
        "replace",
    ),
    ("replace-empty", {"r.toml": _BASE + 'replace = [""]\n'}, "r.toml", "replace"),
    (
        "replace-no-extends",
        {"r.toml": 'name = "r"\nreplace = ["generations"]\n'},
        "r.toml",
        "replace",
    ),
    (
        "replace-in-parent-unknown",
        {"r.toml": 'extends = "p.toml"\n', "p.toml": _BASE + 'replace = ["bogus"]\n'},
        "r.toml",
        "replace",
    ),
]:
    _case(f"scenario-{_id}", ["run", "--scenario", _scenario], _field, _files)

# ----------------------------------------------------------------------------- --out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_RUN_FILES = {"timeseries.csv": b"month\n0\n", "agents.csv": b"month\n0\n"}


def _run_folder(folder: str, manifest_extra: dict, files: dict | None = None) -> dict:
    """A folder shaped like an abm run (files + manifest with their sha256), then edited."""
    files = dict(_RUN_FILES if files is None else files)
    manifest = {
        "kind": "abm-run",
        "abm_output_schema": 1,
        "seed": 0,
        "scenario": "baseline",
        "config": {},
        "files": {name: _sha(data) for name, data in files.items()},
    }
    manifest.update(manifest_extra)
    manifest = {k: v for k, v in manifest.items() if v is not None}
    out = {f"{folder}/{name}": data for name, data in files.items()}
    out[f"{folder}/manifest.json"] = json.dumps(manifest)
    return out


_OUT_CASES = [
    ("empty", "", {}),
    ("dot", ".", {}),
    ("dot-slash", "./", {}),
    ("dotdot", "..", {}),
    ("parent-of-cwd", "{tmp}/..", {}),
    ("cwd-absolute", "{tmp}", {}),
    ("sub-dotdot", "a/..", {"a/x": ""}),
    ("root", "/", {}),
    ("file", "file.txt", {"file.txt": "x"}),
    ("under-file", "file.txt/sub", {"file.txt": "x"}),
    ("under-file-deep", "file.txt/a/b/c", {"file.txt": "x"}),
    ("name-300", "a" * 300, {}),
    ("name-256", "b" * 256, {}),
    ("name-201", "c" * 201, {}),
    ("path-5000", "/".join(["d" * 100] * 50), {}),
    ("newline", "out\nx", {}),
    ("nul", "out\x00x", {}),
    ("mount-proc", "/proc", {}),
    ("mount-sys", "/sys", {}),
    ("mount-dev", "/dev", {}),
    ("in-proc", "/proc/abm-out", {}),
    ("in-proc-deep", "/proc/abm/a/b", {}),
    ("in-sys", "/sys/abm-out", {}),
    ("link-proc-self", "/proc/self", {}),
    ("dev-null", "/dev/null", {}),
    ("pwa-site", "site", {"site/manifest.json": '{"name": "PWA"}', "site/index.html": "x"}),
    ("foreign-folder", "mine", {"mine/notes.txt": "precious"}),
    ("hidden-file", "mine", {"mine/.keep": ""}),
    ("manifest-not-json", "m", {"m/manifest.json": "not json"}),
    ("manifest-array", "m", {"m/manifest.json": "[1, 2]"}),
    ("manifest-dir", "m", {"m/manifest.json/x": "{}"}),
    ("manifest-latin1", "m", {"m/manifest.json": b'{"kind": "\xff"}'}),
    ("sweep", "sw", {"sw/manifest.json": '{"kind": "abm-sweep", "status": "complete"}'}),
    (
        "sweep-with-parts",
        "sw",
        {"sw/manifest.json": '{"kind": "abm-sweep"}', "sw/parts/p.parquet": b"PAR1"},
    ),
    ("other-kind", "m", _run_folder("m", {"kind": "abm-figures"})),
    ("schema-2", "m", _run_folder("m", {"abm_output_schema": 2})),
    ("schema-missing", "m", _run_folder("m", {"abm_output_schema": None})),
    ("schema-text", "m", _run_folder("m", {"abm_output_schema": "1"})),
    ("run-extra-file", "m", {**_run_folder("m", {}), "m/notes.txt": "mine"}),
    ("run-extra-folder", "m", {**_run_folder("m", {}), "m/figures/market.png": b"png"}),
    ("run-edited-file", "m", {**_run_folder("m", {}), "m/agents.csv": "edited\n"}),
    (
        "run-missing-file",
        "m",
        _run_folder(
            "m", {"files": {"agents.csv": _sha(b"x"), "gone.csv": _sha(b"y")}}, {"agents.csv": b"x"}
        ),
    ),
    ("run-no-files", "m", _run_folder("m", {"files": None})),
    ("run-files-list", "m", _run_folder("m", {"files": ["agents.csv", "timeseries.csv"]})),
    ("run-files-traversal", "m", _run_folder("m", {"files": {"../x": _sha(b"")}}, {})),
    (
        "legacy-extra-file",
        "m",
        {**_run_folder("m", {"kind": None, "abm_output_schema": None}), "m/x.txt": "x"},
    ),
    (
        "legacy-no-run-keys",
        "m",
        _run_folder("m", {"kind": None, "abm_output_schema": None, "seed": None}),
    ),
    (
        "legacy-edited",
        "m",
        {**_run_folder("m", {"kind": None, "abm_output_schema": None}), "m/agents.csv": "x"},
    ),
]
for _id, _out, _files in _OUT_CASES:
    _case(f"out-{_id}", ["run", "--months", "2", "--out", _out], "--out", _files)

# ----------------------------------------------------------------------------- options
for _opt, _values in {
    "--seed": ["-1", "x", "1.5", "1e3", "", "9" * 30, "9" * 5000, str(2**63), "0x10"],
    "--months": ["0", "601", "-5", "x", "2.5", "", "9" * 5000],
}.items():
    for _i, _value in enumerate(_values):
        _case(f"run{_opt}-{_i}", ["run", _opt, _value], _opt)
_case("run-unknown-option", ["run", "--bogus"], "--bogus")
_case("run-positional", ["run", "baseline"], "unrecognized arguments")
_case("run-out-missing-value", ["run", "--out"], "--out")
_case("run-scenario-missing-value", ["run", "--scenario"], "--scenario")
_case("no-command", [], "command")
_case("unknown-command", ["bogus"], "bogus")
_case("scenarios-extra", ["scenarios", "extra"], "unrecognized arguments")
_case("scenarios-option", ["scenarios", "--all"], "--all")

for _i, _value in enumerate(["99999", "0", "-1", "65536", "x", "", "80.5", "9" * 5000]):
    _case(f"app-port-{_i}", ["app", "--port", _value], "--port")
for _i, _value in enumerate(
    ["", "a b", "x\ny", "-bad", "a" * 300, "exa_mple.com", "host:80", "http://x", "a..b", "\x00"]
):
    _case(f"app-host-{_i}", ["app", "--host", _value], "--host")
_case("app-extra", ["app", "now"], "unrecognized arguments")

# ----------------------------------------------------------------------------- abm plot
_case("plot-missing-dir", ["plot", "nope"], "DIR")
_case("plot-empty-dir-arg", ["plot", ""], "DIR")
_case("plot-file", ["plot", "f.txt"], "DIR", {"f.txt": "x"})
_case("plot-dev-null", ["plot", "/dev/null"], "DIR")
_case("plot-no-arg", ["plot"], "RUN_DIR")
for _i, _value in enumerate(["-1", "x", "", "1.5"]):
    _case(f"plot-month-{_i}", ["plot", "run", "--month", _value], "--month", {"run/.keep": ""})
for _id, _out, _files in [
    ("empty", "", {}),
    ("file", "f.txt", {"f.txt": "x"}),
    ("under-file", "f.txt/figs", {"f.txt": "x"}),
    ("proc", "/proc/abm-figs", {}),
    ("name-300", "e" * 300, {}),
    ("newline", "figs\nx", {}),
]:
    _case(f"plot-out-{_id}", ["plot", "run", "--out", _out], "--out", {"run/.keep": "", **_files})
_case(
    "plot-sweep-unknown-metric",
    ["plot", "sw", "--metric", "bogus"],
    "--metric",
    {"sw/manifest.json": '{"kind": "abm-sweep"}'},
)

# ----------------------------------------------------------------------------- policy levers
# (every [policy] leaf is covered by the generated --set cases above; these are the cross-field rule
# and keys that are not in the schema)
_case(
    "policy-last-resort-kind-reserved",
    ["run", "--scenario", "s.toml"],
    "buyers.kinds.last_resort",
    {
        "s.toml": 'extends = "baseline"\nname = "s"\n[policy]\nlast_resort_buyer = true\n'
        "[buyers.kinds.last_resort]\ncount = 1\nmonthly_budget_usd = 1.0\n"
        "absorption_mw_per_month = 1.0\nhurdle_rate = 0.1\nintegration_cost_usd_per_gpu = 1.0\n"
        "liquid_cooling = true\nmax_perf = 1.0\ninstalled_units = 0\n"
    },
)
_case(
    "policy-unknown-lever",
    ["run", "--set", "policy.lender_of_last_resort=true"],
    "policy.lender_of_last_resort",
)
_case("policy-not-a-table", ["run", "--set", "policy=on"], "policy")

assert len({c["id"] for c in CASES}) == len(CASES), "case ids must be unique"
