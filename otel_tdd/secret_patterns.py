"""What counts as a secret: keys by their words, free text by its patterns.

A key is secret when its words (``apiKey``, ``API-Key`` and ``api.key`` are all
``api key``) contain a secret word sequence; free text has URL credentials, auth
headers, JWTs, AWS key ids, Luhn-valid card numbers and ``key=value`` pairs under
a secret key masked. docs/logging.md, "Redaction".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "MAX_STRING_CHARS",
    "REDACTED",
    "SecretMatcher",
    "key_words",
    "no_surrogates",
    "safe_text",
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
MAX_STRING_CHARS = 16 * 1024  # a string value is cut there (with a note of how much)
MAX_KEY_CHARS = 256
# Text is scanned this far past a cut, so a secret that straddles it is still seen whole.
SCAN_OVERLAP = 256

# Words: an upper-case run not followed by lower case (API in APIKey), a capitalised or
# lower-case word, digits, or a run of other letters (é, ß, CJK). Everything else separates.
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_A-Za-z]+")
_MAX_CACHE = 4096
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

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


def safe_text(value: object) -> str:
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


class SecretMatcher:
    """Tells secret keys and masks secrets in free text. Verdicts on keys and short texts
    are cached: an app logs few distinct keys and messages."""

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
            text = key if isinstance(key, str) else safe_text(key)
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
            and len(key) <= MAX_KEY_CHARS
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
        masked = self._scan(value[: limit + SCAN_OVERLAP])
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
