"""Small helpers shared by several modules: argument checks, memory, bounded calls.

A leaf: imports nothing from otel_tdd, so any layer may use it.
"""

from __future__ import annotations

import contextvars
import importlib
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["ReportOnce", "ThreadCall", "call_with_timeout", "rss_bytes", "seconds", "start_call"]

T = TypeVar("T")


def seconds(what: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a float number of seconds, or an error naming ``what`` and what is accepted."""
    expected = "a number of seconds >= 0" if allow_zero else "a number of seconds > 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}={value!r} is invalid: expected {expected}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{what}={value!r} is invalid: expected {expected}")
    return float(value)


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
_psutil: Any = None  # imported on first need; False once known to be absent


def rss_bytes() -> int | None:
    """Resident memory of this process: /proc on Linux, psutil elsewhere if installed, else None."""
    global _psutil
    try:
        # Opened in binary and read whole: this runs on every tracked call, so it stays cheap.
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        pass
    if _psutil is None:
        try:
            _psutil = importlib.import_module("psutil")  # optional: only where /proc is absent
        except ImportError:
            _psutil = False
    if _psutil is False:
        return None
    try:
        return int(_psutil.Process().memory_info().rss)
    except Exception:
        return None


class ThreadCall(Generic[T]):
    """A callable running in a daemon thread of its own; its outcome once ``done`` is set.

    A daemon thread rather than a pool: a call stuck in C code cannot be cancelled, a
    stuck pool worker would starve later calls, and ``concurrent.futures`` joins its
    workers at exit, so one hung call would also hang the process on exit.
    """

    def __init__(
        self,
        func: Callable[[], T],
        name: str,
        on_done: Callable[[ThreadCall[T]], None] | None = None,
    ) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.duration_s = 0.0
        self._func = func
        self._on_done = on_done
        # Run in a copy of the starter's context: its span is the parent, its baggage rides on.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=name)
        self._thread.daemon = True

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self.value = self._func()
        except BaseException as error:  # SystemExit in the callable must not go unreported
            self.error = error
        self.duration_s = time.perf_counter() - started
        self.done.set()
        if self._on_done is not None:
            # After done is set: whoever saw done unset at its timeout has already recorded so.
            self._on_done(self)

    def start(self) -> ThreadCall[T]:
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> bool:
        """True when the call finished within ``timeout_s`` (which may be <= 0: no wait)."""
        return self.done.wait(max(0.0, timeout_s))


def start_call(
    func: Callable[[], T],
    *,
    name: str,
    on_done: Callable[[ThreadCall[T]], None] | None = None,
) -> ThreadCall[T]:
    """Start ``func()`` in its own daemon thread ``name`` and return at once.

    ``on_done`` runs in that thread after the outcome is set (never if the call hangs).
    """
    return ThreadCall(func, name, on_done).start()


def call_with_timeout(func: Callable[[], T], timeout_s: float, *, name: str) -> ThreadCall[T]:
    """Run ``func()`` in its own daemon thread, waiting at most ``timeout_s``.

    Check ``done`` on the result: unset, the call is still running (and is left to run).
    """
    call = start_call(func, name=name)
    call.wait(timeout_s)
    return call


class ReportOnce:
    """Remembers which kinds of failure were reported, so each is reported once.

    ``first(key)`` is True the first time a key is seen and False afterwards;
    thread-safe, since failures are reported from exporter and server threads.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        if key in self._seen:  # the common case, without the lock
            return False
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def __contains__(self, key: object) -> bool:
        return key in self._seen
