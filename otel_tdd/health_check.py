"""The seed's import path, ``from otel_tdd.health_check import HealthMonitor``.

The code lives in :mod:`otel_tdd.health`; its public names are listed once, there.
"""

from otel_tdd import health
from otel_tdd.health import *  # noqa: F403  (re-exported as they are)

__all__ = health.__all__
