"""SIGINT and SIGTERM while two threads are working: everything emitted arrives, exit code 0.

tests/integration/test_shutdown_child.py covers SIGTERM in a single-threaded
worker. Here the app (tests/reliability/load_app.py ``signal``) runs two load
threads at 400 items/s each -- a span and a log record per item -- under
``GracefulShutdown``. Its first cleanup stops and joins the threads, so every
item it counts has ended before the providers' final flush; every one of them
must be at the Collector, the second cleanup's record too, and nothing counted
as dropped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from otel_tdd.stack import process

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("load_app.py")


def read_until(child: subprocess.Popen[str], kind: str, stderr_path: Path) -> dict[str, Any]:
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_under_load_delivers_every_item_emitted_runs_the_cleanups_and_exits_0(
    collector: Any, tmp_path: Path, signum: int
) -> None:
    service = f"signal-load-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, str(APP), "signal", "--service", service]
    args += ["--endpoint", collector.otlp_http_endpoint, "--threads", "2", "--rate", "400"]
    stderr_path = tmp_path / "app.stderr"
    with stderr_path.open("w") as stderr:
        child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        read_until(child, "ready", stderr_path)
        while min(read_until(child, "progress", stderr_path)["counts"]) < 800:
            pass  # two seconds of load, much of it still queued (the schedule delay is 5 s)
        child.send_signal(signum)
        stopped = read_until(child, "stopped", stderr_path)
        returncode = child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    stderr_text = stderr_path.read_text()

    assert returncode == 0, stderr_text
    counts = stopped["counts"]
    assert stopped["dropped"] == {"traces": 0, "metrics": 0, "logs": 0}

    def arrived() -> tuple[dict[int, set[int]], dict[int, set[int]], bool]:
        spans: dict[int, set[int]] = {0: set(), 1: set()}
        logs: dict[int, set[int]] = {0: set(), 1: set()}
        cleanup_logged = False
        for span in collector.spans():
            if span["resource"].get("service.name") == service and "seq" in span["attributes"]:
                spans[span["attributes"]["worker"]].add(span["attributes"]["seq"])
        for record in collector.logs():
            if record["resource"].get("service.name") != service:
                continue
            if record["body"] == "work item done":
                data = record["attributes"]["data"]
                logs[data["worker"]].add(data["seq"])
            elif record["body"] == "cleanup ran":
                cleanup_logged = True
        return spans, logs, cleanup_logged

    expected = {worker: set(range(count)) for worker, count in enumerate(counts)}
    collector.wait_for(
        lambda: arrived() == (expected, expected, True),
        30,
        f"{sum(counts)} spans and log records from two threads, and the cleanup's record",
    )
    print(json.dumps({"signal": signal.Signals(signum).name, "counts": counts, "exit": returncode}))
