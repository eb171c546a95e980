"""Celery with a real Redis broker: a worker and a producer, the trace crossing the queue.

The app is a tasks module and a producer script, unmodified: ``add`` logs and
returns a sum, ``fail`` logs and raises. The worker (prefork pool, one process)
and the producer run bare, then both under ``otel-tdd run`` through the real
Collector; the worker is stopped with SIGTERM, its export intervals so long that
whatever the Collector holds came through the final flushes (the worker's and its
pool process's, which leaves through ``os._exit``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_services import Redis, running_redis
from matrix_runs import (
    PYTHON,
    instrumentation,
    of_service,
    otlp_to,
    run_app,
    wrapper_problems,
    write_app,
)
from run_helpers import FLUSH_ONLY_AT_EXIT, OTEL_TDD, RunningCommand, clean_env, running

pytestmark = pytest.mark.integration

TASKS = """
import logging
import os

from celery import Celery

app = Celery("shop", broker=os.environ["SHOP_BROKER"], backend=os.environ["SHOP_BROKER"])
log = logging.getLogger("shop.tasks")


@app.task
def add(x, y):
    log.info("adding %d and %d", x, y)
    return x + y


@app.task
def fail(x):
    log.info("about to fail on %d", x)
    raise ValueError(f"cannot process {x}")
"""
PRODUCER = """
from tasks import add, fail

print("sum:", add.delay(2, 3).get(timeout=30))
try:
    fail.delay(7).get(timeout=30)
except ValueError as error:
    print("failed:", error)
"""
CELERY = str(Path(OTEL_TDD).parent / "celery")
WORKER = ["-A", "tasks", "worker", "--loglevel", "INFO", "--concurrency", "1",
          "--pool", "prefork", "--without-heartbeat", "--without-gossip", "--without-mingle",
          "--hostname", "compat@localhost"]  # fmt: skip


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def wait_ready(worker: RunningCommand, timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode}\n{worker.output()}")
        text = worker.stdout_path.read_text() + worker.stderr_path.read_text()
        if "compat@localhost ready." in text:
            return
        time.sleep(0.2)
    pytest.fail(f"worker not ready in {timeout_s}s\n{worker.output()}")


def run_worker_and_producer(
    tmp_path: Path, name: str, broker_url: str, wrap: list[str] | None
) -> tuple[Any, int, RunningCommand]:
    """(the producer's outcome, the worker's exit code after SIGTERM, the worker)."""
    env = clean_env({**FLUSH_ONLY_AT_EXIT, "SHOP_BROKER": broker_url})
    # running() starts in the repo: --workdir makes the worker import tasks from tmp_path.
    command = [CELERY, "--workdir", str(tmp_path), *WORKER]
    argv = command if wrap is None else [OTEL_TDD, "run", *wrap, *command]
    with running(argv, env, tmp_path, f"{name}-worker") as worker:
        wait_ready(worker)
        producer = run_app(
            [PYTHON, "produce.py"], cwd=tmp_path, wrap=wrap, env={"SHOP_BROKER": broker_url}
        )
        code = worker.terminate(60)
    return producer, code, worker


def test_celery_task_crosses_the_queue_in_one_trace(
    module_collector: Any, broker: Redis, tmp_path: Path, compat_row: Any
) -> None:
    collector, service = module_collector, "compat-celery"
    write_app(tmp_path, "tasks.py", TASKS)
    write_app(tmp_path, "produce.py", PRODUCER)
    bare_url, wrapped_url = (broker.url.rsplit("/", 1)[0] + f"/{db}" for db in (1, 2))

    bare, bare_code, _ = run_worker_and_producer(tmp_path, "bare", bare_url, None)
    assert bare.returncode == 0 and bare_code == 0, bare.stderr
    assert bare.app_stdout() == ["sum: 5", "failed: cannot process 7"]
    wrapped, wrapped_code, worker = run_worker_and_producer(
        tmp_path, "wrapped", wrapped_url, otlp_to(collector, service)
    )
    # The producer behaves as bare; the worker stops cleanly on SIGTERM, as bare.
    assert (wrapped.returncode, wrapped.app_stdout()) == (bare.returncode, bare.app_stdout())
    assert wrapped_code == bare_code == 0, worker.output()
    assert wrapper_problems(wrapped) == [], wrapped.stderr

    # The worker's own lines and the tasks' records are our JSON, with the task's ids.
    worker_json = worker.json_lines()
    worker_messages = [r["message"] for r in worker_json]
    assert any("compat@localhost ready." in m for m in worker_messages), worker_messages
    stray = [
        r for r in worker_json
        if r["logger"].startswith(("otel_tdd", "opentelemetry"))
        and r["level"] in ("WARNING", "ERROR", "CRITICAL")
    ]  # fmt: skip
    assert stray == []
    assert not [line for line in worker.stderr_path.read_text().splitlines()
                if line.startswith("otel-tdd")]  # fmt: skip
    # As the web rows' framework_lines_are_json: no plain-text "ready." besides the JSON one.
    worker_text = worker.stdout_path.read_text() + worker.stderr_path.read_text()
    plain = [line for line in worker_text.splitlines()
             if "ready." in line and not line.startswith("{")]  # fmt: skip
    assert plain == [], plain

    def arrived() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        spans = of_service(collector.spans(), service)
        names = {s["name"] for s in spans}
        wanted = {"apply_async/tasks.add", "run/tasks.add", "apply_async/tasks.fail",
                  "run/tasks.fail"}  # fmt: skip
        return (spans, of_service(collector.logs(), service)) if wanted <= names else None

    spans, logs = collector.wait_for(arrived, 30, "the producer's and the worker's spans")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    for task, message in (("add", "adding 2 and 3"), ("fail", "about to fail on 7")):
        (send,) = by_name[f"apply_async/tasks.{task}"]
        (run,) = by_name[f"run/tasks.{task}"]
        assert (send["kind"], run["kind"]) == ("PRODUCER", "CONSUMER")
        # One trace from the producer, through Redis, into the pool process.
        assert run["trace_id"] == send["trace_id"] and run["parent_span_id"] == send["span_id"]
        assert run["attributes"]["celery.task_name"] == f"tasks.{task}"
        ids = (run["trace_id"], run["span_id"])
        (record,) = [r for r in logs if r["body"] == message]
        assert (record["trace_id"], record["span_id"]) == ids, record
        (line,) = [r for r in worker_json if r["message"] == message]
        assert (line["trace_id"], line["span_id"]) == ids, line

    # The failure: one error span (the task's run) and one error record (Celery's own
    # "raised unexpected", with the traceback), both in the task's trace.
    errors = [s for s in spans if s["status_code"] == "ERROR" and s["name"] != "EVALSHA"]
    assert [s["name"] for s in errors] == ["run/tasks.fail"]
    # The Redis instrumentor traces the broker's own commands too: the result backend's
    # first EVALSHA misses the script cache (NOSCRIPT) and redis-py retries with EVAL.
    for span in by_name.get("EVALSHA", []):
        assert span["status_code"] != "ERROR" or "NoScriptError" in span["status_message"], span
    error_records = [r for r in logs if r["severity_text"] == "ERROR"]
    assert len(error_records) == 1, [r["body"] for r in error_records]
    assert "raised unexpected" in error_records[0]["body"]
    assert error_records[0]["trace_id"] == errors[0]["trace_id"]
    assert "ValueError: cannot process 7" in error_records[0]["attributes"]["exception.stacktrace"]
    compat_row(
        "Celery",
        "Redis broker and backend, prefork worker (1 process) + producer, a task that raises",
        [
            "producer output and exit code as bare; worker exits 0 on SIGTERM as bare",
            "PRODUCER span and CONSUMER span share one trace across the queue",
            "the tasks' records carry the task span's ids on stdout and over OTLP",
            "the worker's own lines are our JSON (no root-logger hijack)",
            "one error span and one error record with its traceback",
            "everything flushed on SIGTERM, pool process included",
            "no WARNING/ERROR from the wrapper",
        ],
        distribution="celery",
        notes=[
            instrumentation("celery"),
            "Redis: redis-server 7 (Debian); the redis instrumentor also traces the broker's "
            "commands, including an EVALSHA NoScriptError span that redis-py retries with EVAL",
        ],
    )
