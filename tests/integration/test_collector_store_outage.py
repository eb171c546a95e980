"""A store away, then back: the Collector's persistent queue loses nothing. Bounded.

VictoriaLogs (or Jaeger) of our own is SIGKILLed by its pid; N numbered log
records (or N spans of one trace) are sent through our Collector while it is
down; the store is restarted on the same port(s) and data dir. Every item
arrives, each once, and the exporter counts no failure. In the "+collector"
variants the Collector is SIGKILLed too and restarted on its queue dir before
the store comes back: only a queue on disk (file_storage) can bridge that, and
without it these variants fail (checked by removing `storage: file_storage`).
Fixtures: collector_stores_fixtures.py.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from collector_stores_helpers import App, Collector, LogStore, TraceStore
from opentelemetry.trace import SpanKind
from stores_helpers import JaegerUnderTest, wait_for

from otel_tdd import stores_query

pytest_plugins = ["stores_fixtures", "collector_stores_fixtures"]
pytestmark = pytest.mark.integration

OUTAGE_ITEMS = 300  # items sent while the store is down


@dataclass
class Outage:
    """One store under test: how to break it, what to send, how to count what it holds."""

    exporter: str
    store: LogStore | TraceStore
    send: Callable[[App, str], None]
    held: Callable[[str], list[int]]  # the sequence numbers of a run the store holds


def logs_outage(log_store: LogStore) -> Outage:
    def send(app: App, run: str) -> None:
        for seq in range(OUTAGE_ITEMS):
            app.log.info("outage record %d", seq, extra={"run": run, "seq": seq})

    def held(run: str) -> list[int]:
        query = stores_query.logsql(f'run:"{run}"')
        records = stores_query.fetch_logs(log_store.url, query, limit=OUTAGE_ITEMS + 10)
        return [int(r.fields["seq"]) for r in records]

    return Outage("otlp_http/victorialogs", log_store, send, held)


def traces_outage(trace_store: TraceStore) -> Outage:
    trace_ids: dict[str, str] = {}

    def send(app: App, run: str) -> None:
        with app.tracer.start_as_current_span(f"run {run}", kind=SpanKind.SERVER) as root:
            trace_ids[run] = format(root.get_span_context().trace_id, "032x")
            for seq in range(OUTAGE_ITEMS - 1):  # the root is the last item
                with app.tracer.start_as_current_span("step", attributes={"seq": seq}):
                    pass

    def held(run: str) -> list[int]:
        spans = stores_query.fetch_trace(trace_store.urls["query"], trace_ids[run])
        return [int(s.attributes.get("seq", OUTAGE_ITEMS - 1)) for s in spans]

    return Outage("otlp_grpc/jaeger", trace_store, send, held)


def batched_items(collector: Collector) -> float:
    """Items the batch processor has passed on, every signal (only one is sent here)."""
    with urllib.request.urlopen(collector.telemetry_url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^otelcol_processor_batch_batch_send_size_sum\{[^}]*\} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def failed(collector: Collector, exporter: str) -> float:
    """Items the exporter dropped after its retries (or refused for good)."""
    names = ("otelcol_exporter_send_failed_spans", "otelcol_exporter_send_failed_log_records")
    return sum(collector.metric(name, exporter) for name in names)


def wait_queued(collector: Collector, exporter: str) -> None:
    """Until every item is past the batch processor (200 ms) and in the exporter's queue."""
    wait_for(
        lambda: collector.metric("otelcol_exporter_queue_size", exporter) > 0,
        30,
        f"{exporter}'s queue to hold the batch\n{collector.log_tail()}",
    )
    wait_for(
        lambda: batched_items(collector) >= OUTAGE_ITEMS,
        30,
        f"{OUTAGE_ITEMS} items past the batch processor\n{collector.log_tail()}",
    )


@pytest.mark.parametrize(
    ("signal", "restart_collector"),
    [("logs", False), ("logs", True), ("traces", False), ("traces", True)],
    ids=["logs-store", "logs-store+collector", "traces-store", "traces-store+collector"],
)
def test_store_outage_loses_nothing(
    signal: str,
    restart_collector: bool,
    collector_for: Callable[[str], Collector],
    log_store: LogStore,
    request: pytest.FixtureRequest,
) -> None:
    if signal == "logs":
        jaeger: JaegerUnderTest = request.getfixturevalue("jaeger_store")
        outage, collector = logs_outage(log_store), collector_for(jaeger.otlp_grpc)
    else:
        trace_store: TraceStore = request.getfixturevalue("trace_store")
        outage, collector = traces_outage(trace_store), collector_for(trace_store.urls["otlp_grpc"])
    run = uuid.uuid4().hex[:12]
    app = App(collector, f"outage-{run[:6]}")
    try:
        outage.store.kill()
        outage.send(app, run)
        app.flush()
        wait_queued(collector, outage.exporter)
        # The store away: its queue does not drain and nothing is sent (what
        # TelemetryStoreNotAccepting watches), and nothing is counted as failed yet.
        time.sleep(3)
        assert collector.metric("otelcol_exporter_queue_size", outage.exporter) > 0
        assert failed(collector, outage.exporter) == 0
        if restart_collector:
            collector.kill()
            collector.start()
            wait_for(
                lambda: collector.metric("otelcol_exporter_queue_size", outage.exporter) > 0,
                30,
                f"the restarted Collector to find its queue on disk\n{collector.log_tail()}",
            )
        outage.store.start()
        back = time.monotonic()
        wait_for(
            lambda: len(outage.held(run)) >= OUTAGE_ITEMS,
            90,
            f"all {OUTAGE_ITEMS} items of run {run} in the store\n{collector.log_tail()}",
        )
        # Printed, not asserted (the machine is shared): how long the backlog took.
        print(
            f"{signal}: {OUTAGE_ITEMS} items in the store {time.monotonic() - back:.1f}s after it"
        )
        time.sleep(2)  # a duplicate would come with the next retry round (at most 5 s)
        held = sorted(outage.held(run))
        assert held == list(range(OUTAGE_ITEMS)), f"{len(held)} items, missing or doubled"
        assert failed(collector, outage.exporter) == 0
        wait_for(
            lambda: collector.metric("otelcol_exporter_queue_size", outage.exporter) == 0,
            30,
            "the queue to drain",
        )
    finally:
        app.close()
