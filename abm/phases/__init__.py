"""The phases of the monthly schedule, each a module of functions of the model."""

from abm.phases import collect, debt, environment, investment, lenders, market, operations

__all__ = ["collect", "debt", "environment", "investment", "lenders", "market", "operations"]
