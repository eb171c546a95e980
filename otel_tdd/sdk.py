"""``configure()`` and ``shutdown()``: compose the OTel SDK's providers, processors and exporters.

Nothing here re-implements the SDK: we choose its samplers, processors and
exporters from validated :class:`~otel_tdd.config.Settings` and wire our log
pipeline in front of its LoggerProvider. Everything is built before anything is
installed, so a failure leaves nothing half-configured.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from otel_tdd import _runtime
from otel_tdd.config import ConfigError, Settings, load_settings
from otel_tdd.export_accounting import (
    CountingLogExporter,
    CountingMetricExporter,
    CountingSpanExporter,
    ExportDeadline,
    count_queue_drops,
    dropped_totals,
    record_dropped,
)
from otel_tdd.export_pacing import paced
from otel_tdd.log_pipeline import TraceIdSampler, build_pipeline
from otel_tdd.redaction import Redactor
from otel_tdd.structured_logging import JsonLogHandler
from otel_tdd.version import __version__

if TYPE_CHECKING:
    # The logs SDK is imported only when a log exporter is configured: the embedded
    # default (JSON on stdout) never needs it, and start-up is a budget (docs/benchmarks.md).
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor

__all__ = ["TestHooks", "configure", "is_configured", "render_prometheus", "shutdown"]

_lock = threading.RLock()
# dropped_totals() when each runtime (by generation) was built: shutdown() reports the difference.
_dropped_at_configure: dict[int, dict[str, int]] = {}
_internal = logging.getLogger("otel_tdd")
INSTRUMENTATION_NAME = "otel_tdd"


@dataclass
class TestHooks:
    """Extra SDK parts for tests (the pytest plugin's in-memory capture)."""

    span_processors: Sequence[SpanProcessor] = ()
    log_processors: Sequence[LogRecordProcessor] = ()
    metric_readers: Sequence[MetricReader] = ()
    stream: IO[Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _sampler(settings: Settings) -> sampling.Sampler:
    ratio = settings.sampler_arg if settings.sampler_arg is not None else 1.0
    choices: dict[str, Callable[[], sampling.Sampler]] = {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBasedTraceIdRatio(ratio),
    }
    return choices[settings.sampler]()


def _resource(settings: Settings) -> Resource:
    attributes: dict[str, Any] = {
        "deployment.environment.name": settings.environment,
        "telemetry.distro.name": "otel-tdd",
        "telemetry.distro.version": __version__,
        **settings.resource_attributes,
    }
    if settings.service_name:
        attributes["service.name"] = settings.service_name
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as documented;
    # our explicit attributes win, as arguments win over the environment everywhere.
    return Resource.create(attributes)


# The SDK's OTLP exporter per signal and protocol, as (module, class). Imported only
# when configured: the gRPC ones pull in grpcio, a large import for a process that
# sends OTLP/HTTP (the default) or nothing at all.
_OTLP_EXPORTERS: dict[tuple[str, str], tuple[str, str]] = {
    ("traces", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("traces", "http"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("metrics", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("metrics", "http"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
}


def _otlp_endpoint(settings: Settings, signal: str) -> str | None:
    """An explicit endpoint for the exporter; None: the exporter reads OTEL_* itself.

    As the spec says for the generic endpoint, OTLP/HTTP appends the signal's path.
    """
    base = settings.otlp_endpoints.get(signal)
    if base is None or settings.otlp_protocols[signal] == "grpc":
        return base
    return f"{base.rstrip('/')}/v1/{signal}"


def _otlp_exporter(settings: Settings, signal: str) -> Any:
    """The SDK's OTLP exporter for ``signal`` over the configured protocol."""
    protocol = "grpc" if settings.otlp_protocols[signal] == "grpc" else "http"
    module, name = _OTLP_EXPORTERS[signal, protocol]
    exporter_class = getattr(importlib.import_module(module), name)
    return exporter_class(endpoint=_otlp_endpoint(settings, signal))


def _tracer_provider(settings: Settings, resource: Resource, hooks: TestHooks) -> TracerProvider:
    provider = TracerProvider(resource=resource, sampler=_sampler(settings))
    for name in settings.traces_exporters:
        if name == "otlp":
            span_processor = BatchSpanProcessor(
                CountingSpanExporter(paced(_otlp_exporter(settings, "traces")))
            )
            count_queue_drops(span_processor, "traces")
            provider.add_span_processor(span_processor)
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    for processor in hooks.span_processors:
        provider.add_span_processor(processor)
    return provider


def _meter_provider(settings: Settings, resource: Resource, hooks: TestHooks) -> MeterProvider:
    readers: list[MetricReader] = []
    for name in settings.metrics_exporters:
        if name == "otlp":
            readers.append(
                PeriodicExportingMetricReader(
                    CountingMetricExporter(_otlp_exporter(settings, "metrics"))
                )
            )
        elif name == "prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            readers.append(PrometheusMetricReader())
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    readers.extend(hooks.metric_readers)
    return MeterProvider(resource=resource, metric_readers=readers)


def _logger_provider(
    settings: Settings, resource: Resource, hooks: TestHooks
) -> LoggerProvider | None:
    if not settings.logs_exporters and not hooks.log_processors:
        return None  # no OTLP logs: skip the per-record cost entirely
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        ConsoleLogRecordExporter,
        SimpleLogRecordProcessor,
    )

    provider = LoggerProvider(resource=resource)
    for name in settings.logs_exporters:
        if name == "otlp":
            log_processor = BatchLogRecordProcessor(
                CountingLogExporter(paced(_otlp_exporter(settings, "logs")))
            )
            count_queue_drops(log_processor, "logs")
            provider.add_log_record_processor(log_processor)
        elif name == "console":
            provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogRecordExporter()))
    for processor in hooks.log_processors:
        provider.add_log_record_processor(processor)
    return provider


class _ErrorReporter:
    """Reports a failing telemetry step once per kind on stderr and counts every drop."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, error: BaseException) -> None:
        record_dropped("logs", 1)
        kind = type(error).__name__
        if kind not in self._seen:
            self._seen.add(kind)
            print(f"otel-tdd: a log record was dropped: {kind}: {error}", file=sys.stderr)


def _on_suppressed(key: str) -> None:
    from otel_tdd.metrics import catalog

    catalog.log_records_suppressed.add(1, {"reason": "rate_limit", "limiter": key})


def _reset_api_globals() -> None:
    """Let the API accept new global providers after our own shutdown().

    The API sets each provider once per process. configure → shutdown → configure
    (tests, notebooks, a forked worker) needs new ones; this is what the
    OpenTelemetry Python test utilities do as well.
    """
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal = sys.modules["opentelemetry.metrics._internal"]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER = None  # type: ignore[attr-defined]
    logs_internal = sys.modules.get("opentelemetry._logs._internal")
    if logs_internal is not None:  # never imported: nothing was set
        logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
        logs_internal._LOGGER_PROVIDER = None  # type: ignore[attr-defined]


def _install_logging(settings: Settings) -> JsonLogHandler | None:
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if isinstance(handler, JsonLogHandler):
            root.removeHandler(handler)
    from otel_tdd.auto import framework_logs

    framework_logs.set_enabled(settings.capture_logging and settings.framework_logs)
    if not settings.capture_logging:
        return None
    handler = JsonLogHandler()
    root.addHandler(handler)
    from otel_tdd import logging_guard

    # The app's own basicConfig/dictConfig/fileConfig keep their effect and not ours away.
    logging_guard.install(
        handler,
        exporting=bool(settings.logs_exporters),
        debug=settings.log_level < logging.INFO,
    )
    if settings.framework_logs:
        framework_logs.install()  # import hooks only: nothing runs until a server is imported
    return handler


def _remove_logging(handler: JsonLogHandler) -> None:
    from otel_tdd import logging_guard

    logging_guard.uninstall(handler)
    logging.getLogger().removeHandler(handler)


def is_configured() -> bool:
    runtime = _runtime.RUNTIME
    return runtime is not None and not runtime.closed


def configure(
    service_name: str | None = None, *, _hooks: TestHooks | None = None, **overrides: Any
) -> _runtime.Runtime:
    """Build the Resource and the Tracer, Meter and Logger providers; install them globally.

    Arguments override the environment (``OTEL_*``, ``OTEL_TDD_*``); an invalid value
    raises :class:`ConfigError`. Calling it again with the same settings returns the
    same runtime; with different settings, call :func:`shutdown` first.
    """
    if service_name is not None:
        overrides["service_name"] = service_name
    settings = load_settings(overrides)
    hooks = _hooks or TestHooks()
    with _lock:
        existing = _runtime.RUNTIME
        if existing is not None and not existing.closed:
            if settings == existing.settings and _hooks is None:
                return existing
            raise ConfigError(
                "configure()",
                overrides,
                "the settings of the first call; call otel_tdd.shutdown() before configuring again",
            )
        return _build_and_install(settings, hooks)


def _build_and_install(settings: Settings, hooks: TestHooks) -> _runtime.Runtime:
    built: list[Any] = []
    try:
        resource = _resource(settings)
        tracer_provider = meter_provider = logger_provider = None
        if not settings.sdk_disabled:
            tracer_provider = _tracer_provider(settings, resource, hooks)
            built.append(tracer_provider)
            meter_provider = _meter_provider(settings, resource, hooks)
            built.append(meter_provider)
            logger_provider = _logger_provider(settings, resource, hooks)
            if logger_provider is not None:
                built.append(logger_provider)
        tracer = (
            tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
            if tracer_provider
            else trace.NoOpTracer()
        )
        meter = (
            meter_provider.get_meter(INSTRUMENTATION_NAME, __version__)
            if meter_provider
            else metrics.NoOpMeter(INSTRUMENTATION_NAME)
        )
        redactor = Redactor(settings.redact_keys)
        reporter = _ErrorReporter()
        common: dict[str, Any] = {
            "environment": settings.environment,
            "redactor": redactor,
            "log_stream": settings.log_stream,
            "logger_provider": logger_provider,
            "on_suppressed": _on_suppressed,
            "on_error": reporter,
            "stream": hooks.stream,
        }
        runtime = _runtime.Runtime(
            settings=settings,
            generation=_runtime.next_generation(),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            logger_provider=logger_provider,
            tracer=tracer,
            meter=meter,
            redactor=redactor,
            # StructuredLogger samples before building a record (cheaper); stdlib records here.
            logger_pipeline=build_pipeline(**common),
            stdlib_pipeline=build_pipeline(
                **common, sampler=TraceIdSampler(settings.log_sample_rate)
            ),
            extras=dict(hooks.extras),
        )
    except Exception:
        for provider in built:
            provider.shutdown()
        raise

    if tracer_provider is not None:
        _reset_api_globals()
        trace.set_tracer_provider(tracer_provider)
        assert meter_provider is not None
        metrics.set_meter_provider(meter_provider)
        if logger_provider is not None:
            from opentelemetry import _logs

            _logs.set_logger_provider(logger_provider)

    from otel_tdd.metrics import catalog

    catalog.bind(meter, settings.metric_cardinality_limit)
    handler = _install_logging(settings)
    if handler is not None:
        runtime.closers.append(lambda: _remove_logging(handler))
    _dropped_at_configure[runtime.generation] = dropped_totals()
    _register_fork_hook()
    _runtime.install(runtime)
    try:
        _start_extensions(runtime)
    except Exception:
        shutdown()
        raise
    return runtime


_fork_hook_registered = False


def _register_fork_hook() -> None:
    """Once per process, not per configure(): each registration lives until exit."""
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True


def _after_fork_in_child() -> None:
    """What the parent's threads did is not the child's to stop.

    The SDK re-creates its own export threads in the child and gives the
    providers a new ``service.instance.id``. Ours: the ops server's selector
    thread stayed in the parent (which keeps serving the probes), so the child
    only closes its copies of the sockets; the Alertmanager sender thread stayed
    there too, so the child starts its own on its first alert. Without this, the
    child's shutdown() waited forever for a thread that does not exist.
    """
    runtime = _runtime.RUNTIME
    if runtime is None or runtime.closed:
        return
    server = runtime.extras.pop("ops_server", None)
    if server is not None:
        runtime.closers[:] = [
            c for c in runtime.closers if getattr(c, "__self__", None) is not server
        ]
        with contextlib.suppress(Exception):
            server.stop()  # in a child: closes the inherited sockets, waits for nothing
    client = runtime.extras.pop("alertmanager", None)
    if client is not None:
        runtime.drains[:] = [
            d for d in runtime.drains if getattr(d, "__self__", None) is not client
        ]


def _start_extensions(runtime: _runtime.Runtime) -> None:
    """Parts that other modules own and configure() starts (the ops server, when asked)."""
    if runtime.settings.ops_port is not None:
        from otel_tdd.ops_server import start_ops_server

        server = start_ops_server(runtime.settings.ops_host, runtime.settings.ops_port)
        runtime.extras["ops_server"] = server
        runtime.closers.append(server.stop)


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Export everything buffered now; True when every provider flushed in time."""
    runtime = _runtime.RUNTIME
    if runtime is None or runtime.closed:
        return True
    results = [
        provider.force_flush(timeout_millis)
        for provider in (runtime.tracer_provider, runtime.meter_provider, runtime.logger_provider)
        if provider is not None
    ]
    return all(result is not False for result in results)


def shutdown(timeout_millis: int = 10_000) -> bool:
    """Flush and close everything; safe to call twice. True when nothing was lost.

    Bounded by ``timeout_millis``: queued alerts get at most half of it, the
    providers' final flush the rest (a request already on the wire to a host that
    never answers still runs to its own OTLP timeout). False, with one line on
    stderr, when telemetry was lost during this configuration's life: a failed or
    abandoned export, a queue overflow, alerts still queued.
    """
    with _lock:
        runtime = _runtime.RUNTIME
        if runtime is None or runtime.closed:
            return True
        timeout_s = max(0, timeout_millis) / 1000
        started = time.monotonic()
        clean = True
        for closer in reversed(runtime.closers):
            try:
                closer()
            except Exception as error:  # one failing closer must not keep the rest from running
                clean = False
                print(f"otel-tdd: shutdown step failed: {error!r}", file=sys.stderr)
        lost: list[str] = []
        for drain in runtime.drains:
            budget = min(timeout_s / 2, timeout_s - (time.monotonic() - started))
            try:
                if not drain(max(0.0, budget)):
                    lost.append("alerts still queued")
            except Exception as error:
                lost.append(f"a drain failed ({error!r})")
        remaining_ms = max(0, int((timeout_s - (time.monotonic() - started)) * 1000))
        # The SDK's force_flush ignores its timeout: this deadline enforces it (and counts).
        deadline = ExportDeadline(remaining_ms / 1000)
        # Spans first: their end may still write log records and metrics.
        for provider in (runtime.tracer_provider, runtime.logger_provider, runtime.meter_provider):
            if provider is None:
                continue
            try:
                provider.force_flush(remaining_ms)
                provider.shutdown()
            except Exception as error:
                clean = False
                print(f"otel-tdd: provider shutdown failed: {error!r}", file=sys.stderr)
        if deadline.cancel():
            lost.append(f"telemetry export abandoned after {timeout_millis} ms")
        before = _dropped_at_configure.get(runtime.generation, {})
        dropped = {
            signal: count - before.get(signal, 0)
            for signal, count in dropped_totals().items()
            if count > before.get(signal, 0)
        }
        if dropped:
            lost.append(", ".join(f"{count} {signal}" for signal, count in dropped.items()))
        if lost:
            clean = False
            print(
                "otel-tdd: telemetry was lost: "
                + "; ".join(lost)
                + " (counted in tdd_telemetry_dropped_total and tdd_alerts_failed_total)",
                file=sys.stderr,
            )
        _dropped_at_configure.pop(runtime.generation, None)
        _runtime.install(_closed(runtime))
        return clean


def _closed(runtime: _runtime.Runtime) -> _runtime.Runtime:
    """What is left after shutdown(): JSON records still print; nothing exports or restarts."""
    from otel_tdd.metrics import catalog

    meter = metrics.NoOpMeter(INSTRUMENTATION_NAME)
    catalog.bind(meter, runtime.settings.metric_cardinality_limit)
    return replace(
        runtime,
        generation=_runtime.next_generation(),
        tracer_provider=None,
        meter_provider=None,
        logger_provider=None,
        tracer=trace.NoOpTracer(),
        meter=meter,
        logger_pipeline=runtime.logger_pipeline.without_export(),
        stdlib_pipeline=runtime.stdlib_pipeline.without_export(),
        closers=[],
        drains=[],
        extras={},
        closed=True,
    )


def render_prometheus() -> bytes:
    """Every metric the app records, in Prometheus text format (what /metrics serves)."""
    from prometheus_client import REGISTRY, generate_latest

    _runtime.current()
    return bytes(generate_latest(REGISTRY))
