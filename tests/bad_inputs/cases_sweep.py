"""Bad inputs for ``abm sweep`` and ``abm analyze``: each must exit 2 with one line naming the
field, print no traceback, and leave its temp folder exactly as it was.

Format (shared by every ``cases_*.py``): ``CASES`` is a list of dicts with ``id`` (unique),
``argv`` (for ``abm.cli.main``; ``{tmp}`` is replaced by the case's temp folder, which is also
the working directory), ``files`` (relative path -> bytes or str, created first), ``field`` (a
substring the error line must contain), and optionally ``symlinks`` (relative path -> target,
relative to the temp folder or absolute, created after the files).
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

SWEEP = ["sweep", "exp.toml", "--out", "out", "--executor", "serial", "--no-progress"]
RESUME = [*SWEEP, "--resume"]

HEAD = 'name = "case"\nscenario = "baseline"\nmonths = 2\n'
PARAM = '[[parameters]]\nname = "pue"\npath = "compute.pue"\nvalues = [1.1, 1.2]\n'
GOOD = HEAD + PARAM


def _param(body: str, name: str = "p") -> str:
    return f'[[parameters]]\nname = "{name}"\n{body}\n'


def _range_param(name: str, path: str, lo: float, hi: float) -> str:
    return f'[[parameters]]\nname = "{name}"\npath = "{path}"\nrange = [{lo}, {hi}]\n'


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    feather.write_feather(table, sink, compression="uncompressed")
    return sink.getvalue().to_pybytes()


SWEEP_MANIFEST = {
    "kind": "abm-sweep",
    "abm_output_schema": 1,
    "status": "complete",
    "fingerprint": "0" * 64,
    "experiment": {"name": "case"},
    "design": {
        "design": "grid",
        "points": 1,
        "master_seed": 0,
        "parameters": [],
        "headline_metrics": ["defaults"],
    },
}
MANIFEST = json.dumps(SWEEP_MANIFEST)
RUNS = _parquet(
    pa.table(
        {
            "run_id": pa.array([0, 1], pa.int64()),
            "point": pa.array([0, 0], pa.int64()),
            "replicate": pa.array([0, 1], pa.int64()),
            "seed": pa.array([5, 6], pa.int64()),
            "defaults": pa.array([1.0, 2.0]),
            "status": ["ok", "ok"],
            "error": ["", ""],
            "wall_s": [0.1, 0.1],
        }
    )
)
PART = _arrow(pa.table({"run_id": pa.array([0], pa.int64()), "status": ["ok"]}))
# A complete-looking sweep folder (enough for the checks that come before any write).
SWEEP_FILES = {
    "out/manifest.json": MANIFEST,
    "out/design.csv": "point\n0\n",
    "out/experiment.toml": GOOD,
    "out/failures/.keep": "",
}


CASES: list[dict] = []


def _case(id_: str, argv: list[str], files: dict, field: str, symlinks: dict | None = None):
    case = {"id": f"sweep-{id_}", "argv": argv, "files": files, "field": field}
    if symlinks:
        case["symlinks"] = symlinks
    CASES.append(case)


def _exp(id_: str, text: str | bytes, field: str, extra: dict | None = None) -> None:
    _case(id_, SWEEP, {"exp.toml": text, **(extra or {})}, field)


# ---------------------------------------------------------------- the experiment file itself
_case("missing-file", SWEEP, {}, "no such file")
_case("directory", SWEEP, {"exp.toml/inner.txt": "x"}, "not a regular file")
_case("dev-zero", ["sweep", "/dev/zero", "--out", "out"], {}, "not a regular file")
_exp("not-utf8", b'name = "caf\xe9"\n', "UTF-8")
_exp("utf16", GOOD.encode("utf-16"), "UTF-8")
_exp("too-large", GOOD + "#" * 1_100_000 + "\n", "larger than")
_exp("not-toml", "name = \n", "not valid TOML")
_exp("nested-arrays", "x = " + "[" * 3000 + "]" * 3000 + "\n", "TOML")
_exp("unknown-key", GOOD + "bogus = 1\n", "bogus")
_exp("duplicate-key", 'name = "a"\nname = "b"\n', "not valid TOML")

# ---------------------------------------------------------------- name: a plain path component
for i, bad in enumerate(
    ["..", ".", "../victim", "a/b", "a\\\\b", "/tmp/x", "", " ", "a b", "x" * 101, "a..b", "-x"]
):
    _exp(f"name-{i}", f'name = "{bad}"\nscenario = "baseline"\n', "name")
_exp("name-missing", 'scenario = "baseline"\n', "name")
_exp("name-int", 'name = 3\nscenario = "baseline"\n', "name")
_exp("name-newline", 'name = "a\\nb"\nscenario = "baseline"\n', "name")

# ---------------------------------------------------------------- top-level fields
_exp("description-int", GOOD + "description = 5\n", "description")
_exp("scenario-int", 'name = "c"\nscenario = 5\n', "scenario")
_exp("scenario-unknown", 'name = "c"\nscenario = "nosuch"\n', "scenario")
_exp("scenario-missing-file", 'name = "c"\nscenario = "nosuch.toml"\n', "scenario")
_exp("overrides-not-table", HEAD + "overrides = 3\n" + PARAM, "overrides")
_exp("overrides-bad-key", HEAD + '[overrides]\n"compute.bogus" = 1\n' + PARAM, "bogus")
_exp("overrides-out-of-range", HEAD + '[overrides]\n"compute.pue" = 99.0\n', "compute.pue")
_exp("design-unknown", GOOD + 'design = "random"\n', "design")
_exp("design-int", GOOD + "design = 1\n", "design")
for i, (design, samples) in enumerate(
    [("lhs", None), ("lhs", "1"), ("lhs", "2000000"), ("lhs", "true"), ("lhs", "2.5")]
    + [("lhs", '"10"'), ("sobol", "1000"), ("sobol", "0"), ("grid", "8")]
):
    body = HEAD + f'design = "{design}"\n' + (f"samples = {samples}\n" if samples else "")
    body += _range_param("pue", "compute.pue", 1.1, 1.5) if design != "grid" else PARAM
    _exp(f"samples-{i}", body, "samples")
for i, bad in enumerate(["0", "-1", "100001", "1.5", '"3"', "true"]):
    _exp(f"replications-{i}", GOOD + f"replications = {bad}\n", "replications")
for i, bad in enumerate(["-1", "9223372036854775808", '"x"', "1.0"]):
    _exp(f"master-seed-{i}", GOOD + f"master_seed = {bad}\n", "master_seed")
for i, bad in enumerate(["0", "601", "1.5", '"12"']):
    _exp(f"months-{i}", f'name = "c"\nmonths = {bad}\n' + PARAM, "months")
_exp("crn-string", GOOD + 'common_random_numbers = "yes"\n', "common_random_numbers")

# ---------------------------------------------------------------- parameters
_exp("parameters-not-list", HEAD + "parameters = 3\n", "parameters")
_exp("parameter-not-table", HEAD + "parameters = [1]\n", "parameters[0]")
_exp("parameter-unknown-key", HEAD + _param('path = "compute.pue"\nvalues = [1.2]\nx = 1'), ".x")
_exp("parameter-name-bad", HEAD + _param('path = "compute.pue"\nvalues = [1.2]', "a-b"), ".name")
_exp("parameter-path-missing", HEAD + _param("values = [1.2]"), ".path")
_exp("parameter-path-empty", HEAD + _param('path = ""\nvalues = [1.2]'), ".path")
_exp("parameter-path-nothing", HEAD + _param('path = "compute.nope"\nvalues = [1]'), ".path")
_exp("parameter-path-table", HEAD + _param('path = "compute"\nvalues = [1]'), ".path")
_exp(
    "parameter-path-mixed-types",
    HEAD + _param('path = ["compute.pue", "run.start"]\nvalues = [1]'),
    ".path",
)
_exp(
    "parameter-mode-bad", HEAD + _param('path = "compute.pue"\nmode = "add"\nvalues = [1]'), "mode"
)
_exp(
    "parameter-scale-string",
    HEAD + _param('path = "run.start"\nmode = "scale"\nvalues = [1]'),
    "mode",
)
_exp(
    "values-and-range",
    HEAD + _param('path = "compute.pue"\nvalues = [1.2]\nrange = [1.1, 1.5]\nsteps = 3'),
    "not both",
)
_exp("values-empty", HEAD + _param('path = "compute.pue"\nvalues = []'), ".values")
_exp("values-not-list", HEAD + _param('path = "compute.pue"\nvalues = 1.2'), ".values")
_exp("values-repeated", HEAD + _param('path = "compute.pue"\nvalues = [1.2, 1.2]'), ".values")
_exp("values-string-for-float", HEAD + _param('path = "compute.pue"\nvalues = ["a"]'), ".values")
_exp("values-inf", HEAD + _param('path = "compute.pue"\nvalues = [inf]'), ".values")
_exp("values-nan", HEAD + _param('path = "compute.pue"\nvalues = [nan]'), ".values")
_exp(
    "values-float-for-int",
    HEAD + _param('path = "run.max_cascade_rounds"\nvalues = [1.5]'),
    ".values",
)
_exp("values-int-for-string", HEAD + _param('path = "run.start"\nvalues = [1]'), ".values")
_exp("values-out-of-range", HEAD + _param('path = "compute.pue"\nvalues = [1.2, 9.0]'), "pue")
_exp("values-huge-number", HEAD + _param('path = "compute.pue"\nvalues = [1e400]'), ".values")
_exp("range-not-pair", HEAD + _param('path = "compute.pue"\nrange = [1.1]\nsteps = 2'), ".range")
_exp(
    "range-reversed", HEAD + _param('path = "compute.pue"\nrange = [1.5, 1.1]\nsteps = 2'), ".range"
)
_exp("range-equal", HEAD + _param('path = "compute.pue"\nrange = [1.5, 1.5]\nsteps = 2'), ".range")
_exp("range-string", HEAD + _param('path = "compute.pue"\nrange = ["a", 2]\nsteps = 2'), ".range")
_exp("range-inf", HEAD + _param('path = "compute.pue"\nrange = [1.1, inf]\nsteps = 2'), ".range")
_exp(
    "range-on-string-field",
    HEAD + _param('path = "run.start"\nrange = [1, 2]\nsteps = 2'),
    ".range",
)
_exp(
    "range-out-of-field",
    HEAD + _param('path = "compute.pue"\nrange = [0.5, 1.5]\nsteps = 3'),
    "pue",
)
for i, bad in enumerate(["", "steps = 1", "steps = 10001", "steps = true", "steps = 2.5"]):
    _exp(f"steps-{i}", HEAD + _param(f'path = "compute.pue"\nrange = [1.1, 1.5]\n{bad}'), "steps")
_exp("steps-with-values", HEAD + _param('path = "compute.pue"\nvalues = [1.2]\nsteps = 3'), "steps")
_exp(
    "lhs-with-values",
    HEAD + 'design = "lhs"\nsamples = 4\n' + _param('path = "compute.pue"\nvalues = [1.2]'),
    ".values",
)
_exp("lhs-no-parameters", HEAD + 'design = "lhs"\nsamples = 4\n', "parameters")
_exp(
    "lhs-steps",
    HEAD
    + 'design = "lhs"\nsamples = 4\n'
    + _param('path = "compute.pue"\nrange = [1.1, 1.5]\nsteps = 3'),
    "steps",
)
_exp("parameter-names-repeat", HEAD + PARAM + PARAM, "unique")
_exp(
    "parameters-same-target",
    HEAD + PARAM + _param('path = "compute.pue"\nvalues = [1.3]', "other"),
    "both set",
)

# ---------------------------------------------------------------- sizes refused before building
_exp(
    "huge-grid",
    HEAD
    + _param('path = "compute.pue"\nrange = [1.1, 1.5]\nsteps = 10000', "a")
    + _param('path = "compute.rent_deflation_per_year"\nrange = [0.1, 0.3]\nsteps = 10000', "b"),
    "parameters",
)
_exp(
    "grid-times-replications",
    HEAD
    + "replications = 200\n"
    + _param('path = "compute.pue"\nrange = [1.1, 1.5]\nsteps = 10000', "a"),
    "replications",
)
_exp(
    "sobol-2-19",
    HEAD
    + 'design = "sobol"\nsamples = 524288\n'
    + _range_param("a", "compute.pue", 1.1, 1.5)
    + _range_param("b", "compute.rent_deflation_per_year", 0.1, 0.3),
    "samples",
)
_exp(
    "lhs-times-replications",
    HEAD
    + 'design = "lhs"\nsamples = 100000\nreplications = 11\n'
    + _range_param("a", "compute.pue", 1.1, 1.5),
    "replications",
)
_exp(
    "lhs-corner-invalid",
    HEAD + 'design = "lhs"\nsamples = 1000\n' + _range_param("a", "compute.pue", 0.5, 1.5),
    "corner",
)

# ---------------------------------------------------------------- outputs and analysis tables
_exp("outputs-not-table", GOOD + "outputs = 1\n", "outputs")
_exp("outputs-unknown", GOOD + "[outputs]\nnetwork = true\n", "outputs")
_exp("outputs-not-bool", GOOD + '[outputs]\ntimeseries = "yes"\n', "outputs.timeseries")
_exp("analysis-unknown", GOOD + "[analysis]\nplots = 1\n", "analysis")
_exp("analysis-metrics-empty", GOOD + "[analysis]\nmetrics = []\n", "analysis.metrics")
_exp("analysis-metric-unknown", GOOD + '[analysis]\nmetrics = ["nope"]\n', "analysis.metrics")
for i, bad in enumerate(["0.4", "1.0", "1", '"x"']):
    _exp(f"confidence-{i}", GOOD + f"[analysis]\nconfidence = {bad}\n", "analysis.confidence")

# ---------------------------------------------------------------- command-line options
SCHEDULERS = [
    "",
    "localhost:8786",
    "tcp://",
    "tcp://host",
    "tcp://host:0",
    "tcp://host:65536",
    "tcp://host:99999",
    "udp://host:8786",
    "tcp://host:8786/path",
    "tcp://ho st:8786",
    "tcp://host:-1",
    "tcp://host:8786\nx",
    "tcp://:8786",
]
for i, address in enumerate(SCHEDULERS):
    _case(
        f"scheduler-{i}", [*SWEEP[:-3], "--scheduler", address], {"exp.toml": GOOD}, "--scheduler"
    )
for i, bad in enumerate(["0", "-1", "x", "4097"]):
    _case(f"workers-{i}", [*SWEEP[:-3], "--workers", bad], {"exp.toml": GOOD}, "--workers")
_case("executor-bogus", [*SWEEP[:4], "--executor", "threads"], {"exp.toml": GOOD}, "--executor")
_case("retry-without-resume", [*SWEEP, "--retry-failed"], {"exp.toml": GOOD}, "--retry-failed")
_case("dashboard-serial", [*SWEEP, "--dashboard"], {"exp.toml": GOOD}, "--dashboard")
_case(
    "dashboard-scheduler",
    [*SWEEP[:-3], "--dashboard", "--scheduler", "tcp://127.0.0.1:8786"],
    {"exp.toml": GOOD},
    "--dashboard",
)

# ---------------------------------------------------------------- destinations
_case("out-empty", [*SWEEP[:2], "--out", "", *SWEEP[4:]], {"exp.toml": GOOD}, "--out")
_case("out-is-file", SWEEP, {"exp.toml": GOOD, "out": "x"}, "--out")
_case(
    "out-under-file",
    [*SWEEP[:2], "--out", "file.txt/sub", *SWEEP[4:]],
    {"exp.toml": GOOD, "file.txt": "x"},
    "--out",
)
_case(
    "out-name-too-long", [*SWEEP[:2], "--out", "o" * 300, *SWEEP[4:]], {"exp.toml": GOOD}, "--out"
)
_case(
    "out-foreign-folder",
    SWEEP,
    {"exp.toml": GOOD, "out/index.html": "<html>", "out/manifest.json": '{"name": "PWA"}'},
    "--out",
)
_case("out-foreign-folder-resume", RESUME, {"exp.toml": GOOD, "out/notes.txt": "mine"}, "--out")
_case(
    "out-run-folder",
    RESUME,
    {"exp.toml": GOOD, "out/manifest.json": '{"kind": "abm-run"}'},
    "--out",
)
_case(
    "out-future-schema",
    RESUME,
    {"exp.toml": GOOD, "out/manifest.json": json.dumps({**SWEEP_MANIFEST, "abm_output_schema": 2})},
    "--out",
)
_case("out-manifest-not-json", RESUME, {"exp.toml": GOOD, "out/manifest.json": "{"}, "--out")
_case("out-sweep-without-resume", SWEEP, {"exp.toml": GOOD, **SWEEP_FILES}, "--resume")
_case(
    "out-sweep-plus-foreign",
    RESUME,
    {"exp.toml": GOOD, **SWEEP_FILES, "out/index.html": "<html>"},
    "index.html",
)
_case("out-other-experiment", RESUME, {"exp.toml": GOOD, **SWEEP_FILES}, "--resume")
_case("out-dangling-symlink", SWEEP, {"exp.toml": GOOD}, "--out", symlinks={"out": "nowhere"})
for name in ("parts", "failures", "runs.parquet", "design.csv", "analysis", ".lock"):
    _case(
        f"symlink-{name.strip('.')}",
        RESUME,
        {
            "exp.toml": GOOD,
            **{k: v for k, v in SWEEP_FILES.items() if not k.startswith(f"out/{name}")},
            "elsewhere/keep.txt": "victim",
        },
        "symlink",
        symlinks={f"out/{name}": "../elsewhere"},
    )
_case(
    "symlink-manifest",
    RESUME,
    {"exp.toml": GOOD, "real/manifest.json": MANIFEST},
    "--out",
    symlinks={"out/manifest.json": "../real/manifest.json"},
)
_case(
    "symlink-a-part",
    RESUME,
    {"exp.toml": GOOD, **SWEEP_FILES, "elsewhere/part.arrow": PART},
    "symlink",
    symlinks={"out/parts/runs-0000000.arrow": "../../elsewhere/part.arrow"},
)

# ---------------------------------------------------------------- abm analyze
ANALYZE = ["analyze", "out"]
_case("analyze-missing", ANALYZE, {}, "DIR")
_case("analyze-file", ANALYZE, {"out": "x"}, "DIR")
_case("analyze-empty", ANALYZE, {"out/.keep": ""}, "DIR")
_case("analyze-foreign-manifest", ANALYZE, {"out/manifest.json": '{"name": "PWA"}'}, "DIR")
_case("analyze-run-folder", ANALYZE, {"out/manifest.json": '{"kind": "abm-run"}'}, "DIR")
_case("analyze-manifest-garbage", ANALYZE, {"out/manifest.json": b"\xff\xfe\x00"}, "DIR")
_case("analyze-manifest-list", ANALYZE, {"out/manifest.json": "[1, 2]"}, "DIR")
_case(
    "analyze-manifest-no-design",
    ANALYZE,
    {"out/manifest.json": '{"kind": "abm-sweep"}', "out/runs.parquet": RUNS},
    "manifest.json",
)
_case(
    "analyze-manifest-bad-points",
    ANALYZE,
    {
        "out/manifest.json": json.dumps(
            {**SWEEP_MANIFEST, "design": {**SWEEP_MANIFEST["design"], "points": "x"}}
        ),
        "out/runs.parquet": RUNS,
    },
    "manifest.json",
)
_case(
    "analyze-sobol-without-ranges",
    ANALYZE,
    {
        "out/manifest.json": json.dumps(
            {
                **SWEEP_MANIFEST,
                "design": {
                    **SWEEP_MANIFEST["design"],
                    "design": "sobol",
                    "parameters": [{"name": "a"}],
                },
            }
        ),
        "out/runs.parquet": RUNS,
    },
    "manifest.json",
)
_case("analyze-no-runs", ANALYZE, {"out/manifest.json": MANIFEST}, "no finished runs")
_case(
    "analyze-corrupt-runs-parquet",
    ANALYZE,
    {"out/manifest.json": MANIFEST, "out/runs.parquet": b"PAR1garbage"},
    "runs.parquet",
)
_case(
    "analyze-truncated-runs-parquet",
    ANALYZE,
    {"out/manifest.json": MANIFEST, "out/runs.parquet": RUNS[: len(RUNS) // 2]},
    "runs.parquet",
)
_case(
    "analyze-runs-without-status",
    ANALYZE,
    {
        "out/manifest.json": MANIFEST,
        "out/runs.parquet": _parquet(pa.table({"run_id": [0], "point": [0]})),
    },
    "status",
)
_case(
    "analyze-corrupt-part",
    ANALYZE,
    {"out/manifest.json": MANIFEST, "out/parts/runs-0000000.arrow": b"ARROW1 garbage"},
    "runs-0000000.arrow",
)
_case(
    "analyze-part-beside-runs",
    ANALYZE,
    {
        "out/manifest.json": MANIFEST,
        "out/runs.parquet": RUNS,
        "out/parts/runs-0000000.arrow": PART,
        "out/parts/runs-0000001.arrow": b"garbage",
    },
    "runs-0000001.arrow",
)
_case(
    "analyze-symlinked-analysis",
    ANALYZE,
    {"out/manifest.json": MANIFEST, "out/runs.parquet": RUNS, "elsewhere/keep.txt": "x"},
    "symlink",
    symlinks={"out/analysis": "../elsewhere"},
)
_case(
    "analyze-symlinked-parts",
    ANALYZE,
    {"out/manifest.json": MANIFEST, "out/runs.parquet": RUNS, "elsewhere/keep.txt": "x"},
    "symlink",
    symlinks={"out/parts": "../elsewhere"},
)
VALID_SWEEP = {"out/manifest.json": MANIFEST, "out/runs.parquet": RUNS}
for i, bad in enumerate(["0.3", "1.0", "x", "nan"]):
    _case(f"analyze-confidence-{i}", [*ANALYZE, "--confidence", bad], VALID_SWEEP, "--confidence")
_case("analyze-metric-unknown", [*ANALYZE, "--metric", "nope"], VALID_SWEEP, "--metric")

assert len({c["id"] for c in CASES}) == len(CASES), "case ids must be unique"
