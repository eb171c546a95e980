"""Build the OTel SDK's Tracer, Meter and Logger providers from validated settings.

Nothing here re-implements the SDK: we choose its samplers, processors and
exporters, wrap each OTLP exporter to count what it drops, and install nothing
(:mod:`otel_tdd.lifecycle` installs what this builds).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

from otel_tdd.config import Settings, otlp_endpoint
from otel_tdd.export_accounting import (
    CountingLogExporter,
    CountingMetricExporter,
    CountingSpanExporter,
    count_queue_drops,
)
from otel_tdd.export_pacing import paced
from otel_tdd.version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor

__all__ = ["INSTRUMENTATION_NAME", "Providers", "TestHooks", "build_providers"]

INSTRUMENTATION_NAME = "otel_tdd"


@dataclass
class TestHooks:
    """Extra SDK parts for tests (the pytest plugin's in-memory capture)."""

    span_processors: Sequence[SpanProcessor] = ()
    log_processors: Sequence[LogRecordProcessor] = ()
    metric_readers: Sequence[MetricReader] = ()
    stream: IO[Any] | None = None


@dataclass
class Providers:
    """What :func:`build_providers` made; the providers are None with the SDK disabled."""

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    tracer: trace.Tracer
    meter: metrics.Meter


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
    """``configure(endpoint=)`` resolved for the exporter (config.otlp_endpoint); None:
    the exporter reads ``OTEL_*`` itself, the same way (tests/unit/test_otlp_endpoint.py)."""
    if settings.otlp_endpoints.get(signal) is None:
        return None
    return otlp_endpoint(settings, signal)


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
            # Imported here: prometheus_client is only needed when this exporter is chosen.
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
    # Imported here: the embedded default (JSON on stdout) never needs the logs SDK,
    # and start-up is a budget (docs/benchmarks.md).
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


def build_providers(settings: Settings, hooks: TestHooks) -> Providers:
    """The three providers (none with ``OTEL_SDK_DISABLED``); shuts down what it built on error."""
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
    except Exception:
        for provider in built:
            provider.shutdown()
        raise
    return Providers(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        tracer=(
            tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
            if tracer_provider
            else trace.NoOpTracer()
        ),
        meter=(
            meter_provider.get_meter(INSTRUMENTATION_NAME, __version__)
            if meter_provider
            else metrics.NoOpMeter(INSTRUMENTATION_NAME)
        ),
    )
