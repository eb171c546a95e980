"""The OpenTelemetry API's private context keys that the logs path reads, once at import.

Each read is one named function; tests/unit/test_correlation.py pins the behaviour,
so an upgrade that moves one fails loudly. The SDK logs internals (record limits,
``BoundedAttributes``) are in :mod:`otel_tdd.logs.sdk_records`, imported only with OTLP logs.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import baggage, context
from opentelemetry.trace import propagation

__all__ = [
    "baggage_key",
    "current_context_getter",
    "span_key",
    "suppress_instrumentation_key",
]


def span_key() -> str:
    """The key under which the API stores the current span in a Context."""
    return propagation._SPAN_KEY


def baggage_key() -> str:
    """The key under which the API stores the baggage in a Context."""
    return baggage._BAGGAGE_KEY


def current_context_getter() -> Callable[[], context.Context]:
    """The runtime context's own ``get_current``: the API's only forwards to it, so binding
    it once saves a frame on every record (the filtered path has ~100 ns to spend)."""
    runtime_context = getattr(context, "_RUNTIME_CONTEXT", None)
    return runtime_context.get_current if runtime_context is not None else context.get_current


def suppress_instrumentation_key() -> str:
    """The Context key the SDK's exporters set around their own requests."""
    return context._SUPPRESS_INSTRUMENTATION_KEY
