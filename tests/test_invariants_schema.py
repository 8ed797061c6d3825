"""Every invariant holds every month under parameters drawn across the whole schema range.

Each example draws every leaf field of ``abm.config.SCHEMA`` (as found in ``baseline``) from its full
allowed range [F.lo, F.hi]: floats uniformly and, for ranges spanning more than three decades,
log-uniformly too, with the bounds themselves among the draws; integers and choices over all allowed
values; both booleans. Only four things are narrower than the schema, to keep a run fast: agent
counts (0-5 neoclouds and miners, 0-2 buyers and 0-3 lenders per kind, 0 included), the months run
(6-18), the generation calendar (the baseline's release months, which cross-field rules tie to the
start month) and the pinned shocks (0-2, placed inside the run). Cross-field rules are met by
ordering the pairs they compare (range bounds, margin-call <= liquidation LTV, distressed <=
normal reserve); every drawn scenario must then pass ``abm.config.validate``.

Checked every month: ``invariants.all_problems``, i.e. every invariant of ``abm/invariants.py``:
the accounting identities (``check``: no negative cash at an active borrower or buyer among them),
every price finite and >= 0 with BTC price and network hashrate > 0 (``price_problems``), finite
balances and no negative cash at any active agent, lenders included (``balance_problems``).
"""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abm
from abm import invariants
from abm.config import SCHEMA, F, ListOf, MapOf, month_label, validate

BASELINE = abm.load_scenario("baseline")
# population sizes: the schema allows up to 100,000 agents of a type; these keep a run well under a
# second while still including the empty population
COUNT_CAPS = {"neoclouds.count": 5, "miners.count": 5, "count": 2, "lenders.mix": 3}


def _floats(spec: F):
    lo, hi = spec.lo, spec.hi
    uniform = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    small = max(lo, 1e-3)  # a range from 0 is drawn log-uniformly from 1e-3 (and 0 as its bound)
    if lo >= 0 and hi / small > 1e3:  # also log-uniform, or the small decades would hardly be drawn
        log_uniform = st.floats(math.log(small), math.log(hi)).map(
            lambda x: min(hi, max(small, math.exp(x)))
        )
        return st.one_of(st.sampled_from([lo, hi]), uniform, log_uniform)
    return st.one_of(st.sampled_from([lo, hi]), uniform)


def _leaf(path: str, spec: F, base):
    """A strategy for one leaf (None: keep the baseline's value)."""
    cap = COUNT_CAPS.get(path) or COUNT_CAPS.get(path.rsplit(".", 1)[-1])
    if path.startswith("lenders.mix."):
        cap = COUNT_CAPS["lenders.mix"]
    if spec.kind == "int":
        hi = int(min(spec.hi, cap)) if cap is not None else int(spec.hi)
        return st.integers(int(spec.lo), hi)
    if spec.kind == "float":
        return _floats(spec)
    if spec.kind == "range":
        return st.lists(_floats(spec), min_size=2, max_size=2).map(sorted)
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "choice":
        return st.sampled_from(spec.choices)
    return None  # str and month fields: names and the release calendar stay the baseline's


def _tree(path: str, spec, base):
    """A strategy drawing a config subtree shaped like ``base`` under ``spec``."""
    if isinstance(spec, F):
        leaf = _leaf(path, spec, base)
        return st.just(copy.deepcopy(base)) if leaf is None else leaf
    if isinstance(spec, ListOf):
        return st.just(copy.deepcopy(base))  # pinned shocks are drawn by _pinned
    item = (lambda k: spec.item) if isinstance(spec, MapOf) else spec.__getitem__
    table = {k: _tree(f"{path}.{k}" if path else k, item(k), v) for k, v in base.items()}
    # in the baseline's key order: the generations must stay listed in order of release
    return st.fixed_dictionaries(table).map(lambda d, keys=tuple(base): {k: d[k] for k in keys})


@st.composite
def _pinned(draw, start: str, months: int):
    shocks = []
    for _ in range(draw(st.integers(0, 2))):
        first = draw(st.integers(0, months - 1))
        last = draw(st.integers(first, months - 1))
        shocks.append(
            {
                "variable": draw(st.sampled_from(("btc", "ai_demand"))),
                "start": month_label(first, start),
                "end": month_label(last, start),
                "total_change": draw(_floats(F("float", -0.99, 10.0))),
                "force_stress": draw(st.booleans()),
            }
        )
    return shocks


@st.composite
def scenarios(draw, min_months: int = 6, max_months: int = 18):
    """(config, months, seed): a valid scenario with every field drawn from its schema range."""
    cfg = draw(_tree("", SCHEMA, BASELINE))
    months = draw(st.integers(min_months, max_months))
    cfg["shocks"]["pinned"] = draw(_pinned(cfg["run"]["start"], months))
    m = cfg["miners"]
    m["btc_margin_call_ltv"], m["btc_liquidation_ltv"] = sorted(
        (m["btc_margin_call_ltv"], m["btc_liquidation_ltv"])
    )
    for mix in (cfg["neoclouds"]["gen_mix"], cfg["miners"]["gpu_gen_mix"]):
        if sum(mix.values()) <= 0:
            mix[next(iter(mix))] = 1.0
    validate(cfg)
    return cfg, months, draw(st.integers(0, 2**32 - 1))


def _run_and_check(cfg: dict, months: int, seed: int) -> None:
    model = abm.AIComputeCreditModel(cfg, rng=seed, months=months)
    for _ in range(months):
        model.step()
        problems = invariants.all_problems(model)
        assert problems == [], f"month {model.month}: {problems}"


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios())
def test_invariants_hold_across_the_whole_schema(drawn):
    _run_and_check(*drawn)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(min_months=6, max_months=60))
def test_invariants_hold_across_the_whole_schema_many_examples(drawn):
    _run_and_check(*drawn)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(min_months=580, max_months=600))
def test_invariants_hold_for_600_months_across_the_whole_schema(drawn):
    """The longest runs the schema allows: where slow drifts reach float's limits."""
    _run_and_check(*drawn)


def test_the_draws_reach_the_schema_bounds():
    """The strategy covers the whole range: both bounds of a float field and of a count are drawn."""
    seen_price, seen_count = set(), set()

    # derandomized: a statement about the strategy, not a search, so it must not depend on luck
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(scenarios())
    def collect(drawn):
        cfg = drawn[0]
        seen_price.add(cfg["crypto"]["btc_price_usd"])
        seen_count.add(cfg["neoclouds"]["count"])

    collect()
    spec = SCHEMA["crypto"]["btc_price_usd"]
    assert {spec.lo, spec.hi} <= seen_price
    assert min(seen_price) < 1e-3 < 1e6 < max(seen_price)  # log-uniform: small decades too
    assert {0, COUNT_CAPS["neoclouds.count"]} <= seen_count
