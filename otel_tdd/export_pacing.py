"""Export threads that give the GIL back while they encode a batch.

The SDK's OTLP exporters encode a whole batch in pure Python, holding the GIL for
up to a switch interval (5 ms) while request threads wait. :class:`PacedExporter`
hands the exporter a batch whose iteration pauses once per :data:`SLICE_SECONDS`;
it stops pacing when batches go out back to back (docs/benchmarks.md, "Second pass").
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, cast, overload

__all__ = [
    "BUSY_GAP_SECONDS",
    "PAUSE_SECONDS",
    "SLICE_SECONDS",
    "PacedBatch",
    "PacedExporter",
    "paced",
]

# Encoding time between two pauses; 0 turns pacing off. Read at each export, so a
# benchmark (or a gunicorn post_fork hook) can change it in a running process.
SLICE_SECONDS = 0.0005
# Long enough for a thread blocked on the GIL to be woken and take it, on a busy
# machine too: after a sleep(0) the exporting thread retakes the GIL before the
# waiter runs (benchmarks/gil_wait.py measures the hand-over).
PAUSE_SECONDS = 0.00025

# A batch that starts sooner than this after the previous one ended: the processor
# is exporting back to back (a saturated queue), and pauses would only lose items.
BUSY_GAP_SECONDS = 0.01

T = TypeVar("T")
E = TypeVar("E")


class PacedBatch(Sequence[T]):
    """``items`` as a sequence whose iteration pauses every :data:`SLICE_SECONDS`."""

    def __init__(self, items: Sequence[T], *, pace: bool = True) -> None:
        self._items = items
        self._pace = pace

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        return self._items[index]

    def __iter__(self) -> Iterator[T]:
        slice_seconds, pause = SLICE_SECONDS, PAUSE_SECONDS
        if slice_seconds <= 0 or not self._pace:
            yield from self._items
            return
        clock = time.perf_counter
        deadline = clock() + slice_seconds
        for item in self._items:
            yield item  # the consumer encodes this item before asking for the next
            if clock() >= deadline:
                time.sleep(pause)
                deadline = clock() + slice_seconds


class PacedExporter:
    """Delegates everything to ``inner``; ``export`` gets the batch as a :class:`PacedBatch`.

    A transparent proxy rather than a subclass: the same wrapper serves the span
    and the log exporters, and shutdown's signature stays the inner one's (the
    batch processor and export_accounting look at it by name).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._last_end = float("-inf")

    def export(self, batch: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        # One export thread per processor calls this: no lock needed for _last_end.
        behind = time.monotonic() - self._last_end < BUSY_GAP_SECONDS
        try:
            return self.inner.export(PacedBatch(batch, pace=not behind), *args, **kwargs)
        finally:
            self._last_end = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def paced(exporter: E) -> E:
    """``exporter`` behind a :class:`PacedExporter`, typed as the exporter it stands for."""
    return cast(E, PacedExporter(exporter))
