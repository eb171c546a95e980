"""Every read or write of the OpenTelemetry SDK's private state, behind one version guard.

The SDK offers no public hook for these (docs/architecture.md, "SDK internals we
touch"). Each accessor works on the SDK versions in ``TESTED`` and degrades to a
plain "not available" answer elsewhere; tests/unit/test_otel_private.py exercises
every one on the installed SDK, so an upgrade that moves them fails there first.
"""

from __future__ import annotations

import collections
import sys
import warnings
from collections.abc import Callable
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import propagation as trace_propagation
from opentelemetry.util._once import Once

SDK_VERSION: str = sdk_version

__all__ = [
    "BAGGAGE_KEY",
    "SDK_VERSION",
    "SPAN_KEY",
    "SUPPRESS_INSTRUMENTATION_KEY",
    "TESTED",
    "batch_queue",
    "exporter_preferences",
    "get_current_context",
    "log_record_limits",
    "read_write_record",
    "replace_batch_queue",
    "reset_api_globals",
    "set_bounded_items",
    "supported",
]

# (major, minor) releases of opentelemetry-sdk whose private layout this module was checked on.
TESTED = ((1, 45),)


# The keys under which the API keeps the span and the baggage in a Context: reading them
# from one get_current() saves four API calls per log record (docs/benchmarks.md).
SPAN_KEY: str = trace_propagation._SPAN_KEY
BAGGAGE_KEY: str = baggage._BAGGAGE_KEY
# The Context key the SDK's exporters set around their own requests.
SUPPRESS_INSTRUMENTATION_KEY: str = otel_context._SUPPRESS_INSTRUMENTATION_KEY
# The API's get_current() only forwards to the runtime context's method: binding that
# method once saves a frame per record. The API's own function where it is not there.
_runtime_context = getattr(otel_context, "_RUNTIME_CONTEXT", None)
get_current_context: Callable[[], otel_context.Context] = (
    _runtime_context.get_current if _runtime_context is not None else otel_context.get_current
)


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def supported(version: str = SDK_VERSION) -> bool:
    """Whether ``version`` of the SDK is one whose private layout we checked."""
    try:
        return _release(version) in TESTED
    except ValueError:
        return False


def _warn(what: str) -> None:
    warnings.warn(
        f"otel-tdd: {what} is not available with opentelemetry-sdk {SDK_VERSION} "
        f"(checked on {', '.join(f'{a}.{b}' for a, b in TESTED)}.x)",
        RuntimeWarning,
        stacklevel=3,
    )


def reset_api_globals() -> None:
    """Let the API accept new global providers (what the OTel Python test utilities do).

    The API sets each provider once per process; configure → shutdown → configure
    (tests, notebooks, a forked worker) needs new ones.
    """
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal: Any = sys.modules["opentelemetry.metrics._internal"]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    logs_internal: Any = sys.modules.get("opentelemetry._logs._internal")
    if logs_internal is not None:  # never imported: nothing was set
        logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()
        logs_internal._LOGGER_PROVIDER = None


def batch_queue(processor: object) -> tuple[Any, Any] | None:
    """(the bounded deque, the ``ProcessorMetricsT`` hook) of a Batch{Span,LogRecord}Processor.

    None, with a warning, when this SDK's processor does not have them.
    """
    batch = getattr(processor, "_batch_processor", None)
    hook = getattr(batch, "_metrics", None)
    queue = getattr(batch, "_queue", None)
    if (
        not supported()
        or batch is None
        or not callable(getattr(hook, "drop_items", None))
        or not isinstance(queue, collections.deque)
        or queue.maxlen is None
    ):
        _warn(f"counting the queue overflow of {type(processor).__name__}")
        return None
    return queue, hook


def replace_batch_queue(processor: object, queue: Any, hook: Any) -> None:
    """Swap the deque and metrics hook that :func:`batch_queue` returned for wrappers of them."""
    batch: Any = getattr(processor, "_batch_processor")  # noqa: B009 - a private name, on purpose
    batch._queue = queue
    batch._metrics = hook


def exporter_preferences(exporter: Any) -> tuple[Any, Any]:
    """(preferred temporality, preferred aggregation) a MetricExporter was built with.

    The reader reads these from the exporter; a wrapper must report the inner one's.
    """
    return exporter._preferred_temporality, exporter._preferred_aggregation


def log_record_limits(logger: object) -> Any:
    """The record limits an SDK ``Logger`` was made with; None when it has none we know."""
    if not supported():
        return None
    return getattr(logger, "_log_record_limits", None)


def set_bounded_items(attributes: Any, items: dict[str, Any]) -> None:
    """Make a ``BoundedAttributes`` hold ``items`` as they are (already checked valid)."""
    attributes._dict = items


def read_write_record(record: Any, resource: Any, scope: Any, limits: Any) -> Any:
    """The SDK's own ``ReadWriteLogRecord`` for an API record, as ``Logger.emit`` builds it."""
    # Imported here: the logs SDK is loaded only when OTLP logs are configured.
    from opentelemetry.sdk._logs import ReadWriteLogRecord

    return ReadWriteLogRecord._from_api_log_record(
        record=record, resource=resource, instrumentation_scope=scope, limits=limits
    )
