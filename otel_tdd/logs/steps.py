"""The pipeline's steps before export: correlation, sampling, rate limit, context, redaction.

Each is a plain callable ``(logger_name, level, event) -> event`` (structlog's
shape) that adds, changes or drops (by raising ``DropEvent``) one thing.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_tdd import _otel_private
from otel_tdd.logs.record import (
    BAGGAGE_IDS,
    EMPTY_IDS,
    MAX_MESSAGE_CHARS,
    REDACTED_BLOCKS,
    DropEvent,
    EventDict,
)
from otel_tdd.logs.safe import text_of
from otel_tdd.redaction import Redactor

__all__ = [
    "SPAN_KEY",
    "AddContext",
    "ApplyRateLimit",
    "RateLimit",
    "Redact",
    "TraceIdSampler",
    "add_correlation",
    "get_current_context",
    "rate_limit_scope",
]

# Reading the span and the baggage from one get_current() saves four API calls per
# record (docs/benchmarks.md).
SPAN_KEY = _otel_private.SPAN_KEY
_BAGGAGE_KEY = _otel_private.BAGGAGE_KEY
get_current_context: Callable[[], otel_context.Context] = _otel_private.get_current_context
_INVALID_SPAN = trace.INVALID_SPAN

_hex_cache: dict[int, str] = {}


def _trace_hex(trace_id: int) -> str:
    # One request writes many records with one trace id: format it once.
    text = _hex_cache.get(trace_id)
    if text is None:
        if len(_hex_cache) > 1024:
            _hex_cache.clear()
        text = _hex_cache[trace_id] = format(trace_id, "032x")
    return text


# (context, ids): every record written under one attached Context shares its ids.
# Holding the Context keeps it alive, so an identity match can never be a reused address.
_last_ids: tuple[object, dict[str, Any]] = (None, EMPTY_IDS)


def _ids_of(current: Mapping[str, Any]) -> dict[str, Any]:
    span_context = (current.get(SPAN_KEY) or _INVALID_SPAN).get_span_context()
    bag = current.get(_BAGGAGE_KEY) or {}
    trace_hex = _trace_hex(span_context.trace_id) if span_context.trace_id else None
    ids = {
        "correlation_id": trace_hex,
        "trace_id": trace_hex,
        "span_id": format(span_context.span_id, "016x") if trace_hex else None,
    }
    for key in BAGGAGE_IDS:
        ids[key] = bag.get(key)
    return ids


def add_correlation(_name: str, _level: int, event: EventDict) -> EventDict:
    """correlation_id/trace_id/span_id from the active span; user/session/request from baggage."""
    global _last_ids
    current = get_current_context()
    cached_context, ids = _last_ids
    if cached_context is not current:
        ids = _ids_of(current)
        _last_ids = (current, ids)
    event.update(ids)
    event["_context"] = current  # for EmitToOTel; WriteJson drops it
    return event


class TraceIdSampler:
    """Keep a share of records below WARNING, decided by trace id.

    All records of one trace are kept or dropped together, the same arithmetic as
    the SDK's TraceIdRatioBased sampler (the low 64 bits against a bound).
    Records outside any trace are sampled at random.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._bound = round(rate * (2**64 - 1))

    def keep(self, level: int, trace_id: int) -> bool:
        if level >= logging.WARNING or self.rate >= 1.0:
            return True
        if trace_id:
            return (trace_id & 0xFFFFFFFFFFFFFFFF) < self._bound
        return random.random() < self.rate

    def __call__(self, _name: str, level: int, event: EventDict) -> EventDict:
        trace_hex = event.get("trace_id")
        if not self.keep(level, int(trace_hex, 16) if trace_hex else 0):
            raise DropEvent
        return event


class RateLimit:
    """At most ``limit`` records a window; past it records are suppressed and counted.

    The first record after the window rolls carries ``rate_limit.suppressed`` so the
    log itself says how much was hidden.
    """

    def __init__(self, key: str, limit: int, window_s: float = 60.0) -> None:
        if limit < 1:
            raise ValueError(f"max_logs_per_minute={limit!r} is invalid: expected at least 1")
        self.key = key
        self.limit = limit
        self.window_s = window_s
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._count = 0
        self._suppressed = 0
        self._to_report = 0

    def admit(self) -> tuple[bool, int]:
        """(allowed, suppressed count to report on this record)."""
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.window_s:
                self._window_start = now
                self._count = 0
                self._to_report += self._suppressed
                self._suppressed = 0
            if self._count < self.limit:
                self._count += 1
                report, self._to_report = self._to_report, 0
                return True, report
            self._suppressed += 1
            return False, 0


_ACTIVE_RATE_LIMIT: ContextVar[RateLimit | None] = ContextVar("otel_tdd_rate_limit", default=None)


@contextmanager
def rate_limit_scope(limit: RateLimit) -> Iterator[None]:
    token = _ACTIVE_RATE_LIMIT.set(limit)
    try:
        yield
    finally:
        _ACTIVE_RATE_LIMIT.reset(token)


class ApplyRateLimit:
    """Suppresses records written inside a ``rate_limited`` function past its budget."""

    def __init__(self, on_suppressed: Callable[[str], None]) -> None:
        self._on_suppressed = on_suppressed

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        limit = _ACTIVE_RATE_LIMIT.get()
        if limit is None:
            return event
        allowed, report = limit.admit()
        if not allowed:
            self._on_suppressed(limit.key)
            raise DropEvent
        if report:
            event["rate_limit"] = {
                "suppressed": report,
                "window_s": limit.window_s,
                "key": limit.key,
            }
        return event


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


class AddContext:
    """The seed's ``context`` block: thread, process and environment.

    One block per thread, built once: a record only references it.
    """

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self._local = threading.local()
        # A weak reference, as the SDK does: a registration lives until exit, and a strong
        # one kept every AddContext of every configure() alive.
        after_fork = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: _call_if_alive(after_fork))

    def _after_fork(self) -> None:
        self._local = threading.local()  # the pid changed

    def _block(self) -> dict[str, Any]:
        block = {
            "thread_id": threading.current_thread().name,
            "process_id": os.getpid(),
            "environment": self.environment,
        }
        self._local.block = block
        return block

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        event["context"] = getattr(self._local, "block", None) or self._block()
        return event


class Redact:
    """Masks secrets in the message, the traceback and the data blocks, and makes each
    block a plain dict (a list, a dataclass or a model given as ``data`` is walked, not
    dropped): what follows (OTel, JSON) only sees redacted, encodable values."""

    FIELDS = REDACTED_BLOCKS

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        redactor = self.redactor
        message = event["message"]
        if len(message) > MAX_MESSAGE_CHARS:
            event["message"] = redactor.bounded_text(message, MAX_MESSAGE_CHARS)
        else:  # cached for repeated messages; lone surrogates escaped
            event["message"] = redactor.text(message)
        for key in self.FIELDS:
            value = event.get(key)
            if value is None:
                continue
            if type(value) is dict:
                if value:
                    event[key] = redactor.clean(value)
            else:
                event[key] = redactor.mapping(value)
        exception = event.get("exception")
        if exception is not None:
            text = exception if type(exception) is str else text_of(exception)
            event["exception"] = redactor.bounded_text(text, MAX_MESSAGE_CHARS)
        return event
