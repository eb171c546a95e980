"""No secret reaches any output; no payload, however odd, breaks logging."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_alerting import FakeAlertmanager

from otel_tdd import _runtime
from otel_tdd.alerting import AlertmanagerClient, alert
from otel_tdd.redaction import REDACTED, Redactor
from otel_tdd.structured_logging import JsonLogHandler, StructuredLogger
from otel_tdd.testing import capture_telemetry

SECRET_KEYS = [
    "password",
    "db_password",
    "API_KEY",
    "api-key",
    "Authorization",
    "set-cookie",
    "refresh_token",
    "client_secret",
    "passwd",
]
# Secrets are long random tokens; a marker makes any leak easy to find in the output.
secret_values = st.text(
    alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40
).map(lambda s: "SECRET" + s)
innocent_keys = st.sampled_from(["user", "count", "note", "items", "nested", "form_id"])
scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=20), st.booleans())


@st.composite
def payloads(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A nested payload and the secrets hidden in it (under secret keys, at any depth)."""
    secrets: list[str] = []

    def build(depth: int) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):
                value = draw(secret_values)
                secrets.append(value)
                data[draw(st.sampled_from(SECRET_KEYS))] = value
            elif depth < 3 and draw(st.booleans()):
                data[draw(innocent_keys)] = build(depth + 1)
            else:
                data[draw(innocent_keys)] = draw(scalars)
        return data

    payload = build(0)
    # The last write under a repeated key wins: keep only secrets still in the payload.
    text = json.dumps(payload)
    return payload, [s for s in secrets if s in text]


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[FakeAlertmanager]:
    fake = FakeAlertmanager()
    try:
        yield fake
    finally:
        fake.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_no_secret_value_reaches_stdout_otlp_spans_or_alerts(
    alertmanager: FakeAlertmanager,
    case: tuple[dict[str, Any], list[str]],
) -> None:
    payload, secrets = case
    alertmanager.posts.clear()
    with capture_telemetry(alertmanager_url=alertmanager.url) as capture:
        logger = StructuredLogger("prop")
        logger.info("payload", payload)
        logger.security_event("login", payload)
        logging.getLogger("stdlib").warning("extra", extra={"payload": payload, **payload})
        with logger.performance_context("op") as perf:
            perf.update(payload)
        # Alerts through the public API with the raw data: redacting is alert()'s job, and
        # what is checked is what its sender POSTed to a loopback Alertmanager.
        logger.alert("SecretsProbe", payload)
        alert("SecretsProbeDirect", payload, alert_channels=["slack"])
        client = _runtime.current().alertmanager
        assert isinstance(client, AlertmanagerClient) and client.flush(10)
        # The capture's processors sit on the same providers beside the OTLP ones and get
        # the same span and record objects; the OTLP HTTP exporters send exactly
        # encode_spans/encode_logs of their batch.
        outputs = [
            capture.stream.getvalue(),
            encode_logs(capture.otel_logs()).SerializeToString(),
            encode_spans(capture.spans()).SerializeToString(),
        ]
    names = {a["labels"]["alertname"] for a in alertmanager.alerts()}
    assert names == {"SecretsProbe", "SecretsProbeDirect"}  # posted: the check is not vacuous
    outputs.append(json.dumps(alertmanager.posts).encode())
    for secret in secrets:
        for output in outputs:
            assert secret.encode() not in output


def test_card_numbers_are_masked_anywhere_in_text() -> None:
    redactor = Redactor()
    assert redactor.text("paid with 4111 1111 1111 1111 today") == f"paid with {REDACTED} today"
    assert redactor.text("order 1234567890123") == "order 1234567890123"  # fails Luhn: kept
    assert redactor.mapping({"note": "card 5555-5555-5555-4444"}) == {"note": f"card {REDACTED}"}


def test_configured_extra_keys_are_redacted() -> None:
    with capture_telemetry(redact_keys="ssn, mothers_maiden_name") as capture:
        StructuredLogger("x").info("m", {"ssn": "123-45-6789", "name": "ok"})
        (record,) = capture.records()
    assert record["data"] == {"ssn": REDACTED, "name": "ok"}


def test_odd_payloads_are_stringified_or_truncated_never_raised() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    odd: list[dict[Any, Any]] = [
        cyclic,
        {"blob": b"\x00\xffbytes"},
        {"huge": "x" * (10 * 1024 * 1024)},
        {1: "int key", (1, 2): "tuple key", None: "none key"},
        {"obj": object(), "set": {1, 2}, "exc": ValueError("v")},
    ]
    with capture_telemetry() as capture:
        logger = StructuredLogger("odd")
        for data in odd:
            logger.info("odd", data)
        # Straight to our handler: pytest's own capture handler re-raises format errors.
        bad = logging.LogRecord("odd", logging.INFO, __file__, 1, "bad %d format", ("x",), None)
        JsonLogHandler().handle(bad)
        records = capture.records()
    assert [r["message"] for r in records][:5] == ["odd"] * 5
    assert all(len(line) < 300_000 for line in capture.lines())
    assert "truncated" in json.dumps(records[2])
    assert records[1]["data"]["blob"].endswith("bytes")
    assert "bad" in records[5]["message"]


def test_stdlib_exceptions_keep_their_traceback() -> None:
    with capture_telemetry() as capture:
        try:
            raise RuntimeError("db down")
        except RuntimeError:
            logging.getLogger("svc").exception("query failed")
            StructuredLogger("svc").exception("query failed again")
        records = capture.records()
    assert all("RuntimeError: db down" in r["exception"] for r in records)
    assert [r["level"] for r in records] == ["ERROR", "ERROR"]


def test_otel_log_records_carry_the_trace_context() -> None:
    from otel_tdd.correlation import correlation_context

    with capture_telemetry() as capture:
        with correlation_context("u1", "r1") as ids:
            StructuredLogger("svc").info("hello", {"k": 1})
            logging.getLogger("lib").info("from a library")
        otel_records = [r.log_record for r in capture.otel_logs()]
    assert [r.body for r in otel_records] == ["hello", "from a library"]
    for record in otel_records:
        assert format(record.trace_id, "032x") == ids.correlation_id
        assert record.attributes is not None
        assert record.attributes["user_id"] == "u1"
    assert otel_records[0].attributes is not None
    assert otel_records[0].attributes["data"] == {"k": 1}


def test_stdlib_extra_fields_become_data_even_a_single_one() -> None:
    with capture_telemetry() as capture:
        # Only our handler: no other formatter has touched the records first.
        logger = logging.getLogger("only-ours")
        logger.propagate = False
        logger.handlers = [JsonLogHandler()]
        try:
            logger.warning("one extra", extra={"k": "v"})
            logger.warning("no extra")
            logger.warning("a secret", extra={"api_key": "abc123"})
        finally:
            logger.handlers = []
            logger.propagate = True
        records = capture.records()
    assert [r["data"] for r in records] == [{"k": "v"}, {}, {"api_key": REDACTED}]
