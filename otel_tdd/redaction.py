"""Redaction of secret-like values, shared by log records, span attributes and alerts.

One :class:`Redactor` is built at configure time and used by every output path, so
a secret cannot leak through the one path somebody forgot. Values under a
secret-like key become ``"[REDACTED]"`` (booleans and ``None`` stay: ``token_valid:
true`` carries no secret); card-number-like digit runs that pass the Luhn check are
masked wherever they appear in a string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"
DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "cookie",
    "set-cookie",
    "private_key",
    "credit_card",
    "card_number",
    "cvv",
)
# 13-19 digits, optionally grouped by spaces or dashes: the shape of a payment card number.
_CARD_RE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_MAX_KEY_CACHE = 4096
_PLAIN = frozenset((int, float, bool, type(None)))
_MAX_DEPTH = 8


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED if _luhn_ok(digits) else match.group(0)


class Redactor:
    """Masks secrets in nested data. Key verdicts are cached: an app logs few distinct keys."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = sorted({*DEFAULT_SECRET_KEYS, *(k.lower() for k in extra_keys)})
        # Normalise separators so "api-key", "api_key" and "apiKey" all match "apikey".
        self._needles = tuple({k.replace("-", "").replace("_", "") for k in keys})
        self._secret_key: dict[str, bool] = {}
        self._texts: dict[str, str] = {}

    def is_secret_key(self, key: object) -> bool:
        text = key if isinstance(key, str) else str(key)
        cached = self._secret_key.get(text)
        if cached is not None:
            return cached
        folded = text.lower().replace("-", "").replace("_", "")
        verdict = any(needle in folded for needle in self._needles)
        if len(self._secret_key) < _MAX_KEY_CACHE:
            self._secret_key[text] = verdict
        return verdict

    def text(self, value: str) -> str:
        """Mask card numbers in free text (messages, string values).

        Log messages repeat (a format string, a few argument values): short ones are
        remembered, a dict lookup instead of a regex scan per record.
        """
        if len(value) < 13:
            return value
        cached = self._texts.get(value)
        if cached is not None:
            return cached
        masked = _CARD_RE.sub(_mask_card, value)
        if len(value) <= 256:
            if len(self._texts) >= _MAX_KEY_CACHE:
                self._texts.clear()
            self._texts[value] = masked
        return masked

    def value(self, value: Any, depth: int = 0) -> Any:
        kind = type(value)
        if kind in _PLAIN:  # the common case first: exact type checks are cheap, ABCs are not
            return value
        if kind is str:
            return self.text(value) if len(value) >= 13 else value
        if kind is dict or isinstance(value, Mapping):
            return self.mapping(value, depth + 1)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (list, tuple)) and depth < _MAX_DEPTH:
            return [self.value(item, depth + 1) for item in value]
        return value

    def clean(self, data: Mapping[Any, Any]) -> Mapping[Any, Any]:
        """``data`` itself when nothing in it needs masking (no copy), else a redacted copy.

        The fast path of log records: flat dicts of innocent keys and short values.
        """
        secret_key = self._secret_key
        for key, item in data.items():
            kind = type(item)
            short = kind in _PLAIN or (kind is str and len(item) < 13)
            if short and secret_key.get(key) is False:
                continue
            return self.mapping(data)
        return data

    def mapping(self, data: Mapping[Any, Any], depth: int = 0) -> dict[Any, Any]:
        """A redacted copy; the caller's dict is never modified."""
        if depth > _MAX_DEPTH:
            return {"[truncated]": f"nesting deeper than {_MAX_DEPTH}"}
        out: dict[Any, Any] = {}
        secret_key = self._secret_key
        for key, item in data.items():
            verdict = secret_key.get(key) if type(key) is str else None
            if verdict is None:
                verdict = self.is_secret_key(key)
            if verdict and item is not None and type(item) is not bool:
                out[key] = REDACTED
            elif type(item) in _PLAIN:
                out[key] = item
            else:
                out[key] = self.value(item, depth)
        return out
