"""``JsonLogHandler``: stdlib ``logging`` records into the same pipeline as StructuredLogger.

``configure()`` installs it on the root logger; each record becomes one JSON line
(and an OTel log record when OTLP logs are configured).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from otel_tdd import _runtime
from otel_tdd.logs.pipeline import LogPipeline
from otel_tdd.logs.record import EventDict, format_timestamp, level_name
from otel_tdd.logs.safe import repr_of

__all__ = ["JsonLogHandler", "iter_json_lines"]

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is data.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# A record made without extra= has exactly these many attributes; more means extra= keys
# (or message/asctime set by another handler's formatter, which _RESERVED filters out).
_PLAIN_RECORD_SIZE = len(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


class JsonLogHandler(logging.Handler):
    """Turns stdlib ``logging`` records into the same JSON and OTel records as StructuredLogger."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        # Set by otel_tdd.logs.guard once the app configured logging: True for a record
        # the app's own console handlers have, which then goes over OTLP only.
        self.app_owns_record: Callable[[logging.LogRecord], bool] | None = None
        self._json_less: tuple[object, LogPipeline | None] = (None, None)

    def handle(self, record: logging.LogRecord) -> bool:
        """As ``Handler.handle`` without the handler lock: every step of the pipeline is
        thread-safe and the line is written with one call, so the lock would only serialise."""
        if self.filters:
            result = self.filter(record)
            if not result:
                return False
            if isinstance(result, logging.LogRecord):
                record = result
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Never raises: a record that cannot be built is counted and written as a bounded
        line saying so (stdlib's ``Handler.emit`` contract, without its stderr traceback)."""
        runtime = _runtime.RUNTIME or _runtime.current()
        pipeline = runtime.stdlib_pipeline
        try:
            # Inside the try: a record the app's check cannot read fails like any step.
            if self.app_owns_record is not None and self.app_owns_record(record):
                if runtime.logger_provider is None:
                    return  # no OTLP logs: nothing left for us to do with it
                pipeline = self._without_json(pipeline)
            try:
                message = record.getMessage()
            except Exception:  # a bad %-format or a raising __str__/__repr__ in an argument
                message = f"{repr_of(record.msg)} % {_args_text(record.args)}"
            attributes = record.__dict__
            data: dict[str, Any] = {}
            if len(attributes) > _PLAIN_RECORD_SIZE:  # only records with extra= have more keys
                data = {key: attributes[key] for key in attributes.keys() - _RESERVED}
            event: EventDict = {
                "timestamp": format_timestamp(record.created),
                "level": level_name(record.levelno),
                "logger": record.name,
                "message": message,
                "data": data,
                "_time_ns": int(record.created * 1e9),
            }
            if record.exc_info and record.exc_info[0] is not None:
                event["exception"] = "".join(traceback.format_exception(*record.exc_info))
            elif record.exc_text:
                event["exception"] = record.exc_text
        except Exception as error:  # a record someone built by hand, a hostile exception...
            name = getattr(record, "name", None)
            level = getattr(record, "levelno", logging.ERROR)
            pipeline.failed(name if type(name) is str else "", level, None, error)
            return
        pipeline(record.name, record.levelno, event)  # reports its own failures

    def _without_json(self, pipeline: LogPipeline) -> LogPipeline:
        built, json_less = self._json_less
        if built is not pipeline or json_less is None:
            json_less = pipeline.without_json()
            self._json_less = (pipeline, json_less)
        return json_less

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib's name
        # The pipeline reports its own failures; stdlib's default prints a traceback per record.
        return


def _args_text(args: object) -> str:
    """The %-arguments of a record that failed to format, each shown on its own."""
    if isinstance(args, tuple):
        return "(" + ", ".join(repr_of(arg) for arg in args) + ")"
    return repr_of(args)


def iter_json_lines(text: str) -> Iterator[str]:
    """The non-empty lines of a captured stream (test and tooling helper).

    Split on ``\\n`` only: a JSON line may hold U+2028, U+2029 or U+0085, which
    ``str.splitlines`` would also split on.
    """
    return (line for line in text.split("\n") if line.strip())
