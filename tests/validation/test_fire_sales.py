"""Fire-sale amplification reproduced with the model's market, marks and covenants."""

from __future__ import annotations

import pytest

from abm.validation_fire_sales import default_share, fire_sale_amplification, fire_sale_setting

SEEDS = range(12)


def test_defaults_rise_with_price_impact():
    df = fire_sale_amplification(price_impacts=(0.05, 0.3, 0.55, 0.8), shocks=(-0.2,), seeds=SEEDS)
    shares = df["default_share"].to_list()
    assert all(b >= a for a, b in zip(shares, shares[1:], strict=False)), shares
    assert shares[-1] > shares[0] + 0.1, shares
    losses = df["lender_losses_usd"].to_list()
    assert losses[-1] > losses[0]


def test_defaults_rise_with_the_initial_shock():
    shares = [
        default_share(fire_sale_setting(0.55, shock), SEEDS)["default_share"]
        for shock in (-0.05, -0.2, -0.5)
    ]
    assert shares[0] < shares[1] < shares[2], shares


def test_simultaneous_clearing_amplifies_more_than_sequential():
    # a 3-6 point effect: 24 seeds keep it well above the noise
    seeds = range(24)
    simultaneous = default_share(fire_sale_setting(0.8, -0.3, "simultaneous"), seeds)
    sequential = default_share(fire_sale_setting(0.8, -0.3, "sequential"), seeds)
    assert simultaneous["default_share"] > sequential["default_share"] + 0.01
    assert simultaneous["lender_losses_usd"] > sequential["lender_losses_usd"]


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"price_impact": 1.0}, "price_impact"), ({"shock": 0.2}, "shock")]
)
def test_bad_settings_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fire_sale_setting(**kwargs)
