"""What a process started by ``otel-tdd run`` does before its first line of user code.

Called from our sitecustomize (and from the configurator entry point, for plain
``opentelemetry-instrument``):

1. ``otel_tdd.configure()`` from the environment: providers, exporters, JSON
   logging on the root logger, the ops server when ``OTEL_TDD_OPS_PORT`` is set;
2. a clean end: ``atexit`` flushes; SIGTERM, when nothing else handles it yet,
   goes through :class:`~otel_tdd.graceful_shutdown.GracefulShutdown` (readiness
   down, cleanups, flush, exit) instead of killing the process mid-batch;
3. after ``fork`` (gunicorn, uWSGI, multiprocessing): each child gets its own
   ``service.instance.id`` from the SDK itself, and here drops the parent's ops
   server, whose thread did not survive the fork;
4. the installed instrumentors (``opentelemetry_instrumentor`` entry points),
   each activated when its library is first imported rather than at start: a
   process pays only for the libraries it uses, and ``python -c pass`` pays for
   none.

It imports only what those steps need; every failure is reported on stderr and
never reaches the program.
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

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from otel_tdd._runtime import Runtime

__all__ = ["SUPERSEDED", "TRIGGERS", "activate_on_import", "instrument_installed", "start"]

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
    # The at-fork handling (ops server, alert sender) is configure()'s own: see sdk.
    if instrument:
        superseded = {
            name
            for name, setting in SUPERSEDED.items()
            if getattr(runtime.settings, setting, False)
        }
        instrument_installed(skip=superseded)


def _configure() -> Runtime | None:
    from otel_tdd.config import ConfigError
    from otel_tdd.sdk import configure

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
    from otel_tdd.sdk import shutdown

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
        from otel_tdd.graceful_shutdown import GracefulShutdown
    except ImportError:
        # No GracefulShutdown: leave through the interpreter, so atexit flushes.
        signal.signal(signum, signal.SIG_DFL)
        raise SystemExit(128 + signum) from None
    handler = GracefulShutdown().signal_handler
    signal.signal(signum, handler)
    handler(signum, frame)


# --- instrumentors ---------------------------------------------------------------------------


def _disabled() -> set[str]:
    value = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip() for name in value.split(",") if name.strip()}


def _trigger(name: str) -> str | None:
    """The module whose import activates entry point ``name``; None: activate now."""
    if name in TRIGGERS:
        return TRIGGERS[name]
    if not name.isidentifier():
        return None
    # The path finder alone (importlib.util costs more than the lookup): enough for
    # the top-level, non-builtin modules that instrumented libraries are.
    from importlib.machinery import BuiltinImporter, PathFinder

    found = name in sys.modules
    try:
        found = found or PathFinder.find_spec(name) is not None
        found = found or BuiltinImporter.find_spec(name) is not None
    except (ImportError, ValueError):
        pass
    # Not a module of that name: we cannot tell what to wait for, so activate now (the
    # instrumentor's own dependency check then skips it if its library is missing).
    return name if found else None


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
            continue
        activate_on_import(entry_point)
        arranged.append(entry_point.name)
    for hook in installed.select(group="opentelemetry_post_instrument"):
        _call_hook(hook)
    return arranged


def activate_on_import(entry_point: EntryPoint, **kwargs: Any) -> None:
    """Instrument with ``entry_point`` once its library is imported (now, if it is already)."""
    module = _trigger(entry_point.name)
    if module is None:
        _activate(entry_point, kwargs)
        return
    from otel_tdd.auto.import_hooks import when_imported

    hook: Callable[[Any], None] = functools.partial(_on_import, entry_point, kwargs)
    when_imported(module, hook)


def _on_import(entry_point: EntryPoint, kwargs: dict[str, Any], _module: object) -> None:
    _activate(entry_point, kwargs)


def _activate(entry_point: EntryPoint, kwargs: dict[str, Any]) -> None:
    """Load and run one instrumentor. It runs inside someone's ``import``: never raise."""
    try:
        instrumentor = entry_point.load()
        # instrument() checks the instrumentor's own dependencies and skips (with a
        # debug record) a library version it does not support.
        instrumentor().instrument(**kwargs)
    except ModuleNotFoundError as error:
        _log.debug("instrumentor %s skipped: %s", entry_point.name, error)
    except Exception as error:
        _log.warning(
            "instrumentor %s failed and is skipped: %r",
            entry_point.name,
            error,
            extra={"instrumentor": entry_point.value},
        )


def _call_hook(entry_point: EntryPoint) -> None:
    try:
        entry_point.load()()
    except Exception as error:
        _log.warning("%s hook %s failed: %r", entry_point.group, entry_point.name, error)
