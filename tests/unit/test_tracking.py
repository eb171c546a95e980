"""performance_tracked / performance_context: spans, histograms, records, thresholds."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.trace import StatusCode

from otel_tdd.correlation import current_ids
from otel_tdd.performance import performance_context, performance_tracked
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import Capture


def test_sync_function_keeps_signature_and_records_span_histogram_and_record(
    otel_capture: Capture,
) -> None:
    def plain(a: int, b: int = 2) -> int:
        """Adds."""
        return a + b

    @performance_tracked
    def add(a: int, b: int = 2) -> int:
        """Adds."""
        return a + b

    assert add(1) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert inspect.signature(add) == inspect.signature(plain)
    (span,) = otel_capture.spans()
    assert span.name.endswith("add")
    assert (
        otel_capture.metric_value("tdd_operation_duration_seconds", {"operation": span.name}) == 1
    )
    (record,) = otel_capture.records()
    assert record["performance"]["status"] == "ok"
    assert record["span_id"] == format(span.context.span_id, "016x")


class EpicService:
    """At module level, so its method's __qualname__ is exactly "EpicService.create"."""

    @performance_tracked
    def create(self, name: str) -> str:
        return name.upper()

    @classmethod
    @performance_tracked
    def count(cls) -> int:
        return 3


def test_methods_are_tracked_with_their_qualified_name(otel_capture: Capture) -> None:
    assert EpicService().create("x") == "X"
    assert EpicService.count() == 3
    assert otel_capture.span_names() == ["EpicService.create", "EpicService.count"]
    assert (
        otel_capture.metric_value(
            "tdd_operation_duration_seconds", {"operation": "EpicService.create"}
        )
        == 1
    )


def test_an_explicit_name_wins_over_the_qualified_name(otel_capture: Capture) -> None:
    class Board:
        @performance_tracked(name="epic.create")
        def create(self, name: str) -> str:
            return name.upper()

    assert Board().create("x") == "X"
    assert otel_capture.span_names() == ["epic.create"]


def test_async_functions_are_awaited_inside_the_span(otel_capture: Capture) -> None:
    @performance_tracked
    async def fetch() -> str | None:
        await asyncio.sleep(0.01)
        return current_ids().span_id

    assert inspect.iscoroutinefunction(fetch)
    span_id = asyncio.run(fetch())
    (span,) = otel_capture.spans()
    assert span_id == format(span.context.span_id, "016x")
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time >= 10_000_000


def test_generators_keep_the_span_current_only_while_they_run(otel_capture: Capture) -> None:
    @performance_tracked
    def numbers(limit: int) -> Iterator[tuple[int, str | None]]:
        for n in range(limit):
            yield n, current_ids().span_id

    outside: list[str | None] = []
    items = []
    for item in numbers(3):
        items.append(item)
        outside.append(current_ids().span_id)
    (span,) = otel_capture.spans()
    inside = {span_id for _, span_id in items}
    assert [n for n, _ in items] == [0, 1, 2]
    assert inside == {format(span.context.span_id, "016x")}
    assert outside == [None, None, None]  # the consumer never sees the generator's span


def test_async_generators_are_tracked(otel_capture: Capture) -> None:
    @performance_tracked
    async def ticks() -> AsyncIterator[int]:
        for n in range(3):
            await asyncio.sleep(0)
            yield n

    async def consume() -> list[int]:
        return [n async for n in ticks()]

    assert asyncio.run(consume()) == [0, 1, 2]
    assert len(otel_capture.spans()) == 1


def test_exceptions_are_recorded_and_reraised(otel_capture: Capture) -> None:
    @performance_tracked
    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        boom()
    (span,) = otel_capture.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert otel_capture.records()[0]["performance"]["status"] == "error"


def test_threshold_emits_warning_span_event_and_counter(otel_capture: Capture) -> None:
    # --- the seed's "Alert Integration", performance half ---
    logger = StructuredLogger("tdd_application")
    with logger.performance_context("api_response", alert_threshold_ms=1):
        time.sleep(0.01)  # slower than 1 ms
    # ---
    with logger.performance_context("fast_enough", alert_threshold_ms=10_000):
        pass
    warnings = [r for r in otel_capture.records() if r["level"] == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0]["performance"]["operation"] == "api_response"
    assert warnings[0]["performance"]["alert_threshold_ms"] == 1
    span = next(s for s in otel_capture.spans() if s.name == "api_response")
    assert "performance.threshold_exceeded" in [e.name for e in span.events]
    assert (
        otel_capture.metric_value(
            "tdd_performance_threshold_exceeded_total", {"operation": "api_response"}
        )
        == 1
    )
    assert otel_capture.metric_value("tdd_performance_threshold_exceeded_total") == 1


def test_record_level_is_configurable_and_debug_is_cheap_when_disabled(
    otel_capture: Capture,
) -> None:
    @performance_tracked
    def quiet() -> None:
        return None

    @performance_tracked(level=logging.INFO)
    def loud() -> None:
        return None

    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        quiet()
        loud()
    finally:
        # setLevel (not an attribute restore) also clears the loggers' level caches.
        root.setLevel(previous)
    messages = [r["message"] for r in otel_capture.records()]
    assert len(messages) == 1 and messages[0].endswith("loud completed")
    assert len(otel_capture.spans()) == 2  # spans and histograms regardless of the level


def test_bad_arguments_fail_at_decoration_time() -> None:
    with pytest.raises(ValueError, match="alert_threshold_ms=-1"):
        performance_context("x", alert_threshold_ms=-1).__enter__()
    with pytest.raises(TypeError, match="callable"):
        performance_tracked(name="x")(42)  # type: ignore[arg-type]
