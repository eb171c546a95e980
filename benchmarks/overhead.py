"""Per-call overhead of otel-tdd against the references, side by side in one run.

    .venv/bin/python benchmarks/overhead.py              # full run (~2-3 minutes)
    .venv/bin/python benchmarks/overhead.py --quick      # smoke run (CI): tiny counts, no verdicts

These machines are shared and noisy, so absolute times mean little: every case
runs ours and its reference alternately in interleaved rounds (the order flips
each round), and we report the median of the per-round ratios. Targets come
from the benchmark issue; docs/benchmarks.md records the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import baggage, context, trace
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult as LogExportResult

import otel_tdd
from otel_tdd import _runtime, lifecycle
from otel_tdd.metrics import catalog
from otel_tdd.performance import performance_tracked
from otel_tdd.structured_logging import StructuredLogger

Call = Callable[[], object]


class NullRaw(io.RawIOBase):
    """A stdout stand-in that costs a call, like a write to a pipe, and keeps nothing."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def null_stream() -> io.BufferedWriter:
    return io.BufferedWriter(NullRaw())


def null_text_stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(null_stream(), write_through=True)


class DiscardLogExporter(LogRecordExporter):
    """OTLP stand-in for per-record cost: the batch processor's work is real, the wire is not."""

    def export(self, batch: Any) -> LogExportResult:
        return LogExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@dataclass
class Case:
    name: str
    target: float | None  # None: a comparison for information, no target
    setup: Callable[[], tuple[Call, Call]]
    reference_name: str
    ratios: list[float] = field(default_factory=list)
    ours_us: list[float] = field(default_factory=list)
    ref_us: list[float] = field(default_factory=list)


def time_per_call(fn: Call, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def configure(**overrides: Any) -> None:
    lifecycle.shutdown()
    hooks = lifecycle.TestHooks(
        stream=null_stream(), log_processors=overrides.pop("log_processors", ())
    )
    otel_tdd.configure(_hooks=hooks, service_name="bench", **overrides)


def enter_request() -> object:
    """A span with user/session/request baggage: the state a request handler is in."""
    ctx = baggage.set_baggage("user_id", "user_123")
    ctx = baggage.set_baggage("session_id", "sess_789", ctx)
    ctx = baggage.set_baggage("request_id", "req_abc", ctx)
    token = context.attach(ctx)
    span = _runtime.current().tracer.start_span("request")
    context.attach(trace.set_span_in_context(span))
    return token


DATA = {"epic_id": 42, "login_method": "oauth", "session_duration": 1800}


# --- the cases ---------------------------------------------------------------------------


def tracked_pair(sampler: str) -> tuple[Call, Call]:
    configure(sampler=sampler)
    tracer = _runtime.current().tracer
    histogram = _runtime.current().meter.create_histogram(
        "bench_duration_seconds", unit="s", explicit_bucket_boundaries_advisory=[0.01, 0.1, 1.0]
    )

    @performance_tracked
    def ours() -> int:
        return 1

    attributes = {"operation": "raw"}

    def raw() -> int:
        # What a careful engineer writes by hand with the SDK: a span and a histogram record.
        started = time.perf_counter_ns()
        with tracer.start_as_current_span("raw"):
            result = 1
        histogram.record((time.perf_counter_ns() - started) / 1e9, attributes)
        return result

    return ours, raw


def structured_vs_structlog() -> tuple[Call, Call]:
    import structlog

    configure()
    enter_request()
    logger = StructuredLogger("bench")
    sink = null_stream()

    def add_otel_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        # The same fields ours writes, the way a structlog user would add them.
        span_context = trace.get_current_span().get_span_context()
        event["trace_id"] = format(span_context.trace_id, "032x")
        event["span_id"] = format(span_context.span_id, "016x")
        for key in ("user_id", "session_id", "request_id"):
            event[key] = baggage.get_baggage(key)
        return event

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_otel_ids,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(sink),
        cache_logger_on_first_use=True,
    )
    reference = structlog.get_logger("bench")
    return (lambda: logger.info("User login successful", DATA)), (
        lambda: reference.info("User login successful", data=DATA)
    )


def stdlib_json_vs_plain() -> tuple[Call, Call]:
    configure()
    ours = logging.getLogger("bench.json")  # propagates to the root's JsonLogHandler
    plain = logging.getLogger("bench.plain")
    plain.propagate = False
    handler = logging.StreamHandler(null_text_stream())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    plain.handlers = [handler]
    return (lambda: ours.info("User login successful")), (
        lambda: plain.info("User login successful")
    )


def json_and_otlp_vs_logging_handler() -> tuple[Call, Call]:
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider

    configure(log_processors=[BatchLogRecordProcessor(DiscardLogExporter())])
    enter_request()
    ours = logging.getLogger("bench.both")
    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(DiscardLogExporter()))
    reference = logging.getLogger("bench.otel")
    reference.propagate = False
    reference.handlers = [LoggingHandler(logger_provider=provider)]
    return (lambda: ours.info("User login successful")), (
        lambda: reference.info("User login successful")
    )


def filtered_vs_stdlib_debug() -> tuple[Call, Call]:
    configure()
    logger = StructuredLogger("bench.filtered")
    reference = logging.getLogger("bench.filtered.std")
    return (lambda: logger.debug("noise", DATA)), (lambda: reference.debug("noise"))


def sampled_out_vs_stdlib_debug() -> tuple[Call, Call]:
    configure()
    enter_request()
    logger = StructuredLogger("bench.sampled", sample_rate=0.0)
    reference = logging.getLogger("bench.sampled.std")
    return (lambda: logger.info("noise", DATA)), (lambda: reference.debug("noise"))


def catalog_vs_raw_counter() -> tuple[Call, Call]:
    configure()
    raw = _runtime.current().meter.create_counter("bench_raw_total")
    attributes = {"project_type": "web"}
    return (lambda: catalog.epics_created.add(1, attributes)), (lambda: raw.add(1, attributes))


def catalog_vs_raw_histogram() -> tuple[Call, Call]:
    configure()
    raw = _runtime.current().meter.create_histogram("bench_raw_seconds", unit="s")
    attributes = {"endpoint": "/epics", "method": "POST", "status": "200"}
    return (lambda: catalog.response_time.record(0.1, attributes)), (
        lambda: raw.record(0.1, attributes)
    )


def tracked_vs_logfire() -> tuple[Call, Call]:
    """Informational: Logfire's decorator on the same SDK (spans to a no-op backend)."""
    import logfire

    configure(sampler="always_on")
    logfire.configure(send_to_logfire=False, console=False, inspect_arguments=False)

    @performance_tracked
    def ours() -> int:
        return 1

    @logfire.instrument("reference")
    def reference() -> int:
        return 1

    return ours, reference


def stdlib_json_vs_python_json_logger() -> tuple[Call, Call]:
    """Informational: the popular stdlib JSON formatter, with fewer fields than ours."""
    from pythonjsonlogger.json import JsonFormatter

    configure()
    ours = logging.getLogger("bench.json2")
    reference = logging.getLogger("bench.pjl")
    reference.propagate = False
    handler = logging.StreamHandler(null_text_stream())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    reference.handlers = [handler]
    return (lambda: ours.info("User login successful")), (
        lambda: reference.info("User login successful")
    )


CASES = [
    Case(
        "performance_tracked, sampled",
        1.25,
        lambda: tracked_pair("always_on"),
        "span + histogram by hand (raw SDK)",
    ),
    Case(
        "performance_tracked, not sampled",
        1.10,
        lambda: tracked_pair("always_off"),
        "same by hand, not sampled",
    ),
    Case(
        "StructuredLogger.info in a span with baggage",
        1.00,
        structured_vs_structlog,
        "structlog + orjson, same fields",
    ),
    Case("stdlib record through our JSON", 1.20, stdlib_json_vs_plain, "stdlib plain Formatter"),
    Case(
        "stdout JSON + OTLP together",
        1.00,
        json_and_otlp_vs_logging_handler,
        "OTel LoggingHandler alone",
    ),
    Case("record below the level", 2.00, filtered_vs_stdlib_debug, "stdlib filtered debug"),
    Case("record sampled out", 2.00, sampled_out_vs_stdlib_debug, "stdlib filtered debug"),
    Case("catalog counter add", 1.10, catalog_vs_raw_counter, "raw Counter.add"),
    Case("catalog histogram record", 1.10, catalog_vs_raw_histogram, "raw Histogram.record"),
    Case("performance_tracked, sampled", None, tracked_vs_logfire, "@logfire.instrument"),
    Case(
        "stdlib record through our JSON",
        None,
        stdlib_json_vs_python_json_logger,
        "python-json-logger",
    ),
]


def run(rounds: int, number: int, only: str | None) -> list[Case]:
    cases = [case for case in CASES if only is None or only in case.name]
    for round_index in range(rounds):
        for case in cases:
            ours, reference = case.setup()
            for fn in (ours, reference):  # warm up caches and lazy paths
                time_per_call(fn, max(number // 10, 10))
            if round_index % 2:
                ref_us = time_per_call(reference, number)
                ours_us = time_per_call(ours, number)
            else:
                ours_us = time_per_call(ours, number)
                ref_us = time_per_call(reference, number)
            context.attach(context.Context())  # leave no request state for the next case
            case.ours_us.append(ours_us)
            case.ref_us.append(ref_us)
            case.ratios.append(ours_us / ref_us)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    lifecycle.shutdown()
    return cases


def report(cases: list[Case], verdicts: bool) -> str:
    lines = [
        "| what | reference | ours µs | ref µs | ratio (median) | target | |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in cases:
        ratio = statistics.median(case.ratios)
        if case.target is None:
            verdict, target = "(for information)", "-"
        else:
            verdict = ("met" if ratio <= case.target else "**missed**") if verdicts else "smoke"
            target = f"≤ {case.target:.2f}"
        ours_us, ref_us = statistics.median(case.ours_us), statistics.median(case.ref_us)
        lines.append(
            f"| {case.name} | {case.reference_name} | {ours_us:.2f} | {ref_us:.2f} | "
            f"{ratio:.2f} | {target} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000, help="calls per measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts, no verdicts")
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.number = 2, 200
    logging.getLogger().handlers.clear()
    cases = run(args.rounds, args.number, args.only)
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{args.rounds} rounds x {args.number} calls\n"
    )
    print(report(cases, verdicts=not args.quick))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    c.name: {
                        "ratios": c.ratios,
                        "ours_us": c.ours_us,
                        "ref_us": c.ref_us,
                        "target": c.target,
                    }
                    for c in cases
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
