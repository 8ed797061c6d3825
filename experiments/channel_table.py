"""The contagion-channel decomposition of a ``channels`` sweep as one Markdown table.

For each channel switch of the scenario schema (``abm.config.SCHEMA["channels"]``, read at run time,
so a new switch gets a row without editing this script) the table gives the paired difference
"all channels on" minus "this channel off, the others on" in neocloud, miner and lender defaults
and lender losses (USD: realised, and realised + unrealised on seized GPUs lenders still hold at
the end), per replicate, and its mean over replicates with a 95 % percentile
bootstrap interval (resampling replicates, :func:`abm.sweep.intervals.mean_interval`, seeded from
the sweep's master seed as ``abm analyze`` seeds it). The sweep uses common random numbers, so
replicate r of every design point faces the same shock path and the difference is the channel's
effect on that path, not seed noise.

Shares. A channel's share is its marginal effect over the all-on level: the fraction of the
all-on defaults (neocloud + miner + lender) or lender losses (realised + unrealised: economic
losses; the share of realised losses alone is reported beside it) that disappears when that channel
alone is switched off (a ratio of replicate means; its interval is the bootstrap of the same
ratio, resampling replicates jointly). Channels interact, so the marginal effects need not add up
to the effect of all channels together: the table also reports their sum, the total
"all on minus all off" and the difference (interaction = total - sum of marginal effects). When
the sweep holds every on/off combination (the full grid of ``experiments/channels.toml``), the
last column gives each channel's Shapley share: its marginal effect averaged over every order of
switching the channels on, which adds up exactly to the total; it is the share to quote when the
marginal shares do not add up.

If the metric catalogue (:mod:`abm.sweep.metrics`) has a realised BTC/AI correlation metric, its
mean and interval are reported at the all-on and all-off points.

Usage::

    abm sweep experiments/channels.toml                 # -> results/sweeps/channels/
    python experiments/channel_table.py results/sweeps/channels > channel_table.md

Exit codes: 0 table printed; 2 the folder is not a finished channels sweep (one line says why).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from abm.config import SCHEMA
from abm.sweep.intervals import MIN_REPLICATES, RESAMPLES, interval_seed, mean_interval
from abm.sweep.metrics import CATALOGUE

CONFIDENCE = 0.95
DEFAULT_FOLDER = Path("results/sweeps/channels")
# (metric, column title, scale, format) of the paired differences
COLUMNS = (
    ("defaults_neocloud", "neocloud defaults", 1.0, "{:+.2f}"),
    ("defaults_miner", "miner defaults", 1.0, "{:+.2f}"),
    ("defaults_lender", "lender defaults", 1.0, "{:+.2f}"),
    ("lender_losses_usd", "realised lender losses ($B)", 1e-9, "{:+.2f}"),
    ("lender_losses_incl_unrealised_usd", "lender losses incl. unrealised ($B)", 1e-9, "{:+.2f}"),
)
DEFAULT_METRICS = ("defaults_neocloud", "defaults_miner", "defaults_lender")
# the losses the shares are of: lenders' economic losses, realised + the unrealised loss on seized
# GPUs still held at the end of the run (realised losses alone move with how many GPUs lenders keep
# rather than sell, which the channels change: docs/validation.md, "Where the contagion went")
LOSS_METRIC = "lender_losses_incl_unrealised_usd"
REALISED_LOSS_METRIC = "lender_losses_usd"
SUM_ROW = "sum of the marginal effects"
TOTAL_ROW = "all channels (all on - all off)"
INTERACTION_ROW = "interaction (total - sum)"


class NotAChannelsSweepError(ValueError):
    """The folder is not a finished sweep over the channel switches (the message says why)."""


def channel_switches() -> list[str]:
    """The channel switches of the scenario schema, in schema order (``[channels]`` keys)."""
    return list(SCHEMA["channels"])


def read_sweep(folder: Path) -> tuple[pd.DataFrame, dict, dict[str, str]]:
    """(ok runs, manifest design, {switch: runs column}) of a finished channels sweep.

    Raises :class:`NotAChannelsSweepError` when a file is missing, the design does not vary every
    channel switch on its own, or the runs are not paired (no common random numbers)."""
    manifest_path, runs_path = folder / "manifest.json", folder / "runs.parquet"
    if not manifest_path.is_file() or not runs_path.is_file():
        raise NotAChannelsSweepError(
            f"{folder}: no finished sweep (manifest.json and runs.parquet needed; "
            "run abm sweep experiments/channels.toml first)"
        )
    design = json.loads(manifest_path.read_text())["design"]
    columns = {}
    for p in design.get("parameters", []):
        targets = p.get("targets", [])
        if len(targets) == 1 and targets[0].startswith("channels."):
            columns[targets[0].removeprefix("channels.")] = p["name"]
    missing = [s for s in channel_switches() if s not in columns]
    if missing:
        raise NotAChannelsSweepError(
            f"{folder}: not a channels sweep: no design parameter sets "
            f"{', '.join('channels.' + s for s in missing)} on its own "
            "(experiments/channels.toml varies every channel switch)"
        )
    if not design.get("common_random_numbers"):
        raise NotAChannelsSweepError(
            f"{folder}: common_random_numbers is false: runs at different points are not paired"
        )
    runs = pd.read_parquet(runs_path)
    if LOSS_METRIC not in runs:
        raise NotAChannelsSweepError(
            f"{folder}: runs.parquet has no {LOSS_METRIC} (a sweep written before the metric "
            "existed): run the sweep again"
        )
    if "status" in runs:
        runs = runs[runs["status"] == "ok"]
    return runs, design, columns


def point_values(runs: pd.DataFrame, columns: dict[str, str], off: frozenset[str]) -> pd.DataFrame:
    """The runs of the design point with exactly the switches in ``off`` off, indexed by replicate.

    Raises :class:`NotAChannelsSweepError` when the sweep has no such point."""
    mask = np.ones(len(runs), dtype=bool)
    for switch, col in columns.items():
        mask &= runs[col].astype(bool).to_numpy() == (switch not in off)
    sub = runs[mask]
    if sub.empty:
        label = "all channels on" if not off else f"{', '.join(sorted(off))} off"
        raise NotAChannelsSweepError(f"the sweep has no point with {label} (the others on)")
    return sub.set_index("replicate").sort_index()


def replicate_table(frames: dict[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """One metric at several design points as a (replicate x point) frame over the replicates
    every point finished with a finite value: rows are matched by replicate number (not row
    order), so differences of its columns are the paired (common-random-numbers) differences."""
    table = pd.DataFrame({label: f[metric].astype(float) for label, f in frames.items()})
    return table.dropna()


def _number(value: float, fmt: str) -> str:
    """``value`` in ``fmt`` (two decimals), with -0.00 written as 0.00."""
    return fmt.format(round(value, 2) + 0.0)


def interval_text(x: np.ndarray, seed: np.random.SeedSequence, scale: float, fmt: str) -> str:
    """ "mean [low, high]" of the per-replicate values ``x`` (95 % bootstrap; no interval below
    ``MIN_REPLICATES`` replicates, as ``abm analyze``)."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "-"
    lo, hi, _ = mean_interval(x, "continuous", CONFIDENCE, seed)
    text = _number(x.mean() * scale, fmt)
    if np.isfinite(lo):
        text += f" [{_number(lo * scale, fmt)}, {_number(hi * scale, fmt)}]"
    return text


def ratio_interval(
    num: np.ndarray, den: np.ndarray, seed: np.random.SeedSequence
) -> tuple[float, float, float]:
    """(ratio of means, low, high): mean(num) / mean(den) over paired replicates (same length),
    with a percentile bootstrap resampling the replicates jointly; NaN where the denominator's
    mean is 0, NaN bounds below ``MIN_REPLICATES`` replicates."""
    n = len(num)
    if n == 0 or den.mean() == 0:
        return math.nan, math.nan, math.nan
    ratio = float(num.mean() / den.mean())
    if n < MIN_REPLICATES:
        return ratio, math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    dens = den[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num[idx].mean(axis=1) / dens
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = np.quantile(ratios, [0.5 - CONFIDENCE / 2, 0.5 + CONFIDENCE / 2])
    return ratio, float(lo), float(hi)


def share_text(share: tuple[float, float, float]) -> str:
    """A share in per cent with its interval, "-" when undefined."""
    ratio, lo, hi = share
    if not np.isfinite(ratio):
        return "-"
    # round() gives ints, so a share of -0.3 % reads 0, not -0
    text = f"{round(100 * ratio)} %"
    return text + (f" [{round(100 * lo)}, {round(100 * hi)}]" if np.isfinite(lo) else "")


def total_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``defaults_counted`` column: neocloud + miner + lender defaults."""
    return frame.assign(defaults_counted=frame[list(DEFAULT_METRICS)].sum(axis=1))


def shapley_effects(
    runs: pd.DataFrame, columns: dict[str, str], metric: str
) -> pd.DataFrame | None:
    """Per-replicate Shapley effect of every switch on ``metric``, or None without the full grid.

    The value of a set S of channels on is the metric with exactly S on; switch s's Shapley effect
    is the mean, over every order of switching channels on, of the change when s goes on (the
    weights |S|! (n - |S| - 1)! / n! over the sets S without s). The effects of all switches add
    up to all-on minus all-off in every replicate. Returns a (replicate x switch) frame over the
    replicates every point finished with a finite value."""
    switches = list(columns)
    n = len(switches)
    try:
        by_off = {
            frozenset(off): point_values(runs, columns, frozenset(off))
            for k in range(n + 1)
            for off in itertools.combinations(switches, k)
        }
    except NotAChannelsSweepError:
        return None
    common = sorted(
        set.intersection(
            *(set(f.index[np.isfinite(f[metric].astype(float))]) for f in by_off.values())
        )
    )
    out = {}
    for s in switches:
        effect = np.zeros(len(common))
        others = [o for o in switches if o != s]
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for on in itertools.combinations(others, k):
                off_without = frozenset(switches) - set(on) - {s}  # S on, s off
                with_s = by_off[off_without].loc[common, metric].to_numpy(float)
                without = by_off[off_without | {s}].loc[common, metric].to_numpy(float)
                effect += weight * (with_s - without)
        out[s] = effect
    return pd.DataFrame(out, index=pd.Index(common, name="replicate"))


def shapley_share(
    effects: pd.DataFrame | None,
    all_on: pd.DataFrame,
    metric: str,
    label: str,
    master_seed: int,
    tag: int,
) -> str:
    """The Shapley share cell of one table row: a switch's Shapley effect (or, on the total row,
    the sum of all of them, which is the total itself) over the all-on level; "-" on the other
    rows and without the full grid."""
    if effects is None:
        return "-"
    if label in effects:
        effect = effects[label].to_numpy()
    elif label == TOTAL_ROW:
        effect = effects.sum(axis=1).to_numpy()
    else:
        return "-"
    level = all_on.loc[effects.index, metric].astype(float).to_numpy()
    return share_text(ratio_interval(effect, level, interval_seed(master_seed, tag, metric)))


def table_lines(runs: pd.DataFrame, design: dict, columns: dict[str, str]) -> list[str]:
    """The Markdown lines of the decomposition table and of the levels table under it.

    Rows: one per channel switch (all on minus that channel off), then the sum of those marginal
    effects, the total (all on minus all off) and the interaction (total minus the sum)."""
    seed = int(design["master_seed"])
    runs = total_defaults(runs)
    switches = channel_switches()
    frames = {"on": point_values(runs, columns, frozenset())}
    frames |= {s: point_values(runs, columns, frozenset({s})) for s in switches}
    frames["off"] = point_values(runs, columns, frozenset(switches))
    share_metrics = ("defaults_counted", LOSS_METRIC)
    marginal_share_metrics = (*share_metrics, REALISED_LOSS_METRIC)
    metrics = [c[0] for c in COLUMNS] + ["defaults_counted"]
    # per metric: {row label: per-replicate effect}, and the all-on level, on common replicates
    effects: dict[str, dict[str, np.ndarray]] = {}
    levels: dict[str, np.ndarray] = {}
    for m in metrics:
        t = replicate_table(frames, m)
        on = t["on"].to_numpy()
        rows = {s: on - t[s].to_numpy() for s in switches}
        rows[SUM_ROW] = np.sum([rows[s] for s in switches], axis=0)
        rows[TOTAL_ROW] = on - t["off"].to_numpy()
        rows[INTERACTION_ROW] = rows[TOTAL_ROW] - rows[SUM_ROW]
        effects[m], levels[m] = rows, on
    shapley = {m: shapley_effects(runs, columns, m) for m in share_metrics}

    header = [
        "channel switched off",
        *(f"Δ {c[1]}" for c in COLUMNS),
        "share of defaults",
        "share of losses incl. unrealised",
        "share of realised losses",
        "Shapley share of defaults",
        "Shapley share of losses",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, label in enumerate(effects[LOSS_METRIC], start=1):
        cells = [
            interval_text(effects[m][label], interval_seed(seed, 1000 + i, m), scale, fmt)
            for m, _, scale, fmt in COLUMNS
        ]
        cells += [
            share_text(
                ratio_interval(effects[m][label], levels[m], interval_seed(seed, 2000 + i, m))
            )
            for m in marginal_share_metrics
        ]
        for m in share_metrics:
            cells.append(shapley_share(shapley[m], frames["on"], m, label, seed, 2000 + i))
        name = f"`{label}`" if label in switches else label
        lines.append("| " + " | ".join([name, *cells]) + " |")
    lines += ["", *level_lines(frames["on"], frames["off"], seed)]
    n = len(levels[LOSS_METRIC])
    lines += [
        "",
        f"{n} paired replicates (common random numbers) of `{design['scenario']}`, "
        f"{design['months']} months; cells: mean [95 % bootstrap interval over replicates]. "
        "Share = effect / all-on level (defaults: neocloud + miner + lender; losses: realised + "
        "unrealised on seized GPUs lenders still hold at the end); the Shapley shares add up to "
        "the total row.",
    ]
    return lines


def correlation_metrics() -> list[str]:
    """The catalogue's realised BTC/AI correlation metrics (names with "corr"), if any."""
    return [m for m in CATALOGUE if "corr" in m]


def level_lines(all_on: pd.DataFrame, all_off: pd.DataFrame, master_seed: int) -> list[str]:
    """Markdown lines of the levels at the all-on and all-off points (and the realised BTC/AI
    correlation when the metric catalogue has one and the runs recorded it)."""
    corr = [m for m in correlation_metrics() if m in all_on]
    cols = [*COLUMNS, *((m, m.replace("_", " "), 1.0, "{:.2f}") for m in corr)]
    header = ["point", *(c[1] for c in cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for tag, (label, frame) in enumerate((("all channels on", all_on), ("all off", all_off))):
        cells = [
            interval_text(
                frame[m].astype(float).to_numpy(),
                interval_seed(master_seed, 4000 + tag, m),
                scale,
                fmt.replace("+", ""),
            )
            for m, _, scale, fmt in cols
        ]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    if not corr:
        lines += [
            "",
            "No realised BTC/AI correlation metric in abm/sweep/metrics.py at this commit.",
        ]
    return lines


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    if len(argv) > 1:
        print("usage: python experiments/channel_table.py [SWEEP_FOLDER]", file=sys.stderr)
        return 2
    try:
        runs, design, columns = read_sweep(folder)
        lines = table_lines(runs, design, columns)
    except NotAChannelsSweepError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
