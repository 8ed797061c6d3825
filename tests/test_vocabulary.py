"""One source for each vocabulary (abm/vocabulary.py): the model writes only its names, and every
name the figures draw has a colour."""

from __future__ import annotations

import pytest

import abm.analysis
import abm.events
from abm import vocabulary as v
from abm.agents.base import STATUS_NAMES, TYPE_NAMES
from abm.analysis import cascade_tree
from abm.config import load_scenario

#: Runs whose outputs are checked: the crash scenarios carry every channel; 36 months is enough for
#: their cascades (the crash is in 2026).
# correlated_crash seed 15: on issue 13's model seeds 0-2 push through the fire-sale channel only;
# seed 15 adds the margin-call and counterparty channels
RUNS = [("correlated_crash", s, 36) for s in (0, 1, 2, 15)] + [
    ("buyer_vacuum", 0, 36),
    ("baseline", 0, 36),
]


def test_every_channel_cause_and_agent_type_has_exactly_one_colour():
    assert set(v.CHANNEL_COLOURS) == set(v.CHANNELS)
    assert set(v.CAUSE_COLOURS) == set(v.CAUSES)
    assert set(v.AGENT_TYPE_COLOURS) == set(v.AGENT_TYPES)
    assert set(v.AGENT_TYPE_MARKERS) == set(v.AGENT_TYPES)
    # distinct colours within a palette, or two channels would read as one
    for palette in (v.CHANNEL_COLOURS, v.CAUSE_COLOURS, v.AGENT_TYPE_COLOURS):
        assert len(set(c.lower() for c in palette.values())) == len(palette)


def test_the_vocabularies_are_the_ones_the_model_and_the_older_names_use():
    assert abm.events.CAUSES is v.CAUSES
    assert abm.analysis.CHANNELS is v.CHANNELS
    assert TYPE_NAMES == v.AGENT_TYPES  # the order is the integer type code
    assert STATUS_NAMES == v.AGENT_STATUSES
    assert set(load_scenario("baseline")["channels"]) == set(v.CHANNELS)
    assert set(v.EVENT_CHANNEL) <= set(v.EVENTS)
    assert set(v.EVENT_CHANNEL.values()) <= set(v.CHANNELS)
    assert set(v.DEFAULTING_TYPES) <= set(v.AGENT_TYPES)
    assert set(v.BORROWER_TYPES) <= set(v.DEFAULTING_TYPES)


@pytest.mark.parametrize(("scenario", "seed", "months"), RUNS)
def test_what_the_model_writes_stays_inside_the_vocabulary(run_cache, scenario, seed, months):
    result = run_cache(scenario, seed, months)
    ev, agents = result.events, result.agents
    assert set(ev["event"]) <= set(v.EVENTS), set(ev["event"]) - set(v.EVENTS)
    causes = set(ev["cause"]) - {""}
    assert causes <= set(v.CAUSES), causes - set(v.CAUSES)
    defaults = ev[ev["event"] == "default"]
    assert (defaults["cause"] != "").all()  # every default names its cause
    assert set(ev["agent_type"]) <= set(v.AGENT_TYPES)
    assert set(agents["agent_type"]) == set(v.AGENT_TYPES)
    assert set(agents["status"]) <= set(v.AGENT_STATUSES)
    channels = {d["channel"] for *_, d in cascade_tree(ev).edges(data=True)}
    assert channels <= set(v.CHANNELS), channels - set(v.CHANNELS)
    assert set(result.cascade_metrics()["defaults_by_cause"]) <= set(v.CAUSES)


def test_the_checked_runs_exercise_the_vocabulary(run_cache):
    """The subset checks above say something: together the runs write most event names, several
    causes and several channels (on the merged economics of issue 12: 12 event names, causes ltv,
    maturity and payment, channels fire_sale and margin_calls)."""
    events, causes, channels = set(), set(), set()
    for scenario, seed, months in RUNS:
        ev = run_cache(scenario, seed, months).events
        events |= set(ev["event"])
        causes |= set(ev.loc[ev["event"] == "default", "cause"])
        channels |= {d["channel"] for *_, d in cascade_tree(ev).edges(data=True)}
    assert len(events) >= 8, events
    assert len(causes) >= 3, causes
    assert len(channels) >= 2, channels
