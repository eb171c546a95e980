"""Streamlit: each script rerun is the request.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import wrapt
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from otel_tdd._import_hooks import when_imported
from otel_tdd._util import ReportOnce
from otel_tdd.correlation import SESSION_ID
from otel_tdd.health_check import default_monitor
from otel_tdd.logs import framework as framework_logs
from otel_tdd.metrics import catalog
from otel_tdd.version import __version__

__all__ = ["HEALTH_CHECK_NAME", "StreamlitInstrumentor"]

SCRIPT_RUNNER = "streamlit.runtime.scriptrunner.script_runner"
# Where `streamlit run` builds its Starlette server (1.67: create_starlette_app).
STARLETTE_SERVER = "streamlit.web.server.starlette.starlette_server"
SESSION_STATE = "streamlit.runtime.state.session_state"
RUN_FUNCTION = "exec_func_with_error_handling"
WIDGETS_FUNCTION = "SessionState.on_script_will_rerun"
HEALTH_CHECK_NAME = "streamlit_server"

_log = logging.getLogger("otel_tdd.integrations.streamlit")
_reported = ReportOnce()
# Where Streamlit logs a script's uncaught exception (error_util._log_uncaught_app_exception),
# or prints it with rich (_print_rich_exception, when rich is importable: the default).
STREAMLIT_ERROR_LOGGER = "streamlit.error_util"
RICH_PRINT = "_print_rich_exception"
# Per script thread: whether one of our rerun spans is open (it records the error itself).
_in_rerun = threading.local()


class _DropStreamlitDuplicate(logging.Filter):
    """Inside a rerun: keeps Streamlit's record of an exception from printing; the rerun
    logs that exception itself when it ends (a fragment's too, which is no uncaught one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        errors = getattr(_in_rerun, "errors", None)
        if errors is None or not record.exc_info or record.exc_info[1] is None:
            return True
        errors.append(record.exc_info[1])
        return False


_DROP_DUPLICATE = _DropStreamlitDuplicate()


def _report_once(what: str, error: BaseException) -> None:
    """Our own failures: logged once per kind, never raised into Streamlit."""
    if _reported.first(what):
        _log.warning("Streamlit instrumentation: %s failed: %r", what, error)


class StreamlitInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped base class
    """A span, baggage, metrics and error records per Streamlit rerun; see the module doc."""

    _tracer_provider: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("streamlit >= 1.40",)

    def _instrument(self, **kwargs: Any) -> None:
        StreamlitInstrumentor._tracer_provider = kwargs.get("tracer_provider")
        # Patch when Streamlit imports these modules itself (now, if it already has):
        # importing Streamlit's internals early from here could change its import order.
        when_imported(SCRIPT_RUNNER, _patch_script_runner)
        when_imported(SESSION_STATE, _patch_session_state)
        when_imported(STARLETTE_SERVER, _patch_starlette_server)
        when_imported(STREAMLIT_ERROR_LOGGER, _patch_rich_print)
        logging.getLogger(STREAMLIT_ERROR_LOGGER).addFilter(_DROP_DUPLICATE)
        _register_health_check()

    def _uninstrument(self, **kwargs: Any) -> None:
        import sys

        from opentelemetry.instrumentation.utils import unwrap

        logging.getLogger(STREAMLIT_ERROR_LOGGER).removeFilter(_DROP_DUPLICATE)
        if SCRIPT_RUNNER in sys.modules:
            unwrap(sys.modules[SCRIPT_RUNNER], RUN_FUNCTION)
        if SESSION_STATE in sys.modules:
            unwrap(sys.modules[SESSION_STATE].SessionState, "on_script_will_rerun")
        try:
            monitor = default_monitor()
            if HEALTH_CHECK_NAME in monitor.check_names():
                monitor.unregister_check(HEALTH_CHECK_NAME)
        except Exception as error:
            _report_once("removing the health check", error)


def _patch_rich_print(module: Any) -> None:
    if hasattr(module, RICH_PRINT) and not isinstance(
        getattr(module, RICH_PRINT), wrapt.ObjectProxy
    ):
        wrapt.wrap_function_wrapper(module, RICH_PRINT, _json_instead_of_rich)


def _json_instead_of_rich(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
    """Inside a rerun whose records become JSON: the rerun logs the exception (one JSON
    record with the traceback) instead of a rich panel printed beside the JSON lines."""
    errors = getattr(_in_rerun, "errors", None)
    exception = args[0] if args else kwargs.get("e")
    if errors is None or not isinstance(exception, BaseException) or not framework_logs.to_json():
        return wrapped(*args, **kwargs)
    errors.append(exception)
    return None


def _patch_starlette_server(module: Any) -> None:
    if hasattr(module, "create_starlette_app") and not isinstance(
        module.create_starlette_app, wrapt.ObjectProxy
    ):
        wrapt.wrap_function_wrapper(module, "create_starlette_app", _without_http_spans)


def _without_http_spans(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
    """Streamlit's own server is plumbing, not the app: with the Starlette instrumentor
    installed, its health probes, static files and every websocket message would each
    be spans (hundreds per page load) beside the rerun spans that are the app's work."""
    app = wrapped(*args, **kwargs)
    import sys

    if "opentelemetry.instrumentation.starlette" in sys.modules:
        try:
            from opentelemetry.instrumentation.starlette import StarletteInstrumentor

            StarletteInstrumentor.uninstrument_app(app)
        except Exception as failure:
            _report_once("leaving Streamlit's server uninstrumented", failure)
    return app


def _patch_script_runner(module: Any) -> None:
    if not hasattr(module, RUN_FUNCTION):
        _report_once("hooking reruns", AttributeError(f"{SCRIPT_RUNNER}.{RUN_FUNCTION}"))
        return
    if not isinstance(getattr(module, RUN_FUNCTION), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(module, RUN_FUNCTION, _traced_rerun)


def _patch_session_state(module: Any) -> None:
    session_state = getattr(module, "SessionState", None)
    if session_state is None or not hasattr(session_state, "on_script_will_rerun"):
        _report_once("hooking widgets", AttributeError(f"{SESSION_STATE}.{WIDGETS_FUNCTION}"))
        return
    if not isinstance(session_state.__dict__["on_script_will_rerun"], wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(module, WIDGETS_FUNCTION, _record_widgets)


# --- one rerun -------------------------------------------------------------------------------


def _page_name(ctx: Any) -> str:
    """The page's name in a multipage app, else the script's file name without .py."""
    try:
        page = ctx.pages_manager.get_pages().get(ctx.page_script_hash) or {}
        name = page.get("page_name") or page.get("url_pathname")
        if name:
            return str(name)
    except Exception:
        pass
    return Path(str(getattr(ctx, "main_script_path", "") or "app")).stem


class _Rerun:
    """What a rerun span needs between its start and its end."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.page = _page_name(ctx)
        self.started = time.perf_counter()
        # Exceptions Streamlit logged during the rerun (their records held back).
        self.logged_by_streamlit: list[BaseException] = []
        session_id = str(ctx.session_id)
        self.baggage_token = context.attach(baggage.set_baggage(SESSION_ID, session_id))
        tracer = trace.get_tracer(
            __name__, __version__, tracer_provider=StreamlitInstrumentor._tracer_provider
        )
        attributes: dict[str, Any] = {
            "streamlit.session_id": session_id,
            "streamlit.page": self.page,
            "app.session_id": session_id,
        }
        fragments = getattr(ctx, "fragment_ids_this_run", None)
        if fragments:
            attributes["streamlit.fragment_ids"] = [str(f) for f in fragments]
        self.span = tracer.start_span(
            f"rerun {self.page}", kind=trace.SpanKind.SERVER, attributes=attributes
        )
        self.span_token = context.attach(trace.set_span_in_context(self.span))

    def finish(self, outcome: Any, error: BaseException | None) -> None:
        try:
            status = "error"
            uncaught: BaseException | None = error
            if error is None:
                _result, ran_cleanly, rerun_data, premature_stop, uncaught = outcome
                if uncaught is not None or not ran_cleanly:
                    status = "error"
                elif rerun_data is not None:
                    status = "rerun"
                elif premature_stop:
                    status = "stopped"
                else:
                    status = "ok"
            page = _page_name(self.ctx)  # st.navigation may have named it during the run
            if page != self.page:
                self.page = page
                self.span.update_name(f"rerun {page}")
                self.span.set_attribute("streamlit.page", page)
            self.span.set_attribute("streamlit.rerun.status", status)
            if uncaught is not None:
                self.span.record_exception(uncaught)
                self.span.set_status(
                    trace.StatusCode.ERROR, f"{type(uncaught).__name__}: {uncaught}"
                )
            # One record per exception, logged inside the span and the baggage: it
            # carries the trace id and the session id.
            logged = [uncaught] if uncaught is not None else []
            logged += [e for e in self.logged_by_streamlit if e is not uncaught]
            for exception in logged:
                _log.error(
                    "Streamlit script raised %s",
                    type(exception).__name__,
                    exc_info=(type(exception), exception, exception.__traceback__),
                    extra={"page": self.page},
                )
                catalog.errors.add(1, {"type": type(exception).__name__})
            catalog.response_time.record(
                time.perf_counter() - self.started,
                {"endpoint": self.page, "method": "RERUN", "status": status},
            )
        except Exception as failure:
            _report_once("recording a rerun", failure)
        finally:
            self.span.end()
            context.detach(self.span_token)
            context.detach(self.baggage_token)


def _traced_rerun(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
    """``exec_func_with_error_handling(func, ctx)``: one rerun, run in the script thread."""
    try:
        ctx = args[1] if len(args) > 1 else kwargs["ctx"]
        rerun = _Rerun(ctx)
    except Exception as failure:
        _report_once("starting a rerun span", failure)
        return wrapped(*args, **kwargs)
    _in_rerun.errors = []
    try:
        outcome = wrapped(*args, **kwargs)
    except BaseException as error:  # Streamlit handles the script's own; this is its bug
        _in_rerun.errors = None
        rerun.finish(None, error)
        raise
    rerun.logged_by_streamlit, _in_rerun.errors = _in_rerun.errors, None
    rerun.finish(outcome, None)
    return outcome


# --- widgets ---------------------------------------------------------------------------------


def _widget_label(widget_id: str) -> str:
    """The widget's user key when it has one (``st.button("Add", key="add")``), else its id."""
    try:
        from streamlit.runtime.state.common import user_key_from_element_id

        return user_key_from_element_id(widget_id) or widget_id
    except Exception:
        return widget_id


def _changed_widgets(state: Any, fresh: Any) -> list[str]:
    changed: set[str] = set()
    for widget in getattr(fresh, "widgets", ()):
        kind = widget.WhichOneof("value")
        if kind and kind.endswith("trigger_value") and getattr(widget, kind):
            changed.add(widget.id)  # a button press: a trigger set for this run only
    try:
        changed.update(wid for wid in state._new_widget_state if state._widget_changed(wid))
    except Exception as failure:
        _report_once("comparing widget values", failure)
    return sorted(_widget_label(wid) for wid in changed)


def _record_widgets(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``SessionState.on_script_will_rerun(fresh_widget_states, ...)``, inside the rerun span."""
    outcome = wrapped(*args, **kwargs)
    try:
        span = trace.get_current_span()
        fresh = args[0] if args else kwargs.get("fresh_widget_states")
        if fresh is not None and span.is_recording():
            changed = _changed_widgets(instance, fresh)
            if changed:
                span.set_attribute("streamlit.widgets.changed", changed)
                span.add_event("streamlit.widget_interaction", {"widgets": changed})
    except Exception as failure:
        _report_once("recording widgets", failure)
    return outcome


# --- health ----------------------------------------------------------------------------------


def _server_check() -> dict[str, Any]:
    from streamlit import runtime

    if not runtime.exists():
        return {"status": "critical", "message": "the Streamlit runtime has not started"}
    state = runtime.get_instance().state.name
    if state in ("INITIAL", "STOPPING", "STOPPED"):
        return {"status": "critical", "message": f"Streamlit runtime {state}", "state": state}
    return {"status": "healthy", "message": f"Streamlit runtime {state}", "state": state}


def _register_health_check() -> None:
    try:
        monitor = default_monitor()
        if HEALTH_CHECK_NAME in monitor.check_names():
            monitor.unregister_check(HEALTH_CHECK_NAME)
        monitor.register_check(HEALTH_CHECK_NAME, _server_check, critical=True, timeout_s=2.0)
    except Exception as error:
        _report_once("registering the health check", error)
