"""The core emit path: one JSON (and OTel) log record from a message, data and blocks.

:class:`Emitter` is what performance tracking, alerts and security events write
through; ``StructuredLogger`` is an Emitter with the seed's API on top. Levels
are the stdlib logger's of the same name, so one place controls both APIs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

from otel_tdd import _runtime
from otel_tdd.logs.record import LEVEL_NAMES, EventDict, format_timestamp, level_name
from otel_tdd.logs.safe import text_of
from otel_tdd.logs.steps import SPAN_KEY, TraceIdSampler, get_current_context

__all__ = ["LEVEL_NAMES", "Emitter", "level_name"]


class Emitter:
    """Writes records under one logger name, sampling those below WARNING by trace.

    ``sample_rate`` keeps that share of records below WARNING, whole traces at a
    time; None takes ``OTEL_TDD_LOG_SAMPLE_RATE``.
    """

    def __init__(self, name: str, sample_rate: float | None = None) -> None:
        if sample_rate is not None and not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate={sample_rate!r} is invalid: expected 0.0 to 1.0")
        self.name = name
        self._std = logging.getLogger(name)
        self._sample_rate = sample_rate
        self._sampler: TraceIdSampler | None = None
        self._sampler_generation = -1
        # (context, keep): one decision per attached context, as one trace is kept or not whole.
        self._last_decision: tuple[object, bool] = (None, True)

    def is_enabled_for(self, level: int) -> bool:
        if _runtime.RUNTIME is None:
            _runtime.current()
        return self._std.isEnabledFor(level)

    def log(
        self,
        level: int,
        message: str,
        data: Mapping[str, Any] | None = None,
        **blocks: Any,
    ) -> None:
        """Write one record. ``blocks`` become top-level fields (performance, security, ...)."""
        runtime = _runtime.RUNTIME or _runtime.current()
        if level < logging.WARNING and "security" not in blocks and not self._sampled_in(runtime):
            return
        self._write(runtime, level, message, data, blocks)

    def _write(
        self,
        runtime: _runtime.Runtime,
        level: int,
        message: str,
        data: Mapping[str, Any] | None,
        blocks: Mapping[str, Any] | None,
    ) -> None:
        event: EventDict = {
            "timestamp": format_timestamp(time.time()),
            "level": level_name(level),
            "logger": self.name,
            "message": message if type(message) is str else text_of(message),
            "data": data if data is not None else {},
        }
        if blocks:
            event.update(blocks)
        runtime.logger_pipeline(self.name, level, event)

    def _sampled_in(self, runtime: _runtime.Runtime) -> bool:
        """Whether records below WARNING in the current context are kept (cached per context)."""
        if self._sampler_generation != runtime.generation:
            self._refresh_sampler(runtime.settings.log_sample_rate, runtime.generation)
        sampler = self._sampler
        if sampler is None:
            return True
        current = get_current_context()
        cached_context, keep = self._last_decision
        if cached_context is not current:
            span: Span | None = current.get(SPAN_KEY)  # type: ignore[assignment]
            trace_id = span.get_span_context().trace_id if span is not None else 0
            keep = sampler.keep(logging.DEBUG, trace_id)
            self._last_decision = (current, keep)
        return keep

    def _refresh_sampler(self, configured_rate: float, generation: int) -> None:
        rate = self._sample_rate if self._sample_rate is not None else configured_rate
        self._sampler = TraceIdSampler(rate) if rate < 1.0 else None
        self._sampler_generation = generation
