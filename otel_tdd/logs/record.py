"""The shape of one log record: its fields, blocks, levels and size bounds.

Each fact is written once here; the JSON schema (otel_tdd/schemas/log_record.schema.json)
is checked against these lists by tests/unit/test_record_shape.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "ATTRIBUTE_BLOCKS",
    "BAGGAGE_IDS",
    "BLOCKS",
    "CORE_FIELDS",
    "EMPTY_IDS",
    "ID_FIELDS",
    "LEVEL_NAMES",
    "MAX_MESSAGE_CHARS",
    "MAX_RECORD_BYTES",
    "REDACTED_BLOCKS",
    "REQUIRED_BLOCKS",
    "TRACE_IDS",
    "DropEvent",
    "EventDict",
    "Processor",
    "format_timestamp",
    "level_name",
]

EventDict = dict[str, Any]
Processor = Callable[[str, int, EventDict], EventDict]

# The trace context's ids: correlation_id is the trace id (no second ID system).
TRACE_IDS = ("correlation_id", "trace_id", "span_id")
# The ids that ride in W3C baggage (otel_tdd.correlation sets them).
BAGGAGE_IDS = ("user_id", "session_id", "request_id")
ID_FIELDS = TRACE_IDS + BAGGAGE_IDS
# The fields every line has, whatever happened to the rest, in the order written.
CORE_FIELDS = ("timestamp", "level", "logger", "message", *ID_FIELDS)

# The record's blocks, in the order a line writes them.
BLOCKS = ("data", "performance", "security", "alert", "rate_limit", "exception", "context")
# Every line has these two (an empty data block, the process context).
REQUIRED_BLOCKS = ("data", "context")
# Added by the pipeline after redaction (nothing of the caller's is in them).
_PIPELINE_BLOCKS = ("rate_limit", "context")
# Text, not a map: the traceback.
_TEXT_BLOCKS = ("exception",)
# The maps a caller gives: redacted and made plain.
REDACTED_BLOCKS = tuple(b for b in BLOCKS if b not in _PIPELINE_BLOCKS + _TEXT_BLOCKS)
# The maps an OTel record carries as attributes; the context block's process and
# environment are on the Resource, its thread name only in the JSON line.
ATTRIBUTE_BLOCKS = tuple(b for b in BLOCKS if b not in _TEXT_BLOCKS and b != "context")

EMPTY_IDS: dict[str, Any] = dict.fromkeys(ID_FIELDS)

LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}

MAX_RECORD_BYTES = 256 * 1024
# A message or traceback is cut here (strings in data at redaction.MAX_STRING_CHARS, 16 Ki).
MAX_MESSAGE_CHARS = 64 * 1024


class DropEvent(Exception):  # noqa: N818 - structlog's name for the same idea
    """Raised by a processor to drop the record silently."""


def level_name(level: int) -> str:
    """The record's ``level`` text: the five standard names, else stdlib's name for it."""
    return LEVEL_NAMES.get(level) or logging.getLevelName(level)


_ts_cache: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def format_timestamp(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``.

    strftime runs once a second; the milliseconds come from a table. This is
    ~4x cheaper than datetime.isoformat on every record.
    """
    global _ts_cache
    whole = int(seconds)
    cached_second, prefix = _ts_cache
    if whole != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _ts_cache = (whole, prefix)
    return prefix + _MILLIS[int((seconds - whole) * 1000)]
