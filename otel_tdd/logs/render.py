"""The JSON line: one record rendered with orjson, bounded in size, written and flushed."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any

import orjson

from otel_tdd.logs.record import BLOCKS, CORE_FIELDS, MAX_RECORD_BYTES, EventDict
from otel_tdd.logs.safe import Limits, fallback, sanitize

__all__ = ["WriteJson", "bounded_line", "render_json"]

_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_TIGHT = Limits(128, 16, 0)  # a block keeps 16 short scalars
_SHORT = Limits(1024, 16, 0)


def _dumps(event: Any) -> bytes:
    return orjson.dumps(event, default=fallback, option=_JSON_OPTIONS)


def render_json(event: EventDict) -> bytes:
    """One JSON line of at most ``MAX_RECORD_BYTES``. Never raises.

    Unencodable or huge data is sanitized (strings cut at ``MAX_STRING_CHARS``,
    containers at 1,000 items); a line still over the bound keeps its fields with
    tight limits and says in ``data._truncated`` that its data was dropped.
    """
    size = 0
    try:
        line = _dumps(event)
        if len(line) <= MAX_RECORD_BYTES:
            return line
        size = len(line)
    except Exception:  # orjson.JSONEncodeError, or a default= that raised
        pass
    try:
        line = orjson.dumps(sanitize(event), option=_JSON_OPTIONS)
        if len(line) <= MAX_RECORD_BYTES:
            return line
        size = size or len(line)
    except Exception:
        pass
    return bounded_line(event, f"the record was {size} bytes, over {MAX_RECORD_BYTES}")


def bounded_line(event: Mapping[str, Any], why: str) -> bytes:
    """The last resort: the core fields with tight limits, ``data`` replaced by a note.

    Each string is at most 1,024 characters (6 bytes each once escaped) and each block
    16 items of 128 characters, so the line stays far below ``MAX_RECORD_BYTES``.
    """
    record: dict[str, Any] = {}
    for key in CORE_FIELDS:
        record[key] = sanitize(event.get(key), _SHORT)
    record["data"] = {"_truncated": why}
    for key in BLOCKS:
        if key != "data" and event.get(key) is not None:
            record[key] = sanitize(event.get(key), _SHORT if key == "exception" else _TIGHT)
    return orjson.dumps(record, option=_JSON_OPTIONS)


Writer = tuple[object, Callable[[bytes], object], Callable[[], object]]


class WriteJson:
    """Renders the record and writes it as one line, flushed (a crash loses no written line)."""

    def __init__(self, stream_name: str = "stdout", stream: IO[Any] | None = None) -> None:
        self._stream_name = stream_name
        self._stream = stream
        # (stream, write, flush) for the last stream written to: how to write to a stream
        # is worked out once, not per record (a failed getattr costs an exception).
        # The placeholder matches no stream, not even None (sys.stdout under pythonw), so a
        # missing stream still fails loudly in _writer_for instead of writing nowhere.
        self._writer: Writer = (object(), len, int)

    def _target(self) -> IO[Any]:
        # Looked up per record, so a later redirection of sys.stdout (pytest, a daemon) is followed.
        return self._stream or (sys.stdout if self._stream_name == "stdout" else sys.stderr)

    @staticmethod
    def _writer_for(stream: IO[Any]) -> Writer:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            return stream, buffer.write, buffer.flush
        if isinstance(stream, io.TextIOBase) or not hasattr(stream, "readinto"):
            write_text = stream.write
            return stream, lambda line: write_text(line.decode("utf-8")), stream.flush
        return stream, stream.write, stream.flush  # a binary stream (BytesIO, a socket file)

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        event.pop("_time_ns", None)
        event.pop("_context", None)
        self.write_line(render_json(event))
        return event

    def write_line(self, line: bytes) -> None:
        stream = self._target()
        writer = self._writer
        if writer[0] is not stream:
            writer = self._writer = self._writer_for(stream)
        writer[1](line)
        writer[2]()
