"""GracefulShutdown: order, bounds, failures, idempotence, and the signal path in a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_tdd
from otel_tdd.graceful_shutdown import DEFAULT_PRIORITY, GracefulShutdown
from otel_tdd.health_check import (
    HealthMonitor,
    clear_shutting_down,
    is_shutting_down,
)
from otel_tdd.structured_logging import StructuredLogger


@pytest.fixture(autouse=True)
def _not_shutting_down() -> Iterator[None]:
    clear_shutting_down()
    yield
    clear_shutting_down()


def noop() -> None:
    pass


# --- registration ----------------------------------------------------------------------------


def test_the_seeds_three_registration_forms_and_priority_order() -> None:
    shutdown = GracefulShutdown()
    ran: list[str] = []

    @shutdown.register_cleanup
    def cleanup_database_connections() -> None:
        ran.append("database")

    @shutdown.register_cleanup(priority=3)
    def cleanup_resources() -> None:
        ran.append("resources")

    @shutdown.register_cleanup(priority=1)
    def stop_accepting_requests() -> None:
        ran.append("stop")

    def streamlit_cleanup() -> None:
        ran.append("streamlit")

    assert shutdown.register_cleanup(streamlit_cleanup) is streamlit_cleanup

    @shutdown.register_cleanup(priority=2)
    def complete_active_requests() -> None:
        ran.append("complete")

    assert [name for name, _ in shutdown.cleanups()] == [
        "test_the_seeds_three_registration_forms_and_priority_order.<locals>.stop_accepting_requests",
        "test_the_seeds_three_registration_forms_and_priority_order.<locals>.complete_active_requests",
        "test_the_seeds_three_registration_forms_and_priority_order.<locals>.cleanup_resources",
        "test_the_seeds_three_registration_forms_and_priority_order.<locals>.cleanup_database_connections",
        "test_the_seeds_three_registration_forms_and_priority_order.<locals>.streamlit_cleanup",
    ]
    result = shutdown.initiate_shutdown()
    # Lower priority first; the two at DEFAULT_PRIORITY in registration order.
    assert ran == ["stop", "complete", "resources", "database", "streamlit"]
    assert result.clean
    assert result.exit_code == 0
    assert [o.priority for o in result.cleanups] == [1, 2, 3, DEFAULT_PRIORITY, DEFAULT_PRIORITY]


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda s: s.register_cleanup("not callable"), TypeError, "not callable"),
        (lambda s: s.register_cleanup(42), TypeError, "not callable"),
        (lambda s: s.register_cleanup(priority=1)(None), TypeError, "not callable"),
        (lambda s: s.register_cleanup(noop, priority="high"), TypeError, "priority='high'"),
        (lambda s: s.register_cleanup(noop, priority=True), TypeError, "priority=True"),
        (lambda s: s.register_cleanup(noop, timeout_s=-1), ValueError, "timeout_s=-1"),
        (lambda s: s.register_cleanup(noop, timeout_s=0), ValueError, "timeout_s=0"),
        (lambda s: s.register_cleanup(timeout_s=float("inf")), ValueError, "timeout_s=inf"),
        (lambda s: s.register_cleanup(noop, name=""), ValueError, "name=''"),
    ],
)
def test_bad_registration_fails_at_registration(
    call: Any, error: type[Exception], text: str
) -> None:
    shutdown = GracefulShutdown()
    with pytest.raises(error, match=text):
        call(shutdown)
    assert shutdown.cleanups() == []


def test_registering_the_same_function_twice_is_an_error() -> None:
    shutdown = GracefulShutdown()
    shutdown.register_cleanup(noop)
    with pytest.raises(ValueError, match="already registered"):
        shutdown.register_cleanup(noop, priority=5)


def test_registering_after_shutdown_began_is_an_error(otel_capture: Any) -> None:
    shutdown = GracefulShutdown()
    shutdown.initiate_shutdown()
    with pytest.raises(RuntimeError, match="shutdown has begun"):
        shutdown.register_cleanup(noop)


def test_bad_constructor_arguments_fail_at_once() -> None:
    with pytest.raises(ValueError, match="cleanup_timeout_s=0"):
        GracefulShutdown(cleanup_timeout_s=0)
    with pytest.raises(ValueError, match="drain_s=-1"):
        GracefulShutdown(drain_s=-1)


# --- the sequence ----------------------------------------------------------------------------


def test_readiness_turns_503_before_the_first_cleanup(otel_capture: Any) -> None:
    health = HealthMonitor()
    seen: dict[str, Any] = {}
    shutdown = GracefulShutdown()

    @shutdown.register_cleanup(priority=0)
    def first() -> None:
        seen["flag"] = is_shutting_down()
        seen["ready"] = health.get_readiness_status().status_code

    shutdown.initiate_shutdown()
    assert seen == {"flag": True, "ready": 503}


def test_a_failing_cleanup_is_logged_and_the_next_one_still_runs(otel_capture: Any) -> None:
    shutdown = GracefulShutdown()
    ran: list[str] = []

    @shutdown.register_cleanup(priority=1)
    def broken() -> None:
        raise ConnectionError("pool already closed")

    @shutdown.register_cleanup(priority=2)
    def exits() -> None:
        sys.exit(3)  # even SystemExit in a cleanup must not end the sequence

    @shutdown.register_cleanup(priority=3)
    def after() -> None:
        ran.append("after")

    result = shutdown.initiate_shutdown()
    assert ran == ["after"]
    assert not result.clean
    assert result.exit_code == 1
    assert [(o.status, o.error) for o in result.cleanups] == [
        ("error", "ConnectionError: pool already closed"),
        ("error", "SystemExit: 3"),
        ("ok", None),
    ]
    assert result.failed == (broken.__qualname__, exits.__qualname__)
    failures = [r for r in otel_capture.records() if r["message"].startswith("Cleanup ")]
    assert [r["level"] for r in failures] == ["ERROR", "ERROR"]
    assert "ConnectionError: pool already closed" in failures[0]["exception"]


def test_each_cleanup_is_bounded_by_its_own_timeout(otel_capture: Any) -> None:
    release = threading.Event()
    shutdown = GracefulShutdown()
    ran: list[str] = []

    @shutdown.register_cleanup(priority=1, timeout_s=0.2)
    def hangs() -> None:
        release.wait(30)

    @shutdown.register_cleanup(priority=2)
    def after() -> None:
        ran.append("after")

    try:
        started = time.monotonic()
        result = shutdown.initiate_shutdown()
        assert time.monotonic() - started < 2.0  # bounded, not a benchmark
    finally:
        release.set()
    assert ran == ["after"]
    assert result.cleanups[0].status == "timeout"
    assert result.cleanups[0].error == "timed out after 0.2s"
    assert any("timed out after 0.2s" in r["message"] for r in otel_capture.records())


def test_cleanups_logs_and_spans_are_exported_before_the_providers_shut_down(
    otel_capture: Any,
) -> None:
    shutdown = GracefulShutdown()
    logger = StructuredLogger("app")
    configured_during_cleanup = []

    @shutdown.register_cleanup
    def save_user_sessions() -> None:
        configured_during_cleanup.append(otel_tdd.is_configured())
        logger.info("User sessions saved", {"sessions": 3})

    result = shutdown.initiate_shutdown()

    assert result.telemetry_flushed
    assert configured_during_cleanup == [True]
    assert not otel_tdd.is_configured()  # the providers went last
    spans = {span.name: span for span in otel_capture.spans()}
    root = spans["graceful_shutdown"]
    cleanup_span = spans[f"cleanup {save_user_sessions.__qualname__}"]
    assert cleanup_span.parent is not None
    assert cleanup_span.parent.span_id == root.context.span_id
    otel_logs = [record.log_record for record in otel_capture.otel_logs()]
    saved = [log for log in otel_logs if log.body == "User sessions saved"]
    assert len(saved) == 1
    assert saved[0].trace_id == root.context.trace_id  # the cleanup's log is in the trace
    bodies = [log.body for log in otel_logs]
    assert bodies.index("Graceful shutdown started") < bodies.index("User sessions saved")


def test_initiate_shutdown_is_idempotent_and_thread_safe(otel_capture: Any) -> None:
    shutdown = GracefulShutdown()
    calls = []

    @shutdown.register_cleanup
    def slow() -> None:
        calls.append(1)
        time.sleep(0.1)

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(shutdown.initiate_shutdown()))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 8
    assert all(result is results[0] for result in results)
    assert shutdown.initiate_shutdown() is results[0]
    assert shutdown.result is results[0]


def test_initiate_shutdown_from_a_cleanup_fails_that_cleanup_instead_of_deadlocking(
    otel_capture: Any,
) -> None:
    shutdown = GracefulShutdown()

    @shutdown.register_cleanup
    def reentrant() -> None:
        shutdown.initiate_shutdown()

    result = shutdown.initiate_shutdown()
    assert result.cleanups[0].status == "error"
    assert "called from a cleanup" in (result.cleanups[0].error or "")


def test_flush_telemetry_false_leaves_the_providers_running(otel_capture: Any) -> None:
    result = GracefulShutdown(flush_telemetry=False).initiate_shutdown()
    assert result.clean
    assert otel_tdd.is_configured()


# --- the signal path, in a real process ------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time, threading
    import otel_tdd
    from otel_tdd.graceful_shutdown import GracefulShutdown

    mode = sys.argv[1]
    otel_tdd.configure("shutdown-unit-child", log_stream="none")
    shutdown = GracefulShutdown(exit_grace_s=1.0)

    @shutdown.register_cleanup(priority=1)
    def first():
        print("cleanup first", flush=True)
        if mode == "slow":
            time.sleep(30)
        if mode == "pause":
            time.sleep(0.5)  # long enough for a second signal to land mid-shutdown

    @shutdown.register_cleanup(priority=2)
    def second():
        print("cleanup second", flush=True)
        if mode == "failing":
            raise RuntimeError("boom")

    shutdown.install_signal_handlers()
    print("ready", flush=True)
    try:
        while True:
            try:
                time.sleep(0.01)
            except SystemExit:
                if mode != "swallow":
                    raise
                print("swallowed SystemExit", flush=True)
    finally:
        print("finally ran", flush=True)
    """
)


def run_child(tmp_path: Path, mode: str, signals: list[signal.Signals]) -> tuple[int, str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    process = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert process.stdout is not None
    lines = []
    try:
        line = process.stdout.readline()
        lines.append(line)
        assert line == "ready\n", line
        for index, signum in enumerate(signals):
            process.send_signal(signum)
            if index + 1 < len(signals):
                lines.append(process.stdout.readline())  # "cleanup first": shutdown is under way
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(lines) + output


def test_sigterm_runs_the_cleanups_then_exits_0_through_the_main_thread(tmp_path: Path) -> None:
    code, output = run_child(tmp_path, "clean", [signal.SIGTERM])
    assert code == 0, output
    assert output.splitlines() == ["ready", "cleanup first", "cleanup second", "finally ran"]


def test_sigint_is_handled_the_same_way(tmp_path: Path) -> None:
    code, output = run_child(tmp_path, "clean", [signal.SIGINT])
    assert code == 0, output
    assert "cleanup second" in output


def test_the_exit_code_says_the_shutdown_was_not_clean(tmp_path: Path) -> None:
    code, output = run_child(tmp_path, "failing", [signal.SIGTERM])
    assert code == 1, output
    assert "finally ran" in output


def test_a_second_sigint_during_shutdown_forces_exit_130(tmp_path: Path) -> None:
    code, output = run_child(tmp_path, "slow", [signal.SIGINT, signal.SIGINT])
    assert code == 130, output
    assert "second interrupt" in output
    assert "cleanup second" not in output


def test_a_second_sigterm_is_ignored_and_the_shutdown_completes(tmp_path: Path) -> None:
    code, output = run_child(tmp_path, "pause", [signal.SIGTERM, signal.SIGTERM])
    assert code == 0, output
    assert "cleanup second" in output


def test_a_main_thread_that_swallows_systemexit_is_ended_after_the_grace(tmp_path: Path) -> None:
    code, output = run_child(tmp_path, "swallow", [signal.SIGTERM])
    assert code == 0, output
    assert "swallowed SystemExit" in output
    assert "did not exit" in output
