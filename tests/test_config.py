"""Scenario loading: extends, overrides, and field-level errors."""

from __future__ import annotations

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
