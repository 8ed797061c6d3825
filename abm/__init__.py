"""abm: an agent-based model of credit contagion in AI-compute infrastructure.

Quick start::

    import abm
    cfg = abm.load_scenario("correlated_crash")
    result = abm.run(cfg, seed=1)
    result.timeseries.head()
"""

from abm.config import ConfigError, load_scenario, packaged_scenarios
from abm.model import AIComputeCreditModel
from abm.results import RunResult, run

__version__ = "0.1.0"

__all__ = [
    "AIComputeCreditModel",
    "ConfigError",
    "RunResult",
    "__version__",
    "load_scenario",
    "packaged_scenarios",
    "run",
]
