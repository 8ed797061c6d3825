"""Scenario loading: extends, overrides, and field-level errors."""

from __future__ import annotations

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
