"""The event log: covenant breaches, waivers, accelerations, margin calls, defaults, seizures, trades."""

from __future__ import annotations

import pandas as pd

CAUSES = ("payment", "ltv", "coverage", "maturity", "margin_call", "counterparty", "lender_failure")

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


class EventLog:
    """Append-only rows; ``add`` returns the new event id (ids start at 1)."""

    def __init__(self, agent_ids, agent_types):
        self._agent_ids = agent_ids
        self._agent_types = agent_types
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
        cp = (
            int(self._agent_ids[counterparty])
            if counterparty is not None and counterparty >= 0
            else -1
        )
        parent_text = ";".join(str(int(p)) for p in sorted(set(parents)) if p > 0)
        self.rows.append(
            (
                event_id,
                int(month),
                event,
                int(self._agent_ids[agent]) if agent >= 0 else -1,
                self._agent_types[agent] if agent >= 0 else "sector",
                cause,
                cp,
                parent_text,
                float(amount),
                int(units),
                float(price),
            )
        )
        return event_id

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))
