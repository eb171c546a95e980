"""otel-tdd: an OpenTelemetry-native instrumentation distribution for Python.

``configure()`` once (or not at all: first use configures defaults), then use
the seed's API: ``StructuredLogger``, ``correlation_context``,
``performance_tracked``, ``security_event``, ``alert`` and the metric ``catalog``.
"""

from otel_tdd.alerting import alert
from otel_tdd.config import ConfigError, Settings
from otel_tdd.correlation import (
    ContextThreadPoolExecutor,
    continue_from_headers,
    correlation_context,
    current_ids,
    extract_context,
    inject_headers,
    wrap_with_context,
)
from otel_tdd.metrics import catalog
from otel_tdd.sdk import configure, force_flush, is_configured, render_prometheus, shutdown
from otel_tdd.structured_logging import JsonLogHandler, StructuredLogger
from otel_tdd.tracking import performance_context, performance_tracked
from otel_tdd.version import __version__

__all__ = [
    "ConfigError",
    "ContextThreadPoolExecutor",
    "JsonLogHandler",
    "Settings",
    "StructuredLogger",
    "__version__",
    "alert",
    "catalog",
    "configure",
    "continue_from_headers",
    "correlation_context",
    "current_ids",
    "extract_context",
    "force_flush",
    "inject_headers",
    "is_configured",
    "performance_context",
    "performance_tracked",
    "render_prometheus",
    "shutdown",
    "wrap_with_context",
]
