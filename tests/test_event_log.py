"""The columnar event log (abm.events.EventLog) against the row-tuple log it replaced.

``TupleEventLog`` below is the log as it was at f60d5e3 (one Python tuple per event, ~340 bytes
each at ``huge_network``'s 1.16 M events); the columnar log must give the same rows, parents and
frame (values and dtypes) for any sequence of ``add`` / ``add_many`` / ``add_parents`` calls, and
the same log over whole runs (a twin that drifts fails here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abm
from abm.events import COLUMNS, PARENTS, EventLog, parent_ids
from abm.model import AIComputeCreditModel


def _parent_id_tuples(parents: Iterable[Iterable]) -> list[tuple[int, ...]]:
    """``[parent_ids(p) for p in parents]``; lists of several parents repeat (events of one round
    share the fire sales that set the marks), so each distinct tuple is normalised once."""
    out: list[tuple[int, ...]] = []
    memo: dict[tuple, tuple[int, ...]] = {}
    for p in parents:
        if isinstance(p, (list, tuple)) and len(p) <= 1:
            out.append(parent_ids(p))
            continue
        key = tuple(p)
        ids = memo.get(key)
        if ids is None:
            ids = memo[key] = parent_ids(key)
        out.append(ids)
    return out


class TupleEventLog:
    """The event log as it was before it became columnar (f60d5e3): one tuple per event.

    Each row is a tuple in the order of :data:`COLUMNS`, except that the parents (column 7) are
    stored as a tuple of event ids (:func:`parent_ids`), read with :meth:`parents` and extended
    with :meth:`add_parents`; the ``;``-joined text of events.csv is formatted only by
    :meth:`frame`. Agent ids and type names are kept as Python lists (one list index per event
    instead of NumPy scalar conversions); ``add_many`` appends a batch of events of one kind in
    one call.
    """

    def __init__(self, agent_ids, agent_types):
        self._agent_ids = agent_ids
        self._agent_types = agent_types
        self._ids: list[int] = [int(x) for x in agent_ids]
        self._types: list[str] = list(agent_types)
        self.rows: list[tuple] = []

    def add(
        self,
        month,
        event,
        agent,
        cause="",
        counterparty=-1,
        parents=(),
        amount=0.0,
        units=0,
        price=0.0,
    ) -> int:
        event_id = len(self.rows) + 1
        cp = self._ids[counterparty] if counterparty is not None and counterparty >= 0 else -1
        self.rows.append(
            (
                event_id,
                int(month),
                event,
                self._ids[agent] if agent >= 0 else -1,
                self._types[agent] if agent >= 0 else "sector",
                cause,
                cp,
                parent_ids(parents),
                float(amount),
                int(units),
                float(price),
            )
        )
        return event_id

    def add_many(
        self,
        month: int,
        event: str | Sequence[str],
        agents: Sequence[int],
        counterparties: Sequence[int],
        parents: Sequence[Iterable],
        amounts: Sequence[float],
        units: Sequence[int] | None = None,
        prices: Sequence[float] | None = None,
        cause: str | Sequence[str] = "",
    ) -> list[int]:
        """Append one event per element: ``agents`` and ``counterparties`` are agent rows (>= 0;
        counterparty ``-1`` for none), ``event`` and ``cause`` one string for all or one per event.
        The rows are identical to calling :meth:`add` element by element, in order. Returns the new
        event ids."""
        first = len(self.rows) + 1
        count = len(agents)
        ids, types = self._ids, self._types
        # build the columns with C-level map/zip; each row is the tuple ``add`` would append
        self.rows.extend(
            zip(
                range(first, first + count),
                [int(month)] * count,
                [event] * count if isinstance(event, str) else event,
                [ids[a] for a in agents],
                [types[a] for a in agents],
                [cause] * count if isinstance(cause, str) else cause,
                [ids[c] if c >= 0 else -1 for c in counterparties],
                _parent_id_tuples(parents),
                map(float, amounts),
                [0] * count if units is None else map(int, units),
                [0.0] * count if prices is None else map(float, prices),
                strict=True,
            )
        )
        return list(range(first, first + count))

    def parents(self, event_id: int) -> tuple[int, ...]:
        """The parent event ids of event ``event_id`` (distinct, ascending)."""
        return self.rows[event_id - 1][PARENTS]

    def add_parents(self, event_id: int, extra: Iterable[int]) -> None:
        """Add ``extra`` parents to event ``event_id`` (kept distinct and ascending)."""
        row = self.rows[event_id - 1]
        merged = parent_ids([*row[PARENTS], *extra])
        self.rows[event_id - 1] = (*row[:PARENTS], merged, *row[PARENTS + 1 :])

    def frame(self) -> pd.DataFrame:
        """The log as a table with :data:`COLUMNS`; parents as their events.csv text."""
        texts: dict[tuple[int, ...], str] = {}
        rows = []
        for row in self.rows:
            ids = row[PARENTS]
            text = texts.get(ids)
            if text is None:
                text = texts[ids] = ";".join([str(p) for p in ids])
            rows.append((*row[:PARENTS], text, *row[PARENTS + 1 :]))
        return pd.DataFrame(rows, columns=list(COLUMNS))


AGENT_IDS = [101, 102, 103, 104, 105]
AGENT_TYPES = ["miner", "neocloud", "lender", "buyer", "lender"]

parent_lists = st.lists(st.integers(-2, 12), max_size=4)
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 60),  # month
            st.sampled_from(["default", "seizure", "trade"]),
            st.integers(-1, 4),  # agent row (-1: the sector)
            st.sampled_from(["", "ltv", "payment"]),
            st.integers(-1, 4),  # counterparty row
            parent_lists,
            st.floats(-1e12, 1e12, allow_nan=False),
            st.integers(0, 10_000),
            st.floats(0, 1e6, allow_nan=False),
        ),
        st.tuples(
            st.just("add_many"),
            st.integers(0, 60),
            st.lists(
                st.tuples(
                    st.sampled_from(["waiver", "acceleration"]),
                    st.integers(0, 4),
                    st.integers(-1, 4),
                    parent_lists,
                    st.floats(0, 1e9, allow_nan=False),
                    st.integers(0, 500),
                    st.floats(0, 1e4, allow_nan=False),
                    st.sampled_from(["", "coverage"]),
                ),
                max_size=6,
            ),
            st.booleans(),  # one event name / cause for the batch, or one per event
            st.booleans(),  # units and prices given, or left out
            st.booleans(),  # the batch's parents as one shared list object
        ),
        st.tuples(st.just("add_parents"), st.integers(1, 40), parent_lists),
    ),
    max_size=25,
)


def _apply(log, op) -> object:
    kind = op[0]
    if kind == "add":
        _, month, event, agent, cause, cp, parents, amount, units, price = op
        return log.add(month, event, agent, cause, cp, parents, amount, units, price)
    if kind == "add_many":
        _, month, batch, one_name, with_units, shared = op
        if not batch:
            return log.add_many(month, "trade", [], [], [], [])
        events, agents, cps, parents, amounts, units, prices, causes = map(
            list, zip(*batch, strict=True)
        )
        if shared:
            parents = [parents[0]] * len(batch)
        return log.add_many(
            month,
            events[0] if one_name else events,
            np.array(agents) if with_units else agents,
            cps,
            parents,
            amounts,
            units=units if with_units else None,
            prices=np.array(prices) if with_units else None,
            cause=causes[0] if one_name else causes,
        )
    _, event_id, extra = op
    log.add_parents(event_id, extra)
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops)
def test_the_columnar_log_equals_the_tuple_log(ops):
    new, old = EventLog(AGENT_IDS, AGENT_TYPES), TupleEventLog(AGENT_IDS, AGENT_TYPES)
    for op in ops:
        if op[0] == "add_parents" and op[1] > len(old.rows):
            continue  # the tuple log indexed rows from the end for a missing event
        assert _apply(new, op) == _apply(old, op)
    assert list(new.rows) == old.rows
    assert new.rows[:] == old.rows and list(reversed(new.rows)) == old.rows[::-1]
    assert len(new.rows) == len(old.rows)
    if old.rows:
        assert new.rows[-1] == old.rows[-1] and new.rows[0] == old.rows[0]
    for event_id in range(1, len(old.rows) + 1):
        assert new.parents(event_id) == old.parents(event_id)
    pd.testing.assert_frame_equal(new.frame(), old.frame())


def test_a_batch_with_a_missing_element_appends_nothing():
    log = EventLog(AGENT_IDS, AGENT_TYPES)
    log.add(0, "default", 0)
    with pytest.raises(ValueError, match="elements"):
        log.add_many(1, "seizure", [1, 2], [0, 0], [[1]], [1.0, 2.0])
    with pytest.raises(ValueError, match="elements"):
        log.add_many(1, "seizure", [1, 2], [0, 0], [[1], []], [1.0])
    assert len(log.rows) == 1 and log.frame().shape == (1, len(COLUMNS))
    with pytest.raises(IndexError):
        log.parents(2)


@pytest.mark.parametrize(
    ("scenario", "seed", "months"),
    [("baseline", 0, 24), ("correlated_crash", 5, 60), ("asic_2022", 0, None)],
)
def test_a_run_logs_the_same_events_in_both_logs(scenario, seed, months, monkeypatch):
    """Whole runs: every ``add`` / ``add_many`` / ``add_parents`` call of the model goes to both
    logs; rows and frames must agree at the end."""
    twins = []

    class Both(EventLog):
        def __init__(self, agent_ids, agent_types):
            super().__init__(agent_ids, agent_types)
            self.twin = TupleEventLog(agent_ids, agent_types)
            twins.append(self)

        def add(self, *args, **kwargs):
            got = super().add(*args, **kwargs)
            assert got == self.twin.add(*args, **kwargs)
            return got

        def add_many(self, *args, **kwargs):
            got = super().add_many(*args, **kwargs)
            assert got == self.twin.add_many(*args, **kwargs)
            return got

        def add_parents(self, *args, **kwargs):
            super().add_parents(*args, **kwargs)
            self.twin.add_parents(*args, **kwargs)

    monkeypatch.setattr("abm.model.EventLog", Both)
    model = AIComputeCreditModel(abm.load_scenario(scenario), rng=seed, months=months)
    for _ in range(model.months):
        model.step()
    (log,) = twins
    assert len(log.twin.rows) > 100
    assert list(log.rows) == log.twin.rows
    pd.testing.assert_frame_equal(log.frame(), log.twin.frame())
    assert sum(len(log.parents(i)) > 1 for i in range(1, len(log.rows) + 1)) > 0


def test_a_pickled_or_copied_log_appends_to_its_own_columns():
    """The columns' append methods are looked up once per log; a pickled or deep-copied log
    looks them up again, so it appends to its own columns, not to the original's."""
    import copy
    import pickle

    log = EventLog(AGENT_IDS, AGENT_TYPES)
    log.add(0, "default", 0, parents=[])
    for twin in (pickle.loads(pickle.dumps(log)), copy.deepcopy(log)):
        twin.add(1, "seizure", 1, counterparty=0, parents=[1], amount=2.0)
        assert len(twin.rows) == 2 and len(log.rows) == 1
        assert twin.rows[1] == (2, 1, "seizure", 102, "neocloud", "", 101, (1,), 2.0, 0, 0.0)
