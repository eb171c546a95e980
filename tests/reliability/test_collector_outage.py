"""The Collector away: the app does not notice, memory stays flat, and every loss is counted.

Real processes throughout: the app is tests/reliability/load_app.py, configured
like a user's app; the Collector is our build, started by the ``collector``
fixture and killed with SIGKILL by its pid. Each item the app emits is one span
and one log record, numbered, so "sent = received + counted as dropped" can be
checked item by item.

The latency bounds are correctness bounds -- no call waits on the network --
not a benchmark: the median call adds under 1 ms to a bare one, and no call
takes a second (one that waited for the exporter's retries would sit in a
backoff of at least 1 s). The p99 is printed and kept in docs/reliability.md,
not asserted: on this shared 2-core machine it moves with the load of other
processes (6 ms was seen under a load average of 8), which says nothing about us.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from otel_tdd.stack import process
from otel_tdd.stack.local import LocalStack

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("load_app.py")
MB = 1024 * 1024


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextmanager
def app(args: list[str], env: dict[str, str], stderr_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The load app as a child; always stopped (by its pid) when the test leaves."""
    with stderr_path.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(APP), *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def next_event(child: subprocess.Popen[str], kind: str, stderr_path: Path) -> dict[str, Any]:
    """Read the child's events until one of ``kind``."""
    assert child.stdout is not None
    while True:
        line = child.stdout.readline()
        if not line:
            child.wait(10)
            pytest.fail(
                f"the app exited ({child.returncode}) before '{kind}':\n"
                + process.tail(stderr_path, 30)
            )
        event: dict[str, Any] = json.loads(line)
        if event["event"] == kind:
            return event


def send(child: subprocess.Popen[str], command: str) -> None:
    assert child.stdin is not None
    child.stdin.write(command + "\n")
    child.stdin.flush()


def assert_no_call_waits_on_the_network(figures: dict[str, Any]) -> None:
    """Median added cost under 1 ms, and no call near an exporter backoff (>= 1 s)."""
    latency = figures["latency_us"]
    added_p50_us = latency["p50"] - figures["bare_p50_us"]
    assert added_p50_us < 1_000, figures
    assert latency["max"] < 1_000_000, figures


def test_collector_down_at_start_calls_raise_nothing_stay_fast_memory_stays_flat_and_all_is_counted(
    tmp_path: Path,
) -> None:
    (port,) = process.free_ports(1)  # nobody listens here: every connection is refused
    warmup, chunks, chunk = 5_000, 6, 5_000
    stderr_path = tmp_path / "app.stderr"
    args = [
        "burst",
        "--service",
        f"down-{uuid.uuid4().hex[:8]}",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--warmup",
        str(warmup),
        "--chunks",
        str(chunks),
        "--chunk",
        str(chunk),
        # 2,000 calls/s: 15 s of calls, so the exporters fail and retry while we measure.
        "--burst-rate",
        "2000",
    ]
    with app(args, app_env(), stderr_path) as child:
        result = next_event(child, "result", stderr_path)
        returncode = child.wait(60)
    stderr = stderr_path.read_text()
    calls = warmup + chunks * chunk

    assert returncode == 0, stderr
    assert result["calls"] == calls
    assert result["errors"] == 0, stderr  # no exception reached the caller

    assert_no_call_waits_on_the_network(result)

    # Queues are bounded: after the warm-up has filled them, 30,000 more calls leave no
    # more live Python objects (the app collects cycles before each sample); unbounded,
    # they would add ~30 blocks per call: ~900,000 blocks, ~75 MB. RSS rises a few MB once,
    # at the first failed exports (buffers below the Python heap), then stays.
    blocks = result["allocated_blocks"]
    assert max(blocks) - blocks[0] < 20_000, blocks
    rss = result["rss_bytes"]
    assert rss[-1] - rss[0] < 16 * MB, [round(r / MB, 1) for r in rss]

    # Drops are counted while it runs, in the health body and in the metric alike.
    live = result["health_telemetry_dropped"]
    assert live["traces"] > 0 and live["logs"] > 0, live
    assert live == result["dropped_before_shutdown"]
    for signal_name in ("traces", "logs"):
        line = next(m for m in result["metric_lines"] if f'signal="{signal_name}"' in m)
        assert float(line.rsplit(" ", 1)[1]) == live[signal_name], line

    # Nothing ever arrived, so everything must have been counted: one span, one record per call.
    final = result["dropped_after_shutdown"]
    assert final["traces"] == calls, final
    assert final["logs"] == calls, final

    # The final flush gave up at its 10 s budget instead of retrying batch after batch.
    assert result["shutdown_s"] < 15, result["shutdown_s"]
    assert result["shutdown_clean"] is False
    assert "telemetry export abandoned after 10000 ms" in stderr
    figures = {
        "calls": calls,
        "latency_us": result["latency_us"],
        "bare_p99_us": result["bare_p99_us"],
        "rss_mb": [round(r / MB, 2) for r in rss],
        "allocated_blocks": blocks,
        "dropped_live": live,
        "dropped_final": final,
        "shutdown_s": result["shutdown_s"],
    }
    print(json.dumps(figures))


def collector_ports(collector: Any) -> dict[str, int]:
    """The running Collector's ports, so a new one can take exactly the same."""
    urls = {
        "otlp_http": collector.otlp_http_endpoint,
        "otlp_grpc": collector.otlp_grpc_endpoint,
        "prometheus_exporter": collector.prometheus_exporter_url,
        "telemetry": collector.telemetry_url,
        "health": collector.health_url,
    }
    return {f"collector.{name}": int(urlsplit(url).port or 0) for name, url in urls.items()}


def received(collector: Any, service: str) -> tuple[list[int], list[int]]:
    spans = [
        s["attributes"]["seq"]
        for s in collector.spans()
        if s["resource"].get("service.name") == service and s["name"] == "reliability.work_item"
    ]
    logs = [
        r["attributes"]["data"]["seq"]
        for r in collector.logs()
        if r["resource"].get("service.name") == service and r["body"] == "work item done"
    ]
    return spans, logs


def wait_until(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def measure_while_down(child: subprocess.Popen[str], stderr_path: Path) -> dict[str, Any]:
    """Latency and memory of the app while the Collector is away, once its queues are full.

    The baseline is taken when both queues are at their bound (as ``burst`` takes it
    after its warm-up): at 200 items/s a failed export holds its batch ~7 s, so the
    queues fill in ~15 s. Full is seen from the outside: the drop count then rises
    with every item (the oldest is pushed out), not once per failed batch, so a rise
    in three progress events in a row (150 items, well under one retry cycle) means
    evictions. Then 5,000 more calls, timed, with a memory sample every 1,000.

    They run at 2,000/s (``--measure-rate``), the rate of the down-at-start test: at
    200/s each call starts cold after a 5 ms sleep, and its p99 on this shared
    2-core machine is ~0.7 ms with the Collector up too -- a cost of the machine
    and the rate, not of the outage.
    """
    started = time.monotonic()
    last = next_event(child, "progress", stderr_path)["dropped"]
    rising = 0
    while rising < 3:
        now = next_event(child, "progress", stderr_path)["dropped"]
        both = now["traces"] > last["traces"] and now["logs"] > last["logs"]
        rising = rising + 1 if both else 0
        last = now
    queue_full_after_s = round(time.monotonic() - started, 1)
    send(child, "sample")
    send(child, "measure")
    samples = [next_event(child, "sample", stderr_path)]
    while len(samples) < 6:
        event = next_event(child, "progress", stderr_path)
        if event["emitted"] >= samples[-1]["emitted"] + 1_000:
            send(child, "sample")
            samples.append(next_event(child, "sample", stderr_path))
    send(child, "report")
    latency = next_event(child, "latency", stderr_path)
    return {"samples": samples, "latency": latency, "queue_full_after_s": queue_full_after_s}


def test_collector_killed_mid_run_then_restarted_export_resumes_and_every_loss_is_counted(
    collector: Any, tmp_path: Path
) -> None:
    service = f"outage-{uuid.uuid4().hex[:8]}"
    ports = collector_ports(collector)
    stderr_path = tmp_path / "app.stderr"
    env = app_env(OTEL_BSP_SCHEDULE_DELAY="500", OTEL_BLRP_SCHEDULE_DELAY="500")
    args = ["steady", "--service", service, "--endpoint", collector.otlp_http_endpoint]
    args += ["--rate", "200", "--measure-rate", "2000"]
    restarted: LocalStack | None = None
    with app(args, env, stderr_path) as child:
        try:
            next_event(child, "ready", stderr_path)
            next_event(child, "progress", stderr_path)
            # Everything so far is at the Collector before it dies: what it had accepted
            # but not yet written is the Collector's loss, not the app's.
            send(child, "pause")
            before = next_event(child, "paused", stderr_path)["emitted"]
            collector.wait_for(
                lambda: all(len(set(got)) == before for got in received(collector, service)),
                30,
                f"the {before} items sent before the kill",
            )

            os.kill(collector.pid, signal.SIGKILL)
            wait_until(lambda: not process.is_running(collector.pid), 10, "the Collector to die")
            send(child, "resume")
            # Down until an export of each signal has run out of retries, failed and counted.
            while True:
                dropped_so_far = next_event(child, "progress", stderr_path)["dropped"]
                if dropped_so_far["traces"] and dropped_so_far["logs"]:
                    break
            outage = measure_while_down(child, stderr_path)
            progress = next_event(child, "progress", stderr_path)
            assert child.poll() is None  # the app kept working

            restarted = LocalStack(
                collector.stack.state_dir,
                components=("collector",),
                ports=ports,
                # The same config as the fixture's (with the files overlay this test reads).
                collector_config=collector.stack.config.collector_config,
            )
            restarted.up()
            restarted_at = time.monotonic()
            at_restart = progress["emitted"]
            # New items reach the new Collector: the app was not restarted.
            wait_until(
                lambda: max(received(collector, service)[0], default=-1) > at_restart + 200,
                40,
                "items emitted after the restart",
            )
            resumed_after_s = time.monotonic() - restarted_at
            send(child, "stop")
            stopped = next_event(child, "stopped", stderr_path)
            assert child.wait(30) == 0, process.tail(stderr_path, 30)
            emitted = stopped["emitted"]
            dropped = stopped["dropped"]
            wait_until(
                lambda: all(
                    len(set(got)) + dropped[signal_name] >= emitted
                    for got, signal_name in zip(
                        received(collector, service), ("traces", "logs"), strict=True
                    )
                ),
                30,
                "the last items at the Collector",
            )
        finally:
            if restarted is not None:
                restarted.down()
    assert stopped["errors"] == 0
    # Items were lost while it was down, so shutdown() says so (returns False, one stderr
    # line); the final flush itself completed, the Collector being back: nothing abandoned.
    assert stopped["clean"] is False
    app_stderr = stderr_path.read_text()
    assert "telemetry was lost" in app_stderr, app_stderr[-2000:]
    assert "abandoned" not in app_stderr, app_stderr[-2000:]
    # While it was down, as with the Collector down at start: calls stay fast, memory flat.
    latency = outage["latency"]
    assert_no_call_waits_on_the_network(latency)
    blocks = [sample["blocks"] for sample in outage["samples"]]
    rss = [sample["rss"] for sample in outage["samples"]]
    assert max(blocks) - blocks[0] < 20_000, blocks
    assert max(rss) - rss[0] < 16 * MB, [round(r / MB, 1) for r in rss]
    spans, logs = received(collector, service)
    assert dropped["traces"] > 0 and dropped["logs"] > 0, dropped
    # Sent = received + counted, item by item: nothing vanished without a count.
    assert len(spans) == len(set(spans)) and set(spans) <= set(range(emitted))
    assert len(logs) == len(set(logs)) and set(logs) <= set(range(emitted))
    assert len(spans) + dropped["traces"] == emitted, (len(spans), dropped, emitted)
    assert len(logs) + dropped["logs"] == emitted, (len(logs), dropped, emitted)
    print(
        json.dumps(
            {
                "emitted": emitted,
                "spans_received": len(spans),
                "logs_received": len(logs),
                "dropped": dropped,
                "at_restart": at_restart,
                "new_items_arrived_within_s": round(resumed_after_s, 1),
                "shutdown_s": stopped["shutdown_s"],
                "while_down": {
                    "latency_us": latency["latency_us"],
                    "bare_p99_us": latency["bare_p99_us"],
                    "calls_timed": latency["calls_timed"],
                    "rss_mb": [round(r / MB, 2) for r in rss],
                    "allocated_blocks": blocks,
                    "queue_full_after_s": outage["queue_full_after_s"],
                },
            }
        )
    )
