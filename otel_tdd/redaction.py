"""Redaction of secrets, shared by log records, span attributes, alerts and health answers.

One :class:`Redactor` is built at configure time and used by every output path, so
a secret cannot leak through the one path somebody forgot. Two rules:

- **Keys.** A key is split into lower-case words (``_ - .`` and spaces separate
  words, so do camelCase humps: ``apiKey``, ``API-Key``, ``api.key`` and ``api key``
  are all ``api key``). It is secret when its words contain one of the secret
  word sequences (``password``, ``api key``, ``mfa code``...) as whole words:
  ``db_password`` is secret, ``max_tokens`` and ``secretary`` are not. Values under
  a secret key become ``"[REDACTED]"`` (booleans and ``None`` stay: ``token_valid:
  true`` carries no secret), whatever they are.
- **Free text** (messages, tracebacks, string values, the text of objects we cannot
  walk): URL credentials, ``Bearer``/``Basic`` credentials, JWTs, AWS access key
  ids, Luhn-valid card numbers and ``key=value`` / ``key: value`` pairs under a
  secret key are masked. A cheap pre-check skips the patterns on text that has
  none of their marks.

Walking a value also makes it plain: dataclasses, attrs classes, pydantic models
and named tuples become dicts, header pairs ``(name, value)`` are redacted by
name, bytes become text, anything else becomes its (scanned) ``repr``. The walk
is bounded (depth, items per container, total items) so a hostile payload costs
bounded time and cannot smuggle an unwalked remainder past redaction.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import ItemsView, Iterable, Mapping
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

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

REDACTED = "[REDACTED]"
# Spellings; each is reduced to its words (key_words), so one spelling covers them all.
DEFAULT_SECRET_KEYS = (
    "password",
    "passwords",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "passcode",
    "secret",
    "secrets",
    "token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "bearer",
    "credential",
    "credentials",
    "cookie",
    "cookies",
    "sessionid",
    "jsessionid",
    "phpsessid",
    "connect.sid",
    "private_key",
    "secret_key",
    "access_key",
    "encryption_key",
    "signing_key",
    "dsn",
    "database_url",
    "db_url",
    "connection_string",
    "conn_str",
    "otp",
    "totp",
    "pin",
    "mfa_code",
    "signature",
    "jwt",
    "credit_card",
    "card_number",
    "cvv",
    "cvc",
    "ssn",
)
MAX_DEPTH = 16  # levels of nesting walked; deeper values become a marker
MAX_ITEMS = 1000  # items kept per container
MAX_NODES = 10_000  # values walked per call in all
MAX_STRING_CHARS = 16 * 1024  # a string value is cut there (with a note of how much)
# Characters of text kept per walk: past them strings become a marker, so one record's
# data renders in bounded memory even when it holds one big string many times over.
MAX_CHARS = 256 * 1024
_MAX_KEY_CHARS = 256
# Text is scanned this far past a cut, so a secret that straddles it is still seen whole.
_SCAN_OVERLAP = 256
TOO_DEEP = f"[truncated: nested deeper than {MAX_DEPTH}]"

# Words: an upper-case run not followed by lower case (API in APIKey), a capitalised or
# lower-case word, digits, or a run of other letters (é, ß, CJK). Everything else separates.
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_A-Za-z]+")
_MAX_CACHE = 4096
_PLAIN = frozenset((int, float, bool, type(None)))
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Kept as they are: orjson writes them natively and they carry no nested values.
_ATOMS = (datetime, date, time, UUID)

# --- free text --------------------------------------------------------------------------------

# Any mark one of the patterns below needs. Text without one (most messages) skips them.
_TRIGGER_RE = re.compile(r"[=:@]|\(\s*b?['\"]|earer|asic|eyJ|A[KS]IA|\d[ -]?\d[ -]?\d[ -]?\d")
_TOKEN_RE = re.compile(
    # The userinfo of a URL, user:password@ or a token alone (https://ghp_x@github.com).
    # A password runs to the LAST @ before a space or quote: people put / @ # ? in them
    # unescaped (postgresql://app:p@ss/w@db), and masking a path with an @ is the safe error.
    r"(?P<url>(?<=://)[^\s/?#@:'\"<>]+(?::[^\s'\"<>]*)?(?=@))"
    # HTTP credentials; "Basic" capitalised and 8+ characters on: "basic auth" is prose.
    # The credential starts as token68 does and runs to a space or quote (bearer = x is a pair).
    r"|(?P<scheme>\b(?:[Bb]earer\s+|Basic\s+(?=[A-Za-z0-9+/]{8})))[\w\-.~+/][^\s'\"<>]*"
    r"|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # an AWS access key id
    r"|(?P<card>(?<!\d)(?:\d[ -]?){12,18}\d(?!\d))"
)
# A key and what separates it from its value.
_KEY_RE = re.compile(
    # A pair's repr: ('X-Api-Key', value) or (b'cookie', value).
    r"""\(\s*b?(?P<tq>["'])(?P<pair>[^"'\n]{1,64})(?P=tq)\s*,\s*"""
    # A quoted key: "api key": value, 'password': value, b'token': value.
    r"""|b?(?P<q>["'])(?P<quoted>[^"'\n]{1,64})(?P=q)\s*[:=]\s*"""
    # A bare key: password=value, apiKey: value, --token=value, ?token=value.
    r"""|(?<![\w.])(?P<bare>[A-Za-z_][\w.\-]{0,63})\s*[:=]\s*"""
)
# An HTTP auth scheme before its credential ("Authorization: token ghp_..."): masked with
# the credential that follows. After an authorization-like key any single word counts.
_SCHEMES = frozenset(
    [
        "bearer",
        "basic",
        "token",
        "apikey",
        "api-key",
        "digest",
        "negotiate",
        "ntlm",
        "hoba",
        "mutual",
        "dpop",
        "gnap",
        "oauth",
        "aws4-hmac-sha256",
    ]
)
_SCHEME_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9\-]{0,31}")
_CREDENTIAL_RE = re.compile(r"""[ \t]+(?:b?"(?:[^"\\\n]|\\.)*"|b?'(?:[^'\\\n]|\\.)*'|[^\s'"<>]+)""")
# Digest's credential is a list of name="value" pairs: masked to the end of the line.
_PARAMS_RE = re.compile(r"[ \t]+[^\n]*")
# An unquoted value runs to a space, a quote, a closing bracket or a query string's &:
# a password may hold ; , # / @ (password=abc;def).
_VALUE_RE = re.compile(r"""b?"(?:[^"\\\n]|\\.)*"|b?'(?:[^'\\\n]|\\.)*'|[^\s&'"<>)}\]]+""")


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


def _mask_token(match: re.Match[str]) -> str:
    card = match.group("card")
    if card is not None:
        digits = card.replace(" ", "").replace("-", "")
        return REDACTED if _luhn_ok(digits) else card
    scheme = match.group("scheme")
    if scheme is not None:
        return scheme + REDACTED
    return REDACTED


def no_surrogates(text: str) -> str:
    """``text`` without lone surrogates (written as ``\\udc80``): they cannot be encoded as
    UTF-8, so one would fail the JSON line and the whole OTLP batch. O(1) for ASCII text."""
    if text.isascii() or _SURROGATE_RE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def key_words(key: str) -> tuple[str, ...]:
    """``"X-API-Key"`` -> ``("x", "api", "key")``: the words keys are matched by."""
    return tuple(word.lower() for word in _WORD_RE.findall(key))


def _safe_text(value: object) -> str:
    """``repr(value)``, or a marker when even that raises (a hostile ``__repr__``)."""
    try:
        text = repr(value)
        return text if type(text) is str else str(text)
    except Exception:
        try:
            name = type(value).__name__
        except Exception:
            name = "object"
        return f"<unrepresentable {name}>"


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


class Redactor:
    """Masks secrets in nested data and free text. Verdicts on keys and short texts are
    cached: an app logs few distinct keys and messages."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        spellings = [*DEFAULT_SECRET_KEYS, *(k for k in extra_keys if k.strip())]
        self._secrets = frozenset(w for w in map(key_words, spellings) if w)
        self._lengths = sorted({len(words) for words in self._secrets})
        self._secret_key: dict[object, bool] = {}
        self._texts: dict[str, str] = {}

    # -- keys ----------------------------------------------------------------------------------

    def is_secret_key(self, key: object) -> bool:
        cached = self._secret_key.get(key) if type(key) is str else None
        if cached is not None:
            return cached
        if isinstance(key, (bytes, bytearray)):
            text = bytes(key).decode("utf-8", "replace")
        else:
            text = key if isinstance(key, str) else _safe_text(key)
        words = key_words(text)
        secrets = self._secrets
        verdict = any(
            words[start : start + length] in secrets
            for length in self._lengths
            for start in range(len(words) - length + 1)
        )
        # A cached verdict lets clean() pass a key as it is: never for one that needs escaping.
        if (
            type(key) is str
            and len(key) <= _MAX_KEY_CHARS
            and len(self._secret_key) < _MAX_CACHE
            and no_surrogates(key) is key
        ):
            self._secret_key[key] = verdict
        return verdict

    # -- free text -----------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """``value`` with the free-text patterns masked (the same object when none matched)
        and lone surrogates escaped.

        Log messages repeat (a format string, a few argument values): short ones are
        remembered, a dict lookup instead of a scan per record.
        """
        if len(value) < 5:
            return value if value.isascii() else no_surrogates(value)
        cached = self._texts.get(value)
        if cached is not None:
            return cached
        masked = no_surrogates(self._scan(value))
        if len(value) <= 256:
            if len(self._texts) >= _MAX_CACHE:
                self._texts.clear()
            self._texts[value] = masked
        return masked

    def string(self, value: str, limit: int = MAX_STRING_CHARS) -> str:
        """A string value in data: scanned from 13 characters (a short value is protected
        by its key), cut at ``limit`` characters, lone surrogates escaped."""
        if len(value) > limit:
            return self.bounded_text(value, limit)
        if len(value) >= 13:
            return self.text(value)
        return value if value.isascii() else no_surrogates(value)

    def bounded_text(self, value: str, limit: int) -> str:
        """Free text (a message, a traceback) scanned and cut at ``limit`` characters, so a
        megabyte message costs a bounded scan; lone surrogates escaped."""
        if len(value) <= limit:
            return self.text(value)
        masked = self._scan(value[: limit + _SCAN_OVERLAP])
        cut = masked[:limit] + f"...[truncated {len(value) - limit} chars]"
        return no_surrogates(cut)

    def _scan(self, value: str) -> str:
        if _TRIGGER_RE.search(value) is None:
            return value
        masked = _TOKEN_RE.sub(_mask_token, value)
        if "=" in masked or ":" in masked or "(" in masked:
            masked = self._mask_pairs(masked)
        return value if masked == value else masked

    def _mask_pairs(self, text: str) -> str:
        """``password=x``, ``"api key": "x"``, ``Token: x``: the value after a secret key."""
        pieces: list[str] = []
        done = 0
        position = 0
        while True:
            found = _KEY_RE.search(text, position)
            if found is None:
                break
            position = found.end()
            key = found.group("pair") or found.group("quoted") or found.group("bare")
            if not self.is_secret_key(key):
                continue
            value = _VALUE_RE.match(text, position)
            if value is None or value.group(0).startswith(REDACTED):
                continue
            shown = value.group(0)
            end = value.end()
            if self._is_scheme(key, shown):
                tail = _PARAMS_RE if shown.lower() == "digest" else _CREDENTIAL_RE
                credential = tail.match(text, end)
                if credential is not None:
                    shown, end = REDACTED, credential.end()
            prefix = "b" if shown[:2] in ("b'", 'b"') else ""  # a bytes repr stays one
            quote = shown[len(prefix)] if shown[len(prefix) :][:1] in ("'", '"') else ""
            pieces.append(text[done:position])
            pieces.append(f"{prefix}{quote}{REDACTED}{quote}")
            done = position = end
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    @staticmethod
    def _is_scheme(key: str, value: str) -> bool:
        """Whether ``value`` is an auth scheme word whose credential follows it."""
        if _SCHEME_WORD_RE.fullmatch(value) is None:
            return False
        words = key_words(key)
        return value.lower() in _SCHEMES or "authorization" in words or "auth" in words

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
            cut = bytes(value[: MAX_STRING_CHARS + _SCAN_OVERLAP])
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
        return self._charge(self.string(_safe_text(value)), budget)

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
                if len(key) > _MAX_KEY_CHARS:
                    key = f"{key[:_MAX_KEY_CHARS]}...[truncated {len(key) - _MAX_KEY_CHARS} chars]"
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
        return _safe_text(key)[:256]
