"""The log record pipeline: small processors composed once at configure time.

Modelled on structlog: each step is a plain callable ``(logger_name, level,
event) -> event`` that adds, changes or drops (by raising :class:`DropEvent`) one
thing, knows nothing of the other steps, and can be tested alone. We do not use
structlog itself on this path: its bound-logger layers cost more than the whole
budget we set ourselves (docs/benchmarks.md), and the steps below are the few
that we need.

The order is fixed by :func:`build_pipeline`: correlation → sampling → rate limit
→ context → redaction → OTel emit → JSON write.
"""

from __future__ import annotations

import io
import logging
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson
from opentelemetry import baggage as baggage_module
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import propagation as trace_propagation

from otel_tdd.redaction import MAX_STRING_CHARS, Redactor, no_surrogates

if TYPE_CHECKING:
    from opentelemetry._logs import Logger as OTelLogger
    from opentelemetry._logs import LoggerProvider, SeverityNumber
    from opentelemetry.sdk._logs import Logger as SDKLogger
    from opentelemetry.sdk._logs import LogRecordLimits
    from opentelemetry.trace import SpanContext

    _FastTarget = tuple[SDKLogger, LogRecordLimits]

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_STRING_CHARS",
    "DropEvent",
    "EventDict",
    "LogPipeline",
    "Processor",
    "RateLimit",
    "build_pipeline",
    "format_timestamp",
    "json_safe",
    "render_json",
    "repr_of",
    "text_of",
]

EventDict = dict[str, Any]
Processor = Callable[[str, int, EventDict], EventDict]

MAX_RECORD_BYTES = 256 * 1024
# A message or traceback is cut here (strings in data at MAX_STRING_CHARS, 16 Ki).
MAX_MESSAGE_CHARS = 64 * 1024
# stdlib level -> OTel severity text; the numbers come with the logs API, imported by
# EmitToOTel only when OTLP logs are on.
_SEVERITY_TEXT = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}


class DropEvent(Exception):  # noqa: N818 - structlog's name for the same idea
    """Raised by a processor to drop the record silently."""


# --- timestamp -------------------------------------------------------------------------------

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


# --- steps -----------------------------------------------------------------------------------

_hex_cache: dict[int, str] = {}


def _trace_hex(trace_id: int) -> str:
    # One request writes many records with one trace id: format it once.
    text = _hex_cache.get(trace_id)
    if text is None:
        if len(_hex_cache) > 1024:
            _hex_cache.clear()
        text = _hex_cache[trace_id] = format(trace_id, "032x")
    return text


# The keys under which the API stores the span and the baggage in a Context. Reading
# them from one get_current() saves four API calls per record (docs/benchmarks.md);
# test_correlation pins the behaviour, so a rename upstream fails loudly.
SPAN_KEY = _SPAN_KEY = trace_propagation._SPAN_KEY
# The API's get_current() only forwards to the runtime context's method; binding that
# method once saves a frame on every record (the filtered path has ~100 ns to spend).
_runtime_context = getattr(otel_context, "_RUNTIME_CONTEXT", None)
get_current_context: Callable[[], otel_context.Context] = (
    _runtime_context.get_current if _runtime_context is not None else otel_context.get_current
)
_BAGGAGE_KEY = baggage_module._BAGGAGE_KEY
_INVALID_SPAN = trace.INVALID_SPAN


_EMPTY_IDS: dict[str, Any] = dict.fromkeys(
    ("correlation_id", "trace_id", "span_id", "user_id", "session_id", "request_id")
)
# (context, ids): every record written under one attached Context shares its ids.
# Holding the Context keeps it alive, so an identity match can never be a reused address.
_last_ids: tuple[object, dict[str, Any]] = (None, _EMPTY_IDS)


def _ids_of(current: Mapping[str, Any]) -> dict[str, Any]:
    span_context = (current.get(_SPAN_KEY) or _INVALID_SPAN).get_span_context()
    bag = current.get(_BAGGAGE_KEY) or {}
    trace_hex = _trace_hex(span_context.trace_id) if span_context.trace_id else None
    return {
        "correlation_id": trace_hex,
        "trace_id": trace_hex,
        "span_id": format(span_context.span_id, "016x") if trace_hex else None,
        "user_id": bag.get("user_id"),
        "session_id": bag.get("session_id"),
        "request_id": bag.get("request_id"),
    }


def add_correlation(_name: str, _level: int, event: EventDict) -> EventDict:
    """correlation_id/trace_id/span_id from the active span; user/session/request from baggage."""
    global _last_ids
    current = get_current_context()
    cached_context, ids = _last_ids
    if cached_context is not current:
        ids = _ids_of(current)
        _last_ids = (current, ids)
    event.update(ids)
    event["_context"] = current  # for EmitToOTel; WriteJson drops it
    return event


class TraceIdSampler:
    """Keep a share of records below WARNING, decided by trace id.

    All records of one trace are kept or dropped together, the same arithmetic as
    the SDK's TraceIdRatioBased sampler (the low 64 bits against a bound).
    Records outside any trace are sampled at random.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._bound = round(rate * (2**64 - 1))

    def keep(self, level: int, trace_id: int) -> bool:
        if level >= logging.WARNING or self.rate >= 1.0:
            return True
        if trace_id:
            return (trace_id & 0xFFFFFFFFFFFFFFFF) < self._bound
        return random.random() < self.rate

    def __call__(self, _name: str, level: int, event: EventDict) -> EventDict:
        trace_hex = event.get("trace_id")
        if not self.keep(level, int(trace_hex, 16) if trace_hex else 0):
            raise DropEvent
        return event


class RateLimit:
    """At most ``limit`` records a window; past it records are suppressed and counted.

    The first record after the window rolls carries ``rate_limit.suppressed`` so the
    log itself says how much was hidden.
    """

    def __init__(self, key: str, limit: int, window_s: float = 60.0) -> None:
        if limit < 1:
            raise ValueError(f"max_logs_per_minute={limit!r} is invalid: expected at least 1")
        self.key = key
        self.limit = limit
        self.window_s = window_s
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._count = 0
        self._suppressed = 0
        self._to_report = 0

    def admit(self) -> tuple[bool, int]:
        """(allowed, suppressed count to report on this record)."""
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.window_s:
                self._window_start = now
                self._count = 0
                self._to_report += self._suppressed
                self._suppressed = 0
            if self._count < self.limit:
                self._count += 1
                report, self._to_report = self._to_report, 0
                return True, report
            self._suppressed += 1
            return False, 0


_ACTIVE_RATE_LIMIT: ContextVar[RateLimit | None] = ContextVar("otel_tdd_rate_limit", default=None)


@contextmanager
def rate_limit_scope(limit: RateLimit) -> Iterator[None]:
    token = _ACTIVE_RATE_LIMIT.set(limit)
    try:
        yield
    finally:
        _ACTIVE_RATE_LIMIT.reset(token)


class ApplyRateLimit:
    """Suppresses records written inside a ``rate_limited`` function past its budget."""

    def __init__(self, on_suppressed: Callable[[str], None]) -> None:
        self._on_suppressed = on_suppressed

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        limit = _ACTIVE_RATE_LIMIT.get()
        if limit is None:
            return event
        allowed, report = limit.admit()
        if not allowed:
            self._on_suppressed(limit.key)
            raise DropEvent
        if report:
            event["rate_limit"] = {
                "suppressed": report,
                "window_s": limit.window_s,
                "key": limit.key,
            }
        return event


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


class AddContext:
    """The seed's ``context`` block: thread, process and environment.

    One block per thread, built once: a record only references it.
    """

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self._local = threading.local()
        # A weak reference, as the SDK does: a registration lives until exit, and a strong
        # one kept every AddContext of every configure() alive.
        after_fork = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: _call_if_alive(after_fork))

    def _after_fork(self) -> None:
        self._local = threading.local()  # the pid changed

    def _block(self) -> dict[str, Any]:
        block = {
            "thread_id": threading.current_thread().name,
            "process_id": os.getpid(),
            "environment": self.environment,
        }
        self._local.block = block
        return block

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        event["context"] = getattr(self._local, "block", None) or self._block()
        return event


class Redact:
    """Masks secrets in the message, the traceback and the data blocks, and makes each
    block a plain dict (a list, a dataclass or a model given as ``data`` is walked, not
    dropped): what follows (OTel, JSON) only sees redacted, encodable values."""

    FIELDS = ("data", "performance", "security", "alert")

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, _name: str, _level: int, event: EventDict) -> EventDict:
        redactor = self.redactor
        message = event["message"]
        if len(message) > MAX_MESSAGE_CHARS:
            event["message"] = redactor.bounded_text(message, MAX_MESSAGE_CHARS)
        else:  # cached for repeated messages; lone surrogates escaped
            event["message"] = redactor.text(message)
        for key in self.FIELDS:
            value = event.get(key)
            if value is None:
                continue
            if type(value) is dict:
                if value:
                    event[key] = redactor.clean(value)
            else:
                event[key] = redactor.mapping(value)
        exception = event.get("exception")
        if exception is not None:
            text = exception if type(exception) is str else text_of(exception)
            event["exception"] = redactor.bounded_text(text, MAX_MESSAGE_CHARS)
        return event


_LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
# What OTLP's int_value (and orjson) can carry. A bigger int fails the encoding of the
# whole export batch (every other record in it is lost), so it travels as text.
_INT64 = range(-(2**63), 2**63)


def _truncated(text: str, limit: int = MAX_STRING_CHARS) -> str:
    return text[:limit] + f"...[truncated {len(text) - limit} chars]"


def text_of(value: object) -> str:
    """``str(value)`` that never raises (a hostile ``__str__``, an int past str's digit limit)."""
    try:
        text = str(value)
        if type(text) is str:
            return text
    except Exception:
        pass
    if isinstance(value, int):
        return f"<int of {value.bit_length()} bits>"
    try:
        return f"<unprintable {type(value).__name__}>"
    except Exception:
        return "<unprintable>"


def _int_text(value: int) -> str:
    """A big int as text: past ``sys.int_info.str_digits_check_threshold`` digits, str() raises."""
    try:
        return str(value)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


def _any_value(value: Any, depth: int = 0) -> Any:
    """Coerce to what an OTel log attribute may hold (primitives, lists, maps), bounded."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING_CHARS else _truncated(value)
    if isinstance(value, int):
        return value if value in _INT64 else _int_text(value)
    if isinstance(value, bytes):
        return value[:MAX_STRING_CHARS]
    if depth > 8:
        return text_of(value)[:MAX_STRING_CHARS]
    if isinstance(value, Mapping):
        # The SDK drops an empty key with a warning line per record: name it instead.
        return {(text_of(k) or "(empty)"): _any_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_any_value(v, depth + 1) for v in value]
    return text_of(value)[:MAX_STRING_CHARS]


_PLAIN_VALUES = (str, bool, int, float, type(None))
_BLOCKS = ("data", "performance", "security", "alert", "rate_limit")
_BAGGAGE_FIELDS = ("user_id", "session_id", "request_id")


def _attribute_map(value: Mapping[Any, Any]) -> tuple[Any, bool]:
    """(the map attribute, whether it is plain): a plain one (the common case) is
    copied as is, anything else is coerced and left for the SDK to check."""
    for key, item in value.items():
        kind = type(item)
        if (
            kind not in _PLAIN_VALUES
            or type(key) is not str
            or not key
            or (kind is str and len(item) > MAX_STRING_CHARS)
            or (kind is int and item not in _INT64)
        ):
            return _any_value(value), False
    # A copy: the record is exported later, the caller may change its dict meanwhile.
    return dict(value), True


class EmitToOTel:
    """Hands the record to the SDK's LoggerProvider (so OTLP carries it with its trace context).

    The SDK's own LoggingHandler re-derives everything from a ``logging.LogRecord``;
    we already hold the fields, so we build the OTel record directly and leave
    batching and export to the SDK's processors. Only what OTLP does not carry
    natively becomes an attribute: the trace and span ids travel in the record's
    context, the logger name is the instrumentation scope, the process and
    environment are on the Resource, the thread name is in the JSON line. The
    SDK's own loggers are skipped: an export failure logged and re-exported
    would feed itself.

    When every attribute is one we know valid (string ids, a plain ``data`` map)
    the SDK record is built without re-cleaning them (otel_tdd/_sdk_log_records.py);
    anything else goes through the SDK's own checks.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        from opentelemetry._logs import LogRecord, SeverityNumber

        from otel_tdd import _sdk_log_records

        self._provider = provider
        self._records = _sdk_log_records
        # name -> (logger, (it as the SDK's Logger, its limits) when records may take the fast path)
        self._loggers: dict[str, tuple[OTelLogger, _FastTarget | None]] = {}
        self._fast_path: bool | None = None  # checked against the installed SDK on first use
        self._max_attributes = sys.maxsize
        # (Context, its span context, its baggage ids as attributes, whether all are str):
        # every record under one attached Context shares them, as in add_correlation.
        self._last: tuple[object, SpanContext, dict[str, Any], bool] = (
            None,
            trace.INVALID_SPAN_CONTEXT,
            {},
            True,
        )
        self._valid_record = _sdk_log_records.ValidLogRecord
        self._valid_read_write = _sdk_log_records.ValidReadWriteLogRecord
        self._bounded = _sdk_log_records.bounded
        self._record = LogRecord
        self._severity: dict[int, tuple[SeverityNumber, str]] = {
            level: (getattr(SeverityNumber, text), text) for level, text in _SEVERITY_TEXT.items()
        }

    def _logger(self, name: str) -> tuple[OTelLogger, _FastTarget | None]:
        entry = self._loggers.get(name)
        if entry is None:
            # A lone surrogate in the scope name would fail the whole export batch.
            logger = self._provider.get_logger(no_surrogates(name))
            target = self._records.fast_target(logger)
            if target is not None and self._fast_path is None:
                self._fast_path = self._records.fast_path_works(*target)
            if target is not None and self._fast_path:
                # The provider's limits, the same for all its loggers; past the count
                # limit the SDK's path drops, counts and warns.
                maxlen = target[1].max_log_record_attributes
                self._max_attributes = sys.maxsize if maxlen is None else maxlen
            entry = self._loggers[name] = (logger, target if self._fast_path else None)
        return entry

    def _nearest(self, level: int) -> tuple[SeverityNumber, str]:
        for bound in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
            if level >= bound:
                return self._severity[bound]
        return self._severity[logging.DEBUG]

    def _context_entry(
        self, context: otel_context.Context, event: EventDict
    ) -> tuple[object, SpanContext, dict[str, Any], bool]:
        span: Any = context.get(_SPAN_KEY) or _INVALID_SPAN
        ids = {key: event[key] for key in _BAGGAGE_FIELDS if event.get(key) is not None}
        entry = (context, span.get_span_context(), ids, all(type(v) is str for v in ids.values()))
        self._last = entry
        return entry

    def __call__(self, name: str, level: int, event: EventDict) -> EventDict:
        if name.startswith("opentelemetry"):
            return event
        severity_number, severity_text = self._severity.get(level) or self._nearest(level)
        # Each attribute costs ~0.7 us of SDK validation: only what OTLP cannot carry.
        context = event.get("_context") or get_current_context()
        entry = self._last
        if entry[0] is not context:
            entry = self._context_entry(context, event)
        _, span_context, ids, valid = entry
        attributes = ids.copy()  # the record's own: processors may change their attributes
        for key in _BLOCKS:
            value = event.get(key)
            if value:
                attributes[key], plain = _attribute_map(value)
                valid = valid and plain
        exception = event.get("exception")
        if exception:
            attributes["exception.stacktrace"] = exception
            valid = valid and type(exception) is str
        timestamp = event.get("_time_ns") or time.time_ns()
        logger, target = self._logger(name)
        if valid and target is not None and len(attributes) <= self._max_attributes:
            sdk_logger, limits = target
            # The SDK's Logger.emit takes a ReadWriteLogRecord as it is (its first branch),
            # though its signature only names the API LogRecord.
            sdk_logger.emit(
                self._valid_read_write(  # type: ignore[arg-type]
                    self._valid_record(
                        timestamp,
                        time.time_ns(),
                        context,
                        span_context,
                        severity_text,
                        severity_number,
                        event["message"],
                        self._bounded(attributes, limits),
                    ),
                    sdk_logger.resource,
                    sdk_logger.instrumentation_scope,
                    limits,
                )
            )
            return event
        logger.emit(
            self._record(
                timestamp=timestamp,
                context=context,
                severity_number=severity_number,
                severity_text=severity_text,
                body=event["message"],
                attributes=attributes,
            )
        )
        return event


# --- rendering -------------------------------------------------------------------------------


def repr_of(value: object) -> str:
    """``repr(value)`` that never raises."""
    try:
        text = repr(value)
        if type(text) is str:
            return text
    except Exception:
        pass
    if isinstance(value, int):
        return _int_text(value)
    return text_of(value)


def _fallback(value: Any) -> Any:
    """orjson's ``default``: anything it cannot encode natively becomes text. Never raises."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)[:MAX_STRING_CHARS].decode("utf-8", "replace")
    if isinstance(value, (set, frozenset)):
        return list(value)
    return no_surrogates(repr_of(value)[:MAX_STRING_CHARS])


class _Limits:
    """How far :func:`_sanitize` keeps things: the normal bound, then a tight one."""

    def __init__(self, chars: int, items: int, depth: int) -> None:
        self.chars, self.items, self.depth = chars, items, depth


_NORMAL = _Limits(MAX_STRING_CHARS, 1000, 16)
_TIGHT = _Limits(128, 16, 0)  # a block keeps 16 short scalars
_TOO_DEEP = "[cycle or too deep]"


def _sanitize(
    value: Any, limits: _Limits = _NORMAL, depth: int = 0, seen: frozenset[int] = frozenset()
) -> Any:
    """A JSON-safe, bounded copy: cycles cut, strings truncated and made encodable (lone
    surrogates escaped), containers cut, keys stringified. Never raises."""
    try:
        if isinstance(value, str):
            text = value if len(value) <= limits.chars else _truncated(value, limits.chars)
            return no_surrogates(str.__str__(text))
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            return value if value in _INT64 else _int_text(value)
        if id(value) in seen or depth > limits.depth:
            return _TOO_DEEP
        inner = seen | {id(value)}
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= limits.items:
                    out["[truncated]"] = f"more than {limits.items} items"
                    break
                text = key if isinstance(key, str) else repr_of(key)
                name = no_surrogates(text[: min(256, limits.chars)])
                out[name] = _sanitize(item, limits, depth + 1, inner)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            items: list[Any] = []
            for index, item in enumerate(value):
                if index >= limits.items:
                    items.append(f"[truncated: more than {limits.items} items]")
                    break
                items.append(_sanitize(item, limits, depth + 1, inner))
            return items
        return _sanitize(_fallback(value), limits, depth + 1, inner)
    except RecursionError:
        return _TOO_DEEP
    except Exception as error:  # a hostile container: its place says so
        return f"<unreadable: {type(error).__name__}>"


def json_safe(value: Any) -> Any:
    """:func:`_sanitize` for other modules: a JSON-safe, bounded copy that never raises."""
    return _sanitize(value)


_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
# The fields every line keeps, whatever happened to the rest (the schema's required ones).
_CORE_FIELDS = (
    "timestamp",
    "level",
    "logger",
    "message",
    "correlation_id",
    "trace_id",
    "span_id",
    "user_id",
    "session_id",
    "request_id",
)
_CORE_BLOCKS = ("performance", "security", "alert", "rate_limit", "exception", "context")


def _dumps(event: Any) -> bytes:
    return orjson.dumps(event, default=_fallback, option=_JSON_OPTIONS)


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
        line = orjson.dumps(_sanitize(event), option=_JSON_OPTIONS)
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
    short = _Limits(1024, 16, 0)
    record: dict[str, Any] = {}
    for key in _CORE_FIELDS:
        record[key] = _sanitize(event.get(key), short)
    record["data"] = {"_truncated": why}
    for key in _CORE_BLOCKS:
        if event.get(key) is not None:
            record[key] = _sanitize(event.get(key), short if key == "exception" else _TIGHT)
    return orjson.dumps(record, option=_JSON_OPTIONS)


class WriteJson:
    """Renders the record and writes it as one line, flushed (a crash loses no written line)."""

    def __init__(self, stream_name: str = "stdout", stream: IO[Any] | None = None) -> None:
        self._stream_name = stream_name
        self._stream = stream
        # (stream, write, flush) for the last stream written to: how to write to a stream
        # is worked out once, not per record (a failed getattr costs an exception).
        # The placeholder matches no stream, not even None (sys.stdout under pythonw), so a
        # missing stream still fails loudly in _writer_for instead of writing nowhere.
        self._writer: tuple[object, Callable[[bytes], object], Callable[[], object]] = (
            object(),
            len,
            int,
        )

    def _target(self) -> IO[Any]:
        # Looked up per record, so a later redirection of sys.stdout (pytest, a daemon) is followed.
        return self._stream or (sys.stdout if self._stream_name == "stdout" else sys.stderr)

    @staticmethod
    def _writer_for(
        stream: IO[Any],
    ) -> tuple[object, Callable[[bytes], object], Callable[[], object]]:
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


# --- the pipeline ----------------------------------------------------------------------------


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
        core = {key: event.get(key) for key in _CORE_FIELDS}
        core["timestamp"] = core["timestamp"] or format_timestamp(time.time())
        core["level"] = core["level"] or _LEVEL_NAMES.get(level, "ERROR")
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
