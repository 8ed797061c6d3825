"""Fire-sale amplification reproduced with the model's market, marks and covenants.

In this model the amplification shows most in lender losses: LTV defaults are driven mainly by the
initial shock, and borrowers with cash cure marginal breaches, so the default share moves little with
price impact while losses move a lot (see docs/validation.md).
"""

from __future__ import annotations

import pytest

from abm.validation_fire_sales import default_share, fire_sale_amplification, fire_sale_setting

SEEDS = range(12)


def test_losses_and_defaults_rise_with_price_impact():
    df = fire_sale_amplification(price_impacts=(0.05, 0.3, 0.55, 0.8), shocks=(-0.3,), seeds=SEEDS)
    losses = df["lender_losses_usd"].to_list()
    assert all(b > a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] > 1.5 * losses[0]
    shares = df["default_share"].to_list()
    assert shares[-1] >= shares[0], shares


def test_defaults_rise_with_the_initial_shock():
    shares = [
        default_share(fire_sale_setting(0.55, shock), SEEDS)["default_share"]
        for shock in (-0.05, -0.2, -0.5)
    ]
    assert shares[0] < shares[1] < shares[2], shares


def test_simultaneous_clearing_amplifies_more_than_sequential():
    seeds = range(16)
    simultaneous = default_share(fire_sale_setting(0.8, -0.3, "simultaneous"), seeds)
    sequential = default_share(fire_sale_setting(0.8, -0.3, "sequential"), seeds)
    assert simultaneous["lender_losses_usd"] > 1.1 * sequential["lender_losses_usd"]
    assert simultaneous["default_share"] >= sequential["default_share"]


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"price_impact": 1.0}, "price_impact"), ({"shock": 0.2}, "shock")]
)
def test_bad_settings_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fire_sale_setting(**kwargs)
