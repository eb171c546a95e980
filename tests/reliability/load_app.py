"""An instrumented app for the reliability tests: a real process, configured like a user's.

Each work item is one ``@performance_tracked`` call: a span, a histogram record
and one log record (its own ``StructuredLogger.info``), all exported over OTLP.
It prints JSON events on stdout (``log_stream="none"``: stdout is only this).

Modes (``python load_app.py MODE --service NAME --endpoint URL [options]``):

``burst``
    ``--warmup`` items as fast as it can, then ``--chunks`` x ``--chunk`` items
    (at ``--burst-rate`` a second when given, else as fast as it can),
    each call timed (and a bare call beside it), RSS and the interpreter's
    allocated blocks read after the warm-up and after each chunk; then
    ``GET /health`` and ``/metrics`` from its ops server; then
    ``otel_tdd.shutdown()``, timed. Prints one ``result`` event.
``steady``
    ``--rate`` items a second, numbered (span attribute and log data ``seq``),
    ``progress`` every 50 items. Commands on stdin: ``pause`` (stop emitting,
    flush, print ``paused`` with the count), ``resume``, ``stop`` (shut down,
    print ``stopped`` with the number emitted and the drop totals), and for the
    outage's latency and memory: ``sample`` (after a ``gc.collect()``, print
    ``sample`` with RSS and allocated blocks), ``measure`` (from now on time
    each call and a bare call beside it, at ``--measure-rate`` a second when
    given), ``report`` (print ``latency`` over the calls timed since
    ``measure``, as ``burst`` does; back to ``--rate``, untimed).
``signal``
    ``--threads`` threads, each ``--rate`` items a second, under
    ``GracefulShutdown``; a priority-1 cleanup stops and joins them, so every item
    counted has ended before the final flush. Prints ``ready``, ``progress``, and
    ``stopped`` (from the cleanup) with the counts; exits through the signal.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import statistics
import sys
import threading
import time
import traceback
import urllib.request
from array import array
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace

import otel_tdd
from otel_tdd import lifecycle
from otel_tdd.export_accounting import dropped_totals
from otel_tdd.graceful_shutdown import GracefulShutdown
from otel_tdd.performance import performance_tracked
from otel_tdd.structured_logging import StructuredLogger

logger = StructuredLogger("reliability")
PAGE = os.sysconf("SC_PAGE_SIZE")


def say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@performance_tracked(name="reliability.work_item")
def work_item(seq: int, worker: int = 0) -> int:
    span = trace.get_current_span()
    span.set_attribute("seq", seq)
    span.set_attribute("worker", worker)
    logger.info("work item done", {"seq": seq, "worker": worker})
    return seq


def bare_item(seq: int, worker: int = 0) -> int:
    return seq


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def burst(args: argparse.Namespace, ops_url: str) -> None:
    errors = 0
    # Preallocated: the measurement itself must not be the memory that grows.
    instrumented = array("d", bytes(8 * args.chunks * args.chunk))
    bare = array("d", bytes(8 * args.chunks * args.chunk))
    clock = time.perf_counter_ns
    seq = 0
    slot = 0

    interval = 1.0 / args.burst_rate if args.burst_rate else 0.0
    next_at = time.monotonic()

    def run(count: int, record: bool) -> None:
        nonlocal errors, seq, slot, next_at
        for _ in range(count):
            if record and interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            seq += 1
            t0 = clock()
            try:
                work_item(seq)
            except Exception:  # the point of the test: this never happens
                errors += 1
                traceback.print_exc()
            t1 = clock()
            bare_item(seq)
            t2 = clock()
            if record:
                instrumented[slot] = (t1 - t0) / 1e3
                bare[slot] = (t2 - t1) / 1e3
                slot += 1

    started = time.monotonic()
    run(args.warmup, record=False)
    # Live objects only: failed exports leave reference cycles (exception <-> frame) that
    # wait for the cyclic collector, which would blur the bound we look for.
    gc.collect()
    rss = [rss_bytes()]
    blocks = [sys.getallocatedblocks()]
    next_at = time.monotonic()
    for _ in range(args.chunks):
        run(args.chunk, record=True)
        gc.collect()
        rss.append(rss_bytes())
        blocks.append(sys.getallocatedblocks())
    elapsed = time.monotonic() - started
    with urllib.request.urlopen(ops_url + "/health", timeout=10) as response:
        health = json.loads(response.read())
    with urllib.request.urlopen(ops_url + "/metrics", timeout=10) as response:
        metrics_text = response.read().decode()
    dropped_metric = [
        line for line in metrics_text.splitlines() if line.startswith("tdd_telemetry_dropped_total")
    ]
    before_shutdown = dropped_totals()
    t0 = time.monotonic()
    clean = otel_tdd.shutdown()
    shutdown_s = time.monotonic() - t0
    say(
        "result",
        calls=seq,
        errors=errors,
        elapsed_s=round(elapsed, 3),
        **latency_figures(instrumented, bare, slot),
        rss_bytes=rss,
        allocated_blocks=blocks,
        health_telemetry_dropped=health.get("telemetry_dropped"),
        health_status=health.get("overall_status"),
        metric_lines=dropped_metric,
        dropped_before_shutdown=before_shutdown,
        dropped_after_shutdown=dropped_totals(),
        shutdown_s=round(shutdown_s, 2),
        shutdown_clean=clean,
    )


def latency_figures(instrumented: array[float], bare: array[float], count: int) -> dict[str, Any]:
    timed, beside = instrumented[:count], bare[:count]
    return {
        "latency_us": {
            "p50": round(statistics.median(timed), 1),
            "p99": round(percentile(timed, 0.99), 1),
            "p999": round(percentile(timed, 0.999), 1),
            "max": round(max(timed), 1),
        },
        "bare_p50_us": round(statistics.median(beside), 2),
        "bare_p99_us": round(percentile(beside, 0.99), 2),
        "calls_timed": count,
    }


STEADY_TIMED_MAX = 100_000  # calls timed after ``measure``: 500 s at 200/s


def steady(args: argparse.Namespace) -> None:
    running = threading.Event()
    running.set()
    stop = threading.Event()
    pause_requested = threading.Event()
    requests: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read_commands() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "pause":
                running.clear()
                pause_requested.set()
            elif command == "resume":
                running.set()
            elif command in ("sample", "measure", "report"):
                requests.put(command)  # done between two calls, on the emitting thread
            elif command == "stop":
                break
        stop.set()
        running.set()

    # Preallocated before any sample: the measurement must not be the memory that grows.
    instrumented = array("d", bytes(8 * STEADY_TIMED_MAX))
    bare = array("d", bytes(8 * STEADY_TIMED_MAX))
    timing = False
    slot = 0
    clock = time.perf_counter_ns

    def serve_requests() -> None:
        nonlocal timing, slot
        while not requests.empty():
            request = requests.get()
            if request == "sample":
                gc.collect()  # live objects only, as in ``burst``
                say("sample", emitted=seq, rss=rss_bytes(), blocks=sys.getallocatedblocks())
            elif request == "measure":
                timing, slot = True, 0
                set_rate(args.measure_rate or args.rate)
            else:
                timing = False
                set_rate(args.rate)
                figures = latency_figures(instrumented, bare, slot) if slot else {}
                say("latency", **{"calls_timed": slot, **figures})

    def set_rate(rate: float) -> None:
        nonlocal interval, next_at
        interval, next_at = 1.0 / rate, time.monotonic()

    threading.Thread(target=read_commands, daemon=True).start()
    interval = 1.0 / args.rate
    seq = errors = 0
    next_at = time.monotonic()
    say("ready")
    while not stop.is_set():
        serve_requests()
        if not running.is_set():
            if pause_requested.is_set():
                pause_requested.clear()
                flushed = lifecycle.force_flush()
                say("paused", emitted=seq, flushed=flushed, dropped=dropped_totals())
            running.wait()
            next_at = time.monotonic()
            continue
        t0 = clock()
        try:
            work_item(seq)
        except Exception:
            errors += 1
            traceback.print_exc()
        t1 = clock()
        bare_item(seq)
        t2 = clock()
        if timing and slot < STEADY_TIMED_MAX:
            instrumented[slot] = (t1 - t0) / 1e3
            bare[slot] = (t2 - t1) / 1e3
            slot += 1
        seq += 1
        if seq % 50 == 0:
            say("progress", emitted=seq, dropped=dropped_totals())
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    t0 = time.monotonic()
    clean = otel_tdd.shutdown()
    say(
        "stopped",
        emitted=seq,
        errors=errors,
        dropped=dropped_totals(),
        clean=clean,
        shutdown_s=round(time.monotonic() - t0, 2),
    )


def under_signal(args: argparse.Namespace) -> None:
    stop = threading.Event()
    counts = [0] * args.threads
    interval = 1.0 / args.rate

    def load(worker: int) -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            work_item(counts[worker], worker)
            counts[worker] += 1
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    threads = [
        threading.Thread(target=load, args=(w,), name=f"load-{w}") for w in range(args.threads)
    ]
    shutdown = GracefulShutdown(cleanup_timeout_s=10)

    @shutdown.register_cleanup(priority=1)
    def stop_load() -> None:
        stop.set()
        for thread in threads:
            thread.join()
        say("stopped", counts=counts, dropped=dropped_totals())

    @shutdown.register_cleanup(priority=2)
    def cleanup_marker() -> None:
        logger.info("cleanup ran", {"cleanup": "cleanup_marker"})

    shutdown.install_signal_handlers()
    for thread in threads:
        thread.start()
    say("ready")
    while True:  # the shutdown ends the process through SystemExit in this thread
        time.sleep(0.2)
        say("progress", counts=list(counts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("burst", "steady", "signal"))
    parser.add_argument("--service", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--warmup", type=int, default=5000)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--measure-rate", type=float, default=0.0, help="steady: 0 = --rate")
    parser.add_argument("--burst-rate", type=float, default=0.0, help="0: as fast as it can")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runtime = otel_tdd.configure(
        args.service, endpoint=args.endpoint, ops_port=0, log_stream="none"
    )
    if args.mode == "burst":
        burst(args, runtime.ops_server.url)
    elif args.mode == "steady":
        steady(args)
    else:
        under_signal(args)


if __name__ == "__main__":
    main()
