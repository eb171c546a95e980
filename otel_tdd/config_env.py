"""Checks of the standard ``OTEL_*`` variables that the SDK and its exporters read themselves.

The SDK raises a bare ValueError, or silently falls back, on a bad value: checked here
first so ``configure()`` names the variable. The reading stays the SDK's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from otel_tdd.config_values import (
    MAX_INT,
    ConfigError,
    parse_choice,
    parse_endpoint,
    parse_headers,
    parse_int,
    parse_number,
)

__all__ = [
    "SIGNALS",
    "env_value",
    "otlp_endpoint_configured",
    "signal_env",
    "validate_otlp_env",
    "validate_sdk_env",
]

SIGNALS = ("traces", "metrics", "logs")


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def signal_env(signal: str, suffix: str) -> str:
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}"


def otlp_endpoint_configured(environ: Mapping[str, str], signal: str) -> bool:
    return bool(env_value(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")) or bool(
        env_value(environ, signal_env(signal, "ENDPOINT"))
    )


# The SDK's own knobs that make configure() raise a bare ValueError (or silently fall back)
# on a bad value: (variable, minimum, accepted). "unset" is the SDK's word for no limit.
_SDK_INTS: tuple[tuple[str, int], ...] = (
    ("OTEL_BSP_MAX_QUEUE_SIZE", 1),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1),
    ("OTEL_BSP_SCHEDULE_DELAY", 1),
    ("OTEL_BSP_EXPORT_TIMEOUT", 0),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", 1),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 1),
    ("OTEL_BLRP_SCHEDULE_DELAY", 1),
    ("OTEL_BLRP_EXPORT_TIMEOUT", 0),
)
_SDK_LIMITS = (
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
)
_SDK_DEFAULT_QUEUE_SIZE = 2048
# Words the SDK takes; on anything else it raises a bare ValueError (the exemplar filter,
# the gRPC exporter's compression) or falls back in silence (the HTTP exporter's).
_SDK_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OTEL_METRICS_EXEMPLAR_FILTER", ("always_on", "always_off", "trace_based")),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", ("cumulative", "delta", "lowmemory")),
    (
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        ("explicit_bucket_histogram", "base2_exponential_bucket_histogram"),
    ),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", ("gzip", "deflate", "none")),
    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", ("gzip", "deflate", "none")),
    ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", ("gzip", "deflate", "none")),
    ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", ("gzip", "deflate", "none")),
)


def validate_sdk_env(environ: Mapping[str, str]) -> None:
    """Check the SDK's batching, interval and limit variables before the SDK reads them."""
    for name, minimum in _SDK_INTS:
        value = env_value(environ, name)
        if value is not None:
            parse_int(name, value, minimum)
    for prefix in ("OTEL_BSP", "OTEL_BLRP"):
        batch = env_value(environ, f"{prefix}_MAX_EXPORT_BATCH_SIZE")
        queue_text = env_value(environ, f"{prefix}_MAX_QUEUE_SIZE")
        queue_size = int(queue_text) if queue_text is not None else _SDK_DEFAULT_QUEUE_SIZE
        if batch is not None and int(batch) > queue_size:
            raise ConfigError(
                f"{prefix}_MAX_EXPORT_BATCH_SIZE",
                batch,
                f"a whole number from 1 to {prefix}_MAX_QUEUE_SIZE ({queue_size})",
            )
    value = env_value(environ, "OTEL_METRIC_EXPORT_INTERVAL")
    if value is not None:
        interval = parse_number(
            "OTEL_METRIC_EXPORT_INTERVAL", value, 0, math.inf, "milliseconds, a number above 0"
        )
        if interval == 0:
            raise ConfigError(
                "OTEL_METRIC_EXPORT_INTERVAL", value, "milliseconds, a number above 0"
            )
    value = env_value(environ, "OTEL_METRIC_EXPORT_TIMEOUT")
    if value is not None:
        parse_number("OTEL_METRIC_EXPORT_TIMEOUT", value, 0, math.inf, "milliseconds, 0 or more")
    for name in _SDK_LIMITS:
        value = env_value(environ, name)
        if value is not None and value.lower() != "unset":
            parse_int(name, value, 0, MAX_INT, "a whole number of 0 or more, or 'unset'")
    value = env_value(environ, "OTEL_PROPAGATORS")
    if value is not None:
        _validate_propagators(value)
    for name, choices in _SDK_CHOICES:
        value = env_value(environ, name)
        if value is not None:
            parse_choice(name, value, choices)


def _validate_propagators(value: str) -> None:
    """The check opentelemetry.propagate makes at import, as a ConfigError at configure()."""
    from importlib.metadata import entry_points

    known = {entry.name for entry in entry_points(group="opentelemetry_propagator")}
    for name in (item.strip() for item in value.split(",")):
        if name and name.lower() != "none" and name not in known:
            raise ConfigError(
                "OTEL_PROPAGATORS",
                value,
                f"a comma-separated list of installed propagators ({', '.join(sorted(known))}) "
                f"or none; {name!r} is not installed",
            )


def validate_otlp_env(environ: Mapping[str, str]) -> None:
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        *(signal_env(s, "ENDPOINT") for s in SIGNALS),
    ]:
        value = env_value(environ, name)
        if value is not None:
            parse_endpoint(name, value)
    for name in ["OTEL_EXPORTER_OTLP_HEADERS", *(signal_env(s, "HEADERS") for s in SIGNALS)]:
        value = env_value(environ, name)
        if value is not None:
            parse_headers(name, value)
    for suffix in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"):
        for name in [
            f"OTEL_EXPORTER_OTLP_{suffix}",
            *(signal_env(s, suffix) for s in SIGNALS),
        ]:
            value = env_value(environ, name)
            if value is not None and not os.path.isfile(value):
                raise ConfigError(name, value, "the path of a readable PEM file")
    for name in ["OTEL_EXPORTER_OTLP_TIMEOUT", *(signal_env(s, "TIMEOUT") for s in SIGNALS)]:
        value = env_value(environ, name)
        if value is not None:
            timeout = parse_number(name, value, 0, math.inf, "a timeout above 0")
            if timeout == 0:
                raise ConfigError(name, value, "a timeout above 0")
