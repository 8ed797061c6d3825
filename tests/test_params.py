"""abm params: every parameter once, with the scenario's value, its range, a unit and a source."""

from __future__ import annotations

import csv
import io
import json

import pytest

import abm
from abm.cli import main
from abm.config import SCHEMA, F, ListOf, MapOf
from abm.params import format_parameters, parameters, toml_comments, unit_from_name


def _leaves(value, prefix=""):
    """Dotted path -> value of every leaf of a config, found without the schema."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_leaves(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _spec(path: str):
    """The schema entry of a dotted path (map keys and array indices skipped)."""
    spec = SCHEMA
    for part in path.replace("[", ".[").split("."):
        if isinstance(spec, MapOf | ListOf):  # this part is a map key or an array index
            spec = spec.item
            continue
        spec = spec[part]
    return spec


@pytest.mark.parametrize("scenario", ["baseline", "correlated_crash", "calm"])
def test_every_leaf_once_with_the_scenario_value_and_its_range(scenario):
    rows = parameters(scenario)
    expected = _leaves(abm.load_scenario(scenario))
    paths = [r.path for r in rows]
    assert len(paths) == len(set(paths))
    assert set(paths) == set(expected)
    for r in rows:
        assert r.value == expected[r.path] and type(r.value) is type(expected[r.path]), r.path
        spec = _spec(r.path)
        allowed = spec.allowed() if isinstance(spec, F) else f"an array of tables ({spec.doc})"
        assert r.allowed == allowed, r.path


def test_every_number_has_a_unit_and_every_value_a_source():
    for scenario in ("baseline", "correlated_crash"):
        for r in parameters(scenario):
            if r.kind in ("float", "int", "range"):
                assert r.unit, r.path
            assert r.source and "no comment" not in r.source, r.path


def test_units_and_sources_come_from_calibration_and_the_scenario_files():
    base = {r.path: r for r in parameters("baseline")}
    assert base["compute.pue"].unit == "ratio"
    assert base["compute.pue"].source.startswith("Uptime Institute (F)")
    assert base["lenders.kinds.bank.origination_ltv"].source.startswith("lender survey (W)")
    assert base["generations.H100.list_price_usd"].unit == "USD"  # from the name
    assert base["neoclouds.gen_mix.H100"].unit == "share of fleet units"  # the table's row
    assert base["channels.fire_sale"].source.startswith("false: ")
    calm = {r.path: r for r in parameters("calm")}
    assert calm["crypto.vol_per_year"].source == "calm.toml: 0.50 -> 0.15"
    assert calm["crypto.vol_per_year_stress"].source == base["crypto.vol_per_year_stress"].source
    crash = {r.path: r for r in parameters("buyer_vacuum")}
    assert crash["shocks.pinned[0].start"].source.startswith("correlated_crash.toml: `btc`")
    assert crash["shocks.pinned[0].start"].unit == "YYYY-MM"
    assert crash["buyers.stress_budget_multiplier"].source == "buyer_vacuum.toml: 0.6 -> 0.2"


def test_a_scenario_file_of_ones_own_gives_its_comments_as_sources(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        '# my study\nextends = "baseline"\nname = "mine"\n\n[compute]\n'
        "# measured at our site\npue = 1.2\nhours_per_month = 700.0  # maintenance windows\n"
        "colo_usd_per_kw_month = 120.0\n"
    )
    rows = {r.path: r for r in parameters(str(path))}
    assert rows["compute.pue"].value == 1.2
    assert rows["compute.pue"].source == "mine.toml: measured at our site"
    assert rows["compute.hours_per_month"].source == "mine.toml: maintenance windows"
    assert rows["compute.colo_usd_per_kw_month"].source == "mine.toml: my study"  # file comment
    assert rows["compute.power_price_usd_per_kwh"].source.startswith("EIA (F)")  # baseline's


def test_toml_comment_parser():
    text = (
        "# file header\n\nname = 'x'\n\n# above a\n# second line\na = 1  # trailing\n\n"
        "b = 'has # inside'\n"
        "c = [\n  1,  # not a key\n  2,\n]\n"
        "# table comment\n[t]\nd = 2\n[[arr]]\ne = 3 # first\n[[arr]]\ne = 4 # second\n"
    )
    comments = toml_comments(text)
    assert comments[""] == "file header"
    assert comments["a"] == "above a second line trailing"
    assert "b" not in comments and "name" not in comments and "c" not in comments
    assert comments["t"] == "table comment" and "t.d" not in comments
    assert comments["arr[0].e"] == "first" and comments["arr[1].e"] == "second"


def test_units_from_names():
    assert unit_from_name("miners.cash_usd") == "USD"
    assert unit_from_name("buyers.kinds.x.absorption_mw_per_month") == "MW per month"
    assert unit_from_name("compute.rent_deflation_per_year") == "per year"
    assert unit_from_name("credit.loss_memory_months") == "months"
    assert unit_from_name("run.start", "month") == "YYYY-MM"
    assert unit_from_name("compute.spot_elasticity") == ""


def test_cli_formats_and_prefix(capsys):
    assert main(["params", "baseline", "compute.", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["path"].startswith("compute.") for r in rows)
    assert {r["path"] for r in rows} == {
        p.path for p in parameters("baseline") if p.path.startswith("compute.")
    }
    assert main(["params", "correlated_crash", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == len(parameters("correlated_crash"))
    assert json.loads(table[0]["value"]) == "correlated_crash"
    assert main(["params", "baseline", "lenders.kinds.bank."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["parameter", "value", "allowed", "unit", "source"]
    # the 22 fields of a lender kind (5 of finite funding, 2 of appraisal beliefs, 2 of
    # equipment lending and the forced sale after a run, 1 of loan marks, 1 of assets outside
    # the model)
    assert len(lines) == 1 + 23


@pytest.mark.parametrize(
    "args, message",
    [
        (["params", "no_such_scenario"], "scenario: unknown scenario 'no_such_scenario'"),
        (["params", "baseline", "zzz"], "PREFIX: no parameter starts with 'zzz'"),
        (["params", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_input_exits_2(args, message, capsys):
    try:
        code = main(args)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    assert code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err


def test_table_cuts_long_text_and_json_keeps_it():
    rows = parameters("baseline")
    long = max(rows, key=lambda r: len(r.source))
    assert len(long.source) > 70
    assert long.source not in format_parameters([long], "table")
    assert json.loads(format_parameters([long], "json"))[0]["source"] == long.source
