"""The seed's import path, ``from otel_tdd.health_check import HealthMonitor``.

The code lives in :mod:`otel_tdd.health`; this module re-exports its public names.
"""

from otel_tdd.health import (
    CRITICAL,
    HEALTHY,
    STATUS_VALUE,
    STATUSES,
    WARNING,
    CheckFunc,
    HealthMonitor,
    HealthResponse,
    alertmanager_check,
    clear_shutting_down,
    database_check,
    default_monitor,
    disk_space_check,
    is_shutting_down,
    mark_shutting_down,
    memory_check,
    otlp_endpoint_check,
    set_default_monitor,
)

__all__ = [
    "CRITICAL",
    "HEALTHY",
    "STATUSES",
    "STATUS_VALUE",
    "WARNING",
    "CheckFunc",
    "HealthMonitor",
    "HealthResponse",
    "alertmanager_check",
    "clear_shutting_down",
    "database_check",
    "default_monitor",
    "disk_space_check",
    "is_shutting_down",
    "mark_shutting_down",
    "memory_check",
    "otlp_endpoint_check",
    "set_default_monitor",
]
