"""Read traces from Jaeger and logs from VictoriaLogs (exemplars: exemplars_query).

Over :mod:`otel_tdd.store_http` (URLs, bounded HTTP, :class:`StoreQueryError`,
re-exported here as the query commands' one import).

APIs used: Jaeger's ``/api/v3/traces/<id>`` (OTLP JSON, nanosecond times and the
span status as sent) to fetch one trace, and ``/api/traces`` to search, since
only that one filters on tags (``error=true``); VictoriaLogs'
``/select/logsql/query`` (JSON lines).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from otel_tdd.store_http import (
    DEFAULT_URLS,
    ENV_JAEGER_URL,
    ENV_LOGS_URL,
    ENV_PROMETHEUS_URL,
    TIMEOUT,
    HTTPStatusError,
    StoreQueryError,
    default_url,
    open_url,
    parse_json,
)

__all__ = [
    "DEFAULT_URLS",
    "ENV_JAEGER_URL",
    "ENV_LOGS_URL",
    "ENV_PROMETHEUS_URL",
    "LEVELS",
    "TIMEOUT",
    "HTTPStatusError",
    "LogPage",
    "LogRecord",
    "Span",
    "StoreQueryError",
    "TraceSummary",
    "default_url",
    "fetch_logs",
    "fetch_trace",
    "find_traces",
    "follow_logs",
    "known_services",
    "logsql",
    "normalize_trace_id",
    "open_url",
    "parse_duration",
    "parse_json",
    "utc",
]

# OTel severity numbers where each level starts (logs data model).
LEVELS: Mapping[str, int] = {
    "trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21,
}  # fmt: skip
_LEVEL_ALIASES = {"warning": "warn", "critical": "fatal"}


# --- values ---------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
}  # fmt: skip


def parse_duration(text: str) -> float:
    """``500ms``, ``1.5s``, ``15m``, ``2h``, ``1d`` (a bare number is seconds) -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise StoreQueryError(
            f"bad duration {text!r}: use a number and a unit, e.g. 500ms, 2s, 15m, 1h, 1d"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


_HEX = re.compile(r"^[0-9a-f]{1,32}$")


def normalize_trace_id(text: str) -> str:
    """A trace id as Jaeger and VictoriaLogs store it: 32 lowercase hex digits."""
    value = text.strip().lower()
    if not _HEX.match(value) or not int(value, 16):
        raise StoreQueryError(
            f"bad trace id {text!r}: expected up to 32 hex digits (the trace_id field of a "
            "log line, or one listed by `otel-tdd traces`)"
        )
    return value.rjust(32, "0")


def _level_floor(level: str) -> int:
    name = _LEVEL_ALIASES.get(level.lower(), level.lower())
    if name not in LEVELS:
        raise StoreQueryError(f"bad level {level!r}: choose from {', '.join(LEVELS)}")
    return LEVELS[name]


# --- Jaeger -----------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One span of a trace, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    start_ns: int
    end_ns: int
    status: str  # "OK", "ERROR" or "UNSET", as the app set it
    status_message: str = ""
    kind: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


def _attr_value(value: Mapping[str, Any]) -> Any:
    """One OTLP JSON AnyValue as a Python value."""
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_attr_value(v) for v in value["arrayValue"].get("values", [])]
    return json.dumps(value)


def _attributes(items: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: _attr_value(item.get("value", {})) for item in items or []}


def _hex_id(value: str) -> str:
    """OTLP JSON ids are hex in Jaeger's answer; tolerate base64 as the OTLP spec has it."""
    if not value or re.fullmatch(r"[0-9a-fA-F]+", value):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error as exc:
        raise StoreQueryError(
            f"Jaeger sent an id that is neither hex nor base64: {value!r} ({exc})"
        ) from exc


_STATUS = {"STATUS_CODE_OK": "OK", "STATUS_CODE_ERROR": "ERROR", 1: "OK", 2: "ERROR"}
_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _spans_from_otlp(data: Mapping[str, Any]) -> list[Span]:
    spans: list[Span] = []
    for resource_spans in data.get("resourceSpans") or []:
        resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.get("scopeSpans") or []:
            for raw in scope_spans.get("spans") or []:
                status = raw.get("status") or {}
                kind = raw.get("kind", 0)
                spans.append(
                    Span(
                        trace_id=_hex_id(raw["traceId"]),
                        span_id=_hex_id(raw["spanId"]),
                        parent_span_id=_hex_id(raw.get("parentSpanId", "")),
                        service=service,
                        name=raw.get("name", ""),
                        start_ns=int(raw["startTimeUnixNano"]),
                        end_ns=int(raw["endTimeUnixNano"]),
                        status=_STATUS.get(status.get("code", 0), "UNSET"),
                        status_message=status.get("message", ""),
                        kind=_KINDS.get(kind, str(kind)).removeprefix("SPAN_KIND_").lower(),
                        attributes=_attributes(raw.get("attributes")),
                    )
                )
    return sorted(spans, key=lambda s: (s.start_ns, s.span_id))


def fetch_trace(base_url: str, trace_id: str, timeout: float = TIMEOUT) -> list[Span]:
    """Every span of ``trace_id`` from Jaeger, sorted by start time."""
    trace_id = normalize_trace_id(trace_id)
    url = f"{base_url.rstrip('/')}/api/v3/traces/{trace_id}"
    try:
        body = open_url(url, "Jaeger", timeout=timeout)
    except HTTPStatusError as exc:
        if exc.status == 404:
            raise StoreQueryError(
                f"trace {trace_id} is not in Jaeger at {base_url} (unknown id, not exported "
                "yet, or older than the store's 7-day TTL)"
            ) from exc
        raise
    result = parse_json(body, "Jaeger", url).get("result") or {}
    spans = _spans_from_otlp(result)
    if not spans:
        raise StoreQueryError(f"trace {trace_id} is not in Jaeger at {base_url} (no spans)")
    return spans


@dataclass(frozen=True)
class TraceSummary:
    """One search hit: enough to choose which trace to open."""

    trace_id: str
    root_service: str
    root_name: str
    start_us: int
    duration_us: int
    span_count: int
    error_count: int
    services: tuple[str, ...]


def _is_error(span: Mapping[str, Any]) -> bool:
    tags = {t.get("key"): t.get("value") for t in span.get("tags") or []}
    return tags.get("error") in (True, "true") or tags.get("otel.status_code") == "ERROR"


def _summary(trace: Mapping[str, Any]) -> TraceSummary:
    spans = trace.get("spans") or []
    processes = trace.get("processes") or {}

    def service(span: Mapping[str, Any]) -> str:
        return str((processes.get(span.get("processID")) or {}).get("serviceName", "unknown"))

    ids = {s["spanID"] for s in spans}
    roots = [
        s for s in spans
        if not any(r.get("spanID") in ids for r in s.get("references") or [])
    ] or spans  # fmt: skip
    root = min(roots, key=lambda s: s["startTime"])
    start = min(s["startTime"] for s in spans)
    end = max(s["startTime"] + s["duration"] for s in spans)
    return TraceSummary(
        trace_id=str(trace["traceID"]).rjust(32, "0"),
        root_service=service(root),
        root_name=str(root.get("operationName", "")),
        start_us=int(start),
        duration_us=int(end - start),
        span_count=len(spans),
        error_count=sum(1 for s in spans if _is_error(s)),
        services=tuple(sorted({service(s) for s in spans})),
    )


def find_traces(
    base_url: str,
    service: str,
    *,
    errors: bool = False,
    min_duration: float | None = None,
    since: float = 900.0,
    limit: int = 20,
    now: float | None = None,
    timeout: float = TIMEOUT,
) -> list[TraceSummary]:
    """Traces of ``service`` in the last ``since`` seconds, newest first.

    ``errors`` keeps traces with a span marked as failed; ``min_duration`` (seconds)
    those with a span at least that long (Jaeger's minDuration).
    """
    end = time.time() if now is None else now
    params: dict[str, str] = {
        "service": service,
        "start": str(int((end - since) * 1e6)),
        "end": str(int(end * 1e6)),
        "limit": str(limit),
    }
    if errors:
        params["tags"] = json.dumps({"error": "true"})
    if min_duration is not None:
        params["minDuration"] = f"{int(min_duration * 1e6)}us"
    url = f"{base_url.rstrip('/')}/api/traces?{urllib.parse.urlencode(params)}"
    data = parse_json(open_url(url, "Jaeger", timeout=timeout), "Jaeger", url)
    summaries = [_summary(t) for t in data.get("data") or [] if t.get("spans")]
    return sorted(summaries, key=lambda s: s.start_us, reverse=True)[:limit]


def known_services(base_url: str, timeout: float = TIMEOUT) -> list[str]:
    """The service names Jaeger has seen (to say which exist when a search finds none)."""
    url = f"{base_url.rstrip('/')}/api/services"
    data = parse_json(open_url(url, "Jaeger", timeout=timeout), "Jaeger", url)
    return sorted(data.get("data") or [])


# --- VictoriaLogs -------------------------------------------------------------------


@dataclass(frozen=True)
class LogRecord:
    """One record from VictoriaLogs: time in Unix nanoseconds, the rest as stored."""

    time_ns: int
    message: str
    level: str
    severity_number: int
    service: str
    trace_id: str
    span_id: str
    fields: Mapping[str, str]


def _parse_rfc3339_ns(text: str) -> int:
    """VictoriaLogs' ``_time`` (RFC 3339, up to nanoseconds) as Unix nanoseconds."""
    match = re.fullmatch(r"(.+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise StoreQueryError(f"VictoriaLogs sent an unreadable _time {text!r}")
    whole = datetime.fromisoformat(match.group(1) + match.group(3).replace("Z", "+00:00"))
    fraction = (match.group(2) or "").ljust(9, "0")[:9]
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction)


def _record(raw: Mapping[str, str]) -> LogRecord:
    severity = raw.get("severity_number", "")
    return LogRecord(
        time_ns=_parse_rfc3339_ns(raw["_time"]),
        message=raw.get("_msg", ""),
        level=raw.get("severity_text", "") or "-",
        severity_number=int(severity) if severity.isdigit() else 0,
        service=raw.get("service.name", ""),
        trace_id=raw.get("trace_id", ""),
        span_id=raw.get("span_id", ""),
        fields=dict(raw),
    )


def _quote(value: str) -> str:
    return json.dumps(value)  # a LogsQL quoted string: JSON's escaping is accepted


def logsql(
    query: str | None = None,
    *,
    trace_id: str | None = None,
    service: str | None = None,
    level: str | None = None,
    since: float | None = None,
) -> str:
    """One LogsQL query from the CLI's filters (all ANDed), oldest record first."""
    parts = [f"({query})"] if query and query.strip() else []
    if since is not None:
        parts.append(f"_time:{max(1, int(since))}s")
    if trace_id:
        parts.append(f"trace_id:{_quote(normalize_trace_id(trace_id))}")
    if service:
        parts.append(f'"service.name":{_quote(service)}')
    if level:
        parts.append(f"severity_number:>={_level_floor(level)}")
    return " ".join(parts or ["*"]) + " | sort by (_time)"


class LogPage(list[LogRecord]):
    """Records, oldest first; ``more`` when the store holds more past the limit."""

    more: bool = False


def _query_logs(
    base_url: str, query: str, limit: int, start: str | None, timeout: float
) -> LogPage:
    """The oldest ``limit`` records of ``query`` (at or after ``start``).

    ``| limit`` after the query's ``sort by (_time)`` says so in the query itself
    rather than through the form's ``limit`` arg, documented as the N most recent
    (v1.52.1 applies it after our sort, measured; the pipe does not depend on that).
    One record more than asked says whether there are more.
    """
    url = f"{base_url.rstrip('/')}/select/logsql/query"
    form = {"query": f"{query} | limit {limit + 1}"}
    if start:
        form["start"] = start
    body = open_url(url, "VictoriaLogs", urllib.parse.urlencode(form).encode(), timeout=timeout)
    records = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.strip():
            records.append(_record(parse_json(line.encode(), "VictoriaLogs", url)))
    records.sort(key=lambda r: r.time_ns)
    page = LogPage(records[:limit])
    page.more = len(records) > limit
    return page


def fetch_logs(
    base_url: str, query: str, *, limit: int = 1000, timeout: float = TIMEOUT
) -> LogPage:
    """The oldest ``limit`` records matching the LogsQL ``query`` (see :func:`logsql`,
    whose ``sort by (_time)`` makes them the oldest), oldest first; ``.more`` says if
    the store holds more."""
    return _query_logs(base_url, query, limit, None, timeout)


def _start_arg(ns: int) -> str:
    """Unix nanoseconds as VictoriaLogs' ``start`` (seconds with 9 decimals), exactly:
    through a float, ns / 1e9 keeps only ~microseconds at today's epoch."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{seconds}.{fraction:09d}"


def follow_logs(
    base_url: str,
    query: str,
    *,
    interval: float = 1.0,
    limit: int = 1000,
    timeout: float = TIMEOUT,
) -> Iterator[LogRecord]:
    """Records matching ``query`` as they arrive, forever (the caller stops it).

    Polls with a cursor: each round asks for the oldest ``limit`` records at or
    after the newest ``_time`` seen (``start``, inclusive) and drops the ones
    already yielded at that instant; a full round polls again at once, so a burst
    bigger than ``limit`` is caught up, not skipped. A record ingested later with
    an older timestamp is missed, as with any cursor on event time.
    """
    cursor: int | None = None
    seen_at_cursor: set[tuple[str, str, str]] = set()
    while True:
        start = None if cursor is None else _start_arg(cursor)
        # The records already seen at the cursor come back (start is inclusive): ask
        # for them on top, or a full page of them would never let the cursor move.
        page = _query_logs(base_url, query, limit + len(seen_at_cursor), start, timeout)
        fresh = 0
        for record in page:
            key = (str(record.time_ns), record.fields.get("_stream_id", ""), record.message)
            if cursor is not None and record.time_ns <= cursor and key in seen_at_cursor:
                continue
            if cursor is None or record.time_ns > cursor:
                cursor, seen_at_cursor = record.time_ns, set()
            seen_at_cursor.add(key)
            fresh += 1
            yield record
        if not (page.more and fresh):  # behind: catch up at once, but never spin
            time.sleep(interval)


def utc(ns: int) -> str:
    """Unix nanoseconds as an ISO time in UTC, to the microsecond."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
