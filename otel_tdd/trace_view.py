"""Text views of what the stores return: a trace's waterfall with its logs, lists.

Pure functions from data to lines, so the layout is tested without a store.
Colour (ANSI) only when asked, which the CLI does only on a TTY without
``NO_COLOR``: a pipe or a file gets plain text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from otel_tdd.exemplars_query import Exemplar
from otel_tdd.stores_query import LogRecord, Span, TraceSummary, utc

__all__ = [
    "format_duration",
    "render_exemplars",
    "render_log_line",
    "render_trace",
    "render_traces",
    "trace_json",
]

BAR_WIDTH = 30
_RESET = "\033[0m"
_LEVEL_COLOURS = [(21, "\033[1;31m"), (17, "\033[31m"), (13, "\033[33m"), (9, ""), (0, "\033[2m")]
_ERROR_COLOUR = "\033[31m"


def format_duration(ns: float) -> str:
    """A duration in the unit that reads best: 850µs, 12.3ms, 1.52s, 2m05s."""
    if ns < 1e6:
        return f"{ns / 1e3:.0f}µs"
    if ns < 1e9:
        return f"{ns / 1e6:.1f}ms"
    if ns < 60e9:
        return f"{ns / 1e9:.2f}s"
    minutes, seconds = divmod(ns / 1e9, 60)
    return f"{int(minutes)}m{int(seconds):02d}s"


def _level_colour(record: LogRecord) -> str:
    for floor, colour in _LEVEL_COLOURS:
        if record.severity_number >= floor:
            return colour
    return ""


def _paint(text: str, colour: str, enabled: bool) -> str:
    return f"{colour}{text}{_RESET}" if enabled and colour else text


def _bar(start: int, duration: int, origin: int, total: int) -> str:
    """The span's place in the trace, BAR_WIDTH characters wide."""
    if total <= 0:
        return "█" + " " * (BAR_WIDTH - 1)
    left = min(BAR_WIDTH - 1, int((start - origin) / total * BAR_WIDTH))
    width = max(1, round(duration / total * BAR_WIDTH))
    width = min(width, BAR_WIDTH - left)
    return " " * left + "█" * width + " " * (BAR_WIDTH - left - width)


def render_log_line(record: LogRecord, *, colour: bool = False) -> str:
    """One record as `otel-tdd logs` prints it: time, level, service, message, trace."""
    level = _paint(f"{record.level:<5}", _level_colour(record), colour)
    trace = f"  trace_id={record.trace_id}" if record.trace_id else ""
    return f"{utc(record.time_ns)}  {level}  {record.service or '-'}  {record.message}{trace}"


def _tree(spans: Sequence[Span]) -> tuple[list[Span], dict[str, list[Span]]]:
    """Roots (no parent in this trace) and each span's children, by start time."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for span in spans:
        if span.parent_span_id and span.parent_span_id in ids:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    return roots, children


def render_trace(
    spans: Sequence[Span], logs: Sequence[LogRecord] = (), *, colour: bool = False
) -> list[str]:
    """The trace as a waterfall, each log record under its span at its time.

    Rows follow the span tree (children indented under their parent); within a
    span, its own records and its children are merged by time. Records whose
    span is not in the trace come last at the top level, in time order.
    """
    if not spans:
        return []
    origin = min(s.start_ns for s in spans)
    total = max(s.end_ns for s in spans) - origin
    errors = sum(1 for s in spans if s.status == "ERROR")
    services = sorted({s.service for s in spans})
    header = (
        f"trace {spans[0].trace_id}  {len(spans)} spans  {len(services)} "
        f"service{'s' if len(services) != 1 else ''} ({', '.join(services)})  "
        f"{format_duration(total)}  {errors} error{'s' if errors != 1 else ''}  "
        f"{len(logs)} log record{'s' if len(logs) != 1 else ''}"
    )
    service_width = max(7, *(len(s.service) for s in spans))
    lines = [header, ""]
    lines.append(
        f"{'SERVICE':<{service_width}}  {'SPAN':<40}  {'OFFSET':>9}  {'DURATION':>9}  "
        f"{'':<{BAR_WIDTH}}  STATUS"
    )
    roots, children = _tree(spans)
    span_ids = {s.span_id for s in spans}
    logs_by_span: dict[str, list[LogRecord]] = defaultdict(list)
    orphans = []
    for record in sorted(logs, key=lambda r: r.time_ns):
        if record.span_id in span_ids:
            logs_by_span[record.span_id].append(record)
        else:
            orphans.append(record)

    def log_row(record: LogRecord, depth: int) -> str:
        offset = f"+{format_duration(record.time_ns - origin)}"
        level = _paint(f"{record.level:<5}", _level_colour(record), colour)
        return f"{'':<{service_width}}  {'  ' * depth}· {offset:>9}  {level} {record.message}"

    def span_row(span: Span, depth: int) -> str:
        name = ("  " * depth + span.name)[:40]
        status = span.status
        if span.status_message:
            status += f": {span.status_message}"
        row = (
            f"{span.service:<{service_width}}  {name:<40}  "
            f"{'+' + format_duration(span.start_ns - origin):>9}  "
            f"{format_duration(span.duration_ns):>9}  "
            f"{_bar(span.start_ns, span.duration_ns, origin, total)}  {status}"
        )
        return _paint(row, _ERROR_COLOUR, colour and span.status == "ERROR")

    def walk(span: Span, depth: int) -> None:
        lines.append(span_row(span, depth))
        events: list[tuple[int, int, Any]] = [
            (r.time_ns, 0, r) for r in logs_by_span.get(span.span_id, [])
        ]
        events += [(c.start_ns, 1, c) for c in children.get(span.span_id, [])]
        for _, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
            if kind == 0:
                lines.append(log_row(item, depth + 1))
            else:
                walk(item, depth + 1)

    for root in roots:
        walk(root, 0)
    if orphans:
        lines.append("")
        lines.append("records of this trace outside its spans:")
        lines.extend(log_row(record, 0) for record in orphans)
    return lines


def trace_json(spans: Sequence[Span], logs: Sequence[LogRecord]) -> dict[str, Any]:
    """The trace and its records for machines (``otel-tdd trace --json``)."""
    return {
        "trace_id": spans[0].trace_id if spans else "",
        "spans": [
            {
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "service": s.service,
                "name": s.name,
                "kind": s.kind,
                "start": utc(s.start_ns),
                "start_unix_nano": s.start_ns,
                "duration_ms": s.duration_ns / 1e6,
                "status": s.status,
                "status_message": s.status_message,
                "attributes": dict(s.attributes),
            }
            for s in spans
        ],
        "logs": [
            {
                "time": utc(r.time_ns),
                "time_unix_nano": r.time_ns,
                "level": r.level,
                "severity_number": r.severity_number,
                "service": r.service,
                "message": r.message,
                "span_id": r.span_id,
                "fields": dict(r.fields),
            }
            for r in logs
        ],
    }


def render_traces(summaries: Iterable[TraceSummary], *, colour: bool = False) -> list[str]:
    """`otel-tdd traces`: one row per trace, ready to paste into `otel-tdd trace`."""
    lines = [f"{'TRACE ID':<32}  {'START (UTC)':<27}  {'DURATION':>9}  SPANS  ERRORS  ROOT"]
    for s in summaries:
        row = (
            f"{s.trace_id:<32}  {utc(s.start_us * 1000):<27}  "
            f"{format_duration(s.duration_us * 1000):>9}  {s.span_count:>5}  "
            f"{s.error_count:>6}  {s.root_service}: {s.root_name}"
        )
        lines.append(_paint(row, _ERROR_COLOUR, colour and s.error_count > 0))
    return lines


def _series_name(series: Mapping[str, str]) -> str:
    keep = ("service_name", "job", "http_route", "operation", "le")
    return ", ".join(f"{k}={series[k]}" for k in keep if k in series)


def render_exemplars(exemplars: Iterable[Exemplar], *, unit: str = "s") -> list[str]:
    """`otel-tdd exemplars`: slowest first, each with the trace to open."""
    lines = [f"{'VALUE':>10}  {'TIME (UTC)':<27}  {'TRACE ID':<32}  SERIES"]
    for e in exemplars:
        value = format_duration(e.value * 1e9) if unit == "s" else f"{e.value:g}"
        lines.append(
            f"{value:>10}  {utc(int(e.timestamp * 1e9)):<27}  {e.trace_id:<32}  "
            f"{_series_name(e.series)}"
        )
    return lines
