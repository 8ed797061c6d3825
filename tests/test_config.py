"""Scenario loading: extends, overrides, and field-level errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from abm.config import ConfigError, load_scenario, packaged_scenarios, parse_override


def test_every_packaged_scenario_validates():
    for name in packaged_scenarios():
        cfg = load_scenario(name)
        assert cfg["name"] == name


def test_extends_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "correlated_crash"\nname = "mine"\n[compute]\npue = 1.2\n')
    cfg = load_scenario(path)
    base = load_scenario("correlated_crash")
    assert cfg["compute"]["pue"] == 1.2
    assert cfg["shocks"]["pinned"] == base["shocks"]["pinned"]  # inherited through two levels
    assert cfg["crypto"] == base["crypto"]


def test_circular_extends_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="circular"):
        load_scenario(tmp_path / "a.toml")


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[compute\npue = 1.2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"miners.btc_margin_call_ltv": 0.9, "miners.btc_liquidation_ltv": 0.8},
            "btc_margin_call_ltv",
        ),
        ({"generations.B200.release": "2020-01"}, "generations"),
        ({"neoclouds.gen_mix.X200": 0.3}, "neoclouds.gen_mix.X200"),
        ({"market.clearing": "random"}, "market.clearing"),
        ({"channels.fire_sale": "yes"}, "channels.fire_sale"),
        ({"run.months": 2.5}, "run.months"),
        ({"lenders.mix.shadow_bank": 2}, "lenders.mix.shadow_bank"),
    ],
)
def test_cross_field_and_type_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_scenario("baseline", overrides)


def test_override_values_parse_as_toml():
    assert parse_override("compute.pue=1.2") == ("compute.pue", 1.2)
    assert parse_override("market.clearing=sequential") == ("market.clearing", "sequential")
    assert parse_override("neoclouds.fleet_units=[1, 2]") == ("neoclouds.fleet_units", [1, 2])
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("nokey")


def test_fifo_scenario_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="scenario: .* not a regular file"):
        load_scenario(fifo)  # opened non-blocking: a blocking open would hang here


def test_extends_through_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.toml")
    (tmp_path / "child.toml").write_text('extends = "pipe.toml"\nname = "child"\n')
    with pytest.raises(ConfigError, match="extends: .* not a regular file"):
        load_scenario(tmp_path / "child.toml")


def test_extends_chain_of_32_loads_and_33_is_refused(tmp_path):
    def chain(n: int) -> Path:
        folder = tmp_path / f"chain{n}"
        folder.mkdir()
        for i in range(n - 1):
            (folder / f"c{i}.toml").write_text(f'extends = "c{i + 1}.toml"\n')
        (folder / f"c{n - 1}.toml").write_text('extends = "baseline"\nname = "deep"\n')
        return folder / "c0.toml"

    assert load_scenario(chain(31))["name"] == "deep"  # 31 files + baseline = 32
    with pytest.raises(ConfigError, match="extends: chain longer than 32"):
        load_scenario(chain(32))


@pytest.mark.parametrize("name", ["mine", "run-2.v1", "A_b", "x" * 64])
def test_plain_names_are_accepted(name):
    assert load_scenario("baseline", {"name": name})["name"] == name


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "..", ".x", "a..b", "a b", "", "x" * 65])
def test_names_that_could_leave_results_are_refused(name):
    with pytest.raises(ConfigError, match="^name: must be a plain name"):
        load_scenario("baseline", {"name": name})


@pytest.mark.parametrize(
    ("key", "message"),
    [(".pue", "no empty parts"), ("compute..pue", "no empty parts"), ("extends", "--scenario")],
)
def test_override_keys_are_checked_in_the_api_too(key, message):
    with pytest.raises(ConfigError, match=message):
        load_scenario("baseline", {key: 1})


def test_numbers_beyond_float_range_and_non_finite_are_refused():
    for value in (10**400, -(10**400), math.inf, math.nan):
        with pytest.raises(ConfigError, match="compute.pue: must be a number"):
            load_scenario("baseline", {"compute.pue": value})
    with pytest.raises(ConfigError, match="neoclouds.fleet_units"):
        load_scenario("baseline", {"neoclouds.fleet_units": [1, math.inf]})


def test_multi_line_override_is_refused_not_truncated():
    with pytest.raises(ConfigError, match="--set: .* one line"):
        parse_override("compute.pue=1.2\ncompute.bogus=1")


def _pair(tmp_path: Path, child: str) -> Path:
    """A parent replacing baseline's generations and GPU mixes by two GPUs, and a child of it."""
    parent = tmp_path / "parent.toml"
    generations = load_scenario("baseline")["generations"]
    tables = "".join(
        f"[generations.{name}]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in generations[name].items())
        for name in ("H100", "B200")
    )
    parent.write_text(
        'extends = "baseline"\nname = "parent"\n'
        'replace = ["generations", "neoclouds.gen_mix", "miners.gpu_gen_mix"]\n'
        + tables
        + "[neoclouds]\ngen_mix = { H100 = 0.5, B200 = 0.5 }\n"
        "[miners]\ngpu_gen_mix = { H100 = 0.5, B200 = 0.5 }\n"
    )
    path = tmp_path / "child.toml"
    path.write_text('extends = "parent.toml"\nname = "child"\n' + child)
    return path


def test_replace_takes_the_childs_table_whole_and_merge_stays_the_default(tmp_path):
    replaced = load_scenario(
        _pair(
            tmp_path,
            'replace = ["neoclouds.gen_mix"]\n[neoclouds]\ngen_mix = { B200 = 1.0 }\n'
            "[miners]\ngpu_gen_mix = { B200 = 0.5 }\n",
        )
    )
    # the parent replaced baseline's eight generations by its two; the child replaced one mix
    assert list(replaced["generations"]) == ["H100", "B200"]
    assert replaced["neoclouds"]["gen_mix"] == {"B200": 1.0}
    assert replaced["miners"]["gpu_gen_mix"] == {"H100": 0.5, "B200": 0.5}  # not listed: merged
    assert "replace" not in replaced and "extends" not in replaced
    # an emptied table keeps its place in the resolved config (manifests keep their key order)
    assert list(replaced["neoclouds"]) == list(load_scenario("baseline")["neoclouds"])


def test_replace_without_a_table_of_its_own_leaves_the_table_empty(tmp_path):
    child = 'replace = ["miners.gpu_gen_mix"]\n[miners]\ngpu_owner_share = 0.0\n'
    cfg = load_scenario(_pair(tmp_path, child))
    assert cfg["miners"]["gpu_gen_mix"] == {}


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ('"generations"', "must be an array of dotted table paths"),
        ('["bogus"]', "bogus is not a table of 'parent.toml'"),
        ('["compute.pue"]', "compute.pue is a value, not a table"),
        ('["neoclouds..gen_mix"]', "no empty parts"),
    ],
)
def test_replace_entries_are_checked(tmp_path, replace, message):
    with pytest.raises(ConfigError, match=f"^replace: .*{message}"):
        load_scenario(_pair(tmp_path, f"replace = {replace}\n"))


def test_replace_is_reserved_for_scenario_files():
    with pytest.raises(ConfigError, match="^--set: replace cannot be overridden"):
        parse_override('replace=["generations"]')
    with pytest.raises(ConfigError, match="^overrides: replace.x cannot be overridden"):
        load_scenario("baseline", {"replace.x": 1})


def test_asic_2022_extends_baseline_with_only_its_four_asic_generations():
    from abm.config import SCHEMA

    cfg = load_scenario("asic_2022")
    assert list(cfg["generations"]) == ["S9", "S17", "S19", "S19XP"]
    assert {g["equipment"] for g in cfg["generations"].values()} == {"asic"}
    assert cfg["neoclouds"]["gen_mix"] == {} and cfg["miners"]["gpu_gen_mix"] == {}
    # every GPU buyer kind inherited from baseline has no agents
    gpu_kinds = [k for k, kind in cfg["buyers"]["kinds"].items() if kind.get("equipment") != "asic"]
    assert gpu_kinds and all(cfg["buyers"]["kinds"][k]["count"] == 0 for k in gpu_kinds)
    assert set(cfg) <= set(SCHEMA)  # no loading-only key (extends, replace) is left
    # values asic_2022 does not set are baseline's (e.g. a credit behaviour constant)
    assert cfg["credit"]["workout_months"] == load_scenario("baseline")["credit"]["workout_months"]
    text = (Path(__file__).parents[1] / "abm/scenarios/asic_2022.toml").read_text()
    assert text.startswith("#") and 'extends = "baseline"' in text
