"""Which span recorded an exception, for the server's record of it logged after that span ended.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace

__all__ = ["in_recording_span", "install", "span_context_of"]

_ATTRIBUTE = "_otel_tdd_span_context"
_installed = False


def install() -> None:
    """Wrap ``opentelemetry.sdk.trace.Span.record_exception``; once. A plain wrapper,
    not wrapt: this runs at every start, and wrapt's import costs ~30 ms."""
    global _installed
    if _installed:
        return
    _installed = True
    from opentelemetry.sdk.trace import Span

    original = Span.record_exception

    @functools.wraps(original)
    def record_exception(self: Span, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        original(self, exception, *args, **kwargs)
        # The outermost span records last (the request's server span): its context wins.
        with contextlib.suppress(Exception):  # an exception type without __dict__
            setattr(exception, _ATTRIBUTE, self.get_span_context())

    Span.record_exception = record_exception  # type: ignore[method-assign]


def span_context_of(exception: object) -> trace.SpanContext | None:
    context = getattr(exception, _ATTRIBUTE, None)
    return context if isinstance(context, trace.SpanContext) else None


@contextlib.contextmanager
def in_recording_span(exception: object) -> Iterator[None]:
    """The span that recorded ``exception`` as the current one, if no span is current."""
    context = span_context_of(exception)
    if context is None or trace.get_current_span().get_span_context().is_valid:
        yield
        return
    with trace.use_span(trace.NonRecordingSpan(context)):
        yield
