"""Small helpers shared across the package (a leaf: imports nothing of otel_tdd)."""

from __future__ import annotations

import threading

__all__ = ["ReportOnce"]


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
