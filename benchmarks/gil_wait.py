"""How long a request thread waits for the GIL while an export thread encodes OTLP.

One process, two threads. The "request" thread sleeps 1 ms at a time (a socket
read, as far as the GIL is concerned) and records how late it wakes up: the
time it waited to take the GIL back, plus the OS's own timer slack. The "export"
thread meanwhile encodes batches of 512 real SDK spans with the SDK's OTLP
encoder, either in one go (what the SDK does) or through otel-tdd's pacing
(otel_tdd/export_pacing.py). Rounds are interleaved; medians of the per-round
figures are printed.

    .venv/bin/python benchmarks/gil_wait.py [--rounds 5] [--seconds 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tdd import export_pacing

SLEEP_S = 0.001


def make_spans(count: int) -> list[ReadableSpan]:
    """Spans shaped like a Flask request's: a server span with a dozen attributes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(count):
        with tracer.start_as_current_span(
            "GET /items/<int:item_id>",
            attributes={
                "http.method": "GET",
                "http.server_name": "127.0.0.1",
                "http.scheme": "http",
                "net.host.port": 8000,
                "http.host": "127.0.0.1:8000",
                "http.target": f"/items/{i}?q=x",
                "net.peer.ip": "127.0.0.1",
                "net.peer.port": 40000 + i % 1000,
                "http.user_agent": "wrk",
                "http.flavor": "1.1",
                "http.route": "/items/<int:item_id>",
                "http.status_code": 200,
            },
        ):
            pass
    return list(memory.get_finished_spans())


def lateness(
    spans: Sequence[ReadableSpan], seconds: float, slice_s: float | None
) -> tuple[list[float], float]:
    """Wake-up lateness (ms) of 1 ms sleeps while another thread encodes (None: nobody does),
    and the spans that thread encoded per second."""
    stop = threading.Event()
    encoded = [0]

    def encode() -> None:
        while not stop.is_set():
            encode_spans(export_pacing.PacedBatch(spans)).SerializePartialToString()
            encoded[0] += len(spans)

    encoder = None
    if slice_s is not None:
        export_pacing.SLICE_SECONDS = slice_s
        encoder = threading.Thread(target=encode, daemon=True)
        encoder.start()
        time.sleep(0.05)
    late: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        time.sleep(SLEEP_S)
        late.append((time.perf_counter() - start - SLEEP_S) * 1000)
    stop.set()
    if encoder is not None:
        encoder.join()
    return late, encoded[0] / seconds


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="1 round of 0.5 s (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    spans = make_spans(512)
    ways: dict[str, float | None] = {
        "nobody encodes": None,
        "SDK encoding, one go": 0.0,
        f"paced, {export_pacing.SLICE_SECONDS * 1000:g} ms slices": export_pacing.SLICE_SECONDS,
    }
    default_slice = export_pacing.SLICE_SECONDS
    figures: dict[str, list[tuple[float, float, float, float]]] = {way: [] for way in ways}
    names = list(ways)
    for round_no in range(args.rounds):
        for way in names[round_no % 3 :] + names[: round_no % 3]:
            late, rate = lateness(spans, args.seconds, ways[way])
            figures[way].append((p(late, 0.5), p(late, 0.99), max(late), rate))
    export_pacing.SLICE_SECONDS = default_slice
    load = os.getloadavg()[0]
    print(
        f"# GIL wait behind OTLP encoding: {args.rounds} round(s) x {args.seconds:g} s, "
        f"1 ms sleeps, batches of {len(spans)} spans; load average {load:.2f}\n"
    )
    print("| export thread | late p50 ms | late p99 ms | late max ms | spans encoded /s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for way, rows in figures.items():
        p50 = statistics.median(r[0] for r in rows)
        p99 = statistics.median(r[1] for r in rows)
        worst = statistics.median(r[2] for r in rows)
        rate = statistics.median(r[3] for r in rows)
        print(f"| {way} | {p50:.2f} | {p99:.2f} | {worst:.2f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
