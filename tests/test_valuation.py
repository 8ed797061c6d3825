"""DCF fundamental values: today's utilisation held, or its deviation from balance fading."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm.model import AIComputeCreditModel


def _market(mode: str, reversion: float = 0.9):
    cfg = abm.load_scenario(
        "baseline",
        {"compute.valuation_utilisation": mode, "compute.valuation_reversion_per_month": reversion},
    )
    model = AIComputeCreditModel(cfg, rng=0)
    model.step()
    return model.compute, cfg["compute"]


def _set_state(market, cfg, spot_utilisation: float) -> None:
    """Put the market where its spot GPUs would be at ``spot_utilisation`` (utilisation_ref is
    balance): demand / supply = ``spot_utilisation`` x the balance utilisation of the contract
    book / ``utilisation_ref`` (utilisation and spot factor as in clear)."""
    ratio = spot_utilisation * market.next_balance_utilisation / cfg["utilisation_ref"]
    market.clear(ratio * 1000.0, 1000.0)


def _value(market, rate=0.10):
    return market.value_per_gpu(12, rate)


def test_at_balance_both_expectations_agree():
    current, cfg = _market("current")
    reverting, _ = _market("mean_reverting")
    for m in (current, reverting):
        _set_state(m, cfg, cfg["utilisation_ref"])
    assert current.spot_factor == pytest.approx(1.0)
    np.testing.assert_allclose(_value(reverting), _value(current), rtol=1e-12)


@pytest.mark.parametrize("ratio", [0.45, 0.9])
def test_a_shock_moves_a_reverting_value_less_than_a_held_one(ratio):
    current, cfg = _market("current")
    reverting, _ = _market("mean_reverting")
    balanced, _ = _market("current")
    _set_state(balanced, cfg, cfg["utilisation_ref"])
    for m in (current, reverting):
        _set_state(m, cfg, ratio)
    held, fading, base = _value(current), _value(reverting), _value(balanced)
    live = base > 0
    assert live.any()
    lo, hi = np.minimum(held, base), np.maximum(held, base)
    # the fading expectation lies between balance and the held shock, strictly inside for live GPUs
    assert np.all(fading[live] >= lo[live] - 1e-6) and np.all(fading[live] <= hi[live] + 1e-6)
    assert np.all(np.abs(fading[live] - base[live]) < np.abs(held[live] - base[live]))


def test_no_persistence_values_every_future_month_at_balance():
    reverting, cfg = _market("mean_reverting", reversion=0.0)
    balanced, _ = _market("current")
    _set_state(balanced, cfg, cfg["utilisation_ref"])
    _set_state(reverting, cfg, 0.3)  # a deep shock today, expected gone next month
    np.testing.assert_allclose(_value(reverting), _value(balanced), rtol=1e-12)


#: correlated_crash seeds of the jump test below (the crash moves utilisation most).
JUMP_SEEDS = range(12)


def _largest_monthly_move(fv: np.ndarray) -> float:
    """Largest month-on-month move of a value path, up or down, as a ratio >= 1 (months where the
    value is above $1 in both)."""
    alive = (fv[:-1] > 1.0) & (fv[1:] > 1.0)
    ratio = fv[1:][alive] / fv[:-1][alive]
    return float(np.max(np.maximum(ratio, 1.0 / ratio)))


def _largest_moves_by_mode() -> tuple[list[float], list[float]]:
    """Largest monthly move of the H100 value per correlated_crash seed (``JUMP_SEEDS``), with
    today's utilisation held and with deviations fading."""
    held, fading = [], []
    for seed in JUMP_SEEDS:
        for mode, moves in (("current", held), ("mean_reverting", fading)):
            cfg = abm.load_scenario("correlated_crash", {"compute.valuation_utilisation": mode})
            ts = abm.run(cfg, seed=seed).timeseries
            moves.append(_largest_monthly_move(ts["fundamental_value_H100"].to_numpy()))
    return held, fading


def test_reverting_fundamentals_do_not_jump_with_one_month_of_utilisation():
    """ODD note 14: holding today's utilisation for 120 months makes fundamental values jump in a
    month; the fading expectation keeps monthly moves moderate. Largest monthly move of the H100
    value in correlated_crash seeds 0-11, measured on the merged issue-13 model: 1.86-4.22 held,
    1.37-1.95 reverting; the reverting move is the smaller in every seed. (With seized GPUs dumped
    rather than leased out, before issue 13, the held moves reached 14.9; at parity rents crash
    seed 5 reached 2.97 reverting: a default took half of in-service supply out in one month.)"""
    held, fading = _largest_moves_by_mode()
    assert max(fading) < 2.0, fading
    assert max(held) > 4.0, held
    assert all(f < h for f, h in zip(fading, held, strict=True)), (fading, held)


PACKAGED = ("baseline", "calm", "correlated_crash", "rubin_shock", "buyer_vacuum", "large_network")


@pytest.mark.parametrize("scenario", PACKAGED)
def test_packaged_scenarios_expect_deviations_to_fade_with_the_demand_shock(scenario):
    """Issue 12: every packaged scenario values GPUs with today's utilisation and rent deviations
    fading at the persistence of the AI-demand shock that moves them."""
    cfg = abm.load_scenario(scenario)
    assert cfg["compute"]["valuation_utilisation"] == "mean_reverting"
    assert cfg["compute"]["valuation_reversion_per_month"] == cfg["shocks"]["ai_demand_persistence"]


def _paths_by_month(scenario: str, seed: int):
    """Step a run and keep, per month, the H100 fundamental value, the expected rent and power
    paths behind it (per GPU-hour, over the valuation horizon), spot rent x the utilisation the
    valuation reads (a spot GPU's) and the trend price."""
    cfg = abm.load_scenario(scenario)
    model = AIComputeCreditModel(cfg, rng=seed)
    c = cfg["compute"]
    market, h = model.compute, model.gen_names.index("H100")
    out = []
    for _ in range(model.months):
        model.step()
        rent, power = market.expected_rent_and_power(c["valuation_horizon_months"])
        out.append(
            (
                float(market.fundamental_value[h]),
                rent[h].copy(),
                power[h].copy(),
                float(market.rent_spot[h] * market.valued_utilisation()),
                float(market.trend_price_per_perf_hour),
            )
        )
    k = np.arange(1, c["valuation_horizon_months"] + 1)
    disc = (1.0 + c["fundamental_discount_rate"]) ** (-k / 12.0)
    return out, disc, c["hours_per_month"]


RUNS = [("correlated_crash", 0), ("correlated_crash", 2), ("rubin_shock", 0), ("calm", 0)]


@pytest.mark.parametrize(("scenario", "seed"), RUNS)
def test_fundamental_moves_no_more_than_the_expected_rents_and_power_moved(scenario, seed):
    """The month-to-month move of the H100 fundamental value is bounded by what its inputs moved:
    |V_t - V_t-1| <= hours x sum_k (|change of expected rent_k| + |change of expected power_k|) x
    discount_k. (The value is a maximum over retirement months of discounted cash sums; a maximum
    moves by at most the largest move of its candidates, and each month's cash by at most its rent
    and power moves.) A value that jumped without its expected rents moving would fail."""
    out, disc, hours = _paths_by_month(scenario, seed)
    worst = 0.0
    for (v0, r0, p0, *_), (v1, r1, p1, *_) in zip(out[:-1], out[1:], strict=True):
        bound = hours * float(((np.abs(r1 - r0) + np.abs(p1 - p0)) * disc).sum())
        assert abs(v1 - v0) <= bound * (1 + 1e-9) + 1e-6, (v0, v1, bound)
        worst = max(worst, abs(v1 - v0) / max(bound, 1e-9))
    assert worst > 0.1  # the bound is not vacuous: the value does move with its inputs


@pytest.mark.parametrize(("scenario", "seed"), RUNS)
def test_expected_rents_move_no_more_than_this_months_rent(scenario, seed):
    """With deviations fading, every expected month's rent moves by a ratio between the trend's
    move and this month's move of spot rent x utilisation (the demand/rent input): a one-month
    utilisation swing moves far-off months less than the near ones and never more than itself.
    Measured: the largest monthly move of the H100 fundamental value over baseline, calm,
    correlated_crash and rubin_shock seeds 0-11 is 2.39x (it was 79x with today's utilisation
    held for the horizon)."""
    out, *_ = _paths_by_month(scenario, seed)
    for (_, r0, _, x0, tr0), (_, r1, _, x1, tr1) in zip(out[:-1], out[1:], strict=True):
        ratio = r1 / r0
        lo, hi = min(tr1 / tr0, x1 / x0), max(tr1 / tr0, x1 / x0)
        assert np.all(ratio >= lo * (1 - 1e-9)) and np.all(ratio <= hi * (1 + 1e-9))


def test_a_gpu_is_worth_at_least_its_salvage_value_and_retires_at_it():
    """The DCF value includes the owner's option to retire the GPU for its salvage value: never
    below it, and a generation is retired exactly when keeping it is worth no more."""
    market, cfg = _market("mean_reverting")
    salvage = market.salvage_usd_per_gpu
    assert np.all(salvage > 0)
    for ratio in (0.2, 0.7, 1.2):
        _set_state(market, cfg, ratio)
        market.update_fundamentals(12)
        assert np.all(market.fundamental_value >= salvage - 1e-9)
        np.testing.assert_array_equal(
            market.retiring(), market.fundamental_value <= salvage * (1 + 1e-12)
        )
    # rents far below power and colocation: every generation is worth only its salvage value
    market.trend_price_per_perf_hour = 1e-4
    _set_state(market, cfg, cfg["utilisation_ref"])
    market.update_fundamentals(12)
    assert market.retiring().all()
    np.testing.assert_allclose(market.fundamental_value, salvage)
