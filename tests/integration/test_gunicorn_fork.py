"""Pre-fork: gunicorn with two workers under ``otel-tdd run``, each worker its own instance.

The master is configured by the sitecustomize, then forks its workers. Each
worker must export under its own ``service.instance.id`` (else their cumulative
metrics collide into one series) and every request must arrive exactly once:
no span lost, none exported twice (a copied queue, an exporter left from the
master). The ops server stays with the master, and the workers still exit at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from run_helpers import EXAMPLES, EXPORT_SOON, OTEL_TDD, clean_env, http_get, running

from otel_tdd.stack import process

pytestmark = pytest.mark.integration

SERVICE = "tasks-gunicorn"
REQUESTS_PER_ROUND = 8


def test_each_gunicorn_worker_exports_once_under_its_own_instance_id(
    collector: Any, tmp_path: Path
) -> None:
    port, ops_port = process.free_ports(2)
    argv = [
        OTEL_TDD, "run", "--service-name", SERVICE,
        "--endpoint", collector.otlp_http_endpoint, "--ops-port", str(ops_port),
        "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        "--chdir", str(EXAMPLES / "http_services"), "--graceful-timeout", "10",
        "tasks_service:app",
    ]  # fmt: skip
    pids: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status, body = http_get(f"http://127.0.0.1:{port}/tasks/1", headers={"Connection": "close"})
        assert status == 200, body
        with lock:
            pids.append(json.loads(body)["pid"])

    with running(argv, clean_env(EXPORT_SOON), tmp_path, "gunicorn") as server:
        server.wait_http(f"http://127.0.0.1:{port}/tasks/2")
        # The ops server started in the master before the fork; it keeps answering there.
        server.wait_http(f"http://127.0.0.1:{ops_port}/health/ready")
        warmup = 1
        # Concurrent requests until both workers have answered (sync workers take one
        # request at a time, so concurrency spreads them), at most 25 rounds.
        for _ in range(25):
            threads = [threading.Thread(target=call) for _ in range(REQUESTS_PER_ROUND)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            if len(set(pids)) >= 2:
                break
        assert len(set(pids)) == 2, f"one worker answered everything: {set(pids)}"
        # A worker that tried to stop the master's ops server (whose thread did not survive
        # the fork) would hang here until gunicorn's graceful timeout and lose its flush.
        started = time.monotonic()
        assert server.terminate() == 0, server.output()
        assert time.monotonic() - started < 8, "workers were slow to exit"
    sent = len(pids) + warmup
    master_pid = server.pid
    # gunicorn's own error log is JSON on stdout (OTEL_TDD_FRAMEWORK_LOGS), not plain
    # text on stderr: the master's start-up line and one boot line per worker.
    booted = [
        r
        for r in server.json_lines()
        if r["logger"] == "gunicorn.error" and r["message"].startswith("Booting worker with pid")
    ]
    assert len(booted) == 2, server.output()
    assert not [
        line
        for line in server.stderr_path.read_text(errors="replace").splitlines()
        if "[INFO] Booting worker" in line
    ], server.output()

    def server_spans() -> list[dict[str, Any]]:
        spans = [
            s for s in collector.spans() if s["service_name"] == SERVICE and s["kind"] == "SERVER"
        ]
        return spans if len(spans) >= sent else []

    spans = collector.wait_for(server_spans, 30, f"{sent} server spans")
    assert len(spans) == sent, "a request was exported twice"
    assert len({s["span_id"] for s in spans}) == sent

    instances: dict[int, set[str]] = defaultdict(set)
    for span in spans:
        instances[span["attributes"]["app.pid"]].add(span["resource"]["service.instance.id"])
    assert set(instances) == set(pids)  # the warm-up request went to one of the two
    assert master_pid not in instances  # the master serves no requests
    assert all(len(ids) == 1 for ids in instances.values()), instances
    per_worker = [next(iter(ids)) for ids in instances.values()]
    assert len(set(per_worker)) == 2, "the workers share a service.instance.id"

    # Metrics: one cumulative series per worker instance; their latest counts add up to
    # the requests, which two workers writing one series could not do.
    def latest_counts() -> dict[str, int]:
        latest: dict[str, int] = {}
        for point in collector.metrics():
            if (
                point["service_name"] == SERVICE
                and point["name"] == "tdd_response_time_seconds"
                and point["attributes"].get("endpoint") == "/tasks"
            ):
                latest[point["resource"]["service.instance.id"]] = point["count"]
        return latest if sum(latest.values()) >= sent else {}

    counts = collector.wait_for(latest_counts, 30, "both workers' final metrics")
    assert set(counts) == set(per_worker), counts
    assert sum(counts.values()) == sent
