"""The event log: covenant breaches, waivers, accelerations, margin calls, defaults, seizures, trades."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def parent_text(parents: Iterable) -> str:
    """Parent event ids as stored: distinct positive ids, ascending, joined by ``;``."""
    if isinstance(parents, (list, tuple)) and len(parents) <= 1:  # the common cases, without a set
        if not parents:
            return ""
        only = int(parents[0])
        return str(only) if only > 0 else ""
    return ";".join([str(int(p)) for p in sorted(set(parents)) if p > 0])


def _parent_texts(parents: Iterable[Iterable]) -> list[str]:
    """``[parent_text(p) for p in parents]``; lists of several parents repeat (events of one round
    share the fire sales that set the marks), so each distinct tuple is formatted once."""
    out: list[str] = []
    memo: dict[tuple, str] = {}
    for p in parents:
        if isinstance(p, (list, tuple)) and len(p) <= 1:
            out.append(parent_text(p))
            continue
        key = tuple(p)
        text = memo.get(key)
        if text is None:
            text = memo[key] = parent_text(key)
        out.append(text)
    return out


class EventLog:
    """Append-only rows; ``add`` returns the new event id (ids start at 1).

    Agent ids and type names are kept as Python lists (one list index per event instead of NumPy
    scalar conversions); ``add_many`` appends a batch of events of one kind in one call.
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
                parent_text(parents),
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
                _parent_texts(parents),
                map(float, amounts),
                [0] * count if units is None else map(int, units),
                [0.0] * count if prices is None else map(float, prices),
                strict=True,
            )
        )
        return list(range(first, first + count))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))
