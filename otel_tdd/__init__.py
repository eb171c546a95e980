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

from otel_tdd import _hooks
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
    from otel_tdd.lifecycle import configure, force_flush, is_configured, shutdown
    from otel_tdd.logs.handler import JsonLogHandler
    from otel_tdd.metrics import catalog
    from otel_tdd.ops_server import render_prometheus
    from otel_tdd.performance import performance_context, performance_tracked
    from otel_tdd.structured_logging import StructuredLogger

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
    "configure": "otel_tdd.lifecycle",
    "force_flush": "otel_tdd.lifecycle",
    "is_configured": "otel_tdd.lifecycle",
    "render_prometheus": "otel_tdd.ops_server",
    "shutdown": "otel_tdd.lifecycle",
    "JsonLogHandler": "otel_tdd.logs.handler",
    "StructuredLogger": "otel_tdd.structured_logging",
    "performance_context": "otel_tdd.performance",
    "performance_tracked": "otel_tdd.performance",
}


# The builder sits above the state it builds, so it is registered here, the package's
# top: imported by name on first use, like the names above (the CLI never pays for it).
def _autoconfigure() -> object:
    return importlib.import_module("otel_tdd.lifecycle").configure()


def _framework_logs(enabled: bool) -> None:
    forwarding = importlib.import_module("otel_tdd.logs.framework")
    forwarding.set_enabled(enabled)
    if enabled:
        forwarding.install()


_hooks.register(_autoconfigure, _framework_logs)


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
