"""Settings from explicit arguments, the standard ``OTEL_*`` variables and our ``OTEL_TDD_*`` knobs.

Precedence, highest first: an argument to ``configure()``, then the environment,
then our defaults. Every value is validated here, once, so a typo fails at start
with an error naming the variable, the value and what is accepted, instead of
surfacing as silently missing telemetry at 3 a.m.

The OTLP exporters read their own standard variables (headers, timeouts,
certificates, compression); we validate the ones whose mistakes are common and
leave the reading to the SDK so its documented behaviour holds exactly.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["KNOBS", "ConfigError", "Settings", "load_settings", "without_password"]

SIGNALS = ("traces", "metrics", "logs")
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
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_STREAMS = ("stdout", "stderr", "none")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off", "")

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


class ConfigError(ValueError):
    """A setting is invalid. The message names the variable, the value and what is accepted."""

    def __init__(self, variable: str, value: object, accepted: str) -> None:
        self.variable = variable
        self.value = value
        self.accepted = accepted
        super().__init__(f"{variable}={value!r} is invalid: expected {accepted}")


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


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_bool(variable: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(variable, value, "true or false")


# Numbers are ASCII digits only: int() and float() also take "1_000" and Arabic-Indic
# digits, which no other OTel SDK accepts, so a value that works here would break elsewhere.
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Above this a count or a size is a typo, not a setting (and int() would take any length).
MAX_INT = 2**31 - 1


def parse_int(
    variable: str, value: object, minimum: int = 0, maximum: int = MAX_INT, accepted: str = ""
) -> int:
    """A whole number in ``minimum..maximum``, written with ASCII digits."""
    accepted = accepted or f"a whole number from {minimum} to {maximum}"
    if isinstance(value, bool):
        raise ConfigError(variable, value, accepted)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not _INT_TEXT.fullmatch(text) or len(text) > 12:
            raise ConfigError(variable, value, accepted)
        number = int(text)
    if not minimum <= number <= maximum:
        raise ConfigError(variable, value, accepted)
    return number


def parse_number(
    variable: str, value: object, minimum: float, maximum: float, accepted: str
) -> float:
    """A finite decimal number in ``minimum..maximum`` (ASCII); an underflow to 0 is refused."""
    if isinstance(value, bool):
        raise ConfigError(variable, value, accepted)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not _FLOAT_TEXT.fullmatch(text):
            raise ConfigError(variable, value, accepted)
        number = float(text)
        mantissa = re.split("[eE]", text)[0]
        if number == 0.0 and any(digit in "123456789" for digit in mantissa):
            raise ConfigError(variable, value, accepted + " (this one is too small to represent)")
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise ConfigError(variable, value, accepted)
    return number


def parse_ratio(variable: str, value: object) -> float:
    return parse_number(variable, value, 0.0, 1.0, "a number from 0.0 to 1.0")


def parse_port(variable: str, value: object) -> int:
    return parse_int(variable, value, 0, 65535, "a TCP port number from 0 to 65535")


def parse_level(variable: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value in (10, 20, 30, 40, 50):
            return value
        raise ConfigError(variable, value, "one of " + ", ".join(LOG_LEVELS))
    text = str(value).strip().upper()
    if text == "WARN":
        text = "WARNING"
    if text not in LOG_LEVELS:
        raise ConfigError(variable, value, "one of " + ", ".join(LOG_LEVELS))
    level: int = getattr(logging, text)
    return level


def without_password(value: object) -> str:
    """``value`` with the password of a URL's user-info replaced by ``***``, for messages."""
    text = str(value)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    user, colon, _ = rest.partition(":")
    at = rest.rfind("@")
    if colon and at > len(user) and not any(mark in user for mark in "/?#@"):
        # user:password@ where the password may hold / # ? @ unescaped (urlsplit would
        # end the host at the first of them and show the rest): it runs to the last @.
        return f"{scheme}://{user}:***@{rest[at + 1 :]}"
    netloc, slash, tail = rest.partition("/")
    if "@" not in netloc:
        return text
    userinfo, _, host = netloc.rpartition("@")
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}{slash}{tail}"


def parse_endpoint(variable: str, value: object) -> str:
    """An OTLP endpoint must be a URL with an http(s) scheme and a host, as the spec says.

    Whitespace or control characters anywhere (``http://a b``) are refused: no
    request can carry them. Errors never show a password from the URL.
    """
    text = str(value).strip()
    accepted = "a URL like http://127.0.0.1:4318 (scheme http or https, a host, optional port)"
    shown = without_password(value)
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ConfigError(variable, shown, accepted + ", without spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise ConfigError(variable, shown, accepted) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, shown, accepted)
    del port
    return text


def parse_choice(variable: str, value: object, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(variable, value, "one of " + ", ".join(choices))
    return text


def parse_exporters(variable: str, value: object, signal: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(parse_choice(variable, item, EXPORTERS[signal]) for item in items if str(item))
    if "none" in names:
        if len(names) > 1:
            raise ConfigError(variable, value, "'none' alone, or a list without 'none'")
        return ()
    return names


# An HTTP header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_headers(variable: str, value: str) -> None:
    """``key=value`` pairs separated by commas, percent-encoded (W3C baggage format).

    Refused: a pair without ``=``, bad percent-encoding (``%E2%82``), a name that
    is not an HTTP token, a control character (an encoded CR/LF) once decoded.
    Errors name the header but never show the values, which are usually secrets.
    """
    names: list[str] = []
    for item in value.split(","):
        if not item.strip():
            continue
        raw_name, sep, raw_value = item.partition("=")
        shown = _headers_shown([*names, raw_name.strip()[:40]])
        if not sep or not raw_name.strip():
            raise ConfigError(variable, shown, "comma-separated key=value pairs")
        try:
            name = unquote(raw_name.strip(), errors="strict")
            text = unquote(raw_value.strip(), errors="strict")
        except UnicodeDecodeError:
            raise ConfigError(
                variable, shown, "key=value pairs with valid percent-encoding (UTF-8)"
            ) from None
        names.append(name)
        if not _TOKEN.fullmatch(name):
            raise ConfigError(variable, shown, "header names made of letters, digits and -_.")
        if any(not char.isprintable() for char in text):
            raise ConfigError(
                variable, shown, "header values without control characters (CR, LF, NUL...)"
            )


def _headers_shown(names: list[str]) -> str:
    return "<headers " + ", ".join(repr(name) for name in names) + "; values not shown>"


def parse_resource_attributes(variable: str, value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    raise ConfigError(variable, value, "a mapping of attribute names to values")


def _signal_env(signal: str, suffix: str) -> str:
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}"


def _otlp_endpoint_configured(environ: Mapping[str, str], signal: str) -> bool:
    return bool(_env(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")) or bool(
        _env(environ, _signal_env(signal, "ENDPOINT"))
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


def _validate_sdk_env(environ: Mapping[str, str]) -> None:
    """Check the SDK's batching, interval and limit variables before the SDK reads them."""
    for name, minimum in _SDK_INTS:
        value = _env(environ, name)
        if value is not None:
            parse_int(name, value, minimum)
    for prefix in ("OTEL_BSP", "OTEL_BLRP"):
        batch = _env(environ, f"{prefix}_MAX_EXPORT_BATCH_SIZE")
        queue_text = _env(environ, f"{prefix}_MAX_QUEUE_SIZE")
        queue_size = int(queue_text) if queue_text is not None else _SDK_DEFAULT_QUEUE_SIZE
        if batch is not None and int(batch) > queue_size:
            raise ConfigError(
                f"{prefix}_MAX_EXPORT_BATCH_SIZE",
                batch,
                f"a whole number from 1 to {prefix}_MAX_QUEUE_SIZE ({queue_size})",
            )
    value = _env(environ, "OTEL_METRIC_EXPORT_INTERVAL")
    if value is not None:
        interval = parse_number(
            "OTEL_METRIC_EXPORT_INTERVAL", value, 0, math.inf, "milliseconds, a number above 0"
        )
        if interval == 0:
            raise ConfigError(
                "OTEL_METRIC_EXPORT_INTERVAL", value, "milliseconds, a number above 0"
            )
    value = _env(environ, "OTEL_METRIC_EXPORT_TIMEOUT")
    if value is not None:
        parse_number("OTEL_METRIC_EXPORT_TIMEOUT", value, 0, math.inf, "milliseconds, 0 or more")
    for name in _SDK_LIMITS:
        value = _env(environ, name)
        if value is not None and value.lower() != "unset":
            parse_int(name, value, 0, MAX_INT, "a whole number of 0 or more, or 'unset'")
    value = _env(environ, "OTEL_PROPAGATORS")
    if value is not None:
        _validate_propagators(value)
    for name, choices in _SDK_CHOICES:
        value = _env(environ, name)
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


def _validate_otlp_env(environ: Mapping[str, str]) -> None:
    for name in ["OTEL_EXPORTER_OTLP_ENDPOINT", *(_signal_env(s, "ENDPOINT") for s in SIGNALS)]:
        value = _env(environ, name)
        if value is not None:
            parse_endpoint(name, value)
    for name in ["OTEL_EXPORTER_OTLP_HEADERS", *(_signal_env(s, "HEADERS") for s in SIGNALS)]:
        value = _env(environ, name)
        if value is not None:
            parse_headers(name, value)
    for suffix in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"):
        for name in [f"OTEL_EXPORTER_OTLP_{suffix}", *(_signal_env(s, suffix) for s in SIGNALS)]:
            value = _env(environ, name)
            if value is not None and not os.path.isfile(value):
                raise ConfigError(name, value, "the path of a readable PEM file")
    for name in ["OTEL_EXPORTER_OTLP_TIMEOUT", *(_signal_env(s, "TIMEOUT") for s in SIGNALS)]:
        value = _env(environ, name)
        if value is not None:
            timeout = parse_number(name, value, 0, math.inf, "a timeout above 0")
            if timeout == 0:
                raise ConfigError(name, value, "a timeout above 0")


Pick = Callable[[str, str], "tuple[str, Any] | None"]


def _protocols(args: Mapping[str, Any], env: Mapping[str, str], pick: Pick) -> dict[str, str]:
    """Per-signal variable > generic variable > our default (the spec's http/protobuf)."""
    generic = pick("protocol", "OTEL_EXPORTER_OTLP_PROTOCOL")
    protocols: dict[str, str] = {}
    for signal in SIGNALS:
        variable = _signal_env(signal, "PROTOCOL")
        signal_value = None if args.get("protocol") else _env(env, variable)
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
    if args.get("endpoint") is not None or _otlp_endpoint_configured(env, signal):
        exporters = ("otlp",)
    if signal == "metrics":
        # The in-process Prometheus reader backs /metrics unless a list says otherwise.
        exporters = ("prometheus", *exporters)
    return exporters


def _parse_text(_variable: str, value: object) -> str:
    return str(value)


def _parse_keys(_variable: str, value: object) -> tuple[str, ...]:
    raw = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(k).strip().lower() for k in raw if str(k).strip())


# Distinct values per attribute: beyond this the guard is no guard (memory per series).
MAX_CARDINALITY_LIMIT = 1_000_000


def _parse_limit(variable: str, value: object) -> int:
    return parse_int(variable, value, 1, MAX_CARDINALITY_LIMIT)


def _parse_host(variable: str, value: object) -> str:
    """An interface to bind: an IP address or a host name, nothing else."""
    text = str(value).strip()
    accepted = "an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name"
    if not text or any(char.isspace() or not char.isprintable() for char in text):
        raise ConfigError(variable, value, accepted)
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(text):
        raise ConfigError(variable, value, accepted)
    return text


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _parse_alertmanager_url(variable: str, value: object) -> str:
    """urllib/http.client ignore user:password in a URL: refuse it rather than fail at send."""
    url = parse_endpoint(variable, value).rstrip("/")
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            variable,
            without_password(url),
            "a URL without user:password (credentials in the URL are never sent; put "
            "Alertmanager behind an authenticating proxy and give its plain URL)",
        )
    return url


# (argument of configure(), environment variable, parser) for every one-value setting.
SIMPLE_KNOBS: tuple[tuple[str, str, Callable[[str, Any], Any]], ...] = (
    ("sdk_disabled", "OTEL_SDK_DISABLED", parse_bool),
    ("service_name", "OTEL_SERVICE_NAME", _parse_text),
    ("environment", "OTEL_TDD_ENVIRONMENT", _parse_text),
    ("sampler", "OTEL_TRACES_SAMPLER", lambda v, x: parse_choice(v, x, SAMPLERS)),
    ("sampler_arg", "OTEL_TRACES_SAMPLER_ARG", parse_ratio),
    ("log_level", "OTEL_TDD_LOG_LEVEL", parse_level),
    ("log_stream", "OTEL_TDD_LOG_STREAM", lambda v, x: parse_choice(v, x, LOG_STREAMS)),
    ("capture_logging", "OTEL_TDD_CAPTURE_LOGGING", parse_bool),
    ("framework_logs", "OTEL_TDD_FRAMEWORK_LOGS", parse_bool),
    ("log_sample_rate", "OTEL_TDD_LOG_SAMPLE_RATE", parse_ratio),
    ("redact_keys", "OTEL_TDD_REDACT_KEYS", _parse_keys),
    ("performance_log_level", "OTEL_TDD_PERFORMANCE_LOG_LEVEL", parse_level),
    ("metric_cardinality_limit", "OTEL_TDD_METRIC_CARDINALITY_LIMIT", _parse_limit),
    ("ops_port", "OTEL_TDD_OPS_PORT", parse_port),
    ("ops_host", "OTEL_TDD_OPS_HOST", _parse_host),
    ("alertmanager_url", "OTEL_TDD_ALERTMANAGER_URL", _parse_alertmanager_url),
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
    _validate_otlp_env(env)
    _validate_sdk_env(env)

    def pick(arg: str, variable: str) -> tuple[str, Any] | None:
        """The argument if given (named as such in errors), else the variable if set."""
        if args.get(arg) is not None:
            return f"configure({arg}=...)", args[arg]
        value = _env(env, variable)
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
