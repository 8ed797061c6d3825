"""The phases of the monthly schedule, each a module of functions of the model."""

from abm.phases import (
    collect,
    covenants,
    debt,
    debt_service,
    environment,
    investment,
    lenders,
    market,
    operations,
)

__all__ = [
    "collect",
    "covenants",
    "debt",
    "debt_service",
    "environment",
    "investment",
    "lenders",
    "market",
    "operations",
]
