"""Each contagion channel can be switched off and carries defaults or losses in the crash."""

from __future__ import annotations

import pytest

import abm
from abm.analysis import CHANNELS
from abm.decomposition import channel_decomposition
from abm.finance.instruments import INTERBANK


@pytest.fixture(scope="module")
def decomposition():
    return channel_decomposition("correlated_crash", seeds=range(6))


@pytest.mark.slow  # 6 configurations x 6 seeds
def test_every_channel_matters(decomposition):
    base = decomposition.iloc[0]
    for _, row in decomposition.iloc[1:].iterrows():
        changed = (row["defaults"] != base["defaults"]) or (
            abs(row["losses_usd"] - base["losses_usd"]) > 1e-6 * base["losses_usd"]
        )
        assert changed, f"switching off {row['channel_off']} changed nothing"
    assert list(decomposition["channel_off"][1:]) == list(CHANNELS)


def test_funding_off_means_no_interbank_loans():
    model = abm.AIComputeCreditModel(
        abm.load_scenario("baseline", {"channels.funding": False}), rng=0
    )
    assert not (model.loans.kind == INTERBANK).any()
    on = abm.AIComputeCreditModel(abm.load_scenario("baseline"), rng=0)
    assert (on.loans.kind == INTERBANK).any()


def test_fire_sale_off_marks_ignore_clearing_prices():
    checked = 0
    for seed in range(5):
        res = abm.run("correlated_crash", seed=seed, overrides={"channels.fire_sale": False})
        ts = res.timeseries
        for g in res.config["generations"]:
            traded = ts[f"secondary_price_{g}"].notna()
            discount = res.config["compute"]["calm_market_discount"]
            index = ts[f"fundamental_value_{g}"] * (1 - discount)
            assert (ts.loc[traded, f"mark_{g}"] - index[traded]).abs().max(
                skipna=True
            ) < 1e-6 or not traded.any()
            checked += int(traded.sum())
    assert checked > 0


def test_margin_calls_off_means_no_margin_call_events():
    res = abm.run("correlated_crash", seed=2, overrides={"channels.margin_calls": False})
    assert not (res.events["event"] == "margin_call").any()
    on = abm.run("correlated_crash", seed=2)
    assert (on.events["event"] == "margin_call").any()


def test_counterparty_off_means_no_lost_leases_but_customers_still_default():
    """The channel switches only the link between model agents (a tenant's default ends its host's
    lease); the outside customers' defaults and renegotiations are shocks.customer_defaults."""
    res = abm.run("correlated_crash", seed=1, overrides={"channels.counterparty": False})
    assert not (res.events["event"] == "lease_terminated").any()
    assert res.timeseries["contract_cuts"].sum() > 0
    on = abm.run("correlated_crash", seed=1)
    assert on.timeseries["contract_cuts"].sum() > 0


def test_customer_defaults_off_means_no_contract_cuts_or_renegotiations():
    res = abm.run("correlated_crash", seed=1, overrides={"shocks.customer_defaults": False})
    assert res.timeseries["contract_cuts"].sum() == 0
    assert res.timeseries["contract_renegotiations"].sum() == 0
    assert res.timeseries["anchor_distress"].sum() == 0
