"""Duration histograms carry exemplars: the trace of the span current when they were recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from otel_tdd import _runtime
from otel_tdd.metrics import SECONDS_BUCKETS, catalog
from otel_tdd.performance import performance_context, performance_tracked
from otel_tdd.testing import Capture


def _only_point(capture: Capture, name: str) -> Any:
    points = capture.metrics()[name]
    assert len(points) == 1, points
    return points[0][1]


def test_operation_duration_exemplar_is_the_tracked_span(otel_capture: Capture) -> None:
    @performance_tracked(name="load_epics")
    def load_epics() -> int:
        return 3

    load_epics()
    (span,) = otel_capture.spans()
    point = _only_point(otel_capture, "tdd_operation_duration_seconds")
    assert tuple(point.explicit_bounds) == SECONDS_BUCKETS
    assert point.exemplars, "no exemplar: the histogram was recorded outside its span"
    assert {e.trace_id for e in point.exemplars} == {span.context.trace_id}
    assert {e.span_id for e in point.exemplars} == {span.context.span_id}


def test_coroutine_duration_exemplar_is_its_span(otel_capture: Capture) -> None:
    @performance_tracked
    async def fetch() -> str:
        return "ok"

    asyncio.run(fetch())
    (span,) = otel_capture.spans()
    point = _only_point(otel_capture, "tdd_operation_duration_seconds")
    assert {e.span_id for e in point.exemplars} == {span.context.span_id}


def test_generator_and_context_durations_carry_their_spans(otel_capture: Capture) -> None:
    @performance_tracked(name="rows")
    def rows() -> Any:
        yield 1
        yield 2

    assert list(rows()) == [1, 2]
    with performance_context("block"):
        pass
    spans = {span.name: span for span in otel_capture.spans()}
    by_operation = {
        attributes["operation"]: point
        for attributes, point in otel_capture.metrics()["tdd_operation_duration_seconds"]
    }
    for name in ("rows", "block"):
        assert {e.span_id for e in by_operation[name].exemplars} == {spans[name].context.span_id}, (
            name
        )


def test_response_time_recorded_in_a_request_span_carries_its_trace(
    otel_capture: Capture,
) -> None:
    tracer = _runtime.current().tracer
    with tracer.start_as_current_span("GET /epics") as span:
        catalog.response_time.record(0.042, {"endpoint": "/epics"})
    point = _only_point(otel_capture, "tdd_response_time_seconds")
    assert tuple(point.explicit_bounds) == SECONDS_BUCKETS
    assert [e.trace_id for e in point.exemplars] == [span.get_span_context().trace_id]
    assert point.exemplars[0].value == pytest.approx(0.042)
