"""The ``abm`` command.

``abm run [--scenario NAME|PATH] [--seed N] [--months N] [--out DIR] [--set key=value ...]`` runs one
scenario, prints a summary and writes its outputs; ``abm scenarios`` lists the packaged scenarios;
``abm sweep EXPERIMENT.toml`` runs an experiment and ``abm analyze DIR`` summarises it;
``abm reproduce DIR`` re-runs a run or sweep folder and compares (exit 0 identical, 1 different);
``abm params [SCENARIO]`` lists every parameter with its value, range, unit and source.
``abm calibration [--seeds N] [--out DIR] [--target ID ...]`` compares the model with observed targets.
Bad input prints one line naming the field and what is allowed, exits with code 2 and writes nothing;
so does a destination ``abm run`` cannot write (disk full, read-only), leaving any earlier result.
Ctrl+C exits with 130; ``abm run`` and ``abm sweep`` exit with 143 on SIGTERM (temp folders
removed, no child process left). ``abm run`` draws its figure in a forked child while it runs the
model (:mod:`abm.viz.overview_process`) and exits with 1 when ``overview.png`` cannot be drawn
(nothing written).
(Over 450 lines because it holds the parser and a short handler for each of the nine verbs;
the work itself lives in the package.)
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import signal
import sys
from pathlib import Path

from abm.config import ConfigError, load_scenario, packaged_scenarios, parse_override
from abm.mesa_import import import_mesa

EXIT_DIFFERENT = 1  # abm reproduce: an output differs from the stored one
EXIT_BAD_INPUT = 2
EXIT_SWEEP_STOPPED = 1  # abm sweep stopped before every run was done (resume it)
EXIT_RUNS_FAILED = 3  # abm sweep finished, but some runs failed (tracebacks in failures/)
EXIT_SIGINT = 130  # 128 + SIGINT, the shell's convention
EXIT_SIGTERM = 143  # 128 + SIGTERM
EXIT_FIGURE_FAILED = 1  # abm run: overview.png could not be drawn (nothing written)
MAX_SEED = 2**63 - 1
HOST_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"abm: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(message: str, limit: int = 2000) -> str:
    """``message`` with control characters escaped, cut to ``limit`` characters: one line."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_in(low: int, high: int | None = None):
    """An argparse type: an integer in [``low``, ``high``]; argparse's message names the option."""

    def parse(text: str) -> int:
        shown = _one_line(repr(text), 60)
        try:
            value = int(text) if len(text) <= 40 else None
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"must be an integer, got {shown}")
        if value < low or (high is not None and value > high):
            allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {value}")
        return value

    return parse


def _non_negative_int(name: str = ""):  # ``name`` kept for callers; argparse names the option
    return _int_in(0)


def _positive_int(name: str = ""):
    return _int_in(1)


_months = _int_in(1, 600)
_port = _int_in(1, 65535)


def _host(text: str) -> str:
    """An argparse type: an IP address or a host name (RFC 1123 labels, at most 253 characters)."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    labels = text.split(".")
    if 0 < len(text) <= 253 and all(HOST_LABEL_RE.fullmatch(label) for label in labels):
        return text
    raise argparse.ArgumentTypeError(
        f"must be an IP address or a host name, got {_one_line(repr(text), 60)}"
    )


def version_text() -> str:
    """``abm X.Y.Z``, plus the git commit (and whether the checkout is modified) when the package
    runs from a git checkout."""
    from abm.io import provenance

    prov = provenance()
    text = f"abm {prov['abm_version']}"
    if prov["git_commit"]:
        text += f" (git {prov['git_commit'][:12]}{', modified' if prov['git_dirty'] else ''})"
    return text


class _VersionAction(argparse.Action):
    """``--version``: computed only when asked (it calls git), printed, exit 0."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="abm", description="Credit contagion in AI-compute infrastructure.")
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and git commit, then exit"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="run one scenario and write its outputs",
        epilog="exit codes: 0 written; 1 overview.png could not be drawn; 2 bad input or a "
        "destination it cannot write; 130/143 interrupted by Ctrl-C/SIGTERM (except after 0, "
        "nothing is written and an earlier run in --out is kept)",
    )
    run.add_argument(
        "--scenario", default="baseline", help="packaged scenario name or path to a .toml file"
    )
    run.add_argument(
        "--seed", type=_int_in(0, MAX_SEED), default=0, help="random seed in [0, 2^63 - 1]"
    )
    run.add_argument(
        "--months",
        type=_months,
        default=None,
        help="months to simulate, 1-600 (default: the scenario's)",
    )
    run.add_argument(
        "--out",
        default=None,
        help="output folder (default: results/<scenario>-seed<N>/); it must be new, empty or an "
        "earlier abm run, which is then replaced",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario parameter, e.g. --set compute.pue=1.2 (repeatable)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--no-figure", action="store_true", help="skip overview.png")
    sub.add_parser("scenarios", help="list the packaged scenarios")

    sweep = sub.add_parser(
        "sweep",
        help="run an experiment (grid / LHS / Sobol x replications) on Dask or serially",
        epilog="exit codes: 0 every run ok; 3 finished, but some runs failed (see failures/); "
        "1 stopped early (disk full, read-only: resume it); 2 bad input, nothing written; "
        "130/143 interrupted by Ctrl-C/SIGTERM (resume it)",
    )
    sweep.add_argument(
        "experiment", help="experiment file (.toml), e.g. experiments/buyer_depth.toml"
    )
    sweep.add_argument(
        "--out", default=None, help="sweep folder (default: results/sweeps/<experiment name>/)"
    )
    sweep.add_argument(
        "--workers",
        type=_positive_int("--workers"),
        default=None,
        help="worker processes on this machine (processes, or the embedded Dask cluster; "
        "default: one per core)",
    )
    sweep.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running Dask scheduler (default: $DASK_SCHEDULER_ADDRESS, else local)",
    )
    sweep.add_argument(
        "--executor",
        choices=("processes", "dask", "serial"),
        default=None,
        help="processes: workers forked from this process (the default on one machine, starts "
        "in milliseconds); dask: a Dask cluster (the default with --scheduler, "
        "$DASK_SCHEDULER_ADDRESS or --dashboard); serial: every run in this process, for debugging",
    )
    sweep.add_argument("--resume", action="store_true", help="finish an interrupted sweep in --out")
    sweep.add_argument(
        "--retry-failed", action="store_true", help="with --resume: run failed runs again"
    )
    sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sweep.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the embedded Dask cluster's dashboard on 127.0.0.1:8787 (off by default)",
    )

    analyze = sub.add_parser(
        "analyze", help="summaries with confidence intervals and Sobol indices of a sweep"
    )
    analyze.add_argument("sweep_dir", metavar="DIR", help="a folder written by abm sweep")
    analyze.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        default=None,
        help="metric to report (repeatable; default: the experiment's headline metrics)",
    )
    analyze.add_argument(
        "--confidence", type=float, default=None, help="confidence level in [0.5, 1) (0.95)"
    )

    plot = sub.add_parser(
        "plot", help="publication figures (PNG and PDF) of a run folder or a sweep folder"
    )
    plot.add_argument("directory", metavar="RUN_DIR|SWEEP_DIR", help="written by abm run / sweep")
    plot.add_argument("--out", default=None, help="figure folder (default: DIR/figures/)")
    plot.add_argument(
        "--month",
        type=_non_negative_int("--month"),
        default=None,
        help="run: month of the network drawing (default: the month with most defaulted agents)",
    )
    plot.add_argument("--metric", default=None, help="sweep: metric of the phase diagram")
    plot.add_argument("--no-animation", action="store_true", help="run: skip the GIF/MP4")

    reproduce = sub.add_parser(
        "reproduce",
        help="re-run a run or sweep folder from its manifest and compare every output "
        "(exit 0 identical, 1 different)",
    )
    reproduce.add_argument(
        "directory", metavar="DIR", help="a folder written by abm run or abm sweep (not modified)"
    )
    reproduce.add_argument(
        "--sample",
        type=_positive_int("--sample"),
        default=None,
        metavar="N",
        help="sweep: re-run N runs chosen at random (default: every stored run)",
    )
    reproduce.add_argument(
        "--sample-seed",
        type=_int_in(0, MAX_SEED),
        default=0,
        help="sweep: seed of the --sample choice (0)",
    )

    params = sub.add_parser(
        "params", help="list every parameter of a scenario: value, allowed range, unit, source"
    )
    params.add_argument(
        "scenario",
        nargs="?",
        default="baseline",
        metavar="SCENARIO",
        help="packaged scenario name or path to a .toml file (default: baseline)",
    )
    params.add_argument(
        "prefix",
        nargs="?",
        default="",
        metavar="PREFIX",
        help="only parameters whose dotted name starts with this, e.g. compute. or lenders.kinds.bank",
    )
    params.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (sources cut to fit), csv or json (full text)",
    )

    calib = sub.add_parser(
        "calibration",
        help="run the scenarios over seeds and compare the model with observed 2025-26 targets",
        epilog="writes calibration.csv, calibration.md and runs.csv to --out; exit 0 whether or "
        "not every target passes (see the table), 2 for bad input (nothing written)",
    )
    calib.add_argument(
        "--seeds",
        type=_int_in(1, 1000),
        default=12,
        help="number of seeds per scenario, 1-1000; seeds 0 .. N-1 (12)",
    )
    calib.add_argument(
        "--out",
        default="results/calibration",
        help="report folder (results/calibration); it must be new, empty or an earlier report",
    )
    calib.add_argument(
        "--target",
        dest="targets",
        action="append",
        default=None,
        metavar="ID",
        help="only this target (repeatable; default: all, listed in docs/calibration.md)",
    )
    calib.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    app = sub.add_parser("app", help="the interactive SolaraViz app in your browser")
    app.add_argument(
        "--host",
        type=_host,
        default="127.0.0.1",
        help="IP address or host name to serve on (default 127.0.0.1: this machine only; "
        "0.0.0.0 serves every network interface)",
    )
    app.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="TCP port to serve on, in [1, 65535] (default 8765)",
    )
    return parser


def cmd_sweep(args) -> int:
    """``abm sweep``: exit 0 when every run succeeded, 3 when the sweep finished but some runs
    failed, 1 when it stopped early (a failed write: disk full, read-only), 130 / 143 on Ctrl-C /
    SIGTERM, 2 for bad input (nothing written)."""
    from abm.sweep import load_experiment, run_sweep
    from abm.sweep.runner import SweepTerminated, finished_runs

    if args.retry_failed and not args.resume:
        raise ConfigError("--retry-failed: only together with --resume")
    exp = load_experiment(args.experiment)
    out_dir = Path(args.out) if args.out else Path("results") / "sweeps" / exp.name
    if args.out == "":
        raise ConfigError("--out: must not be empty")
    resume_hint = f"finish it with: abm sweep {args.experiment} --out {out_dir} --resume"

    def kept() -> str:
        try:
            return f"{len(finished_runs(out_dir))} of {exp.n_runs} runs are kept in {out_dir}"
        except OSError:
            return f"the finished runs are kept in {out_dir / 'parts'}"

    try:
        manifest = run_sweep(
            exp,
            out_dir,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            resume=args.resume,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            dashboard=args.dashboard,
        )
    except KeyboardInterrupt as exc:
        by = "SIGTERM" if isinstance(exc, SweepTerminated) else "Ctrl-C"
        print(
            f"abm: sweep {exp.name} interrupted by {by}; {kept()}; {resume_hint}", file=sys.stderr
        )
        return EXIT_SIGTERM if by == "SIGTERM" else EXIT_SIGINT
    except OSError as exc:
        where = exc.filename or out_dir
        print(
            f"abm: error: sweep {exp.name} stopped: cannot write {where} ({exc.strerror}); "
            f"{kept()}; free space or fix permissions, then {resume_hint}",
            file=sys.stderr,
        )
        return EXIT_SWEEP_STOPPED
    counts, session = manifest["counts"], manifest["sessions"][-1]
    print(
        f"sweep {exp.name}: {manifest['status']}; {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['missing']} missing of {counts['runs']} runs "
        f"({session['runs_executed']} run now in {session['wall_s']:.1f} s)\n"
        f"outputs: {out_dir}   next: abm analyze {out_dir}"
    )
    if counts["failed"]:
        print(f"tracebacks of failed runs: {out_dir / 'failures'}")
    if manifest["status"] != "complete":
        return EXIT_SWEEP_STOPPED
    return EXIT_RUNS_FAILED if counts["failed"] else 0


def cmd_plot(args) -> int:
    from abm.io import check_writable_folder
    from abm.sweep.runner import read_manifest

    if not args.directory or not Path(args.directory).is_dir():
        raise ConfigError(
            f"DIR: {args.directory!r} is not a folder written by abm run or abm sweep"
        )
    directory = Path(args.directory)
    if args.out is not None:
        check_writable_folder(args.out, "--out")
    if read_manifest(directory) is not None:
        from abm.sweep.metrics import canonical
        from abm.viz.sweep_figures import plot_sweep

        if args.metric is not None and canonical(args.metric) not in _metric_names():
            raise ConfigError(
                f"--metric: unknown metric {_one_line(repr(args.metric), 60)}; allowed: "
                + ", ".join(_metric_names())
            )
        written = plot_sweep(directory, out_dir=args.out, metric=args.metric)
    else:
        from abm.viz.run_figures import RunDirError, plot_run

        try:
            written = plot_run(
                directory, out_dir=args.out, month=args.month, animate=not args.no_animation
            )
        except (RunDirError, ValueError) as exc:  # a bad folder, month or format
            raise ConfigError(str(exc)) from None
    for path in written:
        print(path)
    return 0


def _metric_names():
    from abm.sweep.metrics import METRICS

    return METRICS


def check_server_address(host: str, port: int) -> None:
    """Refuse a host that does not resolve or a port we cannot listen on (in use, privileged),
    before the app server starts: a trial bind that is closed at once."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"--host: cannot resolve {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            trial.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host: {host} is not an address of this machine") from None
        raise ConfigError(
            f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


def cmd_app(args) -> int:
    check_server_address(args.host, args.port)
    from abm.app import launch

    return launch(host=args.host, port=args.port, open_browser=True)


def cmd_params(args) -> int:
    from abm.params import format_parameters, parameters, select

    rows = select(parameters(args.scenario), args.prefix)
    print(format_parameters(rows, args.format))
    return 0


def cmd_reproduce(args) -> int:
    import_mesa()
    from abm.reproduce import format_report, reproduce

    report = reproduce(args.directory, sample=args.sample, sample_seed=args.sample_seed)
    print(format_report(report))
    return 0 if report.identical else EXIT_DIFFERENT


def cmd_analyze(args) -> int:
    """``abm analyze``: exit 0, or 2 with one line naming the file for a folder that is not a
    readable sweep (damaged part or runs.parquet, foreign manifest) or cannot take analysis/."""
    from abm.sweep import analyze, format_report

    try:
        result = analyze(args.sweep_dir, metrics=args.metrics, confidence=args.confidence)
    except OSError as exc:
        raise ConfigError(
            f"DIR: cannot write the analysis into {args.sweep_dir} ({exc.strerror}: {exc.filename})"
        ) from None
    print(format_report(result))
    print(f"tables: {Path(args.sweep_dir) / 'analysis'}")
    return 0


def _describe(path: Path) -> str:
    import tomllib

    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    return raw.get("description", "")


def cmd_scenarios() -> int:
    for name, path in packaged_scenarios().items():
        print(f"{name:18s} {_describe(path)}")
    return 0


# correlated_crash seed 1 has the richest cascade of seeds 0-5 (the deepest default genealogy,
# depth 3: 10 miner and neocloud defaults, $6.1B of lender losses, on the merged issue-13 model);
# tests/test_cli.py checks that it still does
CRASH_EXAMPLE = "abm run --scenario correlated_crash --seed 1"


def _quiet_run_note(scenario: str) -> str:
    """The summary line of a run without defaults or fire sales: say so, and how to see a crash.

    It claims nothing about other seeds: a quiet run of baseline is one draw of its shocks (other
    seeds default), and calm is a control by its inputs (no stress regime), not by its outcomes."""
    control = {"calm": "; calm is the no-stress control"}.get(scenario, "")
    return f"no defaults and no fire sales in this run{control}. To see a crash: {CRASH_EXAMPLE}"


def _format_summary(summary: dict, out_dir: Path) -> str:
    lines = [
        f"scenario {summary['scenario']}  seed {summary['seed']}  months {summary['months']}",
        f"defaults: miners {summary['defaults_miner']}, neoclouds {summary['defaults_neocloud']}, "
        f"lenders {summary['defaults_lender']}",
    ]
    by_cause = summary["defaults_by_type_and_cause"]
    if by_cause:
        lines.append(
            "  by type/cause: " + ", ".join(f"{k} {v}" for k, v in sorted(by_cause.items()))
        )
    disc = summary["min_price_to_fundamental"]
    lines.append(
        f"fire sales: {summary['fire_sale_units']:,} GPUs; min_price_to_fundamental: "
        + (f"{disc:.2f}" if disc is not None else "no trades")
    )
    lines.append(
        f"lender losses: ${summary['lender_losses_usd'] / 1e9:,.2f}B realised + "
        f"${summary['lender_unrealised_inventory_loss_usd'] / 1e9:,.2f}B unrealised on seized "
        f"GPUs still held = ${summary['lender_losses_incl_unrealised_usd'] / 1e9:,.2f}B"
    )
    n_defaults = sum(summary[f"defaults_{t}"] for t in ("miner", "neocloud", "lender"))
    if n_defaults == 0 and summary["fire_sale_units"] == 0:
        lines.append(_quiet_run_note(summary["scenario"]))
    cascade = summary.get("cascade")
    if cascade and n_defaults == 0:
        lines.append(
            f"cascade: none (no defaults); DebtRank at start {cascade['debtrank_start']:.3f}"
        )
    elif cascade:
        pushes = ", ".join(f"{k} {v}" for k, v in cascade["pushes_by_channel"].items() if v)
        lines.append(
            f"cascade: depth {cascade['cascade_depth']}, roots {cascade['cascade_roots']}, "
            f"first default month {cascade['first_default_month']}, "
            f"DebtRank at start {cascade['debtrank_start']:.3f}"
            + (f"; pushes by channel: {pushes}" if pushes else "")
        )
    lines.append(f"runtime: {summary['runtime_s']:.2f} s   outputs: {out_dir}")
    return "\n".join(lines)


def cmd_calibration(args) -> int:
    """``abm calibration``: run the calibration targets' scenarios over ``--seeds`` seeds, print
    the table and write it to ``--out``; exit 0, or 2 for bad input (nothing run or written)."""
    from abm.calibration_report import calibration, format_markdown

    try:
        table = calibration(
            args.seeds,
            args.out,
            args.targets,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except OSError as exc:  # disk full, read-only: the temp folder is already removed
        raise ConfigError(
            f"--out: cannot write {args.out}: {exc.strerror or exc}; nothing was replaced there"
        ) from None
    print(format_markdown(table, list(range(args.seeds))), end="")
    print(f"outputs: {args.out}")
    return 0


def cmd_run(args) -> int:
    """``abm run``: exit 0; 2 for bad input or a destination it cannot write (nothing written);
    1 when the overview figure could not be drawn (nothing written either).

    The figure is drawn in a child forked once the model's libraries are imported
    (:mod:`abm.viz.overview_process`): it imports matplotlib while this process runs the model,
    and draws while this one writes the tables, so the two cores overlap. Without fork or a
    second core it is drawn here, after the tables."""
    import_mesa()
    from abm.io import check_destination, write_run
    from abm.results import run

    if args.out == "":
        raise ConfigError("--out: must not be empty (leave it out for results/<scenario>-seed<N>)")
    overrides = dict(parse_override(text) for text in args.overrides)
    config = load_scenario(args.scenario, overrides)
    # config["name"] is a plain name (validated), so the default stays under results/
    default = Path("results") / f"{config['name']}-seed{args.seed}"
    out_dir = Path(args.out) if args.out is not None else default
    check_destination(out_dir)  # before the model runs: nothing is created for a bad destination
    drawer = None
    try:
        if not args.no_figure:
            from abm.viz.overview_process import held_signals, start_overview_process

            # forked after Mesa, pandas and networkx are imported: the child imports only
            # matplotlib; Ctrl-C / SIGTERM wait until it is stored for the finally below
            with held_signals():
                drawer = start_overview_process()
        return _run_and_write(args, config, out_dir, drawer, run, write_run)
    finally:
        if drawer is not None:
            drawer.close()  # also on Ctrl-C / SIGTERM: no child outlives the run


def _overview_in_process(result, path) -> None:
    """``overview_figure`` drawn in this process (no fork, one core, a threaded caller): a failure
    to draw is the figure process's error, one line and exit 1, as when the child draws."""
    from abm.viz.overview import overview_figure
    from abm.viz.overview_process import FigureProcessError

    try:
        overview_figure(result, path)
    except OSError:
        raise  # a destination that cannot be written: the --out error
    except Exception as exc:
        raise FigureProcessError(
            f"drawing overview.png failed: {type(exc).__name__}: {exc}"
        ) from None


def _run_and_write(args, config: dict, out_dir: Path, drawer, run, write_run) -> int:
    from abm.viz.overview_process import FigureProcessError

    progress = not args.no_progress and sys.stderr.isatty()
    result = run(config, seed=args.seed, months=args.months, progress=progress)
    if args.no_figure:
        figure = None
    elif drawer is not None:
        drawer.submit(result)  # the child draws while the tables are written
        figure = drawer.write
    else:
        figure = _overview_in_process
    try:
        write_run(result, out_dir, figure=figure)
    except OSError as exc:  # disk full, read-only, I/O error: the temp folder is already removed
        raise ConfigError(
            f"--out: cannot write {out_dir}: {exc.strerror or exc}; nothing was replaced there"
        ) from None
    except FigureProcessError as exc:
        print(
            f"abm: error: {_one_line(str(exc))}; nothing was written to {out_dir} "
            "(abm run --no-figure skips the figure)",
            file=sys.stderr,
        )
        return EXIT_FIGURE_FAILED
    summary = result.summary()
    summary["cascade"] = result.cascade_metrics()
    print(_format_summary(summary, out_dir))
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while a verb runs, so that its clean-up (temp folders,
    the figure process) runs as on Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous_sigterm = None
    if args.command == "run":
        try:  # only the main thread may set handlers
            previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
        except ValueError:
            previous_sigterm = None
    try:
        if args.command == "scenarios":
            return cmd_scenarios()
        handlers = {
            "sweep": cmd_sweep,
            "analyze": cmd_analyze,
            "plot": cmd_plot,
            "app": cmd_app,
            "reproduce": cmd_reproduce,
            "params": cmd_params,
            "calibration": cmd_calibration,
        }
        return handlers.get(args.command, cmd_run)(args)
    except ConfigError as exc:
        print(f"abm: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print("abm: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print("abm: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:  # output piped into a reader that stopped (abm params | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["build_parser", "main"]
