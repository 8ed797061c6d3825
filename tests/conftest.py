"""Shared fixtures: runs are cached per session because several tests read the same run."""

from __future__ import annotations

import functools

import pytest

import abm


@functools.lru_cache(maxsize=32)
def cached_run(scenario: str, seed: int, months: int | None = None, overrides: tuple = ()):
    return abm.run(scenario, seed=seed, months=months, overrides=dict(overrides) or None)


@pytest.fixture(scope="session")
def run_cache():
    return cached_run
