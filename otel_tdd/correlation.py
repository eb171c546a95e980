"""Correlation is the trace context: ``correlation_id`` is the active trace id, and
``user_id``, ``session_id``, ``request_id`` ride in W3C baggage across threads, asyncio
tasks and HTTP hops. Baggage goes to every downstream service: keep it to opaque IDs
(docs/logging.md, "Correlation").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import baggage, context, trace

from otel_tdd import _runtime
from otel_tdd.logs.record import BAGGAGE_IDS

__all__ = [
    "BAGGAGE_KEYS",
    "ContextThreadPoolExecutor",
    "CorrelationIds",
    "continue_from_headers",
    "correlation_context",
    "current_ids",
    "extract_context",
    "inject_headers",
    "wrap_with_context",
]

BAGGAGE_KEYS = BAGGAGE_IDS  # the record's list (otel_tdd.logs.record)
USER_ID, SESSION_ID, REQUEST_ID = BAGGAGE_KEYS
SPAN_NAME = "correlation_context"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class CorrelationIds:
    """The IDs every record carries (``logs.record.ID_FIELDS``). ``correlation_id`` equals
    ``trace_id``."""

    correlation_id: str | None
    trace_id: str | None
    span_id: str | None
    user_id: str | None
    session_id: str | None
    request_id: str | None


def current_ids() -> CorrelationIds:
    """The correlation IDs of the current context (None where absent)."""
    span_context = trace.get_current_span().get_span_context()
    bag = baggage.get_all()
    trace_id = span_id = None
    if span_context.is_valid:
        trace_id = format(span_context.trace_id, "032x")
        span_id = format(span_context.span_id, "016x")
    return CorrelationIds(
        correlation_id=trace_id,
        trace_id=trace_id,
        span_id=span_id,
        user_id=_str_or_none(bag.get(USER_ID)),
        session_id=_str_or_none(bag.get(SESSION_ID)),
        request_id=_str_or_none(bag.get(REQUEST_ID)),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


@contextmanager
def correlation_context(
    user_id: str | None = None,
    request_id: str | None = None,
    session_id: str | None = None,
    *,
    span_name: str = SPAN_NAME,
) -> Iterator[CorrelationIds]:
    """Set user/request/session IDs as baggage and make sure a trace is active.

    Inside an active span the trace is continued (only the baggage changes);
    otherwise a span named ``span_name`` is started, so every record in the block
    shares one ``correlation_id``. Nested blocks override the IDs they pass and
    restore the outer ones on exit.
    """
    ctx = context.get_current()
    for key, value in ((USER_ID, user_id), (REQUEST_ID, request_id), (SESSION_ID, session_id)):
        if value is not None:
            ctx = baggage.set_baggage(key, str(value), ctx)
    token = context.attach(ctx)
    try:
        parent = trace.get_current_span(ctx).get_span_context()
        if parent.is_valid and not parent.is_remote:
            yield current_ids()
            return
        tracer = _runtime.current().tracer
        attributes = {
            f"app.{key}": str(value)
            for key, value in (
                (USER_ID, user_id),
                (REQUEST_ID, request_id),
                (SESSION_ID, session_id),
            )
            if value is not None
        }
        with tracer.start_as_current_span(span_name, attributes=attributes):
            yield current_ids()
    finally:
        context.detach(token)


def wrap_with_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the caller's context, so a thread running it keeps the trace and baggage.

    New threads start with an empty context; this is the one line that carries it.
    """
    ctx = context.get_current()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = context.attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            context.detach(token)

    return run


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the context of the code that submitted them."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(wrap_with_context(fn), *args, **kwargs)


def inject_headers(headers: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Write ``traceparent``, ``tracestate`` and ``baggage`` for an outgoing request."""
    # Imported here: opentelemetry.propagate reads OTEL_PROPAGATORS at import and raises
    # on a bad name, which must be configure()'s ConfigError, not an import error.
    from opentelemetry import propagate

    carrier: MutableMapping[str, str] = {} if headers is None else headers
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str]) -> context.Context:
    """The context an incoming request carries. Malformed headers are ignored, as the spec says."""
    from opentelemetry import propagate

    normalised = {str(k).lower(): str(v) for k, v in headers.items()}
    return propagate.extract(normalised)


@contextmanager
def continue_from_headers(
    headers: Mapping[str, str], span_name: str = "handle_request"
) -> Iterator[CorrelationIds]:
    """Run a block as a server span in the caller's trace, with the caller's baggage."""
    token = context.attach(extract_context(headers))
    try:
        tracer = _runtime.current().tracer
        with tracer.start_as_current_span(span_name, kind=trace.SpanKind.SERVER):
            yield current_ids()
    finally:
        context.detach(token)
