"""Read the Collector's JSONL files (``collector/files.yaml``): OTLP JSON lines -> flat dicts.

One OTLP export request per line (resource -> scope -> items) becomes the items,
each with ``resource`` (dict), ``service_name`` and ``scope`` folded in and values
decoded from OTLP's JSON encoding (``{"intValue": "3"}`` -> ``3``, enums -> names).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "any_value",
    "attributes",
    "read_exports",
    "read_logs",
    "read_metrics",
    "read_spans",
]

TRACES_FILE = "traces.jsonl"
LOGS_FILE = "logs.jsonl"
METRICS_FILE = "metrics.jsonl"

_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")
_TEMPORALITIES = ("UNSPECIFIED", "DELTA", "CUMULATIVE")

Record = dict[str, Any]


# --- values -------------------------------------------------------------------------


def any_value(value: Mapping[str, Any] | None) -> Any:
    """Decode an OTLP JSON ``AnyValue`` (int64 arrives as a string, bytes as base64)."""
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def attributes(key_values: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """OTLP ``[{key, value: AnyValue}]`` -> ``{key: decoded value}``."""
    return {kv["key"]: any_value(kv.get("value")) for kv in key_values or ()}


def _hex_id(value: str | None) -> str | None:
    """OTLP JSON ids are hex already; empty means absent (a root span, a log outside one)."""
    return value or None


def _nanos(value: str | int | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _name(table: Sequence[str], number: int | None, prefix_default: str) -> str:
    index = number or 0
    return table[index] if 0 <= index < len(table) else f"{prefix_default}_{index}"


# --- files ---------------------------------------------------------------------------


def _files(directory: Path, filename: str) -> list[Path]:
    """The live file and its rotated backups (``traces-<time>.jsonl``), oldest first."""
    stem = Path(filename).stem
    found = [p for p in directory.glob(f"{stem}*.jsonl") if p.name != filename]
    found.sort(key=lambda p: p.stat().st_mtime)
    live = directory / filename
    return [*found, live] if live.exists() else found


def read_exports(path: Path) -> Iterator[dict[str, Any]]:
    """Each complete JSON line of ``path``; a half-written last line is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if index == len(lines) - 1:  # the exporter is still writing it
                return
            raise


def _resource_items(
    directory: Path, filename: str, resource_key: str, scope_key: str, items_key: str
) -> Iterator[tuple[dict[str, Any], dict[str, Any], Mapping[str, Any]]]:
    for path in _files(Path(directory), filename):
        for export in read_exports(path):
            for resource_entry in export.get(resource_key, []):
                resource = attributes(resource_entry.get("resource", {}).get("attributes"))
                for scope_entry in resource_entry.get(scope_key, []):
                    raw_scope = scope_entry.get("scope", {})
                    scope = {
                        "name": raw_scope.get("name", ""),
                        "version": raw_scope.get("version", ""),
                        "attributes": attributes(raw_scope.get("attributes")),
                    }
                    for item in scope_entry.get(items_key, []):
                        yield resource, scope, item


def _common(resource: dict[str, Any], scope: dict[str, Any]) -> Record:
    return {"resource": resource, "service_name": resource.get("service.name"), "scope": scope}


# --- spans ----------------------------------------------------------------------------


def read_spans(directory: Path | str) -> list[Record]:
    """Every span in ``traces.jsonl`` (and its rotated backups), in file order.

    ``name, trace_id, span_id, parent_span_id`` (hex; ``None`` for a root), ``kind``
    ("INTERNAL", "SERVER", ...), ``attributes``, ``status_code`` ("UNSET" / "OK" /
    "ERROR"), ``status_message``, ``start_time_unix_nano``, ``end_time_unix_nano``,
    ``duration_ms``, ``events`` (``[{name, time_unix_nano, attributes}]``), ``links``.
    """
    spans: list[Record] = []
    for resource, scope, span in _resource_items(
        Path(directory), TRACES_FILE, "resourceSpans", "scopeSpans", "spans"
    ):
        start = _nanos(span.get("startTimeUnixNano"))
        end = _nanos(span.get("endTimeUnixNano"))
        status = span.get("status") or {}
        spans.append(
            {
                "name": span.get("name", ""),
                "trace_id": _hex_id(span.get("traceId")),
                "span_id": _hex_id(span.get("spanId")),
                "parent_span_id": _hex_id(span.get("parentSpanId")),
                "kind": _name(_SPAN_KINDS, span.get("kind"), "KIND"),
                "attributes": attributes(span.get("attributes")),
                "status_code": _name(_STATUS_CODES, status.get("code"), "STATUS"),
                "status_message": status.get("message", ""),
                "start_time_unix_nano": start,
                "end_time_unix_nano": end,
                "duration_ms": (end - start) / 1e6 if start is not None and end else None,
                "events": [
                    {
                        "name": event.get("name", ""),
                        "time_unix_nano": _nanos(event.get("timeUnixNano")),
                        "attributes": attributes(event.get("attributes")),
                    }
                    for event in span.get("events", [])
                ],
                "links": [
                    {
                        "trace_id": _hex_id(link.get("traceId")),
                        "span_id": _hex_id(link.get("spanId")),
                        "attributes": attributes(link.get("attributes")),
                    }
                    for link in span.get("links", [])
                ],
                **_common(resource, scope),
            }
        )
    return spans


# --- logs ------------------------------------------------------------------------------


def read_logs(directory: Path | str) -> list[Record]:
    """Every log record in ``logs.jsonl`` (and its rotated backups), in file order.

    ``body, trace_id, span_id`` (hex or ``None``), ``attributes``, ``severity_text,
    severity_number, time_unix_nano, observed_time_unix_nano, event_name``.
    """
    return [
        {
            "body": any_value(record.get("body")),
            "trace_id": _hex_id(record.get("traceId")),
            "span_id": _hex_id(record.get("spanId")),
            "attributes": attributes(record.get("attributes")),
            "severity_text": record.get("severityText", ""),
            "severity_number": int(record.get("severityNumber", 0)),
            "time_unix_nano": _nanos(record.get("timeUnixNano")),
            "observed_time_unix_nano": _nanos(record.get("observedTimeUnixNano")),
            "event_name": record.get("eventName", ""),
            **_common(resource, scope),
        }
        for resource, scope, record in _resource_items(
            Path(directory), LOGS_FILE, "resourceLogs", "scopeLogs", "logRecords"
        )
    ]


# --- metrics ----------------------------------------------------------------------------


def _number(point: Mapping[str, Any]) -> int | float | None:
    if "asInt" in point:
        return int(point["asInt"])
    if "asDouble" in point:
        return float(point["asDouble"])
    return None


def _point_base(metric: Mapping[str, Any], kind: str, point: Mapping[str, Any]) -> Record:
    return {
        "name": metric.get("name", ""),
        "description": metric.get("description", ""),
        "unit": metric.get("unit", ""),
        "type": kind,
        "attributes": attributes(point.get("attributes")),
        "start_time_unix_nano": _nanos(point.get("startTimeUnixNano")),
        "time_unix_nano": _nanos(point.get("timeUnixNano")),
    }


def _metric_points(metric: Mapping[str, Any]) -> Iterator[Record]:
    if "gauge" in metric:
        for point in metric["gauge"].get("dataPoints", []):
            yield {**_point_base(metric, "gauge", point), "value": _number(point)}
    if "sum" in metric:
        data = metric["sum"]
        for point in data.get("dataPoints", []):
            yield {
                **_point_base(metric, "sum", point),
                "value": _number(point),
                "is_monotonic": bool(data.get("isMonotonic", False)),
                "aggregation_temporality": _name(
                    _TEMPORALITIES, data.get("aggregationTemporality"), "TEMPORALITY"
                ),
            }
    for kind, key in (
        ("histogram", "histogram"),
        ("exponential_histogram", "exponentialHistogram"),
    ):
        if key not in metric:
            continue
        data = metric[key]
        for point in data.get("dataPoints", []):
            record = {
                **_point_base(metric, kind, point),
                "count": int(point.get("count", 0)),
                "sum": float(point["sum"]) if "sum" in point else None,
                "min": float(point["min"]) if "min" in point else None,
                "max": float(point["max"]) if "max" in point else None,
                "aggregation_temporality": _name(
                    _TEMPORALITIES, data.get("aggregationTemporality"), "TEMPORALITY"
                ),
            }
            if kind == "histogram":
                record["bucket_counts"] = [int(c) for c in point.get("bucketCounts", [])]
                record["explicit_bounds"] = [float(b) for b in point.get("explicitBounds", [])]
            else:
                record["scale"] = int(point.get("scale", 0))
                record["zero_count"] = int(point.get("zeroCount", 0))
            yield record
    if "summary" in metric:
        for point in metric["summary"].get("dataPoints", []):
            yield {
                **_point_base(metric, "summary", point),
                "count": int(point.get("count", 0)),
                "sum": float(point.get("sum", 0.0)),
                "quantiles": {
                    float(q.get("quantile", 0.0)): float(q.get("value", 0.0))
                    for q in point.get("quantileValues", [])
                },
            }


def read_metrics(directory: Path | str) -> list[Record]:
    """Every metric data point in ``metrics.jsonl`` (one per export: cumulative points
    repeat with growing values, so the last one of a series is its current value).

    ``name, description, unit, type`` ("sum", "gauge", "histogram",
    "exponential_histogram", "summary"), ``attributes``, ``start_time_unix_nano,
    time_unix_nano``; sums and gauges have ``value`` (sums also ``is_monotonic``,
    ``aggregation_temporality``); histograms ``count, sum, min, max, bucket_counts,
    explicit_bounds``; summaries ``count, sum, quantiles``.
    """
    return [
        {**point, **_common(resource, scope)}
        for resource, scope, metric in _resource_items(
            Path(directory), METRICS_FILE, "resourceMetrics", "scopeMetrics", "metrics"
        )
        for point in _metric_points(metric)
    ]
