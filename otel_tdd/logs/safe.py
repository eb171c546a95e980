"""Text and JSON-safe copies of any value, that never raise.

A hostile ``__str__``, an int past str's digit limit, a cycle, a lone surrogate:
whatever the app logs, these return something that can be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_tdd.redaction import MAX_STRING_CHARS, no_surrogates

__all__ = [
    "INT64",
    "Limits",
    "fallback",
    "json_safe",
    "repr_of",
    "sanitize",
    "text_of",
    "truncated",
]

# What OTLP's int_value (and orjson) can carry. A bigger int fails the encoding of the
# whole export batch (every other record in it is lost), so it travels as text.
INT64 = range(-(2**63), 2**63)


def truncated(text: str, limit: int = MAX_STRING_CHARS) -> str:
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


def int_text(value: int) -> str:
    """A big int as text: past ``sys.int_info.str_digits_check_threshold`` digits, str() raises."""
    try:
        return str(value)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


def repr_of(value: object) -> str:
    """``repr(value)`` that never raises."""
    try:
        text = repr(value)
        if type(text) is str:
            return text
    except Exception:
        pass
    if isinstance(value, int):
        return int_text(value)
    return text_of(value)


def fallback(value: Any) -> Any:
    """orjson's ``default``: anything it cannot encode natively becomes text. Never raises."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)[:MAX_STRING_CHARS].decode("utf-8", "replace")
    if isinstance(value, (set, frozenset)):
        return list(value)
    return no_surrogates(repr_of(value)[:MAX_STRING_CHARS])


class Limits:
    """How far :func:`sanitize` keeps things: the normal bound, then a tight one."""

    def __init__(self, chars: int, items: int, depth: int) -> None:
        self.chars, self.items, self.depth = chars, items, depth


NORMAL = Limits(MAX_STRING_CHARS, 1000, 16)
TOO_DEEP = "[cycle or too deep]"


def sanitize(
    value: Any, limits: Limits = NORMAL, depth: int = 0, seen: frozenset[int] = frozenset()
) -> Any:
    """A JSON-safe, bounded copy: cycles cut, strings truncated and made encodable (lone
    surrogates escaped), containers cut, keys stringified. Never raises."""
    try:
        if isinstance(value, str):
            text = value if len(value) <= limits.chars else truncated(value, limits.chars)
            return no_surrogates(str.__str__(text))
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            return value if value in INT64 else int_text(value)
        if id(value) in seen or depth > limits.depth:
            return TOO_DEEP
        inner = seen | {id(value)}
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= limits.items:
                    out["[truncated]"] = f"more than {limits.items} items"
                    break
                text = key if isinstance(key, str) else repr_of(key)
                name = no_surrogates(text[: min(256, limits.chars)])
                out[name] = sanitize(item, limits, depth + 1, inner)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            items: list[Any] = []
            for index, item in enumerate(value):
                if index >= limits.items:
                    items.append(f"[truncated: more than {limits.items} items]")
                    break
                items.append(sanitize(item, limits, depth + 1, inner))
            return items
        return sanitize(fallback(value), limits, depth + 1, inner)
    except RecursionError:
        return TOO_DEEP
    except Exception as error:  # a hostile container: its place says so
        return f"<unreadable: {type(error).__name__}>"


def json_safe(value: Any) -> Any:
    """:func:`sanitize` for other modules: a JSON-safe, bounded copy that never raises."""
    return sanitize(value)
