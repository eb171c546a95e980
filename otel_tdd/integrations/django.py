"""Django: the records Django writes after a request's span has ended carry its trace.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

from typing import Any

import wrapt
from opentelemetry import trace

from otel_tdd._import_hooks import when_imported

__all__ = ["install"]

MIDDLEWARE = "opentelemetry.instrumentation.django.middleware.otel_middleware"
HANDLERS = ("django.core.handlers.base", "django.core.handlers.exception")
_SPAN_CONTEXT = "_otel_tdd_span_context"


def install() -> None:
    """Arrange the two hooks when their modules are imported (now, if they are)."""
    when_imported(MIDDLEWARE, _patch_middleware)
    for module in HANDLERS:
        when_imported(module, _patch_log_response)


def _patch_middleware(module: Any) -> None:
    middleware = getattr(module, "_DjangoMiddleware", None)
    if middleware is None or isinstance(
        middleware.__dict__.get("process_response"), wrapt.ObjectProxy
    ):
        return
    wrapt.wrap_function_wrapper(module, "_DjangoMiddleware.process_response", _keep_span_context)


def _patch_log_response(module: Any) -> None:
    if hasattr(module, "log_response") and not isinstance(module.log_response, wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(module, "log_response", _log_in_request_span)


def _keep_span_context(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Before the middleware ends the span: note its context on the request."""
    try:
        request = args[0] if args else kwargs["request"]
        span = request.META.get(getattr(instance, "_environ_span_key", ""))
        if span is not None:
            setattr(request, _SPAN_CONTEXT, span.get_span_context())
    except Exception:  # no span, an unusual request object: the record stays uncorrelated
        pass
    return wrapped(*args, **kwargs)


def _log_in_request_span(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
    """``log_response(message, *args, response=, request=, ...)`` in the request's span."""
    span_context = getattr(kwargs.get("request"), _SPAN_CONTEXT, None)
    if span_context is None or trace.get_current_span().get_span_context().is_valid:
        return wrapped(*args, **kwargs)
    with trace.use_span(trace.NonRecordingSpan(span_context)):
        return wrapped(*args, **kwargs)
