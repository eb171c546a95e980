"""aiohttp's server: its record of an unhandled exception carries the request's trace.

aiohttp logs "Error handling request" in ``RequestHandler.log_exception`` after
the instrumentation's middleware ended the request's span; run in the context of
the span that recorded the exception (:mod:`otel_tdd.logs.exception_spans`),
the record carries the request's trace and span id. Installed once the
``aiohttp-server`` instrumentor is active (:mod:`otel_tdd.auto.bootstrap`);
tested with aiohttp 3.14.
"""

from __future__ import annotations

import sys
from typing import Any

import wrapt

from otel_tdd._import_hooks import when_imported
from otel_tdd.logs.exception_spans import in_recording_span

__all__ = ["install"]

PROTOCOL = "aiohttp.web_protocol"


def install() -> None:
    when_imported(PROTOCOL, _patch)


def _patch(module: Any) -> None:
    handler = getattr(module, "RequestHandler", None)
    if handler is None or isinstance(handler.__dict__.get("log_exception"), wrapt.ObjectProxy):
        return
    wrapt.wrap_function_wrapper(module, "RequestHandler.log_exception", _log_in_request_span)


def _log_in_request_span(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
    exception = kwargs.get("exc_info")
    if not isinstance(exception, BaseException):
        exception = sys.exc_info()[1]
    with in_recording_span(exception):
        return wrapped(*args, **kwargs)
