"""Shared fixtures (runs are cached per session because several tests read the same run) and the
test tiers.

Markers (registered in pyproject.toml): ``slow`` (several seconds each: Dask sweeps, validation
grids, the channel decomposition, the browser test, the notebooks), ``browser`` (the app in headless
Chromium), ``notebook`` (nbmake items, marked here because nbmake cannot take decorators). The fast
tier is ``python -m pytest -m "not slow and not browser and not notebook"``; ``python -m pytest``
runs everything. The tests run on one worker process per core (pytest-xdist, ``-n auto --dist
loadfile`` in pyproject.toml): the session cache below is per worker, and a test must not depend on
another file's tests having run in its process.
"""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import settings

import abm

# Hypothesis: random exploration on a developer's machine; in CI (CI=true) the same examples every
# run, so that a submission's CI result does not depend on which examples a random seed drew.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@functools.lru_cache(maxsize=32)
def cached_run(scenario: str, seed: int, months: int | None = None, overrides: tuple = ()):
    return abm.run(scenario, seed=seed, months=months, overrides=dict(overrides) or None)


@pytest.fixture(scope="session")
def run_cache():
    return cached_run


def pytest_collection_modifyitems(config, items):
    """Notebooks executed by nbmake are ``notebook`` and ``slow`` tests."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)
