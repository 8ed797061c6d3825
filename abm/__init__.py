"""abm: an agent-based model of credit contagion in AI-compute infrastructure.

Quick start::

    import abm
    cfg = abm.load_scenario("correlated_crash")
    result = abm.run(cfg, seed=1)
    result.timeseries.head()

The model and the results (and with them Mesa, pandas and networkx, ~0.7 s of imports) are
loaded on first use of ``abm.run``, ``abm.RunResult`` or ``abm.AIComputeCreditModel``, so that
commands which build no model (``abm --help``, ``abm scenarios``) start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from abm.config import ConfigError, load_scenario, packaged_scenarios

if TYPE_CHECKING:
    from abm.model import AIComputeCreditModel
    from abm.results import RunResult, run

__version__ = "0.1.0"

# public name -> module that defines it, imported on first access (PEP 562)
_LAZY = {
    "AIComputeCreditModel": "abm.model",
    "RunResult": "abm.results",
    "run": "abm.results",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'abm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AIComputeCreditModel",
    "ConfigError",
    "RunResult",
    "__version__",
    "load_scenario",
    "packaged_scenarios",
    "run",
]
