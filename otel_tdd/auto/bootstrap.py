"""What a process started by ``otel-tdd run`` does before its first line of user code.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any

from otel_tdd._import_hooks import when_imported
from otel_tdd.auto import lean

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from otel_tdd._runtime import Runtime

__all__ = [
    "AFTER_CALL",
    "STATUS",
    "SUPERSEDED",
    "TRIGGERS",
    "activate_on_import",
    "instrument_installed",
    "start",
    "trigger",
]

_log = logging.getLogger("otel_tdd.auto")
_started = False

# Entry-point name -> the module whose import activates the instrumentor, where the two
# differ (the contrib packages name most entry points after the module). None: activate
# at start, there is no library import to wait for.
TRIGGERS: dict[str, str | None] = {
    "aio-pika": "aio_pika",
    "aiohttp-client": "aiohttp",
    "aiohttp-server": "aiohttp",
    "aws-lambda": None,
    "boto3sqs": "boto3",
    "confluent-kafka": "confluent_kafka",
    "google-genai": "google.genai",
    "grpc_aio_client": "grpc",
    "grpc_aio_server": "grpc",
    "grpc_client": "grpc",
    "grpc_server": "grpc",
    "kafka-python": "kafka",
    "mysqlclient": "MySQLdb",
    "system_metrics": None,
    "tortoiseorm": "tortoise",
    "urllib": "urllib.request",
}

# Entry points that otel-tdd itself replaces, and the setting under which it does.
# The logging instrumentor would add a second OTLP handler next to our JSON pipeline.
SUPERSEDED = {"logging": "capture_logging"}


def start(*, instrument: bool = True) -> None:
    """Configure this process for ``otel-tdd run``; a second call does nothing."""
    global _started
    if _started:
        return
    _started = True
    runtime = _configure()
    if runtime is None:
        return
    atexit.register(_flush_at_exit)
    _handle_sigterm()
    # The at-fork handling (ops server, alert sender) is configure()'s own: see lifecycle.
    _install_glue_for_exceptions()
    # A Celery worker would drop our root handler and exit its pool processes unflushed.
    # Deferred, as every otel_tdd import here: the `otel-tdd run` parent imports this module.
    from otel_tdd.integrations import celery

    celery.install(keep_logging=runtime.settings.capture_logging)
    if instrument:
        superseded = {
            name
            for name, setting in SUPERSEDED.items()
            if getattr(runtime.settings, setting, False)
        }
        instrument_installed(skip=superseded)


def _configure() -> Runtime | None:
    from otel_tdd.config import ConfigError  # deferred with the SDK below
    from otel_tdd.lifecycle import configure  # deferred: the OTel SDK is most of start-up

    try:
        try:
            return configure()
        except OSError as error:
            # The ops server's port is taken (a reloader's second process, a stale
            # instance): keep the telemetry, lose only the probes, and say so.
            if os.environ.pop("OTEL_TDD_OPS_PORT", None) is None:
                raise
            print(f"otel-tdd: {error}; running without the ops server", file=sys.stderr)
            return configure()
    except ConfigError as error:
        if os.environ.get("OTEL_TDD_RUN_PID") == str(os.getpid()):
            # The command otel-tdd run started (exec kept the pid): a typo is fatal
            # here, before any user code, as configure() would make it in the app.
            print(f"otel-tdd run: {error}", file=sys.stderr, flush=True)
            os._exit(2)
        print(f"otel-tdd: {error}; running without instrumentation", file=sys.stderr)
    except Exception as error:
        print(
            f"otel-tdd: configuration failed ({error!r}); running without instrumentation",
            file=sys.stderr,
        )
    return None


def _flush_at_exit() -> None:
    from otel_tdd.lifecycle import shutdown  # deferred: the OTel SDK is most of start-up

    shutdown()


# --- SIGTERM ---------------------------------------------------------------------------------


def _handle_sigterm() -> None:
    """Take SIGTERM only while nobody else has: a server that installs its own handler
    (Streamlit, gunicorn, uvicorn) replaces this one and exits normally, and atexit flushes."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Hand the signal to GracefulShutdown, imported now rather than at every start."""
    try:
        from otel_tdd.graceful_shutdown import GracefulShutdown  # deferred: not at every start
    except ImportError:
        # No GracefulShutdown: leave through the interpreter, so atexit flushes.
        signal.signal(signum, signal.SIG_DFL)
        raise SystemExit(128 + signum) from None
    handler = GracefulShutdown().signal_handler
    signal.signal(signum, handler)
    handler(signum, frame)


# --- instrumentors ---------------------------------------------------------------------------

# Entry points activated right after a function of their library first returns rather
# than on its import. Django's instrumentor reads ``settings.MIDDLEWARE`` when it runs and,
# finding settings unconfigured, configures them empty (upstream's fallback): run on
# ``import django``, before the app's wsgi.py sets ``DJANGO_SETTINGS_MODULE`` (the
# startproject layout), it breaks every request. After ``django.setup()`` settings exist,
# and every way Django serves (runserver, get_wsgi_application, get_asgi_application)
# builds its handler, and so reads MIDDLEWARE, after it.
AFTER_CALL: dict[str, tuple[str, str]] = {"django": ("django", "setup")}

# Our glue for a framework, installed once its instrumentor is active ("module:function").
GLUE: dict[str, str] = {
    "django": "otel_tdd.integrations.django:install",
    "aiohttp-server": "otel_tdd.integrations.aiohttp:install",
}

# What happened to each instrumentor in this process, by entry-point name:
# (state, reason); state is "waiting" (for its library's import), "active" or "skipped".
STATUS: dict[str, tuple[str, str]] = {}


def _disabled() -> set[str]:
    value = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip() for name in value.split(",") if name.strip()}


def _is_module(name: str) -> bool:
    """Whether ``name`` is an importable top-level module, asking the path finder alone
    (importlib.util costs more than the lookup)."""
    if not name.isidentifier():
        return False
    from importlib.machinery import BuiltinImporter, PathFinder

    try:
        return (
            name in sys.modules
            or PathFinder.find_spec(name) is not None
            or BuiltinImporter.find_spec(name) is not None
        )
    except (ImportError, ValueError):
        return False


def trigger(entry_point: EntryPoint) -> str | None:
    """The module whose import activates ``entry_point``; None: activate now.

    Most entry points are named after their library's module. One that is not
    (httpx's second entry point, ``httpx2``) waits for the library its own module
    is named after (``opentelemetry.instrumentation.httpx`` -> ``httpx``), so that
    loading it neither costs every start an import nor runs inside another import.
    """
    name = entry_point.name
    if name in AFTER_CALL:
        return AFTER_CALL[name][0]
    if name in TRIGGERS:
        return TRIGGERS[name]
    if _is_module(name):
        return name
    library = entry_point.module.rpartition(".")[2]
    if entry_point.module.startswith("opentelemetry.instrumentation.") and _is_module(library):
        return library
    # Nothing to wait for that we can tell: activate now (instrument() then skips it,
    # with a debug record, if its library is missing).
    return None


def instrument_installed(skip: Iterable[str] = ()) -> list[str]:
    """Arrange for every installed instrumentor to activate; the names arranged.

    Honours ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (``*``: none) and runs the
    ``opentelemetry_pre_instrument`` / ``opentelemetry_post_instrument`` hooks, as
    ``opentelemetry-instrument`` does.
    """
    from importlib.metadata import entry_points

    disabled = _disabled() | set(skip)
    if "*" in disabled:
        return []
    installed = entry_points()
    for hook in installed.select(group="opentelemetry_pre_instrument"):
        _call_hook(hook)
    arranged: list[str] = []
    for entry_point in installed.select(group="opentelemetry_instrumentor"):
        if entry_point.name in disabled:
            STATUS[entry_point.name] = ("skipped", "disabled")
            continue
        activate_on_import(entry_point)
        arranged.append(entry_point.name)
    for hook in installed.select(group="opentelemetry_post_instrument"):
        _call_hook(hook)
    return arranged


def activate_on_import(entry_point: EntryPoint, **kwargs: Any) -> None:
    """Instrument with ``entry_point`` once its library is imported (now, if it is already)."""
    module = trigger(entry_point)
    if module is None:
        _activate(entry_point, kwargs)
        return
    hook: Callable[[Any], None] = functools.partial(_on_import, entry_point, kwargs)
    STATUS[entry_point.name] = ("waiting", f"activates on import of {module}")
    if entry_point.name in AFTER_CALL:
        function = AFTER_CALL[entry_point.name][1]
        hook = functools.partial(_after_call, function, hook)
        STATUS[entry_point.name] = ("waiting", f"activates after {module}.{function}()")
    when_imported(module, hook)


def _on_import(entry_point: EntryPoint, kwargs: dict[str, Any], _module: object) -> None:
    _activate(entry_point, kwargs)


def _after_call(function: str, hook: Callable[[Any], None], module: Any) -> None:
    """Wrap ``module.function`` so that ``hook(module)`` runs after its first return."""
    original = getattr(module, function, None)
    if original is None:
        hook(module)
        return
    done = threading.Lock()

    @functools.wraps(original)
    def call_then_activate(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if done.acquire(blocking=False):
            setattr(module, function, original)
            hook(module)
        return result

    setattr(module, function, call_then_activate)


class _Activations(threading.local):
    """Per thread: whether an activation runs, and the ones that fired inside it."""

    def __init__(self) -> None:
        self.running = False
        self.deferred: list[tuple[EntryPoint, dict[str, Any]]] = []


_activations = _Activations()


def _activate(entry_point: EntryPoint, kwargs: dict[str, Any]) -> None:
    """Activate ``entry_point``; one that fires while another is being activated waits.

    Loading an instrumentor imports its library, which fires that library's own
    import hooks: run there, another instrumentor of the same package would load
    from a half-initialised module (httpx's ``httpx2`` entry point importing
    ``opentelemetry.instrumentation.httpx``, which imports ``httpx``). So nested
    activations are queued and run once the outer one has finished.
    """
    if _activations.running:
        _activations.deferred.append((entry_point, kwargs))
        return
    _activations.running = True
    try:
        _activate_now(entry_point, kwargs)
        while _activations.deferred:
            _activate_now(*_activations.deferred.pop(0))
    finally:
        _activations.running = False


def _skip(name: str, reason: str) -> None:
    STATUS[name] = ("skipped", reason)
    _log.debug("instrumentor %s skipped: %s", name, reason)


def _activate_now(entry_point: EntryPoint, kwargs: dict[str, Any]) -> None:
    """Load and run one instrumentor. It runs inside someone's ``import``: never raise.

    A missing or unsupported library, a conflict or a failing instrumentor is one
    debug record, as with ``opentelemetry-instrument``: instrumentation that cannot
    apply is a non-event for the program (``otel-tdd run --list-instrumentations``
    says what was skipped and why).
    """
    from opentelemetry.instrumentation.dependencies import DependencyConflictError

    name = entry_point.name
    try:
        instrumentor = entry_point.load()()
        # raise_exception_on_conflict: a library that is absent or of a version the
        # instrumentor does not support raises here instead of logging an ERROR.
        instrumentor.instrument(raise_exception_on_conflict=True, **lean.options_for(name, kwargs))
    except DependencyConflictError as error:
        _skip(name, str(error.conflict))
    except ModuleNotFoundError as error:
        _skip(name, f"library not installed ({error})")
    except Exception as error:
        _skip(name, f"failed: {error!r}")
    else:
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", True):
            STATUS[name] = ("active", "")
            _log.debug("instrumentor %s active", name)
            _install_glue(name)
        else:
            _skip(name, "instrument() did not apply")


def _install_glue_for_exceptions() -> None:
    """A server's record of an exception logged after its span ended gets that span's trace."""
    try:
        from otel_tdd.logs import (
            exception_spans as exceptions,  # deferred: a framework's glue, on use
        )

        exceptions.install()
    except Exception as error:
        _log.debug("otel-tdd's exception glue skipped: %r", error)


def _install_glue(name: str) -> None:
    if name not in GLUE:
        return
    import importlib

    module, _, function = GLUE[name].partition(":")
    try:
        getattr(importlib.import_module(module), function)()
    except Exception as error:
        _log.debug("otel-tdd's %s glue skipped: %r", name, error)


def _call_hook(entry_point: EntryPoint) -> None:
    try:
        entry_point.load()()
    except Exception as error:
        _log.warning("%s hook %s failed: %r", entry_point.group, entry_point.name, error)
