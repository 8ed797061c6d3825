"""Helpers of the fast-path tests: a replaced slow path (its "twin") is kept in the test that swaps
it back in, and whole runs with either must give the same tables, bit for bit."""

from __future__ import annotations

import pandas as pd

import abm


def run_tables(
    scenario: str, seed: int, months: int | None = None, overrides: dict | None = None
) -> list[pd.DataFrame]:
    """The timeseries, agent panel and event tables of one run (``abm.run``)."""
    result = abm.run(scenario, seed=seed, months=months, overrides=overrides)
    return [result.timeseries, result.agents, result.events]


def assert_same_run(fast: list[pd.DataFrame], slow: list[pd.DataFrame]) -> None:
    """Every table equal, values exact (no float tolerance)."""
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
