"""The worker plugin that gives every Dask worker process a sweep's base scenario."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from abm.sweep import tasks


class BaseScenarioPlugin(WorkerPlugin):
    """Stores the base scenario under ``tag`` in each worker process (new ones included)."""

    def __init__(self, tag: str, base_config: dict):
        self.tag = tag
        self.base_config = base_config
        self.name = f"abm-base-scenario-{tag}"

    def setup(self, worker) -> None:
        tasks._BASE_CONFIGS[self.tag] = self.base_config

    def teardown(self, worker) -> None:
        tasks._BASE_CONFIGS.pop(self.tag, None)
