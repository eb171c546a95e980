"""Health checks and probes: :class:`HealthMonitor`, the built-in checks, the shutting-down flag.

``status`` (results, the flag) ← ``run`` (one bounded run) ← ``monitor`` (registry,
probes); ``checks`` holds the built-in checks. Behaviour: docs/health.md.
"""

from otel_tdd.health.checks import (
    alertmanager_check,
    database_check,
    disk_space_check,
    memory_check,
    otlp_endpoint_check,
)
from otel_tdd.health.monitor import HealthMonitor, default_monitor, set_default_monitor
from otel_tdd.health.status import (
    CRITICAL,
    HEALTHY,
    STATUS_VALUE,
    STATUSES,
    WARNING,
    CheckFunc,
    HealthResponse,
    clear_shutting_down,
    is_shutting_down,
    mark_shutting_down,
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
