"""Both stores away for 20 s under load: every span and every record arrives, each once.

The local stack with the stores (``LocalStack``: our Collector, VictoriaLogs and
Jaeger, free 127.0.0.1 ports). An app process (benchmarks/store_readback.py
``emit``, configured by ``otel_tdd.configure``) sends RATE numbered items a
second for DURATION_S seconds: each a span and a log record inside it. KILL_AT_S
seconds in, VictoriaLogs and Jaeger are SIGKILLed by the pids the stack recorded;
OUTAGE_S seconds later ``stack.up()`` (the stack's own start path) starts them
again, on the same ports (given to the stack) and data dirs. The Collector's
persistent queues (collector/config.yaml, ``file_storage``) hold what they could
not send. Then the stores are read back: Jaeger by the run's trace ids, and
VictoriaLogs by LogsQL stats; no number is there twice.

Two ways down: ``stop`` (SIGTERM, an upgrade or a restart): every span and every
record arrives. ``crash`` (SIGKILL): every span arrives, but VictoriaLogs loses
records it had acknowledged and not yet flushed (it has no write-ahead log; at
most ``-inmemoryDataFlushInterval`` of them, 1 s in the stack). Nothing the
Collector held is lost: the records missing are at most what VictoriaLogs had
acknowledged before the kill (docs/stores.md, "A store crash").
Bounded: the app stops by itself, the stack is stopped by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The benchmark's emitter and counters, and the stores tests' helpers: imported, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from collector_stores_helpers import kill_and_wait
from pipeline_throughput import collector_counters
from store_readback import BATCH, wait_held
from stores_helpers import wait_for

from otel_tdd.stack import process
from otel_tdd.stack.local import LocalStack, StackError
from otel_tdd.stack.registry import default_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STORES = ("victoria-logs", "jaeger")
EXPORTERS = {"victoria-logs": "otlp_http/victorialogs", "jaeger": "otlp_grpc/jaeger"}
SIGNALS = ("spans", "log_records")
RATE = 200  # items (span + record) a second
DURATION_S = 40
KILL_AT_S = 10
OUTAGE_S = 20


@pytest.fixture
def stores_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """The Collector and both stores; the stores' ports fixed so a restart keeps them."""
    names = [f"{store}.{port}" for store in STORES for port in default_ports(store)]
    ports = dict(zip(names, process.free_ports(len(names)), strict=True))
    stack = LocalStack(
        tmp_path / "stack", free_ports=True, components=("collector", *STORES), ports=ports
    )
    try:
        stack.up()
    except StackError as exc:
        stack.down()
        pytest.fail(f"this test needs the stack with its stores: {exc}", pytrace=False)
    try:
        yield stack
    finally:
        stack.down()


def telemetry(stack: LocalStack) -> dict[str, float]:
    url = stack.collector_telemetry_url
    return collector_counters(url if url.endswith("/metrics") else f"{url}/metrics")


def start_app(stack: LocalStack, run: str, log: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTEL_TDD_"))}
    argv = [
        sys.executable,
        str(ROOT / "benchmarks" / "store_readback.py"),
        "emit",
        f"--endpoint={stack.otlp_http_endpoint}",
        f"--service=outage-{run[:6]}",
        f"--run={run}",
        f"--rate={RATE}",
        f"--duration={DURATION_S}",
    ]
    with log.open("w") as stderr:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def sent_to(stack: LocalStack, exporter: str) -> float:
    """Items the exporter has had acknowledged by its store."""
    counters = telemetry(stack)
    return sum(counters.get(f"otelcol_exporter_sent_{s}/{exporter}", 0.0) for s in SIGNALS)


def take_down(pid: int, how: signal.Signals) -> None:
    if how is signal.SIGKILL:
        kill_and_wait(pid)
        return
    os.kill(pid, how)
    assert process.wait_until(lambda: not process.is_running(pid), timeout=30), pid


@pytest.mark.timeout(420)
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "stop"])
def test_both_stores_down_for_20s_under_load_lose_only_what_a_crash_of_victorialogs_did(
    how: signal.Signals, stores_stack: LocalStack, tmp_path: Path
) -> None:
    stack = stores_stack
    urls = stack.urls
    run = uuid.uuid4().hex[:12]
    app = start_app(stack, run, tmp_path / "app.log")
    try:
        time.sleep(KILL_AT_S)
        assert app.poll() is None, (tmp_path / "app.log").read_text()
        killed = {name: stack.pids[name] for name in STORES}
        for pid in killed.values():
            take_down(pid, how)
        acked_before = sent_to(stack, EXPORTERS["victoria-logs"])
        killed_at = time.monotonic()
        # The outage is real: both exporters' queues fill and nothing is given up on.
        for name, exporter in EXPORTERS.items():
            wait_for(
                lambda e=exporter: telemetry(stack).get(f"otelcol_exporter_queue_size/{e}", 0) > 0,
                OUTAGE_S - 5,
                f"{exporter}'s queue to hold what {name} cannot take",
            )
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed_at)))
        assert stack.pids["collector"] and process.is_running(stack.pids["collector"])
        stack.up()  # starts what is not running: the two stores
        restarted = {name: stack.pids[name] for name in STORES}
        assert all(restarted[n] != killed[n] for n in STORES), (killed, restarted)
        assert stack.urls == urls, "a store came back on other ports"
        out, _ = app.communicate(timeout=DURATION_S + 90)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 0, (tmp_path / "app.log").read_text()
    result = json.loads(out.strip().splitlines()[-1])
    sent, trace_ids = result["sent"], result["trace_ids"]
    assert sent >= RATE * DURATION_S * 0.5, result  # the load ran (a generous floor)
    assert result["clean"] and not any(result["dropped"].values()), result
    assert len(trace_ids) == -(-sent // BATCH)

    wait_for(
        lambda: (
            sent_to(stack, EXPORTERS["victoria-logs"]) >= sent
            and sent_to(stack, EXPORTERS["jaeger"]) >= sent + len(trace_ids)
        ),
        180,
        "the Collector to have every item acknowledged by the stores",
    )
    # After a crash some records never come: wait less for them.
    patience = 180 if how is signal.SIGTERM else 20
    held, reached_s = wait_held(
        urls["jaeger"], urls["victoria_logs"], run, trace_ids, sent, patience
    )
    counts = held.counts(sent, len(trace_ids))
    print(
        f"\n{how.name}, run {run}: {json.dumps(counts)}; VictoriaLogs had acknowledged "
        f"{acked_before:.0f} records before it went down; all stored {reached_s:.1f}s "
        "after the app ended (-1: never)"
    )
    assert counts["spans"]["lost"] == 0 and held.roots == len(trace_ids), counts
    assert counts["spans"]["duplicated"] == 0 and counts["log records"]["duplicated"] == 0, counts
    assert held.spans_exact(sent), counts
    if how is signal.SIGKILL:
        # Only what VictoriaLogs had acknowledged and not flushed: nothing of the queue's.
        assert counts["log records"]["lost"] <= acked_before, counts
    else:
        assert held.records_exact(sent), counts
    after = telemetry(stack)
    for exporter in EXPORTERS.values():
        failed = sum(
            after.get(f"otelcol_exporter_send_failed_{kind}/{exporter}", 0.0)
            + after.get(f"otelcol_exporter_enqueue_failed_{kind}/{exporter}", 0.0)
            for kind in SIGNALS
        )
        assert failed == 0, f"{exporter} gave up on {failed} items"
