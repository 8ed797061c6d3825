"""Draw the README's figures: python docs/make_figures.py [--quick]

The README's crash example (``correlated_crash`` at the app's seed, ``abm.app.APP_SEED``, 60 months) gives the market panel, the lending network at the
month with most defaulted agents and the cascade tree; a reduced ``deflation_vs_leverage`` sweep
(serial, 2 replicates) gives the phase diagram. PNGs go to docs/figures/, replacing the old ones
only when each is complete.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import tomllib
from pathlib import Path

import abm
from abm.app import APP_SCENARIO, APP_SEED
from abm.io import sibling_temp, write_run
from abm.sweep import load_experiment, load_runs, run_sweep
from abm.viz import run_figures as rf
from abm.viz import sweep_figures as sf

HERE = Path(__file__).resolve().parent
OUT = HERE / "figures"
DPI = 110


def save(fig, name: str) -> Path:
    OUT.mkdir(exist_ok=True)
    target = OUT / f"{name}.png"
    tmp = sibling_temp(target, suffix=".png")
    fig.savefig(tmp, dpi=DPI)
    os.replace(tmp, target)
    return target


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter sweep (for a smoke test)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        write_run(abm.run(APP_SCENARIO, seed=APP_SEED), run_dir, figure=False)
        run = rf.load_run(run_dir)
        print(save(rf.market_figure(run), "market"))
        print(save(rf.network_figure(run, month=rf.default_month(run)), "network"))
        print(save(rf.cascade_tree_figure(run), "cascade_tree"))

        spec = tomllib.loads(
            (HERE.parent / "experiments" / "deflation_vs_leverage.toml").read_text()
        )
        spec["replications"] = 1 if args.quick else 2
        if args.quick:
            spec["months"] = 24
        exp = load_experiment(spec)
        sweep_dir = Path(tmp) / "sweep"
        run_sweep(exp, sweep_dir, executor="serial", progress=True)
        runs = load_runs(sweep_dir)[0]
        fig = sf.phase_diagram(runs, "rent_deflation", "ltv_scale", "default_share_neocloud")
        print(save(fig, "phase_diagram"))


if __name__ == "__main__":
    main()
