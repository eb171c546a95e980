"""The log record pipeline: small processors composed once at configure time.

The order is fixed by :func:`build_pipeline`: correlation → sampling → rate limit
→ context → redaction → OTel emit → JSON write (docs/logging.md, "The pipeline").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import IO, TYPE_CHECKING, Any, Protocol

from otel_tdd.logs.otel_emit import EmitToOTel
from otel_tdd.logs.record import (
    CORE_FIELDS,
    LEVEL_NAMES,
    DropEvent,
    EventDict,
    Processor,
    format_timestamp,
)
from otel_tdd.logs.render import WriteJson, bounded_line
from otel_tdd.logs.steps import AddContext, ApplyRateLimit, Redact, TraceIdSampler, add_correlation
from otel_tdd.redaction import Redactor

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

__all__ = ["LogPipeline", "OnError", "build_pipeline"]


class OnError(Protocol):
    def __call__(self, error: BaseException) -> None: ...


class LogPipeline:
    """Runs the processors in order. A failing step never reaches the caller: it is
    reported and counted, and the record is still written as a bounded line that says
    what failed (only a failing write itself loses the line)."""

    def __init__(self, processors: Sequence[Processor], on_error: OnError) -> None:
        self.processors = tuple(processors)
        self._on_error = on_error
        writers = [step for step in self.processors if isinstance(step, WriteJson)]
        self._writer = writers[-1] if writers else None
        redacts = [step for step in self.processors if isinstance(step, Redact)]
        self._redactor = redacts[0].redactor if redacts else None

    def without_export(self) -> LogPipeline:
        """The same steps minus the hand-off to OTel: what records do after shutdown()."""
        steps = [step for step in self.processors if not isinstance(step, EmitToOTel)]
        return LogPipeline(steps, self._on_error)

    def without_json(self) -> LogPipeline:
        """The same steps minus the JSON line: a record the app's own handler printed."""
        steps = [step for step in self.processors if not isinstance(step, WriteJson)]
        return LogPipeline(steps, self._on_error)

    def __call__(self, name: str, level: int, event: EventDict) -> None:
        processor: Processor | None = None
        try:
            for processor in self.processors:
                event = processor(name, level, event)
        except DropEvent:
            pass
        except Exception as error:  # telemetry must never break the app
            self.failed(name, level, event, error, processor)

    def failed(
        self,
        name: str,
        level: int,
        event: Mapping[str, Any] | None,
        error: BaseException,
        step: object = None,
    ) -> None:
        """Count and report a record that failed; write what can safely be written of it.

        An export step that fails leaves the record intact: the steps after it run.
        Otherwise a bounded line with the core fields (message redacted, data replaced
        by the failure's kind) is written, unless the write itself was what failed.
        """
        with suppress(Exception):  # stderr itself may be what is broken
            self._on_error(error)
        writer = self._writer
        if writer is None or step is writer:
            return
        try:
            if isinstance(step, EmitToOTel) and event is not None:
                after = self.processors[self.processors.index(step) + 1 :]
                for processor in after:
                    event = processor(name, level, dict(event))
                return
            writer.write_line(self._failure_line(name, level, event, error, step))
        except Exception as second:  # nothing more can be done: counted once more
            with suppress(Exception):
                self._on_error(second)

    def _context(self) -> dict[str, Any]:
        environments = [s.environment for s in self.processors if isinstance(s, AddContext)]
        return {
            "thread_id": threading.current_thread().name,
            "process_id": os.getpid(),
            "environment": environments[0] if environments else "",
        }

    def _failure_line(
        self,
        name: str,
        level: int,
        event: Mapping[str, Any] | None,
        error: BaseException,
        step: object,
    ) -> bytes:
        event = event or {}
        core = {key: event.get(key) for key in CORE_FIELDS}
        core["timestamp"] = core["timestamp"] or format_timestamp(time.time())
        core["level"] = core["level"] or LEVEL_NAMES.get(level, "ERROR")
        core["logger"] = core["logger"] or name
        message = event.get("message")
        redactor = self._redactor
        try:
            core["message"] = redactor.text(message) if redactor and type(message) is str else ""
        except Exception:
            core["message"] = "[message withheld: it could not be redacted]"
        core["context"] = event.get("context") or self._context()
        step_name = type(step).__name__ if step is not None else "the logging call"
        why = f"the record failed in {step_name} ({type(error).__name__}); its data was dropped"
        return bounded_line(core, why)


def build_pipeline(
    *,
    environment: str,
    redactor: Redactor,
    log_stream: str,
    logger_provider: LoggerProvider | None,
    on_suppressed: Callable[[str], None],
    on_error: OnError,
    sampler: TraceIdSampler | None = None,
    stream: IO[Any] | None = None,
) -> LogPipeline:
    """Compose the steps for one configuration. ``logger_provider`` None: no OTLP emission."""
    steps: list[Processor] = [add_correlation]
    if sampler is not None and sampler.rate < 1.0:
        steps.append(sampler)
    steps += [ApplyRateLimit(on_suppressed), AddContext(environment), Redact(redactor)]
    if logger_provider is not None:
        steps.append(EmitToOTel(logger_provider))
    if log_stream != "none" or stream is not None:
        steps.append(WriteJson(log_stream, stream))
    return LogPipeline(steps, on_error)
