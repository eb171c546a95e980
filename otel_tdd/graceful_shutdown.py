"""``GracefulShutdown``: stop in an order that loses no telemetry.

On SIGTERM, SIGINT or :meth:`GracefulShutdown.initiate_shutdown`: readiness turns
503, cleanups run by priority (each in its own thread, span and timeout), and the
OTel providers flush last. The sequence and its signal handling: docs/health.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar, overload

from opentelemetry import trace

from otel_tdd import _runtime
from otel_tdd._util import call_with_timeout, seconds
from otel_tdd.health.status import mark_shutting_down
from otel_tdd.lifecycle import shutdown as shutdown_telemetry

__all__ = [
    "DEFAULT_CLEANUP_TIMEOUT_S",
    "DEFAULT_PRIORITY",
    "CleanupOutcome",
    "GracefulShutdown",
    "ShutdownResult",
]

F = TypeVar("F", bound=Callable[..., Any])

# Cleanups registered without a priority run after the seed's priority=1..3 examples.
DEFAULT_PRIORITY = 100
DEFAULT_CLEANUP_TIMEOUT_S = 10.0
FORCED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

_log = logging.getLogger("otel_tdd.shutdown")

# Set in a cleanup's context, so initiate_shutdown() from inside a cleanup fails fast
# instead of waiting for the shutdown it is part of.
_IN_CLEANUP: contextvars.ContextVar[GracefulShutdown | None] = contextvars.ContextVar(
    "otel_tdd_in_cleanup", default=None
)


@dataclass(frozen=True)
class CleanupOutcome:
    """How one cleanup ended: ``ok``, ``error`` or ``timeout``."""

    name: str
    priority: int
    status: str
    duration_s: float
    error: str | None = None


@dataclass(frozen=True)
class ShutdownResult:
    """What a shutdown did. ``clean``: every cleanup ok and the telemetry flushed."""

    reason: str
    cleanups: tuple[CleanupOutcome, ...]
    telemetry_flushed: bool
    duration_s: float

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(outcome.name for outcome in self.cleanups if outcome.status != "ok")

    @property
    def clean(self) -> bool:
        return self.telemetry_flushed and not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1


@dataclass(frozen=True)
class _Cleanup:
    func: Callable[[], Any]
    name: str
    priority: int
    timeout_s: float
    seq: int


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulShutdown:
    """Cleanups by priority, then the telemetry flush; see the module docstring.

    ``cleanup_timeout_s``: the timeout of cleanups registered without one.
    ``drain_s``: pause between readiness turning 503 and the first cleanup (the
    time a load balancer needs to notice; often a preStop sleep does this instead).
    ``flush_timeout_s``: bound on the whole final flush and shutdown of the OTel
    providers together (one deadline shared by traces, metrics and logs).
    ``exit_grace_s``: after the signal path is done, how long the main thread has
    to exit before the process is ended with ``os._exit``.
    ``flush_telemetry``: False leaves the providers to someone else.
    """

    def __init__(
        self,
        *,
        cleanup_timeout_s: float = DEFAULT_CLEANUP_TIMEOUT_S,
        drain_s: float = 0.0,
        flush_timeout_s: float = 10.0,
        exit_grace_s: float = 5.0,
        flush_telemetry: bool = True,
    ) -> None:
        self.cleanup_timeout_s = seconds("cleanup_timeout_s", cleanup_timeout_s)
        self.drain_s = seconds("drain_s", drain_s, allow_zero=True)
        self.flush_timeout_s = seconds("flush_timeout_s", flush_timeout_s)
        self.exit_grace_s = seconds("exit_grace_s", exit_grace_s)
        self.flush_telemetry = flush_telemetry
        self._cleanups: list[_Cleanup] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._state = "idle"  # idle -> running -> done; written under _lock
        self._done = threading.Event()
        self._result: ShutdownResult | None = None
        # Written only by signal_handler (which runs in the main thread).
        self._signalled = False
        self._exit_on_finish = False
        self._wake_sent = False

    # -- registration -----------------------------------------------------------------------

    @overload
    def register_cleanup(
        self,
        func: F,
        /,
        *,
        priority: int = DEFAULT_PRIORITY,
        timeout_s: float | None = None,
        name: str | None = None,
    ) -> F: ...

    @overload
    def register_cleanup(
        self,
        func: None = None,
        /,
        *,
        priority: int = DEFAULT_PRIORITY,
        timeout_s: float | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]: ...

    def register_cleanup(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        priority: int = DEFAULT_PRIORITY,
        timeout_s: float | None = None,
        name: str | None = None,
    ) -> Any:
        """Register a cleanup, in the seed's three forms::

            @shutdown.register_cleanup                 # priority DEFAULT_PRIORITY (100)
            @shutdown.register_cleanup(priority=1)     # lower runs first
            shutdown.register_cleanup(streamlit_cleanup)   # a plain call

        Cleanups take no arguments. Bad arguments raise here, not at shutdown.
        """
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority={priority!r} is invalid: expected an int (lower runs first)")
        timeout = self.cleanup_timeout_s if timeout_s is None else seconds("timeout_s", timeout_s)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name={name!r} is invalid: expected a non-empty string")
        if func is None:

            def decorate(cleanup: F) -> F:
                return self._add(cleanup, priority, timeout, name)

            return decorate
        return self._add(func, priority, timeout, name)

    def _add(self, func: F, priority: int, timeout_s: float, name: str | None) -> F:
        if not callable(func):
            raise TypeError(f"cleanup {func!r} is not callable")
        label = name or str(getattr(func, "__qualname__", None) or getattr(func, "__name__", func))
        with self._lock:
            if self._state != "idle" or self._signalled:
                raise RuntimeError(f"cannot register cleanup {label!r}: shutdown has begun")
            if any(cleanup.func is func for cleanup in self._cleanups):
                raise ValueError(f"cleanup {label!r} is already registered")
            self._seq += 1
            self._cleanups.append(_Cleanup(func, label, priority, timeout_s, self._seq))
        return func

    def cleanups(self) -> list[tuple[str, int]]:
        """(name, priority) in the order they will run."""
        with self._lock:
            ordered = sorted(self._cleanups, key=lambda c: (c.priority, c.seq))
        return [(cleanup.name, cleanup.priority) for cleanup in ordered]

    # -- state ------------------------------------------------------------------------------

    @property
    def shutting_down(self) -> bool:
        return self._signalled or self._state != "idle"

    @property
    def result(self) -> ShutdownResult | None:
        """The result once the shutdown finished, else None."""
        return self._result

    def wait(self, timeout_s: float | None = None) -> ShutdownResult | None:
        """Block until a shutdown (started anywhere) finishes; its result, or None on timeout."""
        self._done.wait(timeout_s)
        return self._result

    # -- signals ----------------------------------------------------------------------------

    def install_signal_handlers(
        self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """``signal.signal(s, self.signal_handler)`` for SIGTERM and SIGINT (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        for signum in signals:
            signal.signal(signum, self.signal_handler)

    def signal_handler(self, signum: int, frame: FrameType | None = None) -> None:
        """Start the shutdown; the process exits when it is done (0 clean, 1 not).

        Safe to install for SIGTERM and SIGINT with ``signal.signal``. It takes no
        lock and writes no log line itself: it runs on top of whatever the main
        thread was doing, which may hold exactly those.
        """
        del frame
        if self._wake_sent and self._done.is_set():
            # Our own wake-up (or any signal after the end): leave through the main thread.
            assert self._result is not None
            raise SystemExit(self._result.exit_code)
        if self._signalled:
            if signum == signal.SIGINT:
                os.write(2, b"otel-tdd: second interrupt during shutdown: exiting now (130)\n")
                os._exit(FORCED_EXIT_CODE)
            return  # a repeated SIGTERM: the shutdown under way will exit
        # First signal. If initiate_shutdown() is already running (or done), the thread
        # below waits for its result and then exits the process, as the signal asks.
        self._signalled = True
        self._exit_on_finish = True
        mark_shutting_down()
        threading.Thread(
            target=self._shutdown_and_exit,
            args=(f"signal {_signal_name(signum)}", signum),
            name="otel-tdd-shutdown",
            daemon=False,  # the interpreter must not exit half-way through the cleanups
        ).start()

    def _shutdown_and_exit(self, reason: str, signum: int) -> None:
        result = self._run_or_wait(reason)
        code = result.exit_code
        main = threading.main_thread()
        if not main.is_alive():
            return  # the main thread already returned; the process is exiting anyway
        handler_installed = signal.getsignal(signum) == self.signal_handler
        if main.ident is not None and handler_installed and self._exit_on_finish:
            self._wake_sent = True
            signal.pthread_kill(main.ident, signum)
            threading.Thread(
                target=self._exit_if_still_alive,
                args=(code,),
                name="otel-tdd-shutdown-reaper",
                daemon=True,
            ).start()
            return
        _hard_exit(code)

    def _exit_if_still_alive(self, code: int) -> None:
        time.sleep(self.exit_grace_s)
        sys.stderr.write(
            f"otel-tdd: main thread did not exit {self.exit_grace_s:g}s after shutdown; "
            f"exiting with {code}\n"
        )
        _hard_exit(code)

    # -- the sequence -----------------------------------------------------------------------

    def initiate_shutdown(self, reason: str = "initiate_shutdown()") -> ShutdownResult:
        """Run the shutdown now in this thread and return its result; does not exit.

        Idempotent and thread-safe: a second call, from any thread, waits for the
        first and returns the same result. After it returns the OTel providers are
        shut down (with the default ``flush_telemetry=True``): exit soon after, the
        exit code being ``result.exit_code``.
        """
        if _IN_CLEANUP.get() is self:
            raise RuntimeError("initiate_shutdown() was called from a cleanup of this shutdown")
        return self._run_or_wait(reason)

    def _run_or_wait(self, reason: str) -> ShutdownResult:
        with self._lock:
            runner = self._state == "idle"
            if runner:
                self._state = "running"
                cleanups = sorted(self._cleanups, key=lambda c: (c.priority, c.seq))
        if not runner:
            self._done.wait()
            assert self._result is not None
            return self._result
        try:
            result = self._run(reason, cleanups)
        except BaseException:
            result = ShutdownResult(reason, (), False, 0.0)
            raise
        finally:
            with self._lock:
                self._result = result
                self._state = "done"
            self._done.set()
        return result

    def _run(self, reason: str, cleanups: list[_Cleanup]) -> ShutdownResult:
        started = time.monotonic()
        mark_shutting_down()  # first: readiness turns 503 before anything stops
        tracer = _runtime.current().tracer
        outcomes: list[CleanupOutcome] = []
        with tracer.start_as_current_span(
            "graceful_shutdown", attributes={"shutdown.reason": reason}
        ) as span:
            _log.info(
                "Graceful shutdown started",
                extra={"reason": reason, "cleanups": [c.name for c in cleanups]},
            )
            if self.drain_s:
                time.sleep(self.drain_s)
            for cleanup in cleanups:
                outcomes.append(self._run_cleanup(cleanup, tracer))
            failed = [o.name for o in outcomes if o.status != "ok"]
            span.set_attribute("shutdown.cleanups", len(outcomes))
            span.set_attribute("shutdown.cleanups_failed", len(failed))
            if failed:
                span.set_status(trace.StatusCode.ERROR, "cleanups failed: " + ", ".join(failed))
            _log.log(
                logging.WARNING if failed else logging.INFO,
                "Graceful shutdown: cleanups finished, flushing telemetry",
                extra={
                    "reason": reason,
                    "failed": failed,
                    "outcomes": [
                        {"name": o.name, "status": o.status, "duration_s": round(o.duration_s, 3)}
                        for o in outcomes
                    ],
                },
            )
        flushed = True
        if self.flush_telemetry:
            # Last: every record above, and every cleanup's own, goes out with this flush.
            # False when anything was lost; shutdown_telemetry() has said what, in one line.
            flushed = shutdown_telemetry(int(self.flush_timeout_s * 1000))
        return ShutdownResult(reason, tuple(outcomes), flushed, time.monotonic() - started)

    def _run_cleanup(self, cleanup: _Cleanup, tracer: trace.Tracer) -> CleanupOutcome:
        where = {"cleanup": cleanup.name, "priority": cleanup.priority}

        def invoke() -> None:
            _IN_CLEANUP.set(self)  # in the call's own context copy
            with tracer.start_as_current_span(
                f"cleanup {cleanup.name}",
                attributes={
                    "shutdown.cleanup": cleanup.name,
                    "shutdown.priority": cleanup.priority,
                },
                record_exception=True,
                set_status_on_exception=True,
            ):
                try:
                    cleanup.func()
                except BaseException:  # SystemExit in a cleanup must not end the run
                    # Logged here, inside the cleanup's span: the record joins its trace.
                    _log.exception("Cleanup %s failed", cleanup.name, extra=where)
                    raise

        # Started from this thread, so the cleanup's span is a child of graceful_shutdown.
        started = time.monotonic()
        call = call_with_timeout(invoke, cleanup.timeout_s, name=f"otel-tdd-cleanup-{cleanup.name}")
        if not call.done.is_set():
            _log.error(
                "Cleanup %s timed out after %gs",
                cleanup.name,
                cleanup.timeout_s,
                extra={**where, "timeout_s": cleanup.timeout_s},
            )
            return CleanupOutcome(
                cleanup.name,
                cleanup.priority,
                "timeout",
                time.monotonic() - started,
                f"timed out after {cleanup.timeout_s:g}s",
            )
        if call.error is not None:
            error = f"{type(call.error).__name__}: {call.error}"
            return CleanupOutcome(cleanup.name, cleanup.priority, "error", call.duration_s, error)
        return CleanupOutcome(cleanup.name, cleanup.priority, "ok", call.duration_s)


def _hard_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not keep us alive
            stream.flush()
    os._exit(code)
