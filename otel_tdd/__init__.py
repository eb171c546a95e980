"""otel-tdd: an OpenTelemetry-native instrumentation distribution for Python.

``configure()`` once (or not at all: first use configures defaults), then use
the seed's API: ``StructuredLogger``, ``correlation_context``,
``performance_tracked``, ``security_event``, ``alert`` and the metric ``catalog``.

The names below are imported on first access (PEP 562), not with the package:
``otel-tdd run`` and ``otel-tdd --help`` import ``otel_tdd.cli``, and a process
that only needs the command line should not pay for the whole SDK
(docs/benchmarks.md, "Startup cost of otel-tdd run").
"""

from __future__ import annotations

import importlib

from otel_tdd.version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing would cost otel-tdd's command
# line more than the rest of its imports together. Type checkers treat this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "alert": "otel_tdd.alerting",
    "ConfigError": "otel_tdd.config",
    "Settings": "otel_tdd.config",
    "ContextThreadPoolExecutor": "otel_tdd.correlation",
    "continue_from_headers": "otel_tdd.correlation",
    "correlation_context": "otel_tdd.correlation",
    "current_ids": "otel_tdd.correlation",
    "extract_context": "otel_tdd.correlation",
    "inject_headers": "otel_tdd.correlation",
    "wrap_with_context": "otel_tdd.correlation",
    "catalog": "otel_tdd.metrics",
    "configure": "otel_tdd.sdk",
    "force_flush": "otel_tdd.sdk",
    "is_configured": "otel_tdd.sdk",
    "render_prometheus": "otel_tdd.sdk",
    "shutdown": "otel_tdd.sdk",
    "JsonLogHandler": "otel_tdd.structured_logging",
    "StructuredLogger": "otel_tdd.structured_logging",
    "performance_context": "otel_tdd.tracking",
    "performance_tracked": "otel_tdd.tracking",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_tdd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
