"""The 2021-22 ASIC crisis backtest (issue 14): the historical record and the model beside it.

* :func:`record`: the packaged record (``abm/data/asic_2022_*.csv``): monthly rows 2021-11 .. 2023-12
  and the episode's dated facts, each with its source and confidence (docs/validation.md).
* :func:`model_series`: the same measures read off runs of the ``asic_2022`` scenario (one
  :class:`~abm.results.RunResult` per seed; nothing is re-simulated).
* :func:`comparison_table`: one row per measure, the model's median and 10-90 % range over seeds
  beside the record, with units.
* :func:`price_band_figure`: the model's ASIC price band by efficiency tier over the historical index.

Efficiency tiers are the Hashrate Index's: ``new`` below 38 J/TH, ``mid`` 38-68 J/TH, ``old`` above
68 J/TH. Prices are USD per TH of nominal hashrate (a machine's price / its ``th_per_unit``).
Percentiles over seeds are ``numpy.nanpercentile`` (linear interpolation) of the runs that have the
measure (a run with no default has no recovery share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from abm.backtest_record import (
    MONTHS,
    TIER_BOUNDS_J_PER_TH,
    TIERS,
    TROUGH_MONTH,
    Record,
    record,
    record_beside_measures,
    tier_of,
)
from abm.finance.loans import ACTIVE, GPU_TERM

__all__ = [
    "MONTHS",
    "RUN_MEASURES",
    "TIERS",
    "ModelSeries",
    "Record",
    "asic_generations",
    "comparison_table",
    "model_series",
    "price_band_figure",
    "record",
    "tier_of",
]


def asic_generations(config: dict) -> pd.DataFrame:
    """The ASIC generations of a scenario (``equipment = "asic"``), one row per generation in
    config order: ``gen``, ``tier``, ``th_per_unit`` (TH/s), ``j_per_th``, ``list_price_usd``
    (per machine)."""
    rows = [
        {
            "gen": name,
            "tier": tier_of(float(g["j_per_th"])),
            "th_per_unit": float(g["th_per_unit"]),
            "j_per_th": float(g["j_per_th"]),
            "list_price_usd": float(g.get("list_price_usd", np.nan)),
        }
        for name, g in config["generations"].items()
        if g.get("equipment") == "asic"
    ]
    return pd.DataFrame(rows, columns=["gen", "tier", "th_per_unit", "j_per_th", "list_price_usd"])


@dataclass(frozen=True)
class ModelSeries:
    """The backtest's measures read off a list of runs.

    ``generations``: one row per seed, month and ASIC generation: ``price_usd_per_unit`` (the
    month's secondary clearing price, or the market mark when the generation did not trade),
    ``basis`` ('trade' or 'mark'), ``price_usd_per_th``, ``fundamental_usd_per_unit``.
    ``tiers``: one row per seed, month and tier: ``price_usd_per_th`` (mean of the tier's
    generations' USD/TH that month), ``index`` (over the seed's first month), ``trade_share`` (share
    of the tier's generations priced by a trade).
    ``runs``: one row per seed with the scalar measures of :data:`RUN_MEASURES`.
    """

    generations: pd.DataFrame
    tiers: pd.DataFrame
    runs: pd.DataFrame


#: Scalar measures per run: column of ``ModelSeries.runs`` -> (description, unit).
RUN_MEASURES: dict[str, tuple[str, str]] = {
    **{
        f"asic_{t}_change_pct": (
            f"ASIC price, {t} tier: change from the first month to {TROUGH_MONTH}",
            "%",
        )
        for t in TIERS
    },
    "revenue_first_usd_m_per_day": ("miner revenue per day, first month", "USD M/day"),
    "revenue_trough_usd_m_per_day": (f"miner revenue per day, {TROUGH_MONTH}", "USD M/day"),
    "revenue_change_pct": (f"miner revenue per day: change to {TROUGH_MONTH}", "%"),
    "hashprice_trough_usd_per_ph_day": (f"hashprice, {TROUGH_MONTH}", "USD/PH/day"),
    "miner_defaults": ("miner defaults over the run", "count"),
    "first_default_month": ("month of the first miner default (0 = first month)", "month"),
    "median_default_month": ("median month of the miner defaults (0 = first month)", "month"),
    "machines_seized": ("machines seized from defaulted miners", "machines"),
    "machines_sold_by_lenders": ("seized machines sold by lenders", "machines"),
    "machines_traded": ("machines sold on the secondary market (all sellers)", "machines"),
    "deepest_discount_to_fundamental_pct": (
        "deepest secondary price discount to fundamental value (any generation-month with a trade)",
        "%",
    ),
    "mean_discount_to_fundamental_pct": (
        "mean discount to fundamental value over generation-months with a trade",
        "%",
    ),
    "deepest_discount_to_prior_mark_pct": (
        "deepest clearing-price discount to the previous month's market mark (the index)",
        "%",
    ),
    "recovery_share_of_principal_pct": (
        "lenders' recovery from seized machines, share of machine-loan principal at default",
        "%",
    ),
    "recovery_share_of_2021_value_pct": (
        "lenders' recovery from seized machines, share of their first-month value",
        "%",
    ),
    "machine_loans_defaulted_share_pct": (
        "machine-backed claims at default, share of the starting machine-backed book (principal)",
        "%",
    ),
}


def _generation_frame(result, gens: pd.DataFrame) -> pd.DataFrame:
    ts = result.timeseries
    frames = []
    for g in gens.itertuples():
        trade = ts[f"secondary_price_{g.gen}"].to_numpy(dtype=float)
        mark = ts[f"mark_{g.gen}"].to_numpy(dtype=float)
        traded = np.isfinite(trade) & (trade > 0)
        price = np.where(traded, trade, mark)
        frames.append(
            pd.DataFrame(
                {
                    "seed": result.seed,
                    "month": ts["month"].to_numpy(),
                    "date": ts["date"].astype(str).to_numpy(),
                    "gen": g.gen,
                    "tier": g.tier,
                    "price_usd_per_unit": price,
                    "basis": np.where(traded, "trade", "mark"),
                    "price_usd_per_th": price / g.th_per_unit,
                    "traded_usd_per_unit": np.where(traded, trade, np.nan),
                    "mark_usd_per_unit": mark,
                    "fundamental_usd_per_unit": ts[f"fundamental_value_{g.gen}"].to_numpy(
                        dtype=float
                    ),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _tier_frame(gen_frame: pd.DataFrame) -> pd.DataFrame:
    priced = gen_frame[np.isfinite(gen_frame["price_usd_per_th"])]
    tiers = (
        priced.assign(traded=priced["basis"] == "trade")
        .groupby(["seed", "month", "date", "tier"], as_index=False)
        .agg(price_usd_per_th=("price_usd_per_th", "mean"), trade_share=("traded", "mean"))
    )
    first = (
        tiers.sort_values("month").groupby(["seed", "tier"])["price_usd_per_th"].transform("first")
    )
    tiers["index"] = tiers["price_usd_per_th"] / first
    return tiers.sort_values(["seed", "tier", "month"], ignore_index=True)


def _at(frame: pd.DataFrame, date: str, column: str) -> float:
    values = frame.loc[frame["date"] == date, column]
    return float(values.iloc[0]) if len(values) else np.nan


def _parents(text) -> set[int]:
    if not isinstance(text, str) or not text:
        return set()
    return {int(p) for p in text.split(";") if p}


def _machine_loans(result, first_marks: dict, last_marks: dict) -> dict:
    """Seizures, sales and recoveries on machine-backed loans (kind ``GPU_TERM``) of defaulted
    miners, per lender-borrower pair with such a loan: see docs/validation.md for the definitions.

    The claim at default is read from the events (claim reduction at seizure, write-offs) and the
    principal still claimed, not from the loan rows: a loan fully covered by its seizure ends
    ``repaid``, like one prepaid before the default, so the rows alone cannot tell them apart."""
    m, ev = result.model, result.events
    index_of = {int(u): k for k, u in enumerate(np.asarray(m.agent_ids).tolist())}
    loans, lots = m.loans, m.lots
    kind, lender, borrower = (np.asarray(x) for x in (loans.kind, loans.lender, loans.borrower))
    defaults = ev[(ev["event"] == "default") & (ev["agent_type"] == "miner")]
    default_month = {
        index_of[int(a)]: int(t)
        for a, t in zip(defaults["agent_id"], defaults["month"], strict=True)
    }
    defaulted_borrower = np.array([b in default_month for b in borrower.tolist()], dtype=bool)
    month_of_default = np.array([default_month.get(b, 10**9) for b in borrower.tolist()])
    machine_defaulted = (
        (kind == GPU_TERM)
        & defaulted_borrower
        & (np.asarray(loans.status) != ACTIVE)
        & (np.asarray(loans.maturity_month) > month_of_default)
    )
    start_principal = np.asarray(m.start_snapshot["principal_usd"], dtype=float)
    n0 = len(start_principal)
    book = float(start_principal[kind[:n0] == GPU_TERM].sum())

    seizures = ev[(ev["event"] == "seizure") & ev["counterparty_id"].isin(defaults["agent_id"])]
    trades = ev[ev["event"] == "trade"]
    write_offs = ev[ev["event"] == "write_off"]
    lot_of_event = {int(e): int(r) for r, e in m.lot_origin_event.items()}
    gen_names = list(m.gen_names)
    pairs = {(int(lender[r]), int(borrower[r])) for r in np.flatnonzero(machine_defaulted)}
    claim = recovered = value_2021 = 0.0
    sold_by_lenders = 0
    for lend, bor in sorted(pairs):
        lid, bid = int(m.agent_ids[lend]), int(m.agent_ids[bor])
        pair_rows = np.flatnonzero((lender == lend) & (borrower == bor))
        machine_rows = pair_rows[kind[pair_rows] == GPU_TERM]
        start_rows = pair_rows[pair_rows < n0]
        pair_start = start_principal[start_rows].sum()
        machine_share = (
            start_principal[start_rows[kind[start_rows] == GPU_TERM]].sum() / pair_start
            if pair_start > 0
            else 1.0
        )
        mine = seizures[(seizures["agent_id"] == lid) & (seizures["counterparty_id"] == bid)]
        wo = write_offs[(write_offs["agent_id"] == lid) & (write_offs["counterparty_id"] == bid)]
        still_open = np.asarray(loans.principal_usd)[machine_rows][
            np.asarray(loans.status)[machine_rows] != ACTIVE
        ]
        claim += float(mine["amount_usd"].sum()) + machine_share * float(wo["amount_usd"].sum())
        claim += float(still_open.sum())
        for s in mine.itertuples():
            sales = trades[
                (trades["agent_id"] == lid)
                & trades["parent_event_ids"].map(lambda p, e=int(s.event_id): e in _parents(p))
            ]
            sold_by_lenders += int(sales["units"].sum())
            recovered += float(sales["amount_usd"].sum())
            row = lot_of_event.get(int(s.event_id))
            if row is None:
                continue
            g = gen_names[int(lots.gen[row])]
            if int(lots.owner[row]) == lend:  # units the lender still holds, at the last mark
                recovered += float(lots.units[row]) * last_marks.get(g, 0.0)
            value_2021 += float(s.units) * first_marks.get(g, np.nan)
    return {
        "machines_seized": float(seizures["units"].sum()),
        "machines_sold_by_lenders": float(sold_by_lenders),
        "recovery_share_of_principal_pct": 100.0 * recovered / claim if claim > 0 else np.nan,
        "recovery_share_of_2021_value_pct": 100.0 * recovered / value_2021
        if value_2021 > 0
        else np.nan,
        "machine_loans_defaulted_share_pct": 100.0 * claim / book if book > 0 else np.nan,
    }


def _run_measures(result, gens: pd.DataFrame, gen_frame: pd.DataFrame, tiers: pd.DataFrame) -> dict:
    ts, ev = result.timeseries, result.events
    out: dict[str, float] = {"seed": result.seed}
    for t in TIERS:
        index = tiers[tiers["tier"] == t]
        out[f"asic_{t}_change_pct"] = 100.0 * (_at(index, TROUGH_MONTH, "index") - 1.0)
    days = np.array([pd.Period(d, freq="M").days_in_month for d in ts["date"].astype(str)])
    revenue = pd.DataFrame(
        {"date": ts["date"].astype(str), "usd_m": ts["miner_revenue_usd"].to_numpy() / days / 1e6}
    )
    first, trough = float(revenue["usd_m"].iloc[0]), _at(revenue, TROUGH_MONTH, "usd_m")
    out["revenue_first_usd_m_per_day"] = first
    out["revenue_trough_usd_m_per_day"] = trough
    out["revenue_change_pct"] = 100.0 * (trough / first - 1.0) if first > 0 else np.nan
    hashprice = ts[["date", "hashprice_usd_per_ph_day"]].astype({"date": str})
    out["hashprice_trough_usd_per_ph_day"] = _at(
        hashprice, TROUGH_MONTH, "hashprice_usd_per_ph_day"
    )
    months = ev.loc[(ev["event"] == "default") & (ev["agent_type"] == "miner"), "month"]
    out["miner_defaults"] = float(len(months))
    out["first_default_month"] = float(months.min()) if len(months) else np.nan
    out["median_default_month"] = float(months.median()) if len(months) else np.nan
    out["machines_traded"] = float(ev.loc[ev["event"] == "trade", "units"].sum())
    traded = gen_frame[np.isfinite(gen_frame["traded_usd_per_unit"])]
    to_fundamental = 1.0 - traded["traded_usd_per_unit"] / traded["fundamental_usd_per_unit"]
    to_fundamental = to_fundamental[np.isfinite(to_fundamental)]
    out["deepest_discount_to_fundamental_pct"] = (
        100.0 * float(to_fundamental.max()) if len(to_fundamental) else np.nan
    )
    out["mean_discount_to_fundamental_pct"] = (
        100.0 * float(to_fundamental.mean()) if len(to_fundamental) else np.nan
    )
    prior = gen_frame.sort_values("month").groupby("gen")["mark_usd_per_unit"].shift(1)
    to_mark = (1.0 - gen_frame["traded_usd_per_unit"] / prior).dropna()
    to_mark = to_mark[np.isfinite(to_mark)]
    out["deepest_discount_to_prior_mark_pct"] = (
        100.0 * float(to_mark.max()) if len(to_mark) else np.nan
    )
    marks = gen_frame.sort_values("month").groupby("gen")["mark_usd_per_unit"]
    list_price = dict(zip(gens["gen"], gens["list_price_usd"], strict=True))
    first_marks = {
        g: (v if np.isfinite(v) else list_price[g]) for g, v in marks.first().items()
    }  # ``first`` skips NaN: a generation released later is valued at its first mark
    last_marks = {g: float(v) for g, v in marks.last().items()}
    out.update(_machine_loans(result, first_marks, last_marks))
    return out


def model_series(results) -> ModelSeries:
    """The backtest's measures from runs of an ASIC scenario (a list of
    :class:`~abm.results.RunResult`, one per seed; each needs ``timeseries``, ``events``,
    ``config``, ``seed`` and ``model``).

    ASIC price by tier (USD/TH): each generation's secondary clearing price in months it traded,
    else its market mark (``mark_<gen>``), over its ``th_per_unit``; a tier's price is the plain mean
    of its generations' USD/TH; the index divides by the seed's first month. Miner revenue per day:
    ``miner_revenue_usd`` / the month's calendar days. Machine-loan measures: docs/validation.md.
    """
    gen_frames, tier_frames, runs = [], [], []
    for result in results:
        gens = asic_generations(result.config)
        if gens.empty:
            raise ValueError(f"seed {result.seed}: the scenario has no ASIC generation")
        gen_frame = _generation_frame(result, gens)
        tiers = _tier_frame(gen_frame)
        runs.append(_run_measures(result, gens, gen_frame, tiers))
        gen_frames.append(gen_frame)
        tier_frames.append(tiers)
    if not runs:
        raise ValueError("model_series needs at least one run")
    return ModelSeries(
        generations=pd.concat(gen_frames, ignore_index=True),
        tiers=pd.concat(tier_frames, ignore_index=True),
        runs=pd.DataFrame(runs),
    )


def comparison_table(results, rec: Record | None = None) -> pd.DataFrame:
    """Model beside the record, one row per measure of :data:`RUN_MEASURES`.

    ``results``: runs (as for :func:`model_series`) or a :class:`ModelSeries`. Columns:
    ``measure``, ``description``, ``unit``, ``record`` (text), ``record_low`` / ``record_high``
    (numbers; NaN where the record has none; a low without a high is a lower bound, "at least"),
    ``record_basis`` (fact ids and confidence), ``model_median``, ``model_p10``, ``model_p90`` (over
    the runs that have the measure), ``model_runs`` (how many runs have it) and ``overlap`` (True
    when the record's range, or value, or lower bound meets the model's 10-90 % range; False when
    either side is missing)."""
    series = results if isinstance(results, ModelSeries) else model_series(results)
    rec = rec if rec is not None else record()
    reference = record_beside_measures(rec)
    rows = []
    for measure, (description, unit) in RUN_MEASURES.items():
        values = series.runs[measure].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        text, low, high, basis = reference[measure]
        p10, median, p90 = (
            np.percentile(values, [10, 50, 90]) if len(values) else (np.nan, np.nan, np.nan)
        )
        if np.isfinite(high):
            low, high = min(low, high), max(low, high)
        top = high if np.isfinite(high) else np.inf  # a lower bound is open above
        rows.append(
            {
                "measure": measure,
                "description": description,
                "unit": unit,
                "record": text,
                "record_low": low,
                "record_high": high,
                "record_basis": basis,
                "model_median": median,
                "model_p10": p10,
                "model_p90": p90,
                "model_runs": len(values),
                "overlap": bool(len(values) and np.isfinite(low) and p90 >= low and p10 <= top),
            }
        )
    return pd.DataFrame(rows)


def price_band_figure(results, rec: Record | None = None):
    """The model's ASIC price by efficiency tier (USD/TH, log scale; median and 10-90 % band over
    the runs) over the Hashrate Index (sourced months as dots, the Nov 2021 chart reading as an
    open circle, interpolated months dashed). ``results``: runs or a :class:`ModelSeries`.
    Returns a :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot state)."""
    import matplotlib

    from abm.viz.style import STYLE, new_figure

    series = results if isinstance(results, ModelSeries) else model_series(results)
    rec = rec if rec is not None else record()
    n_runs = series.runs["seed"].nunique()
    with matplotlib.rc_context(STYLE):
        fig = new_figure(figsize=(10, 3.4))
        axes = fig.subplots(1, len(TIERS), sharey=True)
        hist = rec.monthly.assign(
            when=pd.PeriodIndex(rec.monthly["month"], freq="M").to_timestamp()
        )
        for ax, tier in zip(axes, TIERS, strict=True):
            band = (
                series.tiers[series.tiers["tier"] == tier]
                .groupby("date")["price_usd_per_th"]
                .quantile([0.1, 0.5, 0.9])
                .unstack()
            )
            if len(band):
                when = pd.PeriodIndex(band.index, freq="M").to_timestamp()
                ax.fill_between(when, band[0.1], band[0.9], color="#0072B2", alpha=0.25, lw=0)
                ax.plot(
                    when, band[0.5], color="#0072B2", label=f"model median, 10-90 % ({n_runs} runs)"
                )
            price, basis = hist[f"asic_{tier}_usd_per_th"], hist[f"asic_{tier}_basis"]
            ax.plot(hist["when"], price, ls="--", color="0.3", lw=1.0, label="index, interpolated")
            src, chart = basis == "source", basis == "chart"
            ax.plot(hist["when"][src], price[src], "o", color="0.1", ms=4, label="index, reported")
            ax.plot(
                hist["when"][chart], price[chart], "o", mfc="none", color="0.1", ms=5,
                label="index, chart reading (approx.)",
            )  # fmt: skip
            low, high = TIER_BOUNDS_J_PER_TH
            bounds = {"new": f"< {low:.0f}", "mid": f"{low:.0f}-{high:.0f}", "old": f"> {high:.0f}"}
            ax.set_title(f"{tier} tier ({bounds[tier]} J/TH)")
            ax.set_yscale("log")
            ax.tick_params(axis="x", labelrotation=45)
        axes[0].set_ylabel("ASIC price (USD per TH)")
        axes[0].legend(loc="lower left")
        fig.suptitle("ASIC secondary prices by efficiency tier: the model over the Hashrate Index")
    return fig
