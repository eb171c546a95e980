"""One configuration value at a time: parsed, checked, or refused with a :class:`ConfigError`.

Each parser takes the variable's name (or ``configure(arg=...)``) for its error and the
raw value; numbers are ASCII only (docs/configuration.md, "Validation").
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

__all__ = [
    "ConfigError",
    "parse_alertmanager_url",
    "parse_bool",
    "parse_choice",
    "parse_endpoint",
    "parse_headers",
    "parse_host",
    "parse_int",
    "parse_keys",
    "parse_level",
    "parse_number",
    "parse_port",
    "parse_ratio",
    "parse_resource_attributes",
    "parse_text",
    "without_password",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off", "")


class ConfigError(ValueError):
    """A setting is invalid. The message names the variable, the value and what is accepted."""

    def __init__(self, variable: str, value: object, accepted: str) -> None:
        self.variable = variable
        self.value = value
        self.accepted = accepted
        super().__init__(f"{variable}={value!r} is invalid: expected {accepted}")


def parse_bool(variable: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(variable, value, "true or false")


# Numbers are ASCII digits only: int() and float() also take "1_000" and Arabic-Indic
# digits, which no other OTel SDK accepts, so a value that works here would break elsewhere.
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Above this a count or a size is a typo, not a setting (and int() would take any length).
MAX_INT = 2**31 - 1


def parse_int(
    variable: str, value: object, minimum: int = 0, maximum: int = MAX_INT, accepted: str = ""
) -> int:
    """A whole number in ``minimum..maximum``, written with ASCII digits."""
    accepted = accepted or f"a whole number from {minimum} to {maximum}"
    if isinstance(value, bool):
        raise ConfigError(variable, value, accepted)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not _INT_TEXT.fullmatch(text) or len(text) > 12:
            raise ConfigError(variable, value, accepted)
        number = int(text)
    if not minimum <= number <= maximum:
        raise ConfigError(variable, value, accepted)
    return number


def parse_number(
    variable: str, value: object, minimum: float, maximum: float, accepted: str
) -> float:
    """A finite decimal number in ``minimum..maximum`` (ASCII); an underflow to 0 is refused."""
    if isinstance(value, bool):
        raise ConfigError(variable, value, accepted)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not _FLOAT_TEXT.fullmatch(text):
            raise ConfigError(variable, value, accepted)
        number = float(text)
        mantissa = re.split("[eE]", text)[0]
        if number == 0.0 and any(digit in "123456789" for digit in mantissa):
            raise ConfigError(variable, value, accepted + " (this one is too small to represent)")
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise ConfigError(variable, value, accepted)
    return number


def parse_ratio(variable: str, value: object) -> float:
    return parse_number(variable, value, 0.0, 1.0, "a number from 0.0 to 1.0")


def parse_port(variable: str, value: object) -> int:
    return parse_int(variable, value, 0, 65535, "a TCP port number from 0 to 65535")


def parse_level(variable: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value in (10, 20, 30, 40, 50):
            return value
        raise ConfigError(variable, value, "one of " + ", ".join(LOG_LEVELS))
    text = str(value).strip().upper()
    if text == "WARN":
        text = "WARNING"
    if text not in LOG_LEVELS:
        raise ConfigError(variable, value, "one of " + ", ".join(LOG_LEVELS))
    level: int = getattr(logging, text)
    return level


def without_password(value: object) -> str:
    """``value`` with the password of a URL's user-info replaced by ``***``, for messages."""
    text = str(value)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    user, colon, _ = rest.partition(":")
    at = rest.rfind("@")
    if colon and at > len(user) and not any(mark in user for mark in "/?#@"):
        # user:password@ where the password may hold / # ? @ unescaped (urlsplit would
        # end the host at the first of them and show the rest): it runs to the last @.
        return f"{scheme}://{user}:***@{rest[at + 1 :]}"
    netloc, slash, tail = rest.partition("/")
    if "@" not in netloc:
        return text
    userinfo, _, host = netloc.rpartition("@")
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}{slash}{tail}"


def parse_endpoint(variable: str, value: object) -> str:
    """An OTLP endpoint must be a URL with an http(s) scheme and a host, as the spec says.

    Whitespace or control characters anywhere (``http://a b``) are refused: no
    request can carry them. Errors never show a password from the URL.
    """
    text = str(value).strip()
    accepted = "a URL like http://127.0.0.1:4318 (scheme http or https, a host, optional port)"
    shown = without_password(value)
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ConfigError(variable, shown, accepted + ", without spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise ConfigError(variable, shown, accepted) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, shown, accepted)
    del port
    return text


def parse_choice(variable: str, value: object, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(variable, value, "one of " + ", ".join(choices))
    return text


# An HTTP header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_headers(variable: str, value: str) -> None:
    """``key=value`` pairs separated by commas, percent-encoded (W3C baggage format).

    Refused: a pair without ``=``, bad percent-encoding (``%E2%82``), a name that
    is not an HTTP token, a control character (an encoded CR/LF) once decoded.
    Errors name the header but never show the values, which are usually secrets.
    """
    names: list[str] = []
    for item in value.split(","):
        if not item.strip():
            continue
        raw_name, sep, raw_value = item.partition("=")
        shown = _headers_shown([*names, raw_name.strip()[:40]])
        if not sep or not raw_name.strip():
            raise ConfigError(variable, shown, "comma-separated key=value pairs")
        try:
            name = unquote(raw_name.strip(), errors="strict")
            text = unquote(raw_value.strip(), errors="strict")
        except UnicodeDecodeError:
            raise ConfigError(
                variable, shown, "key=value pairs with valid percent-encoding (UTF-8)"
            ) from None
        names.append(name)
        if not _TOKEN.fullmatch(name):
            raise ConfigError(variable, shown, "header names made of letters, digits and -_.")
        if any(not char.isprintable() for char in text):
            raise ConfigError(
                variable, shown, "header values without control characters (CR, LF, NUL...)"
            )


def _headers_shown(names: list[str]) -> str:
    return "<headers " + ", ".join(repr(name) for name in names) + "; values not shown>"


def parse_resource_attributes(variable: str, value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    raise ConfigError(variable, value, "a mapping of attribute names to values")


def parse_text(_variable: str, value: object) -> str:
    return str(value)


def parse_keys(_variable: str, value: object) -> tuple[str, ...]:
    raw = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(k).strip().lower() for k in raw if str(k).strip())


def parse_host(variable: str, value: object) -> str:
    """An interface to bind: an IP address or a host name, nothing else."""
    text = str(value).strip()
    accepted = "an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name"
    if not text or any(char.isspace() or not char.isprintable() for char in text):
        raise ConfigError(variable, value, accepted)
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(text):
        raise ConfigError(variable, value, accepted)
    return text


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def parse_alertmanager_url(variable: str, value: object) -> str:
    """urllib/http.client ignore user:password in a URL: refuse it rather than fail at send."""
    url = parse_endpoint(variable, value).rstrip("/")
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            variable,
            without_password(url),
            "a URL without user:password (credentials in the URL are never sent; put "
            "Alertmanager behind an authenticating proxy and give its plain URL)",
        )
    return url
