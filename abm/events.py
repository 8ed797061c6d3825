"""The event log: covenant breaches, waivers, accelerations, margin calls, defaults, seizures, trades."""

from __future__ import annotations

import operator
from array import array
from collections import deque
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
_consume = deque(maxlen=0).extend  # runs an iterator to its end
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


def _first_parents(parents: Iterable[Iterable], first_row: int, more: dict) -> list[int]:
    """The stored parents of new events from row ``first_row`` on (:func:`parent_ids` of each
    element of ``parents``): the single parent of each event (0 for none or several), and, put
    into ``more``, {row: ids} for the events with two or more. Lists of several parents repeat
    (events of one round share the fire sales that set the marks), so each distinct one is
    normalised once."""
    out: list[int] = []
    append = out.append
    memo: dict[tuple, tuple[int, ...]] = {}
    for k, p in enumerate(parents):
        if isinstance(p, (list, tuple)) and len(p) <= 1:  # the common cases, without a set
            only = int(p[0]) if p else 0
            append(only if only > 0 else 0)
            continue
        key = tuple(p)
        ids = memo.get(key)
        if ids is None:
            ids = memo[key] = parent_ids(key)
        if len(ids) > 1:
            more[first_row + k] = ids
            append(0)
        else:
            append(ids[0] if ids else 0)
    return out


def _append_numbers(column: array, values: Sequence, convert: type) -> None:
    """Append ``map(convert, values)`` to a number column; a list goes in as it is when the
    column takes it (``fromlist`` converts ints and floats to the column's C type as ``int`` /
    ``float`` would, and appends nothing on an error)."""
    if type(values) is list:
        try:
            column.fromlist(values)
            return
        except TypeError:  # e.g. floats for an integer column: int() truncates them
            pass
    column.fromlist(list(map(convert, values)))


class _Rows(Sequence):
    """The log's events as row tuples in the order of :data:`COLUMNS` (parents as a tuple of ids),
    built on demand: ``log.rows[i]``, slices, ``len``, iteration and ``reversed``; read-only."""

    def __init__(self, log: EventLog):
        self._log = log

    def __len__(self) -> int:
        return len(self._log._event)

    def __getitem__(self, index):
        n = len(self._log._event)
        if isinstance(index, slice):
            return [self._log._row(i) for i in range(*index.indices(n))]
        i = operator.index(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("event log row out of range")
        return self._log._row(i)

    def __iter__(self):
        log = self._log
        stored = len(log._event)
        return zip(
            range(1, stored + 1),
            log._month,
            log._event,
            log._agent,
            log._type,
            log._cause,
            log._counterparty,
            map(log._stored_parents, range(stored)),
            log._amount,
            log._units,
            log._price,
            strict=True,
        )

    def __reversed__(self):
        return map(self._log._row, range(len(self._log._event) - 1, -1, -1))


class EventLog:
    """Append-only events; ``add`` returns the new event id (ids start at 1; event ``i`` is row
    ``i - 1``).

    Stored as columns: at ``huge_network``'s 1.16 M events one tuple per event with its number
    objects cost ~340 bytes an event, the columns ~90. Numbers are in ``array.array`` columns (8
    bytes a value, appended without NumPy scalar conversions), the event, type and cause names in
    lists of references to shared strings. The parents are the distinct positive ids, ascending
    (:func:`parent_ids`): a single parent in the ``_first_parent`` column (0 for none or several),
    two or more as a tuple in ``_more_parents`` keyed by row. Agent ids and type names are kept as
    Python lists (one list index per event).

    Read the parents with :meth:`parents`, extend them with :meth:`add_parents`; :attr:`rows`
    gives the events as row tuples in the order of :data:`COLUMNS` (parents as a tuple of ids);
    the ``;``-joined text of events.csv is formatted only by :meth:`frame`. ``add_many`` appends a
    batch of events of one month in one call.
    """

    def __init__(self, agent_ids, agent_types):
        self._agent_ids = agent_ids
        self._agent_types = agent_types
        self._ids: list[int] = [int(x) for x in agent_ids]
        self._types: list[str] = list(agent_types)
        self._month = array("q")
        self._event: list[str] = []
        self._agent = array("q")
        self._type: list[str] = []
        self._cause: list[str] = []
        self._counterparty = array("q")
        self._first_parent = array("q")  # the only parent's id; 0 when none or several
        self._more_parents: dict[int, tuple[int, ...]] = {}  # row -> two or more parent ids
        self._amount = array("d")
        self._units = array("q")
        self._price = array("d")
        # the columns' append methods in the order of ``add``'s values, looked up once
        self._appends = self._column_appends()

    def _column_appends(self) -> tuple:
        return tuple(
            getattr(self, name).append
            for name in (
                "_month", "_event", "_agent", "_type", "_cause", "_counterparty",
                "_first_parent", "_amount", "_units", "_price",
            )
        )  # fmt: skip

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_appends"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._appends = self._column_appends()

    @property
    def rows(self) -> Sequence[tuple]:
        """The events as row tuples (:data:`COLUMNS` order, parents as a tuple of ids); a
        read-only view."""
        return _Rows(self)

    def _stored_parents(self, row: int) -> tuple[int, ...]:
        more = self._more_parents.get(row)
        if more is not None:
            return more
        first = self._first_parent[row]
        return (first,) if first else ()

    def _row(self, row: int) -> tuple:
        return (
            row + 1,
            self._month[row],
            self._event[row],
            self._agent[row],
            self._type[row],
            self._cause[row],
            self._counterparty[row],
            self._stored_parents(row),
            self._amount[row],
            self._units[row],
            self._price[row],
        )

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
        row = len(self._event)
        ids = parent_ids(parents)
        # every value is converted before the first column grows: a bad one appends nothing
        values = (
            int(month),
            event,
            self._ids[agent] if agent >= 0 else -1,
            self._types[agent] if agent >= 0 else "sector",
            cause,
            self._ids[counterparty] if counterparty is not None and counterparty >= 0 else -1,
            ids[0] if len(ids) == 1 else 0,  # the single parent
            float(amount),
            int(units),
            float(price),
        )
        _consume(map(operator.call, self._appends, values))  # each column's append, in C
        if len(ids) > 1:
            self._more_parents[row] = ids
        return row + 1

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
        The events are identical to calling :meth:`add` element by element, in order. Every
        sequence must have one element per agent (ValueError otherwise, and nothing is appended).
        Returns the new event ids."""
        first = len(self._event)
        count = len(agents)
        ids, types = self._ids, self._types
        events = [event] * count if isinstance(event, str) else list(event)
        causes = [cause] * count if isinstance(cause, str) else list(cause)
        counterparty_ids = [ids[c] if c >= 0 else -1 for c in counterparties]
        more: dict[int, tuple[int, ...]] = {}
        first_parents = _first_parents(parents, first, more)
        if (
            len(events) != count
            or len(causes) != count
            or len(counterparty_ids) != count
            or len(first_parents) != count
            or len(amounts) != count
            or (units is not None and len(units) != count)
            or (prices is not None and len(prices) != count)
        ):
            raise ValueError(f"add_many: every sequence must have {count} elements (the agents)")
        try:  # a value that does not convert: the columns are cut back, nothing is appended
            _append_numbers(self._amount, amounts, float)
            _append_numbers(self._units, [0] * count if units is None else units, int)
            _append_numbers(self._price, [0.0] * count if prices is None else prices, float)
            self._agent.fromlist([ids[a] for a in agents])
            self._type.extend([types[a] for a in agents])
        except BaseException:
            for column in (self._amount, self._units, self._price, self._agent, self._type):
                del column[first:]
            raise
        self._month.fromlist([int(month)] * count)
        self._event.extend(events)
        self._cause.extend(causes)
        self._counterparty.fromlist(counterparty_ids)
        self._first_parent.fromlist(first_parents)
        if more:
            self._more_parents.update(more)
        return list(range(first + 1, first + count + 1))

    def _checked_row(self, event_id: int) -> int:
        row = operator.index(event_id) - 1
        if not 0 <= row < len(self._event):
            raise IndexError(f"no event {event_id} in a log of {len(self._event)} events")
        return row

    def parents(self, event_id: int) -> tuple[int, ...]:
        """The parent event ids of event ``event_id`` (distinct, ascending)."""
        return self._stored_parents(self._checked_row(event_id))

    def add_parents(self, event_id: int, extra: Iterable[int]) -> None:
        """Add ``extra`` parents to event ``event_id`` (kept distinct and ascending)."""
        row = self._checked_row(event_id)
        merged = parent_ids([*self._stored_parents(row), *extra])
        if len(merged) > 1:
            self._first_parent[row] = 0
            self._more_parents[row] = merged
        else:
            self._first_parent[row] = merged[0] if merged else 0
            self._more_parents.pop(row, None)

    def frame(self) -> pd.DataFrame:
        """The log as a table with :data:`COLUMNS` (numbers as int64 / float64, names as objects;
        every column of dtype object when the log is empty); parents as their events.csv text."""
        n = len(self._event)
        if n == 0:
            return pd.DataFrame([], columns=list(COLUMNS))
        # one text per distinct parent list, shared by the rows that have it
        single, where = np.unique(np.array(self._first_parent, dtype=np.int64), return_inverse=True)
        texts = np.array([str(p) if p else "" for p in single.tolist()], dtype=object)[where]
        joined: dict[tuple[int, ...], str] = {}
        for row, ids in self._more_parents.items():
            text = joined.get(ids)
            if text is None:
                text = joined[ids] = ";".join([str(p) for p in ids])
            texts[row] = text
        columns = {
            "event_id": np.arange(1, n + 1, dtype=np.int64),
            "month": np.array(self._month, dtype=np.int64),
            "event": np.array(self._event, dtype=object),
            "agent_id": np.array(self._agent, dtype=np.int64),
            "agent_type": np.array(self._type, dtype=object),
            "cause": np.array(self._cause, dtype=object),
            "counterparty_id": np.array(self._counterparty, dtype=np.int64),
            "parent_event_ids": texts,
            "amount_usd": np.array(self._amount, dtype=np.float64),
            "units": np.array(self._units, dtype=np.int64),
            "price_usd": np.array(self._price, dtype=np.float64),
        }
        # new arrays: the frame keeps them as they are (no copy into 2-D blocks)
        return pd.DataFrame(columns, copy=False)
