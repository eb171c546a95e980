"""One OTLP endpoint resolver (config.otlp_endpoint) for the providers and the health check.

Precedence: configure(endpoint=), OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT, then
OTEL_EXPORTER_OTLP_ENDPOINT, then the spec's default, each for the signal's protocol
(configure(protocol=), OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL).
Each case is also checked against what the SDK's own exporter resolves from the same
environment, so the two cannot drift.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

from otel_tdd import _runtime
from otel_tdd.config import load_settings, otlp_endpoint
from otel_tdd.health.checks import otlp_endpoint_check
from otel_tdd.providers import _otlp_endpoint
from otel_tdd.redaction import Redactor

_OTLP_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    *(
        f"OTEL_EXPORTER_OTLP_{s}_{k}"
        for s in ("TRACES", "METRICS", "LOGS")
        for k in ("ENDPOINT", "PROTOCOL")
    ),
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTLP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_runtime, "RUNTIME", None)


CASES: list[tuple[str, dict[str, Any], dict[str, str], str, str]] = [
    # (id, configure() arguments, environment, signal, the exporter's URL)
    ("default http", {}, {}, "traces", "http://localhost:4318/v1/traces"),
    ("default http logs", {}, {}, "logs", "http://localhost:4318/v1/logs"),
    ("generic grpc protocol", {}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "traces",
     "http://localhost:4317"),
    # The case the health check's old copy got wrong: it read only the generic protocol.
    ("per-signal grpc protocol", {}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "traces",
     "http://localhost:4317"),
    ("per-signal protocol is per signal", {}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
     "logs", "http://localhost:4318/v1/logs"),
    ("per-signal over generic protocol", {},
     {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
     "traces", "http://localhost:4318/v1/traces"),
    ("configure(protocol=) over the per-signal variable", {"protocol": "grpc"},
     {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "traces", "http://localhost:4317"),
    ("generic endpoint, http appends the path", {},
     {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c.example:4318/"}, "traces",
     "http://c.example:4318/v1/traces"),
    ("generic endpoint, grpc as it is", {},
     {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c.example:4317",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "traces", "http://c.example:4317"),
    ("per-signal endpoint as it is, over the generic one", {},
     {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a.example:4318",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b.example:9999/custom"},
     "traces", "http://b.example:9999/custom"),
    ("configure(endpoint=) over every variable", {"endpoint": "http://x.example:4318"},
     {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b.example:9999/custom"}, "traces",
     "http://x.example:4318/v1/traces"),
    ("configure(endpoint=, protocol=grpc)",
     {"endpoint": "http://x.example:4317", "protocol": "grpc"}, {}, "traces",
     "http://x.example:4317"),
]  # fmt: skip


def _sdk_exporter_endpoint(signal: str, protocol: str, explicit: str | None) -> str:
    """What the SDK's exporter itself resolves (its private ``_endpoint``; the gRPC one
    keeps only host:port)."""
    if protocol == "grpc":
        exporter: Any = GrpcSpans(endpoint=explicit)
    else:
        exporter = (HttpSpans if signal == "traces" else HttpLogs)(endpoint=explicit)
    endpoint = str(exporter._endpoint)
    exporter.shutdown()
    return endpoint


@pytest.mark.parametrize(("args", "env", "signal", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_the_endpoint_follows_the_precedence_and_matches_the_sdks_exporter(
    monkeypatch: pytest.MonkeyPatch,
    args: dict[str, Any],
    env: dict[str, str],
    signal: str,
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(args)
    assert otlp_endpoint(settings, signal) == expected
    # The providers hand the exporter our URL only for configure(endpoint=); otherwise
    # the exporter reads the environment itself and must land on the same URL.
    protocol = settings.otlp_protocols[signal]
    sdk = _sdk_exporter_endpoint(signal, protocol, _otlp_endpoint(settings, signal))
    if protocol == "grpc":
        assert sdk == expected.split("://", 1)[1], sdk
    else:
        assert sdk == expected


def test_the_health_check_uses_the_per_signal_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc checked port 4318, where nothing listens."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    assert otlp_endpoint_check(connect_timeout_s=0.2)()["endpoint"] == "http://localhost:4317"


def test_the_health_check_uses_the_configured_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings({"endpoint": "http://configured.invalid:4317", "protocol": "grpc"})
    # What configure() leaves in _runtime, as far as the check reads it.
    runtime = SimpleNamespace(settings=settings, redactor=Redactor())
    monkeypatch.setattr(_runtime, "RUNTIME", runtime)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env.invalid:4318")
    result = otlp_endpoint_check(connect_timeout_s=0.2)()
    assert result["endpoint"] == "http://configured.invalid:4317"
