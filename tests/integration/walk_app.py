"""The app of test_stack_walk.py, run as ``otel-tdd run python walk_app.py REQUESTS RELEASE``.

Only the OpenTelemetry API and stdlib logging: ``otel-tdd run`` configures the
rest (OTLP to the stack, JSON lines on stdout). Each request is four spans with
a log record in each and a duration histogram recorded inside its root span
(an exemplar naming the trace). Then it exports its metrics once and waits
for RELEASE to exist: the SDK clears exemplars at each export, so a second
export before Prometheus scraped would wipe them from the Collector's /metrics.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from opentelemetry import metrics, trace

# Seconds buckets: the SDK's defaults (0, 5, 10, ... 10000) put every request in the first.
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]

tracer = trace.get_tracer("walk_app")
duration = metrics.get_meter("walk_app").create_histogram(
    "walk_request_duration_seconds",
    unit="s",
    description="Time to serve one walk_app request",
    explicit_bucket_boundaries_advisory=BUCKETS,
)
log = logging.getLogger("walk_app")


def serve(order: int) -> None:
    """One request: GET /orders/N > (load order > SELECT orders), render."""
    with tracer.start_as_current_span(f"GET /orders/{order}", kind=trace.SpanKind.SERVER):
        started = time.monotonic()
        log.info("order %d received", order)
        with tracer.start_as_current_span("load order"):
            log.info("order %d loading", order)
            with tracer.start_as_current_span("SELECT orders"):
                time.sleep(0.02)
                log.info("order %d selected", order)
        with tracer.start_as_current_span("render"):
            log.warning("order %d rendered slowly", order)
        duration.record(time.monotonic() - started, {"route": "/orders"})


def main() -> int:
    requests, release = int(sys.argv[1]), Path(sys.argv[2])
    for order in range(1, requests + 1):
        serve(order)
    provider = metrics.get_meter_provider()
    flushed = getattr(provider, "force_flush", lambda timeout_millis: False)(10_000)
    print(f"walk_app: requests done, metrics flushed={flushed}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 180  # bounded: a test that died must not leave us waiting
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
