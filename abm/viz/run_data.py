"""Reading a run folder (what ``abm run --out DIR`` writes) for the figures: :func:`load_run`.

Everything the figures draw comes from these files; nothing is re-simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from abm.analysis import cascade_tree
from abm.events import COLUMNS as EVENT_COLUMNS

REQUIRED_FILES = ("manifest.json", "timeseries.csv", "agents.csv", "events.csv", "network.graphml")
REQUIRED_COLUMNS = {
    "timeseries.csv": (
        "month",
        "date",
        "regime",
        "btc_price",
        "fire_sale_units",
        "defaults_miner",
        "defaults_neocloud",
        "defaults_lender",
        "lender_capital_usd",
        "lender_losses_usd",
        "credit_supply_usd",
    ),  # fmt: skip
    "agents.csv": ("month", "agent_id", "agent_type", "status", "debt_usd", "equity_usd"),
    "events.csv": EVENT_COLUMNS[:8],  # event_id ... parent_event_ids (amounts not needed)
}


class RunDirError(ValueError):
    """A folder is not a readable ``abm`` run: a file is missing, unreadable or malformed.

    ``path`` is the offending file (or the folder itself).
    """

    def __init__(self, message: str, path: str | Path):
        super().__init__(message)
        self.path = Path(path)


@dataclass
class RunData:
    """One run folder, as read from its files."""

    run_dir: Path
    timeseries: pd.DataFrame
    agents: pd.DataFrame
    events: pd.DataFrame
    graph: nx.MultiDiGraph  # end-of-run lending network, nodes relabelled to int agent ids
    manifest: dict
    cascade: nx.DiGraph  # default genealogy (abm.analysis.cascade_tree of events.csv)
    cascade_metrics: dict | None = None  # cascade.json, when present
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def config(self) -> dict:
        return self.manifest.get("config", {}) or {}

    @property
    def scenario(self) -> str:
        return str(self.manifest.get("scenario") or self.config.get("name", "") or "run")

    @property
    def seed(self):
        return self.manifest.get("seed")

    @property
    def title(self) -> str:
        seed = "" if self.seed is None else f", seed {self.seed}"
        return f"{self.scenario}{seed}"

    @property
    def months(self) -> np.ndarray:
        """The model months of the run, in order."""
        return self.timeseries["month"].to_numpy()

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The first day of each month of the run (x axis of every time plot)."""
        return pd.DatetimeIndex(self.timeseries["_date"])

    def date_of(self, month: int) -> pd.Timestamp:
        return self.dates[self.month_index(month)]

    def month_index(self, month: int) -> int:
        idx = np.flatnonzero(self.months == month)
        if not len(idx):
            raise ValueError(
                f"month {month} is not in this run (months {self.months[0]}..{self.months[-1]})"
            )
        return int(idx[0])

    def resolve_month(self, month) -> int:
        """A model month from an int or a 'YYYY-MM' label; None means the default network month."""
        if month is None:
            return default_month(self)
        if isinstance(month, str) and not month.lstrip("-").isdigit():
            hit = np.flatnonzero(self.timeseries["date"].astype(str).to_numpy() == month)
            if not len(hit):
                raise ValueError(f"month {month!r} is not a date of this run")
            return int(self.months[hit[0]])
        month = int(month)
        self.month_index(month)
        return month

    @property
    def generations(self) -> list[str]:
        """GPU generations in the timeseries' column order (the config's release order)."""
        cols = self.timeseries.columns
        return [c[len("rent_spot_") :] for c in cols if c.startswith("rent_spot_")]

    def status_panel(self) -> pd.DataFrame:
        """Agent status, month x agent_id (cached)."""
        if "status" not in self._cache:
            self._cache["status"] = self.agents.pivot(
                index="month", columns="agent_id", values="status"
            )
        return self._cache["status"]

    def agents_with_status(self, month: int, status: str) -> set[int]:
        """Agent ids whose ``status`` in agents.csv at ``month`` is ``status``."""
        a = self.agents
        sel = (a["month"] == month) & (a["status"] == status)
        return set(int(x) for x in a.loc[sel, "agent_id"])


def _read(path: Path, reader, *args, **kwargs):
    if not path.is_file():
        raise RunDirError(
            f"{path.name} is missing from {path.parent}: not an abm run folder "
            f"(expected {', '.join(REQUIRED_FILES)})",
            path,
        )
    try:
        return reader(path, *args, **kwargs)
    except Exception as exc:  # a parse error of any reader
        raise RunDirError(f"{path}: cannot be read ({type(exc).__name__}: {exc})", path) from exc


def _read_json(path: Path) -> dict:
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("top level is not a JSON object")
    return data


def _check_columns(df: pd.DataFrame, path: Path) -> None:
    missing = [c for c in REQUIRED_COLUMNS[path.name] if c not in df.columns]
    if missing:
        raise RunDirError(f"{path}: missing column(s) {', '.join(missing)}", path)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder written by ``abm run`` / :func:`abm.io.write_run`.

    Raises :class:`RunDirError` (a ``ValueError``) naming the file when the folder does not exist or
    a required file is missing, unreadable or lacks the expected columns.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run folder", run_dir)
    manifest = _read(run_dir / "manifest.json", _read_json)
    ts = _read(run_dir / "timeseries.csv", pd.read_csv, dtype={"date": str, "regime": str})
    agents = _read(run_dir / "agents.csv", pd.read_csv, dtype={"agent_type": str, "status": str})
    # parent ids must stay text ("40" would otherwise become 40.0 and lose the cascade link)
    events = _read(
        run_dir / "events.csv",
        pd.read_csv,
        dtype={"parent_event_ids": str, "cause": str, "event": str, "agent_type": str},
        keep_default_na=False,
        na_values={"amount_usd": [""], "price_usd": [""]},
    )
    for name, df in (("timeseries.csv", ts), ("agents.csv", agents), ("events.csv", events)):
        _check_columns(df, run_dir / name)
    if ts.empty:
        raise RunDirError(f"{run_dir / 'timeseries.csv'}: has no rows", run_dir / "timeseries.csv")
    try:
        ts["_date"] = pd.to_datetime(ts["date"], format="%Y-%m")
    except (ValueError, TypeError) as exc:
        raise RunDirError(
            f"{run_dir / 'timeseries.csv'}: column date is not YYYY-MM ({exc})",
            run_dir / "timeseries.csv",
        ) from exc
    graph = _read(run_dir / "network.graphml", nx.read_graphml, force_multigraph=True)
    graph = nx.relabel_nodes(
        graph, {n: int(d.get("agent_id", n)) for n, d in graph.nodes(data=True)}
    )
    if not graph.is_directed():
        graph = nx.MultiDiGraph(graph)
    try:
        tree = cascade_tree(events)
    except (KeyError, ValueError) as exc:
        raise RunDirError(
            f"{run_dir / 'events.csv'}: malformed parent links ({exc})", run_dir / "events.csv"
        ) from exc
    metrics = None
    if (run_dir / "cascade.json").is_file():
        metrics = _read(run_dir / "cascade.json", _read_json)
    return RunData(run_dir, ts, agents, events, graph, manifest, tree, metrics)


def default_month(run: RunData) -> int:
    """The month with most agents in default (status defaulted or failed), the earliest such month;
    the last month when nobody defaulted."""
    a = run.agents
    counts = (
        a[a["status"].isin(("defaulted", "failed"))]
        .groupby("month")
        .size()
        .reindex(run.months, fill_value=0)
    )
    if counts.max() <= 0:
        return int(run.months[-1])
    return int(counts.idxmax())
