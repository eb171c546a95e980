"""Settings from ``configure()`` arguments, the ``OTEL_*`` variables and our ``OTEL_TDD_*`` knobs.

Precedence: an argument, then the environment, then our default. Everything is validated
once, at start, with an error naming the variable, the value and what is accepted
(docs/configuration.md); single values are parsed by :mod:`otel_tdd.config_values`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from otel_tdd.config_env import (
    SIGNALS,
    env_value,
    otlp_endpoint_configured,
    signal_env,
    validate_otlp_env,
    validate_sdk_env,
)
from otel_tdd.config_values import (
    ConfigError,
    parse_alertmanager_url,
    parse_bool,
    parse_choice,
    parse_endpoint,
    parse_host,
    parse_int,
    parse_keys,
    parse_level,
    parse_port,
    parse_ratio,
    parse_resource_attributes,
    parse_text,
    without_password,
)

__all__ = [
    "KNOBS",
    "ConfigError",
    "Settings",
    "load_settings",
    "otlp_endpoint",
    "without_password",
]

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
# http/json is in the spec, but the Python SDK ships no exporter for it.
PROTOCOLS = ("http/protobuf", "grpc")
EXPORTERS = {
    "traces": ("otlp", "console", "none"),
    "metrics": ("otlp", "prometheus", "console", "none"),
    "logs": ("otlp", "console", "none"),
}
LOG_STREAMS = ("stdout", "stderr", "none")

# Our own knobs: name -> one-line help. `otel-tdd --help` and docs/configuration.md list these.
KNOBS: dict[str, str] = {
    "OTEL_TDD_ENVIRONMENT": "deployment environment in each record (default: development)",
    "OTEL_TDD_LOG_LEVEL": "minimum level of JSON log records: DEBUG..CRITICAL (default: INFO)",
    "OTEL_TDD_LOG_STREAM": "where JSON log lines go: stdout, stderr or none (default: stdout)",
    "OTEL_TDD_CAPTURE_LOGGING": "route stdlib logging through the JSON pipeline (default: true)",
    "OTEL_TDD_FRAMEWORK_LOGS": "uvicorn's, gunicorn's and Streamlit's own log lines as JSON "
    "too (default: true)",
    "OTEL_TDD_LOG_SAMPLE_RATE": "share of records below WARNING kept, per trace (default: 1.0)",
    "OTEL_TDD_REDACT_KEYS": "extra comma-separated secret-like keys to redact",
    "OTEL_TDD_PERFORMANCE_LOG_LEVEL": "level of performance_tracked records (default: DEBUG)",
    "OTEL_TDD_METRIC_CARDINALITY_LIMIT": "distinct values per metric attribute before overflow "
    "(default: 100)",
    "OTEL_TDD_OPS_PORT": "port of the ops server (/health, /metrics); unset: no server",
    "OTEL_TDD_OPS_HOST": "interface the ops server binds (default: 127.0.0.1)",
    "OTEL_TDD_ALERTMANAGER_URL": "Alertmanager base URL for alert() (unset: alerts only logged)",
}


@dataclass(frozen=True)
class Settings:
    """Everything ``configure()`` needs, validated. Built by :func:`load_settings`."""

    sdk_disabled: bool = False
    service_name: str | None = None
    environment: str = "development"
    traces_exporters: tuple[str, ...] = ()
    metrics_exporters: tuple[str, ...] = ("prometheus",)
    logs_exporters: tuple[str, ...] = ()
    # Per signal: "http/protobuf" or "grpc".
    otlp_protocols: Mapping[str, str] = field(default_factory=dict)
    # Per signal: an explicit endpoint from an argument (None: the exporter reads the env).
    otlp_endpoints: Mapping[str, str | None] = field(default_factory=dict)
    sampler: str = "parentbased_always_on"
    sampler_arg: float | None = None
    log_level: int = logging.INFO
    log_stream: str = "stdout"
    capture_logging: bool = True
    framework_logs: bool = True
    log_sample_rate: float = 1.0
    redact_keys: tuple[str, ...] = ()
    performance_log_level: int = logging.DEBUG
    metric_cardinality_limit: int = 100
    ops_port: int | None = None
    ops_host: str = "127.0.0.1"
    alertmanager_url: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)

    def otlp_enabled(self) -> bool:
        return any(
            "otlp" in exporters
            for exporters in (self.traces_exporters, self.metrics_exporters, self.logs_exporters)
        )


# Arguments configure() accepts besides service_name: our field names.
OVERRIDES = {f.name for f in fields(Settings)} | {
    "endpoint",
    "protocol",
    "exporter",
    "sampler_ratio",
}


def parse_exporters(variable: str, value: object, signal: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(parse_choice(variable, item, EXPORTERS[signal]) for item in items if str(item))
    if "none" in names:
        if len(names) > 1:
            raise ConfigError(variable, value, "'none' alone, or a list without 'none'")
        return ()
    return names


# Distinct values per attribute: beyond this the guard is no guard (memory per series).
MAX_CARDINALITY_LIMIT = 1_000_000


def _parse_limit(variable: str, value: object) -> int:
    return parse_int(variable, value, 1, MAX_CARDINALITY_LIMIT)


Pick = Callable[[str, str], "tuple[str, Any] | None"]


def _protocols(args: Mapping[str, Any], env: Mapping[str, str], pick: Pick) -> dict[str, str]:
    """Per-signal variable > generic variable > our default (the spec's http/protobuf)."""
    generic = pick("protocol", "OTEL_EXPORTER_OTLP_PROTOCOL")
    protocols: dict[str, str] = {}
    for signal in SIGNALS:
        variable = signal_env(signal, "PROTOCOL")
        signal_value = None if args.get("protocol") else env_value(env, variable)
        got = (variable, signal_value) if signal_value is not None else generic
        protocols[signal] = parse_choice(got[0], got[1], PROTOCOLS) if got else "http/protobuf"
    return protocols


def _exporters(
    signal: str, args: Mapping[str, Any], env: Mapping[str, str], pick: Pick
) -> tuple[str, ...]:
    """Explicit list > OTEL_<SIGNAL>_EXPORTER > otlp when an endpoint is set > none."""
    got = pick(f"{signal}_exporters", f"OTEL_{signal.upper()}_EXPORTER")
    if got is None and args.get("exporter") is not None:
        got = ("configure(exporter=...)", args["exporter"])
    if got is not None:
        return parse_exporters(got[0], got[1], signal)
    exporters: tuple[str, ...] = ()
    if args.get("endpoint") is not None or otlp_endpoint_configured(env, signal):
        exporters = ("otlp",)
    if signal == "metrics":
        # The in-process Prometheus reader backs /metrics unless a list says otherwise.
        exporters = ("prometheus", *exporters)
    return exporters


# (argument of configure(), environment variable, parser) for every one-value setting.
SIMPLE_KNOBS: tuple[tuple[str, str, Callable[[str, Any], Any]], ...] = (
    ("sdk_disabled", "OTEL_SDK_DISABLED", parse_bool),
    ("service_name", "OTEL_SERVICE_NAME", parse_text),
    ("environment", "OTEL_TDD_ENVIRONMENT", parse_text),
    ("sampler", "OTEL_TRACES_SAMPLER", lambda v, x: parse_choice(v, x, SAMPLERS)),
    ("sampler_arg", "OTEL_TRACES_SAMPLER_ARG", parse_ratio),
    ("log_level", "OTEL_TDD_LOG_LEVEL", parse_level),
    ("log_stream", "OTEL_TDD_LOG_STREAM", lambda v, x: parse_choice(v, x, LOG_STREAMS)),
    ("capture_logging", "OTEL_TDD_CAPTURE_LOGGING", parse_bool),
    ("framework_logs", "OTEL_TDD_FRAMEWORK_LOGS", parse_bool),
    ("log_sample_rate", "OTEL_TDD_LOG_SAMPLE_RATE", parse_ratio),
    ("redact_keys", "OTEL_TDD_REDACT_KEYS", parse_keys),
    ("performance_log_level", "OTEL_TDD_PERFORMANCE_LOG_LEVEL", parse_level),
    ("metric_cardinality_limit", "OTEL_TDD_METRIC_CARDINALITY_LIMIT", _parse_limit),
    ("ops_port", "OTEL_TDD_OPS_PORT", parse_port),
    ("ops_host", "OTEL_TDD_OPS_HOST", parse_host),
    ("alertmanager_url", "OTEL_TDD_ALERTMANAGER_URL", parse_alertmanager_url),
)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate arguments and environment into :class:`Settings`; raise :class:`ConfigError`."""
    args = dict(overrides or {})
    env = os.environ if environ is None else environ
    unknown = sorted(set(args) - OVERRIDES - {"service_name"})
    if unknown:
        raise ConfigError(
            "configure(" + unknown[0] + "=...)",
            args[unknown[0]],
            "one of " + ", ".join(sorted(OVERRIDES)),
        )
    validate_otlp_env(env)
    validate_sdk_env(env)

    def pick(arg: str, variable: str) -> tuple[str, Any] | None:
        """The argument if given (named as such in errors), else the variable if set."""
        if args.get(arg) is not None:
            return f"configure({arg}=...)", args[arg]
        value = env_value(env, variable)
        return (variable, value) if value is not None else None

    values: dict[str, Any] = {}
    for arg, variable, parse in SIMPLE_KNOBS:
        got = pick(arg, variable)
        if got is not None:
            values[arg] = parse(*got)
    values["otlp_protocols"] = _protocols(args, env, pick)
    endpoint_arg = args.get("endpoint")
    if endpoint_arg is not None:
        parse_endpoint("configure(endpoint=...)", endpoint_arg)
    values["otlp_endpoints"] = {signal: endpoint_arg for signal in SIGNALS}
    for signal in SIGNALS:
        values[f"{signal}_exporters"] = _exporters(signal, args, env, pick)
    if args.get("sampler_ratio") is not None and args.get("sampler_arg") is None:
        values["sampler_arg"] = parse_ratio("configure(sampler_ratio=...)", args["sampler_ratio"])
    if values.get("sampler_arg") is not None and values.get("sampler") not in RATIO_SAMPLERS:
        # The spec ignores the argument for samplers that take none; so do we.
        values["sampler_arg"] = None
    if args.get("resource_attributes") is not None:
        values["resource_attributes"] = parse_resource_attributes(
            "configure(resource_attributes=...)", args["resource_attributes"]
        )
    return Settings(**values)


# The spec's defaults when no endpoint is set: gRPC's port, or OTLP/HTTP's base URL.
_DEFAULT_OTLP = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


def otlp_endpoint(settings: Settings, signal: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL the OTLP exporter of ``signal`` sends to, resolved as the SDK's exporters do.

    ``configure(endpoint=)``, then ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (used as it
    is), then ``OTEL_EXPORTER_OTLP_ENDPOINT``, then the spec's default, for the signal's
    protocol (``settings.otlp_protocols``: ``configure(protocol=)``, the per-signal, then
    the generic variable). A base URL over OTLP/HTTP gets the signal's ``/v1/<signal>``.
    """
    env = os.environ if environ is None else environ
    protocol = settings.otlp_protocols.get(signal, "http/protobuf")
    explicit = settings.otlp_endpoints.get(signal)
    per_signal = env_value(env, signal_env(signal, "ENDPOINT"))
    if explicit is None and per_signal is not None:
        return per_signal
    base = explicit or env_value(env, "OTEL_EXPORTER_OTLP_ENDPOINT") or _DEFAULT_OTLP[protocol]
    if protocol == "grpc":
        return base
    return f"{base.rstrip('/')}/v1/{signal}"
