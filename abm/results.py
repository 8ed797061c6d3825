"""Running a scenario from Python and the tables it returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd

from abm.agents.base import STATUS_NAMES, TYPE_NAMES
from abm.config import ConfigError, load_scenario, validate

PANEL_COLUMNS = (
    "month",
    "agent_id",
    "agent_type",
    "status",
    "cash_usd",
    "gpu_units",
    "btc",
    "assets_usd",
    "debt_usd",
    "equity_usd",
    "ltv",
    "coverage",
)


@dataclass
class RunResult:
    """Everything one run produced: tables as DataFrames, the lending network, the manifest."""

    config: dict
    seed: int
    timeseries: pd.DataFrame
    agents: pd.DataFrame
    events: pd.DataFrame
    network: nx.MultiDiGraph
    manifest: dict = field(default_factory=dict)
    model: object = None  # the finished model, released from Mesa's registry (release_model)

    def cascade_metrics(self) -> dict:
        """Cascade measurements (cached): see :func:`abm.analysis.cascade_metrics`."""
        if "_cascade" not in self.__dict__:
            from abm.analysis import cascade_metrics

            self.__dict__["_cascade"] = cascade_metrics(self)
        return self.__dict__["_cascade"]

    def summary(self) -> dict:
        """Headline numbers: defaults by type and cause, lowest clearing price / fundamental value
        (``min_price_to_fundamental``, a ratio: 0.30 is a 70 % discount; None without trades),
        fire-sale GPUs, lender losses (realised, unrealised on held seized lots, and both), runtime.
        Names as in ``abm.sweep.metrics.CATALOGUE``."""
        ts, ev = self.timeseries, self.events
        last = ts.iloc[-1]
        defaults = ev[ev["event"] == "default"]
        by_cause = (
            defaults.groupby(["agent_type", "cause"]).size().to_dict() if len(defaults) else {}
        )
        return {
            "scenario": self.config.get("name", ""),
            "seed": self.seed,
            "months": len(ts),
            "defaults_miner": int(last["defaults_miner"]),
            "defaults_neocloud": int(last["defaults_neocloud"]),
            "defaults_lender": int(last["defaults_lender"]),
            "defaults_by_type_and_cause": {f"{t}/{c}": int(n) for (t, c), n in by_cause.items()},
            "min_price_to_fundamental": float(np.nanmin(ts["min_discount"]))
            if ts["min_discount"].notna().any()
            else None,
            "fire_sale_units": int(last["fire_sale_units_cum"]),
            "lender_losses_usd": float(last["lender_losses_usd"]),
            "lender_unrealised_inventory_loss_usd": float(
                last["lender_unrealised_inventory_loss_usd"]
            ),
            "lender_losses_incl_unrealised_usd": float(last["lender_losses_incl_unrealised_usd"]),
            "runtime_s": self.manifest.get("runtime_s"),
        }


def _panel_frame(model, release: bool = False) -> pd.DataFrame:
    """The agent panel (one row per agent and month, ``PANEL_COLUMNS``) from the model's monthly
    slices (``model.panel_rows``, float arrays of shape (agents, 12)). Built column by column (no
    stacked copy of the whole panel), with the type and status names as references to one string
    each (not one string object per row): at 100,000 agents and 60 months the panel has 6 M rows,
    and those two copies cost gigabytes.

    With ``release``, each monthly slice leaves ``model.panel_rows`` as soon as it is copied, and
    the freed memory is handed back to the operating system every few months
    (:func:`_return_freed_memory`): the slices and the table (0.58 GB each at 6 M rows) are then
    never both in memory, only a few months of slices beside the table. The values are the same
    either way."""
    rows = model.panel_rows
    if not rows:
        return pd.DataFrame({name: _empty_panel_column(name) for name in PANEL_COLUMNS}, copy=False)
    total = sum(len(p) for p in rows)
    numbers = np.result_type(*rows)  # what np.concatenate of the slices' columns gives
    names = {"agent_type": TYPE_NAMES, "status": STATUS_NAMES}
    # np.empty: a column's pages take memory only once a month is written into them
    columns = {
        name: np.empty(
            total,
            dtype=np.int16
            if name in names
            else (np.int64 if name in ("month", "agent_id", "gpu_units") else numbers),
        )
        for name in PANEL_COLUMNS
    }
    start = months = 0
    for panel in _slices(rows, release):
        stop = start + len(panel)
        for j, name in enumerate(PANEL_COLUMNS):
            # assigning casts as ``astype`` does (integers: truncation of integral floats)
            columns[name][start:stop] = panel[:, j]
        start, months = stop, months + 1
        del panel  # a released slice is freed here
        if release and months % RELEASE_EVERY_MONTHS == 0 and total > RELEASE_MIN_ROWS:
            _return_freed_memory()
    for name, labels in names.items():
        columns[name] = np.array(labels, dtype=object)[columns[name]]
    if release and total > RELEASE_MIN_ROWS:
        _return_freed_memory()
    # the columns are new arrays: the frame takes them as they are (copy=False), instead of
    # copying the numeric ones into one 2-D block (another 0.5 GB at 6 M rows)
    return pd.DataFrame(columns, copy=False)


# _panel_frame(release=True) hands freed slices back to the OS every this many months, for panels
# of more than RELEASE_MIN_ROWS rows (below, the slices are small and the call not worth it)
RELEASE_EVERY_MONTHS = 6
RELEASE_MIN_ROWS = 1_000_000


def _slices(rows: list, release: bool):
    """The monthly slices in order; with ``release``, each is taken out of ``rows`` as it goes."""
    if release:
        while rows:
            yield rows.pop(0)
    else:
        yield from rows


def _empty_panel_column(name: str) -> np.ndarray:
    """A column of an empty panel as it always was (np.empty(0), cast like a full one)."""
    col = np.empty(0)
    if name in ("month", "agent_id", "gpu_units"):
        return col.astype(np.int64)
    if name in ("agent_type", "status"):
        labels = TYPE_NAMES if name == "agent_type" else STATUS_NAMES
        return np.array(labels, dtype=object)[col.astype(int)]
    return col


def _return_freed_memory() -> None:
    """Hand the heap's free pages back to the operating system (glibc's ``malloc_trim``; nothing
    elsewhere). Large NumPy arrays freed in the middle of the heap otherwise stay resident, and
    Python objects allocated later cannot reuse them: without it the panel's freed slices kept
    0.58 GB resident to the end of a 100,000-agent run."""
    import contextlib
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)


def release_model(model) -> None:
    """Let a finished model be garbage-collected (a workaround for Mesa 3.3.1's agent registry).

    Mesa 3.3.1 keeps every model alive for the life of the process: ``mesa.Agent._ids`` is a
    class-level ``defaultdict`` keyed by the model (the per-model unique-id counters; Mesa issue
    #3179, fixed upstream in PR #3180 but not in the pinned 3.3.1). Each run then leaks its whole
    state, about 0.33 MB for a one-month baseline run. This function removes every agent from the
    model's Mesa registry (``model.remove_all_agents()``: ``model._agents`` and the agent sets)
    and drops the model's entry from ``Agent._ids``.

    Afterwards the model's own state (arrays, loan book, accounts, snapshots, ``agent_objects``)
    is intact and readable, but Mesa's views are empty (``model.agents`` holds no agents) and
    agents must not be added to it again (their ids would restart at 1). Calling it twice is
    harmless. Remove it when the pinned Mesa includes PR #3180.
    """
    from mesa.agent import Agent

    model.remove_all_agents()
    Agent._ids.pop(model, None)


def run(
    config: dict | str | None = None,
    seed: int = 0,
    months: int | None = None,
    progress: bool = False,
    overrides: dict | None = None,
    observe=None,
) -> RunResult:
    """Run one scenario and return its tables.

    The finished model is released from Mesa's registry (:func:`release_model`) once its tables
    are extracted, so a loop over many runs does not grow in memory; ``RunResult.model`` keeps
    the model's own state (arrays, loans, accounts) for callers that read it.

    Parameters
    ----------
    config:
        A scenario dict from :func:`abm.load_scenario`, a scenario name or path, or None for ``baseline``.
    seed:
        Seed of the model's random generator (same config + seed = identical results).
    months:
        Number of months to simulate (default: the scenario's ``run.months``).
    progress:
        Show a progress bar.
    overrides:
        Dotted-key overrides applied when ``config`` is a name or path.
    observe:
        Optional ``observe(model, month)``, called after each month's step (month 0 first) to read
        state the tables do not keep (e.g. ``abm.calibration_report``); it must not change the
        model.
    """
    from abm.model import AIComputeCreditModel

    if config is None or isinstance(config, str):
        config = load_scenario(config or "baseline", overrides)
    else:
        validate(config)
    if months is not None and (
        not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= 600
    ):
        raise ConfigError(f"months: must be an integer in [1, 600], got {months!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    started = time.time()
    t0 = time.perf_counter()
    model = AIComputeCreditModel(config, rng=int(seed), months=months)
    setup_s = time.perf_counter() - t0
    steps = range(model.months)
    if progress:
        from tqdm import tqdm

        steps = tqdm(
            steps, desc=f"{config.get('name', 'run')} seed {seed}", unit="month", leave=False
        )
    for month in steps:
        model.step()
        if observe is not None:
            observe(model, month)
    runtime = time.perf_counter() - t0
    timeseries = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    manifest = {
        "scenario": config.get("name", ""),
        "seed": int(seed),
        "months": model.months,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runtime_s": round(runtime, 4),
        "setup_s": round(setup_s, 4),
        "agents": int(model.n),
        "config": config,
    }
    from abm.network import export_graph

    # the panel's monthly slices go as they are copied into ``agents``, before the event table,
    # the exported graph and the output files need memory (0.6 GB at 100,000 agents and 60 months)
    agents = _panel_frame(model, release=True)
    model.panel_rows = []
    result = RunResult(
        config=config,
        seed=int(seed),
        timeseries=timeseries,
        agents=agents,
        events=model.events.frame(),
        network=export_graph(model),
        manifest=manifest,
        model=model,
    )
    # The tables are out: let the model go when the result goes (Mesa's registry would keep it
    # for the life of the process). ``result.model`` stays readable, without Mesa's agent views.
    release_model(model)
    return result
