"""Correlation is the trace context: nesting, threads, asyncio and HTTP hops."""

from __future__ import annotations

import asyncio
import logging
import threading

from otel_tdd.correlation import (
    ContextThreadPoolExecutor,
    continue_from_headers,
    correlation_context,
    current_ids,
    extract_context,
    inject_headers,
    wrap_with_context,
)
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import Capture


def test_nested_contexts_override_and_restore(otel_capture: Capture) -> None:
    with correlation_context("alice", "req_outer", session_id="s1") as outer:
        with correlation_context(request_id="req_inner") as inner:
            assert inner.user_id == "alice"
            assert inner.request_id == "req_inner"
            assert inner.session_id == "s1"
            assert inner.correlation_id == outer.correlation_id  # one trace
        assert current_ids().request_id == "req_outer"
    after = current_ids()
    assert after.correlation_id is None
    assert after.user_id is None
    assert otel_capture.span_names() == ["correlation_context"]


def test_ids_cross_into_threads_with_the_helpers(otel_capture: Capture) -> None:
    seen: dict[str, object] = {}
    logger = StructuredLogger("worker")
    with correlation_context("alice", "req_t") as ids:
        plain = threading.Thread(target=lambda: seen.update(plain=current_ids().user_id))
        plain.start()
        plain.join()
        wrapped = threading.Thread(
            target=wrap_with_context(lambda: seen.update(wrapped=current_ids()))
        )
        wrapped.start()
        wrapped.join()
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(logger.info, "in pool", {"n": n}) for n in range(4)]
            for future in futures:
                future.result()
    assert seen["plain"] is None  # new threads start with an empty context...
    assert seen["wrapped"] == ids  # ...unless carried over
    pool_records = [r for r in otel_capture.records() if r["message"] == "in pool"]
    assert len(pool_records) == 4
    assert {r["correlation_id"] for r in pool_records} == {ids.correlation_id}
    assert {r["user_id"] for r in pool_records} == {"alice"}
    assert all(r["context"]["thread_id"] != "MainThread" for r in pool_records)


def test_asyncio_tasks_keep_their_own_ids(otel_capture: Capture) -> None:
    logger = StructuredLogger("async")

    async def handle(user: str) -> str | None:
        with correlation_context(user, f"req_{user}") as ids:
            await asyncio.sleep(0.01)
            await asyncio.create_task(asyncio.sleep(0))
            logger.info("handled")
            return ids.correlation_id

    async def main() -> list[str | None]:
        return list(await asyncio.gather(*(handle(u) for u in ("a", "b", "c"))))

    ids = asyncio.run(main())
    records = [r for r in otel_capture.records() if r["logger"] == "async"]
    expected = set(zip("abc", ids, strict=True))
    assert {(r["user_id"], r["correlation_id"]) for r in records} == expected


def test_http_hop_carries_trace_and_baggage(otel_capture: Capture) -> None:
    with correlation_context("alice", "req_http", session_id="s9") as caller:
        headers = dict(inject_headers())
    assert headers["traceparent"].split("-")[1] == caller.correlation_id
    assert "user_id=alice" in headers["baggage"]
    # The server side: another "process", same trace, same ids.
    incoming = {key.title(): value for key, value in headers.items()}  # header case varies
    with continue_from_headers(incoming, span_name="GET /epics") as callee:
        logging.getLogger("server").info("serving")
    assert callee.correlation_id == caller.correlation_id
    assert callee.user_id == "alice"
    assert callee.session_id == "s9"
    server_span = next(s for s in otel_capture.spans() if s.name == "GET /epics")
    client_span = next(s for s in otel_capture.spans() if s.name == "correlation_context")
    assert server_span.parent is not None
    assert server_span.parent.span_id == client_span.context.span_id
    record = next(r for r in otel_capture.records() if r["message"] == "serving")
    assert record["correlation_id"] == caller.correlation_id
    assert record["span_id"] == format(server_span.context.span_id, "016x")


def test_malformed_headers_are_ignored_safely(otel_capture: Capture) -> None:
    for headers in (
        {"traceparent": "garbage", "baggage": "=;;=,,"},
        {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"},
        {"traceparent": "ff-zz", "baggage": "user_id"},
        {"baggage": "x" * 10_000},
    ):
        extract_context(headers)
        with continue_from_headers(headers) as ids:
            assert ids.correlation_id is not None  # a fresh trace, not a crash
            assert ids.user_id is None
