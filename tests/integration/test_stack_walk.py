"""The walk of issue 16's "Done when", on the real local stack with its stores.

`otel-tdd stack`'s components (Collector, Prometheus, Alertmanager, VictoriaLogs,
Jaeger v2) on free 127.0.0.1 ports; an app under `otel-tdd run` (walk_app.py)
writes JSON lines on stdout; from one line's trace id: Jaeger holds exactly the
spans the app made for it, VictoriaLogs exactly the records the app wrote with
it, Prometheus holds an exemplar naming a trace Jaeger has, and `otel-tdd trace`
(a separate process that finds the stores through the stack's state dir) shows
every span name and log message of that trace.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import StackUnderTest, _up_or_fail
from run_helpers import OTEL_TDD, REPO, clean_env, running

from otel_tdd import stores_query as q
from otel_tdd.exemplars_query import Exemplar, fetch_exemplars

pytestmark = pytest.mark.integration

T = TypeVar("T")
APP = Path(__file__).with_name("walk_app.py")
METRIC = "walk_request_duration_seconds"
REQUESTS = 3
# What walk_app.py makes per request: four spans, one log record in each.
SPANS = ["GET /orders/{n}", "load order", "SELECT orders", "render"]
MESSAGES = [
    "order {n} received",
    "order {n} loading",
    "order {n} selected",
    "order {n} rendered slowly",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    """Every component, the stores included (their builds cached), on free ports."""
    running_stack = StackUnderTest(tmp_path_factory.mktemp("walk-stack"), free_ports=True)
    _up_or_fail(running_stack)
    try:
        yield running_stack
    finally:
        running_stack.down()


def poll(probe: Callable[[], T], timeout_s: float, what: str, context: Callable[[], str]) -> T:
    """``probe()`` until truthy; a store error counts as "not yet" (the last one is shown)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last = result
        except q.StoreQueryError as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout_s}s (last: {last!r})\n{context()}")
        time.sleep(0.5)


def test_from_a_json_line_to_its_trace_logs_and_exemplar(
    stack: StackUnderTest, tmp_path: Path
) -> None:
    service = f"walk-{uuid.uuid4().hex[:8]}"
    release = tmp_path / "release"
    env = clean_env(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_http_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            # One export while it runs (the app's force_flush) and one at exit: see walk_app.
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }
    )
    argv = [OTEL_TDD, "run", sys.executable, str(APP), str(REQUESTS), str(release)]
    with running(argv, env, tmp_path, "walk-app") as app:

        def context() -> str:
            return f"{app.output()}\n{stack.log_tails()}"

        poll(
            lambda: "metrics flushed=True" in app.stderr_path.read_text(),
            60,
            "metrics export from the app",
            context,
        )
        # While the app still runs: its exemplars are on the Collector's /metrics.
        exemplars: list[Exemplar] = poll(
            lambda: [e for e in fetch_exemplars(stack.prometheus_url, METRIC) if e.trace_id],
            90,
            f"exemplar of {METRIC} in Prometheus",
            context,
        )
        release.touch()
        assert app.proc.wait(60) == 0, app.output()
        lines = [line for line in app.json_lines() if line.get("trace_id")]

    # The app's own account of what it wrote, per trace, from its JSON lines.
    assert len(lines) == REQUESTS * len(MESSAGES), app.output()
    by_trace: dict[str, list[str]] = {}
    for line in lines:
        by_trace.setdefault(line["trace_id"], []).append(line["message"])
    assert len(by_trace) == REQUESTS, by_trace
    trace_id = lines[-1]["trace_id"]  # a line of the last request
    n = REQUESTS
    expected_spans = sorted(name.format(n=n) for name in SPANS)
    expected_messages = [m.format(n=n) for m in MESSAGES]
    assert by_trace[trace_id] == expected_messages

    jaeger = stack.urls["jaeger"]
    spans = poll(
        lambda: (s := q.fetch_trace(jaeger, trace_id)) and len(s) >= len(SPANS) and s,
        60,
        f"{len(SPANS)} spans of trace {trace_id} in Jaeger",
        stack.log_tails,
    )
    assert sorted(span.name for span in spans) == expected_spans
    assert {span.service for span in spans} == {service}

    logs_url = stack.urls["victoria_logs"]
    records = poll(
        lambda: (
            (p := q.fetch_logs(logs_url, q.logsql(trace_id=trace_id)))
            and len(p) >= len(by_trace[trace_id])
            and p
        ),
        60,
        f"{len(by_trace[trace_id])} records of trace {trace_id} in VictoriaLogs",
        stack.log_tails,
    )
    assert sorted(r.message for r in records) == sorted(by_trace[trace_id])
    assert {r.trace_id for r in records} == {trace_id}

    # The exemplar names one of the app's traces, and Jaeger has it.
    named = [e for e in exemplars if e.series.get("job") == service]
    assert named, exemplars
    assert named[0].trace_id in by_trace, (named, sorted(by_trace))
    assert len(q.fetch_trace(jaeger, named[0].trace_id)) == len(SPANS)

    # `otel-tdd trace ID` as a user runs it: no URL flags, the stack found by its state dir.
    shown = subprocess.run(
        [OTEL_TDD, "trace", trace_id],
        env=clean_env({"OTEL_TDD_STACK_DIR": str(stack.state_dir), "NO_COLOR": "1"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for name in expected_spans:
        assert name in shown.stdout, shown.stdout
    for message in expected_messages:
        assert message in shown.stdout, shown.stdout
    assert f"trace {trace_id}  {len(SPANS)} spans" in shown.stdout, shown.stdout
