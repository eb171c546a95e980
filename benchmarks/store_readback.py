"""Numbered items in traces of a hundred, and counting them back from the stores.

Shared by pipeline_throughput.py's ``--stores`` mode and the reliability test
tests/reliability/test_stores_outage_under_load.py (whose app process runs
``python benchmarks/store_readback.py emit ...``). Each item is one span
(attribute ``seq``) with one ``StructuredLogger.info`` record (data ``seq`` and
``run``) inside it; every ``BATCH`` items share a trace under a ``pipeline batch``
root span, so Jaeger is read back by a few trace ids instead of one per item, and
VictoriaLogs is counted by LogsQL ``stats`` (count, distinct ``data.seq``, min, max).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from otel_tdd import stores_query
from otel_tdd.store_http import open_url, parse_json
from otel_tdd.structured_logging import StructuredLogger

BATCH = 100  # items per trace
ROOT = "pipeline batch"
ITEM = "pipeline item"


class Batcher:
    """Make item ``seq`` (a span with its log record) inside the current batch's trace."""

    def __init__(self, tracer: Tracer, logger: StructuredLogger, run: str) -> None:
        self.tracer, self.logger, self.run = tracer, logger, run
        self.trace_ids: list[str] = []
        self._root: Span | None = None

    def __call__(self, seq: int) -> None:
        if seq % BATCH == 0:
            self.close()
            self._root = self.tracer.start_span(ROOT, attributes={"run": self.run})
            self.trace_ids.append(format(self._root.get_span_context().trace_id, "032x"))
        context = trace.set_span_in_context(self._root) if self._root else None
        with self.tracer.start_as_current_span(ITEM, context=context, attributes={"seq": seq}):
            self.logger.info("pipeline item done", {"seq": seq, "run": self.run})

    def close(self) -> None:
        """End the open batch's root span (call before the final flush)."""
        if self._root is not None:
            self._root.end()
            self._root = None


@dataclass
class Held:
    """What the stores hold of one run: item numbers as read (duplicates kept)."""

    span_seqs: list[int] = field(default_factory=list)
    roots: int = 0
    records: int = 0
    record_distinct: int = 0
    record_min: int = -1
    record_max: int = -1

    def spans_exact(self, sent: int) -> bool:
        return sorted(self.span_seqs) == list(range(sent))

    def records_exact(self, sent: int) -> bool:
        # count == distinct == sent, all within [0, sent): every number exactly once.
        return self.records == self.record_distinct == sent and (
            sent == 0 or (self.record_min, self.record_max) == (0, sent - 1)
        )

    def counts(self, sent: int, batches: int) -> dict[str, Any]:
        """Lost and duplicated, per signal, for a report."""
        seqs = Counter(self.span_seqs)
        return {
            "spans": {
                "sent": sent,
                "stored": len(self.span_seqs),
                "distinct": len(seqs),
                "lost": sum(1 for n in range(sent) if n not in seqs),
                "duplicated": sum(c - 1 for c in seqs.values()),
                "roots_sent": batches,
                "roots_stored": self.roots,
            },
            "log records": {
                "sent": sent,
                "stored": self.records,
                "distinct": self.record_distinct,
                "lost": sent - self.record_distinct,
                "duplicated": self.records - self.record_distinct,
            },
        }


def spans_held(
    query_url: str, trace_ids: list[str], done: dict[str, list[int]] | None = None, sent: int = 0
) -> tuple[list[int], int]:
    """The ``seq`` of every item span and the number of roots Jaeger holds for these traces.

    With ``done`` (and ``sent``), a trace found complete (its root and all its items) is
    kept there and not fetched again: polling costs the traces still arriving.
    """
    seqs: list[int] = []
    roots = 0
    for index, trace_id in enumerate(trace_ids):
        if done is not None and trace_id in done:
            seqs.extend(done[trace_id])
            roots += 1
            continue
        try:
            spans = stores_query.fetch_trace(query_url, trace_id, timeout=30)
        except stores_query.StoreQueryError:
            continue  # not there (yet): counted as missing
        items = [int(span.attributes["seq"]) for span in spans if span.name == ITEM]
        has_root = any(span.name == ROOT for span in spans)
        seqs.extend(items)
        roots += has_root
        if done is not None and has_root and len(items) == min(BATCH, sent - index * BATCH):
            done[trace_id] = items
    return seqs, roots


def records_held(logs_url: str, run: str) -> dict[str, int]:
    """LogsQL stats over the run's records: count, distinct ``seq``, min and max ``seq``."""
    # StructuredLogger's data block is one map attribute: VictoriaLogs flattens it to data.*.
    query = (
        f"data.run:{json.dumps(run)} | stats count() n, count_uniq(data.seq) distinct, "
        "min(data.seq) lo, max(data.seq) hi"
    )
    url = f"{logs_url.rstrip('/')}/select/logsql/query"
    body = open_url(url, "VictoriaLogs", urlencode({"query": query}).encode(), timeout=30)
    rows = [parse_json(line.encode(), "VictoriaLogs", url) for line in body.decode().splitlines()]
    row = rows[0] if rows else {}

    def number(name: str, empty: int) -> int:
        value = row.get(name)
        return int(float(value)) if value not in (None, "") else empty

    return {
        "n": number("n", 0),
        "distinct": number("distinct", 0),
        "lo": number("lo", -1),
        "hi": number("hi", -1),
    }


def held(
    query_url: str,
    logs_url: str,
    run: str,
    trace_ids: list[str],
    done: dict[str, list[int]] | None = None,
    sent: int = 0,
) -> Held:
    seqs, roots = spans_held(query_url, trace_ids, done, sent)
    stats = records_held(logs_url, run)
    return Held(seqs, roots, stats["n"], stats["distinct"], stats["lo"], stats["hi"])


def wait_held(
    query_url: str,
    logs_url: str,
    run: str,
    trace_ids: list[str],
    sent: int,
    timeout_s: float,
    settle_s: float = 6.0,
) -> tuple[Held, float]:
    """Poll until both stores hold ``sent`` items (or the timeout), then ``settle_s`` more
    (a duplicate would come with the next retry round, at most 5 s apart); return what
    they hold then and the seconds until they first held everything (-1: never)."""
    started = time.monotonic()
    deadline = started + timeout_s
    reached = -1.0
    done: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        now = held(query_url, logs_url, run, trace_ids, done, sent)
        if len(now.span_seqs) >= sent and now.record_distinct >= sent:
            reached = time.monotonic() - started
            break
        time.sleep(0.5)
    time.sleep(settle_s)
    return held(query_url, logs_url, run, trace_ids), reached


# --- the app process of the reliability test -----------------------------------------


def emit_app(argv: list[str] | None = None) -> int:
    """``emit``: configure otel-tdd against ``--endpoint``, emit ``--rate`` items a second
    for ``--duration`` seconds, shut down (flush) and print one JSON line:
    ``{"sent", "trace_ids", "elapsed_s", "dropped", "clean"}``."""
    parser = argparse.ArgumentParser(prog="store_readback.py emit")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=40.0)
    args = parser.parse_args(argv)
    from pipeline_throughput import emit

    import otel_tdd
    from otel_tdd import _runtime
    from otel_tdd.export_accounting import dropped_totals

    otel_tdd.configure(
        args.service, endpoint=args.endpoint, log_stream="none", metrics_exporters="prometheus"
    )
    batcher = Batcher(_runtime.current().tracer, StructuredLogger("store_readback"), args.run)
    sent, elapsed, _busy = emit(args.duration, args.rate, None, item=batcher)
    batcher.close()
    clean = otel_tdd.shutdown(timeout_millis=30_000)
    result = {
        "sent": sent,
        "trace_ids": batcher.trace_ids,
        "elapsed_s": round(elapsed, 2),
        "dropped": dropped_totals(),
        "clean": clean,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["emit"]:
        raise SystemExit("usage: store_readback.py emit --endpoint URL --service S --run R ...")
    raise SystemExit(emit_app(sys.argv[2:]))
