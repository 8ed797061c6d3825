"""Contagion experiments at scale: experiment files, the sweep runner and its analysis.

``load_experiment`` reads and validates an experiment file, ``run_sweep`` runs it (Dask or
serial, resumable), ``analyze`` summarises a sweep folder. The command line is ``abm sweep`` and
``abm analyze``.
"""

from abm.sweep.analyze import analyze, format_report, load_runs
from abm.sweep.design import Experiment, run_seed
from abm.sweep.experiment import load_experiment
from abm.sweep.metrics import METRICS, run_metrics
from abm.sweep.parts import consolidate
from abm.sweep.runner import run_sweep

__all__ = [
    "METRICS",
    "Experiment",
    "analyze",
    "consolidate",
    "format_report",
    "load_experiment",
    "load_runs",
    "run_metrics",
    "run_seed",
    "run_sweep",
]
