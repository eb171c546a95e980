"""Pipeline throughput: one Python process into the real Collector, sent against received.

    .venv/bin/python benchmarks/pipeline_throughput.py                 # 60 s at 5,000/s
    .venv/bin/python benchmarks/pipeline_throughput.py --rate 8000 --duration 30
    .venv/bin/python benchmarks/pipeline_throughput.py --quick         # 3 s smoke run (CI)
    .venv/bin/python benchmarks/pipeline_throughput.py --stores        # into the trace/log stores

Starts our Collector (``LocalStack``, the real ``collector/config.yaml``, free
127.0.0.1 ports), configures otel-tdd in this process with the Collector as
its OTLP/HTTP endpoint, and for ``--duration`` seconds emits work items at
``--rate`` a second: each item is one span with one ``StructuredLogger.info``
record inside it, so the target is ``--rate`` spans/s *and* ``--rate`` log
records/s. Pacing is per 10 ms tick; a backlog of up to one second is made up,
beyond that it is forgiven, so a process that cannot keep up shows it in the
achieved rate instead of bursting.

Then ``otel_tdd.shutdown()`` flushes what is queued, and the Collector's own
counters on its telemetry port are compared with what was sent: what its OTLP
receiver accepted (``otelcol_receiver_accepted_spans`` / ``_log_records``) and
what its file exporters wrote (``otelcol_exporter_sent_*{exporter="file/..."}``).
``dropped`` is what otel-tdd counted in ``tdd_telemetry_dropped_total`` (queue
overflow, failed exports); ``lost`` is sent minus received, and a ``lost`` other
than ``dropped`` would be a loss nobody counted (the exit code is then 1).

``--stores``: the stack also runs Jaeger and VictoriaLogs, the Collector exports
to them (no files), and every item is read back from them afterwards (Jaeger by
trace id, VictoriaLogs by LogsQL stats; store_readback.py): sent, stored once,
duplicated and lost per signal, and the rate the stores held them at. Exit 1 if
anything is lost or doubled.

Batch settings: the SDK's standard variables apply as documented
(``OTEL_BSP_*``, ``OTEL_BLRP_*``); this script sets its defaults for them
(see ``BATCH_SETTINGS`` and docs/benchmarks.md, "Pipeline throughput") unless
they are already set in the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Why these values (docs/benchmarks.md, "Pipeline throughput"):
# - the queue holds ~1.6 s of items at 5,000/s instead of 0.4 s, so a GC pause or a
#   slow export does not overflow it;
# - batches of 2,048 instead of 512: a quarter of the HTTP requests, each one
#   exported as soon as the queue reaches it (the 5 s schedule delay never matters
#   at this rate).
BATCH_SETTINGS = {
    "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
    "OTEL_BLRP_MAX_QUEUE_SIZE": "8192",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "2048",
}
RATE = 5000.0  # the target of the benchmark issue, with and without --stores
TICK_S = 0.01
MAX_BACKLOG_S = 1.0
_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)"
)
_EXPORTER = re.compile(r'exporter="([^"]+)"')


@dataclass
class Result:
    signal: str
    target_per_s: float
    sent: int
    achieved_per_s: float
    received: int
    written: int
    dropped: int
    lost: int


def collector_counters(url: str) -> dict[str, float]:
    """The Collector's self-metrics, summed over labels, by name (``_total`` stripped).

    Also by ``name/exporter`` for series with an ``exporter`` label.
    """
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name = match["name"].removesuffix("_total")
        value = float(match["value"])
        totals[name] = totals.get(name, 0.0) + value
        exporter = _EXPORTER.search(match["labels"] or "")
        if exporter is not None:
            key = f"{name}/{exporter.group(1)}"
            totals[key] = totals.get(key, 0.0) + value
    return totals


def cpu_seconds_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} cores ({model}), {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}"
    )


def emit(
    duration_s: float,
    rate: float,
    profile: Path | None,
    item: Callable[[int], None] | None = None,
) -> tuple[int, float, float]:
    """Emit items at ``rate``/s for ``duration_s``: (items sent, seconds taken, seconds busy).

    ``item(seq)`` makes one item (default: a root span with one log record inside).
    Busy: wall time the emitting thread spent making items, GIL waits included.
    """
    from otel_tdd import _runtime
    from otel_tdd.structured_logging import StructuredLogger

    tracer = _runtime.current().tracer
    logger = StructuredLogger("pipeline_benchmark")

    def one_span(seq: int) -> None:
        with tracer.start_as_current_span("pipeline item", attributes={"seq": seq}):
            logger.info("pipeline item done", {"seq": seq, "kind": "benchmark"})

    make = item or one_span
    profiler: Any = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    sent = 0
    owed = 0.0
    busy = 0.0
    started = last = time.monotonic()
    end = started + duration_s
    while last < end:
        # Items owed for the time that passed; a backlog beyond one second is forgiven,
        # so a process that cannot keep up shows a lower achieved rate, not a burst.
        now = time.monotonic()
        owed = min(owed + rate * (now - last), rate * MAX_BACKLOG_S)
        last = now
        due = int(owed)
        owed -= due
        for _ in range(due):
            make(sent)
            sent += 1
        busy += time.monotonic() - now
        time.sleep(TICK_S)
    elapsed = time.monotonic() - started
    if profiler is not None:
        profiler.stop()
        text = profile.suffix == ".txt"
        profile.write_text(profiler.output_text(unicode=True) if text else profiler.output_html())
    return sent, elapsed, busy


def run(duration_s: float, rate: float, profile: Path | None, keep: bool) -> dict[str, Any]:
    for name, value in BATCH_SETTINGS.items():
        os.environ.setdefault(name, value)
    import otel_tdd
    from otel_tdd.export_accounting import dropped_totals
    from otel_tdd.stack.local import LocalStack

    state = Path(tempfile.mkdtemp(prefix="otel-tdd-pipeline-"))
    stack = LocalStack(state, free_ports=True, components=("collector",))
    stack.up()
    try:
        collector_pid = stack.pids["collector"]
        telemetry = stack.collector_telemetry_url
        telemetry = telemetry if telemetry.endswith("/metrics") else telemetry + "/metrics"
        before = collector_counters(telemetry)
        otel_tdd.configure(
            "pipeline-benchmark",
            endpoint=stack.otlp_http_endpoint,
            log_stream="none",
            metrics_exporters="prometheus",  # the benchmark is about spans and log records
        )
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        collector_cpu0 = cpu_seconds_of(collector_pid)
        sent, elapsed, busy = emit(duration_s, rate, profile)
        flush_started = time.monotonic()
        clean = otel_tdd.shutdown(timeout_millis=30_000)
        flush_s = time.monotonic() - flush_started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        dropped = dropped_totals()

        def received() -> tuple[float, ...]:
            now = collector_counters(telemetry)
            names = (
                "otelcol_receiver_accepted_spans",
                "otelcol_receiver_accepted_log_records",
                "otelcol_exporter_sent_spans/file/traces",
                "otelcol_exporter_sent_log_records/file/logs",
            )
            return tuple(now.get(name, 0.0) - before.get(name, 0.0) for name in names)

        # Counted on acceptance, and after the file exporters' 200 ms batches: the
        # shutdown's flush has returned, so the numbers only have to settle.
        last, stable_since = received(), time.monotonic()
        while time.monotonic() - stable_since < 1.5:
            time.sleep(0.2)
            now = received()
            if now != last:
                last, stable_since = now, time.monotonic()
        spans_in, logs_in, spans_written, logs_written = last
        counters = collector_counters(telemetry)
        collector_cpu_s = cpu_seconds_of(collector_pid) - collector_cpu0
    finally:
        stack.down()
        if not keep:
            shutil.rmtree(state, ignore_errors=True)
    app_cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    results = [
        Result(
            "spans",
            rate,
            sent,
            sent / elapsed,
            int(spans_in),
            int(spans_written),
            dropped["traces"],
            sent - int(spans_in),
        ),
        Result(
            "log records",
            rate,
            sent,
            sent / elapsed,
            int(logs_in),
            int(logs_written),
            dropped["logs"],
            sent - int(logs_in),
        ),
    ]
    return {
        "machine": machine(),
        "duration_s": round(elapsed, 2),
        "flush_s": round(flush_s, 2),
        "shutdown_clean": clean,
        "app_cpu_percent_of_one_core": round(app_cpu_s / (elapsed + flush_s) * 100, 1),
        "app_cpu_us_per_item": round(app_cpu_s / max(sent, 1) * 1e6, 1),
        "emitting_thread_us_per_item": round(busy / max(sent, 1) * 1e6, 1),
        "collector_cpu_percent_of_one_core": round(collector_cpu_s / (elapsed + flush_s) * 100, 1),
        "collector_refused": {
            "spans": counters.get("otelcol_receiver_refused_spans", 0.0),
            "log_records": counters.get("otelcol_receiver_refused_log_records", 0.0),
        },
        "batch_settings": {name: os.environ[name] for name in BATCH_SETTINGS},
        "results": [asdict(r) for r in results],
    }


def report(summary: dict[str, Any]) -> str:
    lines = [
        "| signal | target /s | sent | achieved /s | received by the Collector | "
        "written to its file | dropped (counted) | lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["results"]:
        lines.append(
            f"| {r['signal']} | {r['target_per_s']:,.0f} | {r['sent']:,} | "
            f"{r['achieved_per_s']:,.0f} | {r['received']:,} | {r['written']:,} | "
            f"{r['dropped']:,} | {r['lost']:,} |"
        )
    return "\n".join(lines)


STORES = ("victoria-logs", "jaeger")


def run_stores(duration_s: float, rate: float, keep: bool) -> dict[str, Any]:
    """``--stores``: through the Collector into Jaeger and VictoriaLogs, read back.

    Items in traces of ``store_readback.BATCH`` (a root span each); after the
    shutdown's flush, the stores are polled until they hold every item (or 300 s),
    then read back: Jaeger by trace id, VictoriaLogs by LogsQL stats.
    """
    for name, value in BATCH_SETTINGS.items():
        os.environ.setdefault(name, value)
    import uuid

    from store_readback import Batcher, wait_held

    import otel_tdd
    from otel_tdd import _runtime
    from otel_tdd.export_accounting import dropped_totals
    from otel_tdd.stack.local import LocalStack
    from otel_tdd.structured_logging import StructuredLogger

    state = Path(tempfile.mkdtemp(prefix="otel-tdd-pipeline-stores-"))
    stack = LocalStack(state, free_ports=True, components=("collector", *STORES))
    stack.up()
    run_id = uuid.uuid4().hex[:12]
    try:
        telemetry = stack.collector_telemetry_url
        telemetry = telemetry if telemetry.endswith("/metrics") else telemetry + "/metrics"
        before = collector_counters(telemetry)
        otel_tdd.configure(
            "pipeline-benchmark-stores",
            endpoint=stack.otlp_http_endpoint,
            log_stream="none",
            metrics_exporters="prometheus",
        )
        batcher = Batcher(_runtime.current().tracer, StructuredLogger("pipeline_benchmark"), run_id)
        sent, elapsed, _busy = emit(duration_s, rate, None, item=batcher)
        batcher.close()
        flush_started = time.monotonic()
        clean = otel_tdd.shutdown(timeout_millis=30_000)
        flush_s = time.monotonic() - flush_started
        urls = stack.urls
        held, reached_s = wait_held(
            urls["jaeger"], urls["victoria_logs"], run_id, batcher.trace_ids, sent, 300
        )
        after = collector_counters(telemetry)
    finally:
        stack.down()
        if not keep:
            shutil.rmtree(state, ignore_errors=True)
    counts = held.counts(sent, len(batcher.trace_ids))
    # The roots are spans too: sent and counted beside the items.
    counts["spans"]["sent"] += len(batcher.trace_ids)
    counts["spans"]["stored"] += held.roots
    counts["spans"]["lost"] += len(batcher.trace_ids) - held.roots
    received = {
        "spans": "otelcol_receiver_accepted_spans",
        "log records": "otelcol_receiver_accepted_log_records",
    }
    # Until the stores held everything: emission, the app's flush, the Collector's
    # queues and the stores' own ingestion. -1: they never did (within 300 s).
    stored_by_s = elapsed + flush_s + reached_s if reached_s >= 0 else -1.0
    dropped = dropped_totals()
    for signal, figures in counts.items():
        figures["achieved_per_s"] = round(figures["sent"] / elapsed)
        figures["received"] = int(after.get(received[signal], 0) - before.get(received[signal], 0))
        figures["stored_per_s"] = round(figures["distinct"] / stored_by_s) if reached_s >= 0 else 0
        figures["dropped"] = dropped["traces" if signal == "spans" else "logs"]
    counts["spans"]["distinct"] += held.roots
    return {
        "machine": machine(),
        "mode": "stores",
        "target_per_s": rate,
        "duration_s": round(elapsed, 2),
        "flush_s": round(flush_s, 2),
        "shutdown_clean": clean,
        "stored_after_s": round(reached_s, 1),
        "batch_settings": {name: os.environ[name] for name in BATCH_SETTINGS},
        "results": counts,
    }


def report_stores(summary: dict[str, Any]) -> str:
    lines = [
        "| signal | target /s | sent | achieved /s | received by the Collector | "
        "stored and read back | duplicated | lost | stored /s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for signal, r in summary["results"].items():
        lines.append(
            f"| {signal} | {summary['target_per_s']:,.0f} | {r['sent']:,} | "
            f"{r['achieved_per_s']:,} | {r['received']:,} | {r['distinct']:,} | "
            f"{r['duplicated']:,} | {r['lost']:,} | {r['stored_per_s']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of emission")
    parser.add_argument(
        "--rate", type=float, help=f"items (span + record) a second (default {RATE:,.0f})"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s")
    parser.add_argument(
        "--profile", type=Path, help="pyinstrument profile of the emitting thread (.html or .txt)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the Collector's state dir")
    parser.add_argument(
        "--stores",
        action="store_true",
        help="through the Collector into Jaeger and VictoriaLogs, counted back from them",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    if args.stores:
        return main_stores(args)
    summary = run(args.duration, args.rate or RATE, args.profile, args.keep)
    print(
        f"\n{summary['machine']}\n{summary['duration_s']} s of emission, flush at shutdown "
        f"{summary['flush_s']} s (clean: {summary['shutdown_clean']}); CPU: app "
        f"{summary['app_cpu_percent_of_one_core']}% of a core "
        f"({summary['app_cpu_us_per_item']} us per item, of which the emitting thread "
        f"{summary['emitting_thread_us_per_item']} us), Collector "
        f"{summary['collector_cpu_percent_of_one_core']}%; batch settings "
        f"{summary['batch_settings']}\n"
    )
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    lost = any(r["lost"] != r["dropped"] for r in summary["results"])
    return 1 if lost else 0


def main_stores(args: argparse.Namespace) -> int:
    summary = run_stores(args.duration, args.rate or RATE, args.keep)
    print(
        f"\n{summary['machine']}\n{summary['duration_s']} s of emission, flush at shutdown "
        f"{summary['flush_s']} s (clean: {summary['shutdown_clean']}); both stores held "
        f"everything {summary['stored_after_s']} s after that; batch settings "
        f"{summary['batch_settings']}\n"
    )
    print(report_stores(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    results = summary["results"].values()
    return 1 if any(r["lost"] or r["duplicated"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
