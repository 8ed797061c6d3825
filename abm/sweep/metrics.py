"""The summary metrics of one run: one flat row of numbers, the columns of ``runs.parquet``.

Every metric is a float (NaN where it is undefined, e.g. a recovery rate without defaults), so
tables from many runs stack and average without special cases. The dicts written as JSON
(``RunResult.summary()``, ``cascade.json``) hold None for the same undefined values (JSON has no
NaN): one rule, None there and NaN here, and no other stand-in (no 0, no 1) for "undefined". ``CATALOGUE`` declares each
one (definition, unit, range, worse direction, interval method); ``METRICS`` maps name ->
definition; ``ALIASES`` maps names of earlier versions to the current ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.vocabulary import BORROWER_TYPES, CHANNELS
from abm.vocabulary import DEFAULT_CAUSES as CAUSES
from abm.vocabulary import DEFAULTING_TYPES as AGENT_TYPES

_RUNS = "runs.parquet"


@dataclass(frozen=True)
class Metric:
    """One summary metric of a run: its unit, possible range and which direction is worse.

    ``low``/``high`` bound every value a run can produce (None: unbounded; ``high = "months"``:
    the run length in months). ``kind`` picks the interval ``abm analyze`` reports:
    ``"continuous"`` (counts, USD, ratios: a bootstrap percentile interval of the replicate mean)
    or ``"binary"`` (0/1 per run: the mean is a frequency over runs, a Wilson interval).
    ``worse`` says which direction is the worse outcome ("higher", "lower" or "" for neither).
    """

    definition: str
    unit: str
    low: float | None = 0.0
    high: float | str | None = None
    worse: str = "higher"
    kind: str = "continuous"
    computed_in: str = _RUNS


_SHARE = {"unit": "share", "low": 0.0, "high": 1.0}
_COUNT = {"unit": "count", "low": 0.0}
_CASCADE = "cascade.json, runs.parquet"
_SUMMARY = "summary(), cascade.json, runs.parquet"

CATALOGUE: dict[str, Metric] = {
    "defaults": Metric("defaults of all types over the run", **_COUNT, computed_in=_CASCADE),
    **{
        f"defaults_{t}": Metric(
            f"{t} defaults over the run",
            **_COUNT,
            computed_in=f"summary(), cascade.json (defaults_by_type.{t}), runs.parquet",
        )
        for t in AGENT_TYPES
    },
    **{
        f"default_share_{t}": Metric(
            f"{t}s that defaulted / {t}s present at the start",
            **_SHARE,
            computed_in=f"cascade.json (default_share_by_type.{t}), runs.parquet",
        )
        for t in AGENT_TYPES
    },
    "default_share_borrowers": Metric(
        "miners and neoclouds that defaulted / miners and neoclouds at the start", **_SHARE
    ),
    "run_had_default": Metric(
        "1 if any agent defaulted in the run, else 0 (its mean is the frequency of runs with a "
        "default)",
        **_SHARE,
        kind="binary",
    ),
    "run_had_lender_default": Metric(
        "1 if a lender defaulted in the run, else 0 (its mean is the frequency of runs with a "
        "lender default)",
        **_SHARE,
        kind="binary",
    ),
    **{
        f"defaults_cause_{c}": Metric(
            f"defaults caused by {c}",
            **_COUNT,
            computed_in=f"cascade.json (defaults_by_cause.{c}), runs.parquet",
        )
        for c in CAUSES
    },
    **{
        f"pushes_{c}": Metric(
            f"cascade-tree edges (default -> default pushes) through the {c} channel",
            **_COUNT,
            computed_in=f"cascade.json (pushes_by_channel.{c}), runs.parquet",
        )
        for c in CHANNELS
    },
    "cascade_roots": Metric(
        "defaults not pushed by another default (exogenous first dominoes)",
        **_COUNT,
        computed_in=_CASCADE,
    ),
    "cascade_depth": Metric(
        "defaults on the longest chain of the default genealogy", **_COUNT, computed_in=_CASCADE
    ),
    "first_default_month": Metric(
        "month of the first default (the events.csv month); NaN (None in cascade.json) without "
        "defaults",
        unit="month",
        high="months",
        worse="lower",
        computed_in=_CASCADE,
    ),
    "lender_losses_usd": Metric(
        "realised lender credit losses, cumulative", unit="USD", computed_in=_SUMMARY
    ),
    "lender_capital_start_usd": Metric(
        "lenders' equity capital at the start", unit="USD", worse=""
    ),
    "lender_loss_rate": Metric(
        "lender losses / lenders' starting capital: the systemic loss (can exceed 1)",
        unit="ratio",
    ),
    "outside_funder_losses_usd": Metric("losses passed to lenders' outside funders", unit="USD"),
    "lender_unrealised_inventory_loss_usd": Metric(
        "lenders' unrealised loss at the end of the run on the seized lots they still hold: carrying "
        "value above the market marks, lower of cost or market (abm/finance/impairment.py)",
        unit="USD",
        computed_in=_SUMMARY,
    ),
    "lender_losses_incl_unrealised_usd": Metric(
        "lenders' economic losses: realised credit losses (lender_losses_usd) + the unrealised "
        "loss on seized lots still held at the end of the run, each dollar once",
        unit="USD",
        computed_in=_SUMMARY,
    ),
    "lender_loss_rate_incl_unrealised": Metric(
        "lender_losses_incl_unrealised_usd / lenders' starting capital (can exceed 1)",
        unit="ratio",
    ),
    "lender_recovery_rate": Metric(
        "1 - write-offs / defaulted borrower debt; NaN without borrower defaults",
        **_SHARE,
        worse="lower",
    ),
    "fire_sale_units": Metric(
        "GPUs sold in the secondary market, cumulative",
        unit="GPUs",
        computed_in="summary(), runs.parquet",
    ),
    "min_price_to_fundamental": Metric(
        "lowest clearing price / fundamental value over the run (0.30 = a 70 % discount); NaN "
        "(None in summary() and cascade.json) without a secondary trade",
        unit="ratio",
        worse="lower",
        computed_in=_SUMMARY,
    ),
    "mean_price_to_fundamental_vw": Metric(
        "each month's lowest clearing price / fundamental value, averaged over the months with "
        "trades weighted by the GPUs sold; NaN without a secondary trade",
        unit="ratio",
        worse="lower",
    ),
    "credit_supply_change": Metric(
        "lending capacity at the end / at the start - 1", unit="ratio", low=-1.0, worse="lower"
    ),
    "btc_max_drawdown": Metric("largest peak-to-trough fall of the BTC price", **_SHARE),
    "stress_months": Metric("months in the stress regime", unit="months", high="months"),
    "debtrank_start": Metric(
        "single-hit DebtRank of the start network when every borrower loses 20 % of its equity",
        **_SHARE,
        computed_in=_CASCADE,
    ),
    "min_loan_mark": Metric(
        "lowest loan mark of any loan class over the run (share of principal at which lenders that "
        "mark to market carry performing loans; 1 = par, never re-marked)",
        **_SHARE,
        worse="lower",
    ),
    "loans_sold_usd": Metric(
        "principal of loans lenders sold to raise funding, cumulative", unit="USD"
    ),
    **{
        f"btc_ai_demand_corr_{regime}": Metric(
            f"realised correlation of the monthly log changes of the BTC price and of AI demand "
            f"over the months in the {regime} regime (a change counts in the regime of the month "
            f"it ends in); NaN with fewer than 3 such months or a constant series",
            unit="correlation",
            low=-1.0,
            high=1.0,
            worse="",
        )
        for regime in ("calm", "stress")
    },
}

# The definition of each metric by name (the columns of ``runs.parquet``, in order).
METRICS: dict[str, str] = {name: m.definition for name, m in CATALOGUE.items()}

# Names used by earlier versions -> current name: sweeps written before the rename still load
# (``abm analyze`` / ``abm plot`` rename the columns of an old runs table and accept old names).
ALIASES: dict[str, str] = {
    "deepest_price_to_fundamental": "min_price_to_fundamental",
    "price_to_fundamental_vw": "mean_price_to_fundamental_vw",
    "deepest_fire_sale_discount": "min_price_to_fundamental",
}


def canonical(name: str) -> str:
    """The current name of a metric given a current or an old name (unknown names unchanged)."""
    return ALIASES.get(name, name)


def metric_bounds(name: str, months: int | None = None) -> tuple[float, float]:
    """(low, high) of a metric's possible values; -inf / inf where unbounded.

    ``months`` (the run length) bounds the metrics declared with ``high = "months"``."""
    m = CATALOGUE.get(canonical(name))
    if m is None:
        return -np.inf, np.inf
    low = -np.inf if m.low is None else float(m.low)
    if m.high == "months":
        high = float(months) if months is not None else np.inf
    else:
        high = np.inf if m.high is None else float(m.high)
    return low, high


def _range_text(m: Metric) -> str:
    low = "-inf" if m.low is None else f"{m.low:g}"
    high = "run months" if m.high == "months" else ("inf" if m.high is None else f"{m.high:g}")
    return f"[{low}, {high}]" if high != "inf" else f">= {low}"


def catalogue_markdown() -> str:
    """docs/metrics.md: the metric catalogue as a Markdown table (tests keep the file in step)."""
    lines = [
        "# Metric catalogue",
        "",
        "One name per metric across `RunResult.summary()`, `cascade.json`, the sweep table",
        "`runs.parquet`, `abm analyze` and the sweep figures. Generated from",
        "`abm.sweep.metrics.CATALOGUE` by `abm.sweep.metrics.catalogue_markdown()`;",
        "`tests/test_metric_catalogue.py` fails when this file and the code differ.",
        "",
        "*Worse* names the direction of the worse outcome. *Interval* is what `abm analyze`",
        "reports for the mean over replicates: `bootstrap_percentile` (2,000 seeded resamples of",
        "the replicates) or `wilson` (a 0/1 outcome per run: the mean is a frequency over runs).",
        "Both stay inside the range. *Computed in*: `summary()` is `RunResult.summary()` (printed",
        "by `abm run`), `cascade.json` is `abm.analysis.cascade_metrics` (keys in brackets),",
        "`runs.parquet` is `abm.sweep.metrics.run_metrics` (one column per metric).",
        "Shares of agents are not treated as binomial counts: agents",
        "of one run share its shock path and push one another into default, so the replicate,",
        "not the agent, is the independent unit. Metrics are floats; NaN where undefined.",
        "Identical replicates give a zero-width bootstrap interval (e.g. [0, 0] when no run of a",
        "point defaulted): read it with `n`; the Wilson interval of `run_had_default` bounds how",
        "often runs default at that point. Fewer than 5 replicates: no interval",
        "(`too_few_replicates`).",
        "",
        "| name | unit | range | worse | interval | definition | computed in |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in CATALOGUE.items():
        method = "wilson" if m.kind == "binary" else "bootstrap_percentile"
        lines.append(
            f"| `{name}` | {m.unit} | {_range_text(m)} | {m.worse or '-'} | {method} | "
            f"{m.definition} | {m.computed_in} |"
        )
    lines += ["", "Old names still read from sweeps written before the rename:", ""]
    lines += [f"- `{old}` -> `{new}`" for old, new in ALIASES.items()]
    return "\n".join(lines) + "\n"


def _nan_if_none(value) -> float:
    return float("nan") if value is None else float(value)


def realised_correlation(ts, column_a: str, column_b: str, regime: str) -> float:
    """Pearson correlation of the monthly log changes of two positive time-series columns over the
    months whose ``regime`` column is ``regime`` (the change from month t-1 to t counts in month
    t's regime). NaN with fewer than 3 such changes, or when either series is constant there."""
    a = np.diff(np.log(ts[column_a].to_numpy(dtype=float)))
    b = np.diff(np.log(ts[column_b].to_numpy(dtype=float)))
    keep = (ts["regime"].to_numpy()[1:] == regime) & np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def run_metrics(result) -> dict[str, float]:
    """The flat summary metrics of a :class:`abm.results.RunResult` (keys = ``METRICS``)."""
    cm = result.cascade_metrics()
    ts, ev = result.timeseries, result.events
    out: dict[str, float] = {"defaults": float(cm["defaults"])}
    for t in AGENT_TYPES:
        out[f"defaults_{t}"] = float(cm["defaults_by_type"][t])
    for t in AGENT_TYPES:
        out[f"default_share_{t}"] = float(cm["default_share_by_type"][t])
    first = result.agents[result.agents["month"] == result.agents["month"].min()]
    n_borrowers = int(first["agent_type"].isin(BORROWER_TYPES).sum())
    n_defaulted = cm["defaults_by_type"]["miner"] + cm["defaults_by_type"]["neocloud"]
    out["default_share_borrowers"] = n_defaulted / n_borrowers if n_borrowers else float("nan")
    out["run_had_default"] = float(cm["defaults"] > 0)
    out["run_had_lender_default"] = float(cm["defaults_by_type"]["lender"] > 0)
    for c in CAUSES:
        out[f"defaults_cause_{c}"] = float(cm["defaults_by_cause"].get(c, 0))
    for c in CHANNELS:
        out[f"pushes_{c}"] = float(cm["pushes_by_channel"].get(c, 0))
    out["cascade_roots"] = float(cm["cascade_roots"])
    out["cascade_depth"] = float(cm["cascade_depth"])
    out["first_default_month"] = _nan_if_none(cm["first_default_month"])
    losses = float(ts["lender_losses_usd"].iloc[-1])
    capital0 = float(ts["lender_capital_usd"].iloc[0])
    out["lender_losses_usd"] = losses
    out["lender_capital_start_usd"] = capital0
    out["lender_loss_rate"] = losses / capital0 if capital0 > 0 else float("nan")
    out["outside_funder_losses_usd"] = float(ts["outside_funder_losses_usd"].iloc[-1])
    unrealised = float(ts["lender_unrealised_inventory_loss_usd"].iloc[-1])
    out["lender_unrealised_inventory_loss_usd"] = unrealised
    out["lender_losses_incl_unrealised_usd"] = losses + unrealised
    out["lender_loss_rate_incl_unrealised"] = (
        (losses + unrealised) / capital0 if capital0 > 0 else float("nan")
    )
    borrower_defaults = ev[(ev["event"] == "default") & (ev["agent_type"] != "lender")]
    defaulted_debt = float(borrower_defaults["amount_usd"].sum())
    written_off = float(ev.loc[ev["event"] == "write_off", "amount_usd"].sum())
    out["lender_recovery_rate"] = (
        1.0 - written_off / defaulted_debt if defaulted_debt > 0 else float("nan")
    )
    out["fire_sale_units"] = float(ts["fire_sale_units_cum"].iloc[-1])
    out["min_price_to_fundamental"] = _nan_if_none(cm["min_price_to_fundamental"])
    ratio = ts["min_discount"].to_numpy(dtype=float)
    units = ts["fire_sale_units"].to_numpy(dtype=float)
    traded = np.isfinite(ratio) & (units > 0)
    out["mean_price_to_fundamental_vw"] = (
        float(np.sum(ratio[traded] * units[traded]) / np.sum(units[traded]))
        if traded.any()
        else float("nan")
    )
    supply = ts["credit_supply_usd"].to_numpy(dtype=float)
    out["credit_supply_change"] = supply[-1] / supply[0] - 1.0 if supply[0] > 0 else float("nan")
    btc = ts["btc_price"].to_numpy(dtype=float)
    out["btc_max_drawdown"] = float(np.max(1.0 - btc / np.maximum.accumulate(btc)))
    out["stress_months"] = float((ts["regime"] == "stress").sum())
    out["debtrank_start"] = _nan_if_none(cm["debtrank_start"])
    marks = [c for c in ts.columns if c.startswith("loan_mark_")]
    # (NaN for runs written before loan marks and sales were recorded)
    out["min_loan_mark"] = float(ts[marks].to_numpy(dtype=float).min()) if marks else np.nan
    out["loans_sold_usd"] = (
        float(ts["loans_sold_usd_cum"].iloc[-1]) if "loans_sold_usd_cum" in ts else np.nan
    )
    for regime in ("calm", "stress"):
        out[f"btc_ai_demand_corr_{regime}"] = realised_correlation(
            ts, "btc_price", "ai_demand_perf_units", regime
        )
    missing = set(METRICS) - set(out)
    assert not missing, f"metrics not computed: {missing}"  # keeps METRICS and this in step
    return {name: out[name] for name in METRICS}
