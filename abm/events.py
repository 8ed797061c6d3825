"""The event log: covenant breaches, waivers, accelerations, margin calls, defaults, seizures, trades."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from abm.vocabulary import CAUSES  # noqa: F401 (abm.events.CAUSES is imported elsewhere)

COLUMNS = (
    "event_id",
    "month",
    "event",
    "agent_id",
    "agent_type",
    "cause",
    "counterparty_id",
    "parent_event_ids",
    "amount_usd",
    "units",
    "price_usd",
)
PARENTS = COLUMNS.index("parent_event_ids")  # the parents' position in a row


def parent_ids(parents: Iterable) -> tuple[int, ...]:
    """Parent event ids as stored: the distinct positive ids, ascending (ids <= 0 mean none)."""
    if isinstance(parents, (list, tuple)) and len(parents) <= 1:  # the common cases, without a set
        if not parents:
            return ()
        only = int(parents[0])
        return (only,) if only > 0 else ()
    return tuple(sorted({int(p) for p in parents if p > 0}))


def parent_text(parents: Iterable) -> str:
    """The ``parent_event_ids`` text of events.csv: :func:`parent_ids` joined by ``;``."""
    return ";".join([str(p) for p in parent_ids(parents)])


def parse_parent_ids(text) -> list[int]:
    """Parent event ids from a ``parent_event_ids`` cell ("3;17"), also when a CSV reader has
    turned a single id into a number (40 or 40.0); empty or NaN means none."""
    if isinstance(text, int | float | np.integer | np.floating):
        return [] if not np.isfinite(text) else [int(text)]
    if not isinstance(text, str) or not text:
        return []
    return [int(float(p)) for p in text.split(";") if p]


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


class EventLog:
    """Append-only rows; ``add`` returns the new event id (ids start at 1).

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
