"""Fire-sale amplification reproduced with the model's market, marks and covenants.

In this model the amplification shows most in lender losses: LTV defaults are driven mainly by the
initial shock, and borrowers with cash cure marginal breaches, so the default share moves little with
price impact while losses move a lot (see docs/validation.md).
"""

from __future__ import annotations

import pytest

from abm.validation_fire_sales import default_share, fire_sale_amplification, fire_sale_setting

SEEDS = range(12)


@pytest.mark.slow  # 4 price impacts x 12 seeds
def test_losses_and_defaults_rise_with_price_impact():
    df = fire_sale_amplification(price_impacts=(0.05, 0.3, 0.55, 0.8), shocks=(-0.5,), seeds=SEEDS)
    losses = df["lender_losses_usd"].to_list()
    assert all(b > a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] > 1.3 * losses[0]
    shares = df["default_share"].to_list()
    assert shares[-1] >= shares[0], shares


@pytest.mark.slow  # 3 shocks x 12 seeds
@pytest.mark.xfail(
    strict=True,
    reason="missing mechanism: a secondary market whose prices come from its participants. With "
    "reverting fundamental values (issue 12) the -5 % and -20 % demand shocks default no neocloud "
    "in seeds 0-11 and the -50 % shock 3.75 % (0.021 / 0.038 / 0.371 before): the papers' "
    "amplification was carried by one-month utilisation swings held in every valuation. The "
    "contagion-mechanism issue builds it from the market's participants.",
)
def test_defaults_rise_with_the_initial_shock():
    shares = [
        default_share(fire_sale_setting(0.55, shock), SEEDS)["default_share"]
        for shock in (-0.05, -0.2, -0.5)
    ]
    assert shares[0] < shares[1] < shares[2], shares


@pytest.mark.slow  # 2 shocks x 2 auctions x 12 seeds
def test_simultaneous_clearing_amplifies_more_than_sequential():
    """At high price impact every forced sale in the simultaneous auction takes the marginal price;
    sequential sellers who come early take the best bids, so losses are lower."""
    sim_losses = seq_losses = sim_defaults = seq_defaults = 0.0
    for shock in (-0.2, -0.5):
        simultaneous = default_share(fire_sale_setting(0.8, shock, "simultaneous"), SEEDS)
        sequential = default_share(fire_sale_setting(0.8, shock, "sequential"), SEEDS)
        sim_losses += simultaneous["lender_losses_usd"]
        seq_losses += sequential["lender_losses_usd"]
        sim_defaults += simultaneous["default_share"]
        seq_defaults += sequential["default_share"]
    assert sim_losses > 1.02 * seq_losses
    assert sim_defaults >= seq_defaults


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"price_impact": 1.0}, "price_impact"), ({"shock": 0.2}, "shock")]
)
def test_bad_settings_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fire_sale_setting(**kwargs)
