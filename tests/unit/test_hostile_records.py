"""Issue 14's reproducers: secrets that leaked, records that vanished or raised into the app.

Each test is one line of the issue, written as the user would hit it; each failed on
main at f70700f.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LogRecordProcessor
from test_alerting import FakeAlertmanager

from otel_tdd import _runtime, lifecycle
from otel_tdd.alerting import AlertmanagerClient
from otel_tdd.export_accounting import dropped_totals
from otel_tdd.health_check import HealthMonitor, otlp_endpoint_check
from otel_tdd.logs.record import MAX_RECORD_BYTES
from otel_tdd.performance import performance_tracked
from otel_tdd.redaction import REDACTED, Redactor
from otel_tdd.structured_logging import JsonLogHandler, StructuredLogger, iter_json_lines
from otel_tdd.testing import Capture, capture_telemetry


@dataclasses.dataclass
class Creds:
    user: str
    password: str


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    __str__ = __repr__


class RaisingItems(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("items refused")


@pytest.fixture
def only_ours() -> Iterator[logging.Logger]:
    """A stdlib logger whose only handler is ours. Made outside ``getLogger``'s registry:
    pytest adds its capture handlers (which re-raise format errors) to registered ones."""
    logger = logging.Logger("hostile.stdlib", logging.DEBUG)
    logger.propagate = False
    logger.addHandler(JsonLogHandler())
    yield logger


def outputs(capture: Capture) -> list[bytes]:
    """Everything that would leave the process: stdout, the OTLP logs and spans."""
    return [
        capture.stream.getvalue(),
        encode_logs(capture.otel_logs()).SerializeToString(),
        encode_spans(capture.spans()).SerializeToString(),
    ]


def assert_absent(secret: str, blobs: list[bytes]) -> None:
    for blob in blobs:
        assert secret.encode() not in blob


def one_record(capture: Capture) -> dict[str, Any]:
    (record,) = capture.records()
    return record


# --- secrets leak --------------------------------------------------------------------------


def test_dataclass_values_are_redacted_in_every_output_and_the_alertmanager_payload(
    only_ours: logging.Logger,
) -> None:
    fake = FakeAlertmanager()
    try:
        with capture_telemetry(alertmanager_url=fake.url) as capture:
            log = StructuredLogger("x")
            with _runtime.current().tracer.start_as_current_span("s"):
                log.info("login", {"creds": Creds("bob", "hunter2")})
                only_ours.warning("login", extra={"creds": Creds("bob", "hunter2")})
                log.security_event("login_failure", {"creds": Creds("bob", "hunter2")})
                with log.performance_context("op") as perf:
                    perf["creds"] = Creds("bob", "hunter2")
                log.alert("Login", {"creds": Creds("bob", "hunter2")})
            client = _runtime.current().alertmanager
            assert isinstance(client, AlertmanagerClient) and client.flush(10)
            records = capture.records()
            blobs = outputs(capture)
        assert records[0]["data"] == {"creds": {"user": "bob", "password": REDACTED}}
        assert len(fake.alerts()) == 1
        blobs.append(json.dumps(fake.posts).encode())
        assert_absent("hunter2", blobs)
    finally:
        fake.close()


def test_lists_nested_deeper_than_eight_are_redacted() -> None:
    nested: Any = [{"password": "hunter2"}]
    for _ in range(12):
        nested = [nested]
    with capture_telemetry() as capture:
        StructuredLogger("x").info("deep", {"d": nested})
        assert_absent("hunter2", outputs(capture))


@pytest.mark.parametrize(
    "data",
    [
        {"headers": [("Authorization", "Bearer hunter2")]},
        {"headers": [("X-Api-Key", "hunter2")]},
        {"scope": {"headers": [(b"cookie", b"sid=hunter2"), (b"authorization", b"hunter2")]}},
        {"view": {"password": "hunter2"}.items()},
        {"pair": ("password", "hunter2")},
    ],
    ids=["header-list", "header-name-only", "asgi-bytes", "items-view", "bare-pair"],
)
def test_header_pairs_asgi_byte_tuples_and_items_views_are_redacted(data: dict[str, Any]) -> None:
    with capture_telemetry() as capture:
        StructuredLogger("x").info("request", data)
        assert one_record(capture)["message"] == "request"
        assert_absent("hunter2", outputs(capture))


def test_exception_text_is_redacted_in_the_record_otlp_and_span_events(
    only_ours: logging.Logger,
) -> None:
    secret_error = "connect postgresql://app:S3cretPW@db/x failed, card 4111 1111 1111 1111"

    @performance_tracked
    def tracked() -> None:
        raise ValueError(secret_error)

    with capture_telemetry() as capture:
        log = StructuredLogger("x")
        try:
            raise ValueError(secret_error)
        except ValueError:
            log.exception("query failed")
            only_ours.exception("query failed")
        with pytest.raises(ValueError), log.performance_context("op"):
            raise ValueError(secret_error)
        with pytest.raises(ValueError):
            tracked()
        records = [r for r in capture.records() if "exception" in r]
        events = [e for span in capture.spans() for e in span.events if e.name == "exception"]
        blobs = outputs(capture)
    assert len(records) == 2 and all("ValueError" in r["exception"] for r in records)
    assert len(events) == 2  # the span events exist: the absence below is not vacuous
    assert all("postgresql://[REDACTED]@db" in str(e.attributes) for e in events)
    for secret in ("S3cretPW", "4111 1111 1111 1111"):
        assert_absent(secret, blobs)


@pytest.mark.parametrize(
    "text",
    [
        "login password=hunter2 ok",
        "login token=hunter2",
        'payload {"api_key": "hunter2"}',
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.hunter2",
        "key AKIAHUNTER2HUNTER222 in use",
        "dsn https://bob:hunter2@db.example/app",
        "paid 4111-1111-1111-1111",
        "headers [('Accept', '*/*'), ('X-Api-Key', 'hunter2')]",
        "scope {b'authorization': b'hunter2'}",
        "run --db-password=hunter2 --verbose",
    ],
)
def test_free_text_secrets_are_masked_in_messages_and_percent_args(
    text: str, only_ours: logging.Logger
) -> None:
    secret = "AKIAHUNTER2HUNTER222" if "AKIA" in text else "hunter2"
    secret = "4111-1111-1111-1111" if "4111" in text else secret
    with capture_telemetry() as capture:
        StructuredLogger("x").info(text)
        only_ours.warning("request: %s", text)
        assert len(capture.records()) == 2
        assert_absent(secret, outputs(capture))


LEAKED_KEYS = [
    "pass",
    "passphrase",
    "auth",
    "bearer",
    "credentials",
    "sessionid",
    "jsessionid",
    "PHPSESSID",
    "connect.sid",
    "dsn",
    "database_url",
    "connection_string",
    "otp",
    "pin",
    "mfa_code",
    "signature",
    "encryption_key",
    "cvc",
    "ssn",
    "api key",
    "api.key",
    "API Key",
    "card number",
]


@pytest.mark.parametrize("key", LEAKED_KEYS)
def test_secret_keys_the_list_missed_are_redacted(key: str) -> None:
    assert Redactor().mapping({key: "hunter2"}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["prompt_tokens", "max_tokens", "tokenizer", "secretary"])
def test_keys_that_merely_contain_a_secret_word_stay_unmasked(key: str) -> None:
    with capture_telemetry() as capture:
        StructuredLogger("x").info("usage", {key: 42, "note": "x"})
        assert one_record(capture)["data"] == {key: 42, "note": "x"}


def test_a_configured_key_matches_whole_words_not_substrings() -> None:
    with capture_telemetry(redact_keys="a") as capture:
        StructuredLogger("x").info("m", {"name": "bob", "a": "s", "x-a": "s"})
        assert one_record(capture)["data"] == {"name": "bob", "a": REDACTED, "x-a": REDACTED}


def test_security_event_types_alert_names_and_channels_are_redacted() -> None:
    with capture_telemetry() as capture:
        log = StructuredLogger("x")
        with _runtime.current().tracer.start_as_current_span("s"):
            log.security_event("login password=hunter2")
            log.alert("Leak token=hunter3", {}, alert_channels=["slack webhook?token=hunter4"])
        assert len(capture.records()) == 2
        blobs = outputs(capture)
    for secret in ("hunter2", "hunter3", "hunter4"):
        assert_absent(secret, blobs)


def test_health_and_its_warning_record_do_not_carry_a_failing_checks_credentials() -> None:
    def database() -> dict[str, Any]:
        raise ConnectionError("could not connect to postgresql://app:S3cretPW@db:5432/app")

    with capture_telemetry() as capture:
        monitor = HealthMonitor()
        monitor.register_check("database", database, critical=False)
        body = monitor.get_detailed_status().json_bytes()
        assert b"postgresql://[REDACTED]@db" in body
        assert any(r["level"] == "WARNING" for r in capture.records())
        assert_absent("S3cretPW", [body, *outputs(capture)])


def test_otlp_endpoint_check_does_not_report_url_credentials() -> None:
    check = otlp_endpoint_check("http://user:S3cretPW@127.0.0.1:1", connect_timeout_s=1)
    assert "S3cretPW" not in json.dumps(check())


# --- records vanish or raise into the app --------------------------------------------------


def test_a_percent_arg_with_a_raising_repr_does_not_raise_into_the_app(
    only_ours: logging.Logger,
) -> None:
    with capture_telemetry() as capture:
        only_ours.warning("v=%s", RaisingRepr())
        assert "unprintable RaisingRepr" in one_record(capture)["message"]


def test_a_message_whose_str_raises_does_not_raise_into_the_app() -> None:
    with capture_telemetry() as capture:
        StructuredLogger("x").info(RaisingRepr())  # type: ignore[arg-type]
        assert one_record(capture)["message"] == "<unprintable RaisingRepr>"


def _deep_list(levels: int) -> list[Any]:
    root: list[Any] = []
    current = root
    for _ in range(levels):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return root


HOSTILE: dict[str, tuple[str, Any, tuple[Any, ...]]] = {
    "surrogate in message": ("lone \udc80 surrogate", {}, ()),
    "surrogate in data": ("m", {"k": "v\ud800"}, ()),
    "surrogate in a key": ("m", {"k\udfff": 1}, ()),
    "surrogate in an arg": ("v=%s", {}, ("a\udc80",)),
    "raising repr in data": ("m", {"k": RaisingRepr()}, ()),
    "items() raises": ("m", {"k": RaisingItems(a=1)}, ()),
    "10,000-deep list": ("m", {"k": _deep_list(10_000)}, ()),
    "10**5000": ("m", {"k": 10**5000}, ()),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_value_still_gives_exactly_one_valid_line_and_otlp_record(
    case: str, only_ours: logging.Logger
) -> None:
    message, data, args = HOSTILE[case]
    with capture_telemetry() as capture:
        if args:
            only_ours.info(message, *args)
        else:
            StructuredLogger("x").info(message, data)
        one_record(capture)
        (otel_record,) = capture.otel_logs()
        assert encode_logs([otel_record]).SerializeToString()  # the OTLP batch still encodes


@pytest.mark.parametrize(
    "data",
    [{str(i): i for i in range(100_000)}, {"k": list(range(1_000_000))}, {"k": "x" * 10**7}],
    ids=["100,000 keys", "a list of 1,000,000", "10 MB string"],
)
def test_a_line_is_bounded_and_says_what_was_cut(data: dict[str, Any]) -> None:
    with capture_telemetry() as capture:
        StructuredLogger("x").info("big", data)
        (line,) = capture.lines()
        assert len(line.encode()) <= MAX_RECORD_BYTES
        assert "truncated" in line
        one_record(capture)


def test_the_bound_holds_when_every_field_and_block_is_huge_and_escapes_six_fold() -> None:
    nul = "\x00" * 1_000_000  # each NUL is written as \u0000: six bytes
    block = {f"{nul[:300]}{i}": nul for i in range(2_000)}  # one string, 2,000 times
    with capture_telemetry() as capture:
        StructuredLogger(nul[:5000]).log(
            logging.ERROR,
            nul,
            block,
            performance=block,
            security=block,
            alert=block,
            exception=nul,
        )
        (line,) = capture.lines()
    assert len(line.encode()) <= MAX_RECORD_BYTES
    assert json.loads(line)["data"]["[truncated]"] == "more than 1000 items"  # and says so


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], {"_value": [1, 2]}),
        (Creds("bob", "hunter2"), {"user": "bob", "password": REDACTED}),
    ],
    ids=["list", "dataclass"],
)
def test_data_given_as_a_list_or_a_dataclass_keeps_the_record(data: Any, expected: Any) -> None:
    with capture_telemetry() as capture:
        StructuredLogger("x").info("m", data)
        assert one_record(capture)["data"] == expected


def test_an_empty_data_key_with_otlp_on_adds_no_sdk_warning_lines() -> None:
    with capture_telemetry() as capture:
        StructuredLogger("x").info("m", {"": 1, "nested": {"": 2}})
        assert one_record(capture)["data"] == {"": 1, "nested": {"": 2}}
        assert len(capture.otel_logs()) == 1


def test_line_separators_in_a_message_do_not_break_the_line_readers() -> None:
    message = "a\u2028b\u2029c\u0085d"
    with capture_telemetry() as capture:
        StructuredLogger("x").info(message)
        assert len(capture.lines()) == 1
        assert one_record(capture)["message"] == message
        text = capture.stream.getvalue().decode()
    assert [json.loads(line)["message"] for line in iter_json_lines(text)] == [message]


def test_a_health_result_with_a_lone_surrogate_does_not_answer_500() -> None:
    from test_ops_server import get

    from otel_tdd.ops_server import start_ops_server

    monitor = HealthMonitor()
    result = {"status": "healthy", "message": "x\udc80", "k": "\ud800"}
    monitor.register_check("odd", lambda: result)
    with capture_telemetry(), start_ops_server("127.0.0.1", 0, monitor) as server:
        status, _, body = get(f"http://127.0.0.1:{server.port}/health")
    assert status == 200
    assert json.loads(body)["checks"]["odd"]["status"] == "healthy"


def test_a_health_result_with_an_invalid_status_is_redacted_too() -> None:
    from test_ops_server import get

    from otel_tdd.ops_server import start_ops_server

    monitor = HealthMonitor()
    result = {
        "status": "degraded password=hunter2",
        "password": "hunter2",
        "dsn_note": "postgresql://app:S3cret@db/x",
    }
    monitor.register_check("odd", lambda: result)
    with capture_telemetry(), start_ops_server("127.0.0.1", 0, monitor) as server:
        status, _, body = get(f"http://127.0.0.1:{server.port}/health")
    assert status == 503
    check = json.loads(body)["checks"]["odd"]
    assert check["status"] == "critical"
    assert "returned status=" in check["message"]
    text = body.decode()
    assert "hunter2" not in text and "S3cret" not in text, text


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("Authorization: token ghp_abcdef123456", ["ghp_abcdef123456"]),
        ("authorization=ApiKey k123:xyz789", ["k123", "xyz789"]),
        ('Authorization: Digest username="bob", response="6629fae4"', ["6629fae4"]),
        ("Proxy-Authorization: Negotiate YIIabc9876==", ["YIIabc9876"]),
        ("Authorization: NTLM TlRMTVNTUAAB", ["TlRMTVNTUAAB"]),
        ("dsn postgresql://app:pa/ss9876@db/x", ["pa/ss9876", "ss9876"]),
        ("dsn postgresql://app:p@ss9876@db/x", ["ss9876"]),
        ("dsn redis://app:pw#x9876@db:6379", ["x9876"]),
        ("password=abc;def9876 then", ["def9876"]),
        ("token: Bearer abc@def9876", ["def9876"]),
    ],
)
def test_credentials_with_a_scheme_or_punctuation_are_masked_whole(
    text: str, secrets: list[str]
) -> None:
    masked = Redactor().text(text)
    assert REDACTED in masked
    for secret in secrets:
        assert secret not in masked, masked


class _RaisingProcessor(LogRecordProcessor):
    def on_emit(self, log_record: Any) -> None:
        raise RuntimeError("exporter bug")

    def emit(self, log_record: Any) -> None:
        raise RuntimeError("exporter bug")

    def shutdown(self) -> None:
        return

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_a_record_whose_export_step_fails_is_still_written_once_and_counted() -> None:
    before = dropped_totals().get("logs", 0)
    with capture_telemetry() as capture:
        provider = _runtime.current().logger_provider
        assert provider is not None
        provider.add_log_record_processor(_RaisingProcessor())
        StructuredLogger("x").info("still here", {"k": 1})
        assert one_record(capture)["data"] == {"k": 1}
    assert dropped_totals().get("logs", 0) == before + 1


def test_a_failing_step_before_the_write_leaves_one_line_saying_so_and_counts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("bug")

    before = dropped_totals().get("logs", 0)
    with capture_telemetry() as capture:
        from otel_tdd.logs import steps as log_pipeline

        monkeypatch.setattr(log_pipeline.AddContext, "__call__", broken)
        StructuredLogger("x").info("password=hunter2", {"k": 1})
        record = one_record(capture)
        # Visible as a metric, not only in the running total.
        assert capture.metric_value("tdd_telemetry_dropped_total", {"signal": "logs"}) == 1
    assert record["message"] == f"password={REDACTED}"
    assert "AddContext" in record["data"]["_truncated"]
    assert dropped_totals().get("logs", 0) == before + 1


class _BrokenStream:
    def write(self, _line: Any) -> int:
        raise OSError("disk full")

    def flush(self) -> None:
        return


def test_a_record_that_cannot_be_written_is_counted_never_raised() -> None:
    before = dropped_totals().get("logs", 0)
    lifecycle.shutdown()
    hooks = lifecycle.TestHooks(stream=_BrokenStream())  # type: ignore[arg-type]
    lifecycle.configure(_hooks=hooks, service_name="t", log_level="DEBUG")
    try:
        for index in range(3):
            StructuredLogger("x").info("lost", {"i": index})
    finally:
        lifecycle.shutdown()
    assert dropped_totals().get("logs", 0) == before + 3


def test_a_hand_built_record_lacking_attributes_never_raises_from_handle() -> None:
    """``handle`` runs our filter and the app-owns check before ``emit`` builds the line:
    neither may raise into the app, whatever the record lacks; the record is counted."""
    from otel_tdd.logs.guard import _NotOurTraffic

    def app_owns(_record: logging.LogRecord) -> bool:
        raise AttributeError("record has no name")

    handler = JsonLogHandler()
    handler.addFilter(_NotOurTraffic())
    handler.app_owns_record = app_owns
    bare = logging.LogRecord.__new__(logging.LogRecord)  # no levelno, name, msg...
    before = dropped_totals().get("logs", 0)
    with capture_telemetry():
        assert handler.handle(bare) is True
    assert dropped_totals().get("logs", 0) == before + 1
