"""The behaviour constants moved from rule code into the scenario schema are read by their rules:
changing one in a scenario changes what the agents do (so a sweep over it is not a no-op)."""

from __future__ import annotations

import copy

import abm
from abm.model import AIComputeCreditModel


def _run(cfg: dict, months: int = 24, seed: int = 0) -> AIComputeCreditModel:
    model = AIComputeCreditModel(cfg, rng=seed, months=months)
    model.run()
    return model


def _rollovers(model) -> int:
    return int(model.datacollector.get_model_vars_dataframe()["rollovers"].sum())


def test_stricter_rollover_rule_rolls_fewer_loans():
    base = abm.load_scenario("baseline")
    strict = copy.deepcopy(base)
    strict["credit"]["roll_min_coverage"] = 50.0  # no borrower covers its service 50 times ...
    strict["credit"]["roll_min_equity_to_debt"] = 50.0  # ... or has 50x equity behind its debt
    rolled, rolled_strict = _rollovers(_run(base)), _rollovers(_run(strict))
    assert rolled > 0
    assert rolled_strict < rolled


def test_the_btc_loan_roll_tenor_sets_the_new_maturity():
    cfg = abm.load_scenario("baseline")
    cfg["miners"]["btc_loan_roll_months"] = 7
    model = AIComputeCreditModel(cfg, rng=0, months=24)
    from abm.finance.instruments import BTC_LOAN

    btc = model.loans.kind == BTC_LOAN
    before = model.loans.maturity_month.copy()
    model.run()
    moved = btc & (model.loans.maturity_month[: len(before)] != before)
    assert moved.any(), "no BTC loan was rolled in 24 months: pick another seed"
    # a rolled BTC loan matures 7 months after the month it was rolled in (at most month 23 + 7)
    assert (model.loans.maturity_month[: len(before)][moved] <= 23 + 7).all()
    assert ((model.loans.maturity_month[: len(before)][moved] - 7) >= 0).all()
