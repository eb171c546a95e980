"""The walk's pure parts: LogsQL built from flags, values parsed, traces laid out.

The stores themselves are exercised in tests/integration/test_stores.py; here
the layout rules are pinned down on hand-made spans and records.
"""

from __future__ import annotations

import pytest

from otel_tdd import stores_query as q
from otel_tdd.exemplars_query import Exemplar
from otel_tdd.stores_query import LogRecord, Span, StoreQueryError, TraceSummary
from otel_tdd.trace_view import (
    format_duration,
    render_exemplars,
    render_log_line,
    render_trace,
    render_traces,
    trace_json,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def span(span_id: str, parent: str, name: str, start_ms: float, end_ms: float, **kw: str) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=span_id,
        parent_span_id=parent,
        service=kw.get("service", "shop"),
        name=name,
        start_ns=T0 + int(start_ms * MS),
        end_ns=T0 + int(end_ms * MS),
        status=kw.get("status", "UNSET"),
        status_message=kw.get("message", ""),
    )


def record(
    at_ms: float, span_id: str, message: str, level: str = "INFO", sev: int = 9
) -> LogRecord:
    return LogRecord(
        time_ns=T0 + int(at_ms * MS),
        message=message,
        level=level,
        severity_number=sev,
        service="shop",
        trace_id=TRACE,
        span_id=span_id,
        fields={"_msg": message},
    )


SPANS = [
    span("a" * 16, "", "GET /cart", 0, 100),
    span("b" * 16, "a" * 16, "SELECT cart", 10, 30),
    span(
        "c" * 16, "a" * 16, "charge", 40, 95, service="billing", status="ERROR", message="declined"
    ),
]
LOGS = [
    record(5, "a" * 16, "request in"),
    record(35, "a" * 16, "cart loaded"),
    record(90, "c" * 16, "card declined", "ERROR", 17),
    record(20, "b" * 16, "slow query", "WARN", 13),
    record(200, "f" * 16, "after the response"),
]


def test_waterfall_nests_spans_and_puts_each_record_in_its_span_at_its_time() -> None:
    lines = render_trace(SPANS, LOGS)
    assert lines[0] == (
        f"trace {TRACE}  3 spans  2 services (billing, shop)  100.0ms  1 error  5 log records"
    )
    body = [line for line in lines[3:] if line.strip()]
    order = [
        "GET /cart", "request in", "SELECT cart", "slow query", "cart loaded", "charge",
        "card declined", "records of this trace outside its spans:", "after the response",
    ]  # fmt: skip
    assert len(body) == len(order)
    for line, text in zip(body, order, strict=True):
        assert text in line, (text, line)
    # Children indented under their parent; the failed span says why.
    select = next(line for line in body if "SELECT cart" in line)
    assert "  SELECT cart" in select and "+10.0ms" in select and "20.0ms" in select
    charge = next(line for line in body if "charge" in line and "declined" not in line[:10])
    assert charge.startswith("billing") and charge.endswith("ERROR: declined")


def test_bars_show_where_in_the_trace_a_span_ran() -> None:
    lines = render_trace(SPANS)
    root = next(line for line in lines if "GET /cart" in line)
    charge = next(line for line in lines if "ERROR: declined" in line)
    assert "█" * 30 in root
    bar = charge[charge.index("55.0ms") + len("55.0ms") + 2 :][:30]
    assert bar.startswith(" " * 12) and bar.strip() == "█" * 16


def test_colour_only_when_asked() -> None:
    plain = "\n".join(render_trace(SPANS, LOGS))
    coloured = "\n".join(render_trace(SPANS, LOGS, colour=True))
    assert "\033[" not in plain
    assert "\033[31mERROR\033[0m" in coloured  # the ERROR record's level
    assert "\033[33mWARN " in coloured
    assert "\033[31mbilling" in coloured  # the failed span's row


def test_trace_json_keeps_everything() -> None:
    data = trace_json(SPANS, LOGS)
    assert data["trace_id"] == TRACE
    assert [s["name"] for s in data["spans"]] == ["GET /cart", "SELECT cart", "charge"]
    assert data["spans"][2]["status"] == "ERROR" and data["spans"][2]["duration_ms"] == 55.0
    assert [r["message"] for r in data["logs"]] == [r.message for r in LOGS]


def test_log_line_and_traces_table() -> None:
    line = render_log_line(LOGS[2])
    assert line.endswith(f"ERROR  shop  card declined  trace_id={TRACE}")
    summary = TraceSummary(TRACE, "shop", "GET /cart", T0 // 1000, 312_400, 3, 1, ("shop",))
    header, row = render_traces([summary])
    assert header.startswith("TRACE ID")
    assert row.startswith(TRACE) and "312.4ms" in row and row.endswith("shop: GET /cart")


def test_exemplars_table_is_slowest_first_with_the_bucket() -> None:
    ex = Exemplar(1.52, 1_800_000_000.0, TRACE, "a" * 16, {"job": "shop", "le": "2.5"})
    header, row = render_exemplars([ex])
    assert header.split()[:3] == ["VALUE", "TIME", "(UTC)"]
    assert row.split()[:1] == ["1.52s"]
    assert TRACE in row and row.endswith("job=shop, le=2.5")
    assert render_exemplars([ex], unit="")[1].split()[0] == "1.52"


@pytest.mark.parametrize(
    "text,seconds",
    [("500ms", 0.5), ("2s", 2.0), ("15m", 900.0), ("1h", 3600.0), ("1d", 86400.0), ("3", 3.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert q.parse_duration(text) == seconds


def test_bad_values_name_themselves() -> None:
    with pytest.raises(StoreQueryError, match="bad duration '5 minutes'"):
        q.parse_duration("5 minutes")
    with pytest.raises(StoreQueryError, match="bad trace id 'xyz'"):
        q.normalize_trace_id("xyz")
    with pytest.raises(StoreQueryError, match="bad trace id"):
        q.normalize_trace_id("0" * 32)  # the invalid all-zero id
    with pytest.raises(StoreQueryError, match="bad level 'loud'"):
        q.logsql(level="loud")
    assert q.normalize_trace_id("ABCDEF") == "0" * 26 + "abcdef"  # 64-bit ids, padded


def test_logsql_ands_the_filters_and_sorts_by_time() -> None:
    assert q.logsql() == "* | sort by (_time)"
    assert q.logsql("timeout or refused", trace_id=TRACE.upper(), service='we"ird',
                    level="warning", since=900) == (
        f'(timeout or refused) _time:900s trace_id:"{TRACE}" "service.name":"we\\"ird" '
        "severity_number:>=13 | sort by (_time)"
    )  # fmt: skip


def test_durations_read_well() -> None:
    assert [format_duration(ns) for ns in (850_000, 12_340_000, 1_520_000_000, 125e9)] == [
        "850µs", "12.3ms", "1.52s", "2m05s",
    ]  # fmt: skip


def test_default_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(q.ENV_JAEGER_URL, raising=False)
    assert q.default_url(q.ENV_JAEGER_URL) == "http://127.0.0.1:16686"
    monkeypatch.setenv(q.ENV_JAEGER_URL, "http://jaeger.example:16686/")
    assert q.default_url(q.ENV_JAEGER_URL) == "http://jaeger.example:16686"


def test_otlp_json_ids_may_be_hex_or_base64_and_kinds_names_or_numbers() -> None:
    """Jaeger answers hex ids and numeric kinds; the OTLP JSON spec says base64 and names."""
    import base64

    raw_id = bytes.fromhex(TRACE)
    payload = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": TRACE, "spanId": "a" * 16, "name": "hex", "kind": 2,
                             "startTimeUnixNano": "2", "endTimeUnixNano": "5",
                             "status": {"code": 2, "message": "boom"},
                             "attributes": [{"key": "n", "value": {"intValue": "3"}}]},
                            {"traceId": base64.b64encode(raw_id).decode(),
                             "spanId": base64.b64encode(b"\xbb" * 8).decode(),
                             "parentSpanId": "a" * 16, "name": "b64",
                             "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": "3",
                             "endTimeUnixNano": "4", "status": {"code": "STATUS_CODE_OK"}},
                        ]
                    }
                ],
            }
        ]
    }  # fmt: skip
    first, second = q._spans_from_otlp(payload)
    assert (first.name, first.kind, first.status, first.status_message) == (
        "hex", "server", "ERROR", "boom",
    )  # fmt: skip
    assert first.attributes == {"n": 3} and first.duration_ns == 3
    assert (second.trace_id, second.span_id, second.parent_span_id) == (TRACE, "b" * 16, "a" * 16)
    assert (second.kind, second.status) == ("client", "OK")
