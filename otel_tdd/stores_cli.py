"""``otel-tdd trace | traces | logs | exemplars``: from a symptom to its cause.

A slow bucket (``exemplars``), a failing service (``traces --errors``) or an
ERROR line (``logs``) each names a trace id; ``trace`` shows that request's
spans with its log records in place. Store URLs come from the flags, else
``OTEL_TDD_JAEGER_URL``, ``OTEL_TDD_LOGS_URL``, ``OTEL_TDD_PROMETHEUS_URL``,
else the running local stack (``otel-tdd stack up``), else the ports compose
publishes on 127.0.0.1 (:mod:`otel_tdd.store_urls`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from otel_tdd import stores_query as q
from otel_tdd import trace_view as view
from otel_tdd.exemplars_query import fetch_exemplars
from otel_tdd.store_urls import resolve_url

__all__ = ["exemplars_cli", "logs_cli", "trace_cli", "traces_cli"]


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _url_flag(parser: argparse.ArgumentParser, flag: str, env: str, store: str) -> None:
    parser.add_argument(
        flag,
        metavar="URL",
        default=None,
        help=f"{store}'s base URL (default: ${env}, else the running `otel-tdd stack`'s, "
        f"else {q.DEFAULT_URLS[env]})",
    )


def _url(value: str | None, env: str) -> str:
    return resolve_url(value, env)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise q.StoreQueryError(f"bad --limit {limit}: use 1 or more")


def _fail(command: str, error: object) -> int:
    print(f"otel-tdd {command}: error: {error}", file=sys.stderr)
    return 1


# --- trace ----------------------------------------------------------------------------


def trace_cli(argv: Sequence[str]) -> int:
    """``otel-tdd trace TRACE_ID [--jaeger URL] [--logs URL] [--json]``."""
    parser = argparse.ArgumentParser(
        prog="otel-tdd trace",
        description="Print one trace as a waterfall (from Jaeger) with its log records "
        "(from VictoriaLogs) in place, at their time.",
    )
    parser.add_argument("trace_id", help="32 hex digits (a log line's trace_id)")
    _url_flag(parser, "--jaeger", q.ENV_JAEGER_URL, "Jaeger")
    _url_flag(parser, "--logs", q.ENV_LOGS_URL, "VictoriaLogs")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args(argv)
    try:
        spans = q.fetch_trace(_url(args.jaeger, q.ENV_JAEGER_URL), args.trace_id)
    except q.StoreQueryError as exc:
        return _fail("trace", exc)
    logs = q.LogPage()
    logs_error = None
    try:
        logs = q.fetch_logs(_url(args.logs, q.ENV_LOGS_URL), q.logsql(trace_id=args.trace_id))
    except q.StoreQueryError as exc:
        logs_error = exc  # the spans alone still help: print them, then fail
    if args.json:
        print(json.dumps(view.trace_json(spans, logs), indent=2))
    else:
        print("\n".join(view.render_trace(spans, logs, colour=_colour())))
    if logs.more:
        print(
            f"showing the first {len(logs)} log records of the trace, more exist "
            f"(`otel-tdd logs --trace {args.trace_id} --limit N` lists them)",
            file=sys.stderr,
        )
    if logs_error is not None:
        return _fail("trace", f"the trace's log records are missing: {logs_error}")
    return 0


# --- traces ---------------------------------------------------------------------------


def traces_cli(argv: Sequence[str]) -> int:
    """``otel-tdd traces --service S [--errors] [--min-duration D] [--since D] [--limit N]``."""
    parser = argparse.ArgumentParser(
        prog="otel-tdd traces", description="List a service's recent traces from Jaeger."
    )
    parser.add_argument("--service", required=True, help="service.name of the traces' spans")
    parser.add_argument("--errors", action="store_true", help="only traces with a failed span")
    parser.add_argument("--min-duration", metavar="D", help="only traces with a span >= D (500ms)")
    parser.add_argument("--since", metavar="D", default="15m", help="how far back (default 15m)")
    parser.add_argument("--limit", type=int, default=20, help="at most N traces (default 20)")
    _url_flag(parser, "--jaeger", q.ENV_JAEGER_URL, "Jaeger")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args(argv)
    url = _url(args.jaeger, q.ENV_JAEGER_URL)
    try:
        _check_limit(args.limit)
        found = q.find_traces(
            url,
            args.service,
            errors=args.errors,
            min_duration=q.parse_duration(args.min_duration) if args.min_duration else None,
            since=q.parse_duration(args.since),
            limit=args.limit,
        )
        known = q.known_services(url) if not found else []
        if not found and args.service not in known:
            raise q.StoreQueryError(
                f"Jaeger at {url} has no service {args.service!r} "
                f"(known: {', '.join(known) or 'none yet'})"
            )
    except q.StoreQueryError as exc:
        return _fail("traces", exc)
    if args.json:
        print(json.dumps([s.__dict__ for s in found], indent=2))
    elif not found:
        print(f"no matching traces of {args.service} in the last {args.since}", file=sys.stderr)
    else:
        print("\n".join(view.render_traces(found, colour=_colour())))
    return 0


# --- logs -----------------------------------------------------------------------------


def logs_cli(argv: Sequence[str]) -> int:
    """``otel-tdd logs [LOGSQL] [--trace ID] [--service S] [--level L] [--since D] [-f]``."""
    parser = argparse.ArgumentParser(
        prog="otel-tdd logs",
        description="Query (or follow) log records in VictoriaLogs. Filters are ANDed "
        "with the optional LogsQL query.",
    )
    parser.add_argument("query", nargs="?", help="LogsQL, e.g. 'timeout' or 'order_id:42'")
    parser.add_argument("--trace", metavar="ID", help="only records of this trace")
    parser.add_argument("--service", help="only records of this service.name")
    parser.add_argument("--level", help=f"at least this level ({', '.join(q.LEVELS)})")
    parser.add_argument("--since", metavar="D", default="15m", help="how far back (default 15m)")
    parser.add_argument("--limit", type=int, default=1000, help="at most N records per query")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    _url_flag(parser, "--logs", q.ENV_LOGS_URL, "VictoriaLogs")
    parser.add_argument("--json", action="store_true", help="one JSON object per record")
    args = parser.parse_args(argv)
    url = _url(args.logs, q.ENV_LOGS_URL)
    colour = _colour()

    def show(record: q.LogRecord) -> None:
        if args.json:
            print(json.dumps(dict(record.fields)), flush=True)
        else:
            print(view.render_log_line(record, colour=colour), flush=True)

    try:
        _check_limit(args.limit)
        query = q.logsql(
            args.query,
            trace_id=args.trace,
            service=args.service,
            level=args.level,
            since=q.parse_duration(args.since),
        )
        if args.follow:
            for record in q.follow_logs(url, query, limit=args.limit):
                show(record)
        else:
            page = q.fetch_logs(url, query, limit=args.limit)
            for record in page:
                show(record)
            if page.more:  # said, not hidden: these are the oldest, not all
                print(f"showing {len(page)}, more exist (raise --limit)", file=sys.stderr)
    except q.StoreQueryError as exc:
        return _fail("logs", exc)
    except KeyboardInterrupt:  # how --follow ends
        return 0
    return 0


# --- exemplars ------------------------------------------------------------------------


def exemplars_cli(argv: Sequence[str]) -> int:
    """``otel-tdd exemplars METRIC [--since D] [--limit N] [--prometheus URL]``."""
    parser = argparse.ArgumentParser(
        prog="otel-tdd exemplars",
        description="List the trace ids behind a histogram's slowest observations "
        "(Prometheus exemplars), slowest first, each ready for `otel-tdd trace`.",
    )
    parser.add_argument("metric", help="a histogram (tdd_response_time_seconds) or a selector")
    parser.add_argument("--since", metavar="D", default="15m", help="how far back (default 15m)")
    parser.add_argument("--limit", type=int, default=10, help="at most N exemplars (default 10)")
    _url_flag(parser, "--prometheus", q.ENV_PROMETHEUS_URL, "Prometheus")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args(argv)
    url = _url(args.prometheus, q.ENV_PROMETHEUS_URL)
    try:
        _check_limit(args.limit)
        found = fetch_exemplars(url, args.metric, since=q.parse_duration(args.since))
    except q.StoreQueryError as exc:
        return _fail("exemplars", exc)
    found = found[: args.limit]
    if args.json:
        print(json.dumps([e.__dict__ for e in found], indent=2))
    elif not found:
        print(
            f"no exemplars with a trace id for {args.metric} in the last {args.since} "
            "(Prometheus needs --enable-feature=exemplar-storage and an OpenMetrics scrape)",
            file=sys.stderr,
        )
    else:
        unit = "s" if "_seconds" in args.metric else ""
        print("\n".join(view.render_exemplars(found, unit=unit)))
    return 0
