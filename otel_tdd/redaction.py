"""Redaction of secrets, shared by log records, span attributes, alerts and health answers.

One :class:`Redactor` is built at configure time and used by every output path. Walking
a value also makes it plain (dataclasses, attrs, pydantic models, named tuples become
dicts; anything else its scanned ``repr``), bounded in depth, items and characters.
What counts as a secret is :mod:`otel_tdd.secret_patterns`; docs/logging.md, "Redaction".
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import ItemsView, Iterable, Mapping
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from otel_tdd.secret_patterns import (
    DEFAULT_SECRET_KEYS,
    MAX_KEY_CHARS,
    MAX_STRING_CHARS,
    REDACTED,
    SCAN_OVERLAP,
    SecretMatcher,
    key_words,
    no_surrogates,
    safe_text,
)

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_NODES",
    "MAX_STRING_CHARS",
    "REDACTED",
    "Redactor",
    "key_words",
    "no_surrogates",
]

MAX_DEPTH = 16  # levels of nesting walked; deeper values become a marker
MAX_ITEMS = 1000  # items kept per container
MAX_NODES = 10_000  # values walked per call in all
# Characters of text kept per walk: past them strings become a marker, so one record's
# data renders in bounded memory even when it holds one big string many times over.
MAX_CHARS = 256 * 1024
TOO_DEEP = f"[truncated: nested deeper than {MAX_DEPTH}]"
_PLAIN = frozenset((int, float, bool, type(None)))
# Kept as they are: orjson writes them natively and they carry no nested values.
_ATOMS = (datetime, date, time, UUID)


def _fields(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass, attrs, pydantic or named-tuple instance, else None."""
    kind = type(value)
    if dataclasses.is_dataclass(kind):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(kind)}
    attrs_fields = getattr(kind, "__attrs_attrs__", None)
    if attrs_fields is not None:
        return {a.name: getattr(value, a.name, None) for a in attrs_fields}
    model_fields = getattr(kind, "model_fields", None) or getattr(kind, "__fields__", None)
    if isinstance(model_fields, Mapping) and hasattr(value, "__pydantic_fields_set__"):
        out = {name: getattr(value, name, None) for name in model_fields}
        extra = getattr(value, "__pydantic_extra__", None)
        if isinstance(extra, Mapping):
            out.update(extra)
        return out
    if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        return dict(zip(kind._fields, value, strict=False))
    return None


class Redactor(SecretMatcher):
    """Masks secrets in nested data and free text (:class:`SecretMatcher`), and makes
    what it walks plain and bounded."""

    # -- values --------------------------------------------------------------------------------

    def value(self, value: Any) -> Any:
        """A redacted, plain copy of any value (dicts, lists and strings for what we walk)."""
        kind = type(value)
        if kind in _PLAIN:  # the common case first: exact type checks are cheap, ABCs are not
            return value
        if kind is str:
            return self.string(value)
        return self._walk(value, 0, [MAX_NODES, MAX_CHARS])

    def clean(self, data: Mapping[Any, Any]) -> Mapping[Any, Any]:
        """``data`` itself when nothing in it needs masking (no copy), else a redacted copy.

        The fast path of log records: flat dicts of innocent keys and short values.
        """
        if len(data) > MAX_ITEMS:
            return self.mapping(data)
        secret_key = self._secret_key
        for key, item in data.items():
            kind = type(item)
            short = kind in _PLAIN or (kind is str and len(item) < 13 and item.isascii())
            if short and secret_key.get(key) is False:
                continue
            return self.mapping(data)
        return data

    def mapping(self, data: Any) -> dict[Any, Any]:
        """A redacted plain dict of ``data`` (a mapping, a dataclass, a model...), never
        raising; anything that is not a mapping ends up under ``"_value"``. The caller's
        object is never modified."""
        if type(data) is dict:  # the common case, without the generic dispatch
            try:
                return self._walk_pairs(data.items(), 0, [MAX_NODES, MAX_CHARS])
            except Exception:  # a hostile value below: the generic walk marks it
                pass
        walked = self._walk(data, 0, [MAX_NODES, MAX_CHARS])
        return walked if type(walked) is dict else {"_value": walked}

    def _walk(self, value: Any, depth: int, budget: list[int]) -> Any:
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is str:
            return self._charge(self.string(value), budget)
        budget[0] -= 1  # one list per walk: how many more containers it may visit
        if budget[0] < 0:
            return "[truncated]"
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        try:
            return self._walk_container(value, kind, depth, budget)
        except RecursionError:
            return TOO_DEEP
        except Exception as error:  # a hostile __iter__/items()/property: keep the rest
            return f"<unreadable {kind.__name__}: {type(error).__name__}>"

    def _walk_container(self, value: Any, kind: type, depth: int, budget: list[int]) -> Any:
        if kind is dict or isinstance(value, Mapping):
            return self._walk_pairs(value.items(), depth, budget)
        if isinstance(value, ItemsView):
            return self._walk_pairs(value, depth, budget)
        if kind is list or kind is tuple or kind is set or kind is frozenset:
            if (kind is tuple or kind is list) and len(value) == 2 and self._secret_pair(value):
                return [self._walk(value[0], depth + 1, budget), REDACTED]
            return self._walk_items(value, depth, budget)
        if isinstance(value, str):
            return self._charge(self.string(str.__str__(value)), budget)
        if isinstance(value, (bytes, bytearray, memoryview)):
            cut = bytes(value[: MAX_STRING_CHARS + SCAN_OVERLAP])
            return self._charge(self.string(cut.decode("utf-8", "replace")), budget)
        if isinstance(value, _ATOMS):
            return value
        if isinstance(value, enum.Enum):
            return self._walk(value.value, depth + 1, budget)
        if isinstance(value, (int, float)):  # subclasses (IntEnum handled above, numpy...)
            return value
        fields = _fields(value)
        if fields is not None:
            return self._walk_pairs(fields.items(), depth, budget)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self._walk_items(value, depth, budget)
        # Anything else is written as its repr (what the JSON renderer would do): scan it.
        return self._charge(self.string(safe_text(value)), budget)

    def _walk_pairs(self, pairs: Iterable[Any], depth: int, budget: list[int]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        secret_key = self._secret_key
        for count, (raw_key, item) in enumerate(pairs):
            if count >= MAX_ITEMS:
                out["[truncated]"] = f"more than {MAX_ITEMS} items"
                break
            # A cached verdict means a plain str key without surrogates (is_secret_key).
            key = raw_key
            verdict = secret_key.get(key) if type(key) is str else None
            if verdict is None:
                key = key if type(key) is str else self._key_text(key)
                key = key if key.isascii() else no_surrogates(key)
                if len(key) > MAX_KEY_CHARS:
                    key = f"{key[:MAX_KEY_CHARS]}...[truncated {len(key) - MAX_KEY_CHARS} chars]"
                verdict = self.is_secret_key(key)
            kind = type(item)
            if verdict and item is not None and kind is not bool:
                out[key] = REDACTED
            elif kind in _PLAIN:
                out[key] = item
            elif kind is str:
                cached = self._texts.get(item)  # a repeated value: no scan, no checks
                text = cached if cached is not None else self.string(item)
                out[key] = self._charge(text, budget)
            else:
                out[key] = self._walk(item, depth + 1, budget)
        return out

    def _walk_items(self, items: Iterable[Any], depth: int, budget: list[int]) -> list[Any]:
        out: list[Any] = []
        for index, item in enumerate(items):
            if index >= MAX_ITEMS:
                out.append(f"[truncated: more than {MAX_ITEMS} items]")
                break
            kind = type(item)
            if kind in _PLAIN:
                out.append(item)
            elif (kind is tuple or kind is list) and len(item) == 2 and self._secret_pair(item):
                out.append([self._walk(item[0], depth + 1, budget), REDACTED])
            else:
                out.append(self._walk(item, depth + 1, budget))
        return out

    @staticmethod
    def _charge(text: str, budget: list[int]) -> str:
        """``text``, or a marker once the walk has kept ``MAX_CHARS`` characters."""
        budget[1] -= len(text)
        return text if budget[1] >= 0 else "[truncated]"

    def _secret_pair(self, pair: Any) -> bool:
        """A header pair ``("Authorization", "Bearer ...")`` (ASGI: bytes) with a secret name."""
        name, item = pair
        return (
            isinstance(name, (str, bytes))
            and item is not None
            and type(item) is not bool
            and self.is_secret_key(name)
        )

    @staticmethod
    def _key_text(key: object) -> str:
        if isinstance(key, (bytes, bytearray)):
            return bytes(key).decode("utf-8", "replace")
        if isinstance(key, str):
            return str.__str__(key)
        if key is None or isinstance(key, (bool, int, float)):
            try:
                return str(key)
            except ValueError:  # an int past the str conversion limit
                return f"<int of {key.bit_length()} bits>"  # type: ignore[union-attr]
        return safe_text(key)[:256]
