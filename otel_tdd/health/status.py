"""What a health result is: the statuses, a probe's answer, and the shutting-down flag.

Also the one place a check's raw return value becomes a result: normalized,
redacted, and critical with the reason when malformed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from otel_tdd import _runtime
from otel_tdd.logs.safe import json_safe
from otel_tdd.redaction import Redactor

__all__ = [
    "CRITICAL",
    "HEALTHY",
    "STATUSES",
    "STATUS_VALUE",
    "WARNING",
    "CheckFunc",
    "HealthResponse",
    "clear_shutting_down",
    "critical_result",
    "error_text",
    "is_shutting_down",
    "mark_shutting_down",
    "normalize",
    "safe_url",
    "utc_now",
]

HEALTHY = "healthy"
WARNING = "warning"
CRITICAL = "critical"
STATUSES = (HEALTHY, WARNING, CRITICAL)
# The value of tdd_health_check_status for each status (the alert rule fires on 0).
STATUS_VALUE = {HEALTHY: 1.0, WARNING: 0.5, CRITICAL: 0.0}

CheckFunc = Callable[[], Mapping[str, Any]]


# --- the process-wide "shutting down" flag ---------------------------------------------------

# A plain bool, not a threading.Event: it is set from a signal handler, where taking a
# lock that the interrupted code may hold would deadlock. Reads and writes of a module
# global are atomic under the GIL.
_shutting_down = False


def mark_shutting_down() -> None:
    """Readiness answers 503 from now on (GracefulShutdown calls this first)."""
    global _shutting_down
    _shutting_down = True


def is_shutting_down() -> bool:
    """True once a graceful shutdown has begun; long loops can check it to stop taking work."""
    return _shutting_down


def clear_shutting_down() -> None:
    """Undo :func:`mark_shutting_down` (tests; a worker that forked from a stopping parent)."""
    global _shutting_down
    _shutting_down = False


# --- results ---------------------------------------------------------------------------------


class HealthResponse(NamedTuple):
    """A probe answer: the JSON body and the HTTP status code (200 or 503).

    A tuple, so ``return monitor.get_readiness_status()`` works unchanged in Flask
    and anything else that takes ``(body, status)``.
    """

    body: dict[str, Any]
    status_code: int

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json_bytes(self) -> bytes:
        """The body as JSON; values a check put in that JSON cannot encode become text.

        Never raises: what orjson refuses (a lone surrogate, a huge int, a raising
        ``__repr__``) is sanitized as log lines are, rather than answering 500.
        """
        try:
            return orjson.dumps(self.body, default=repr, option=orjson.OPT_NON_STR_KEYS)
        except Exception:
            return orjson.dumps(json_safe(self.body), option=orjson.OPT_NON_STR_KEYS)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_fallback_redactor: Redactor | None = None


def _redactor() -> Redactor:
    """The configured redactor (``OTEL_TDD_REDACT_KEYS`` included), else the default one."""
    global _fallback_redactor
    runtime = _runtime.RUNTIME
    if runtime is not None:
        return runtime.redactor
    if _fallback_redactor is None:
        _fallback_redactor = Redactor()
    return _fallback_redactor


def error_text(error: BaseException) -> str:
    """``Type: message`` of a failed check, redacted: driver errors quote DSNs and URLs."""
    try:
        text = f"{type(error).__name__}: {error}"
    except Exception:
        text = f"{type(error).__name__}: <unprintable>"
    return _redactor().text(text)


def safe_url(url: str) -> str:
    """A URL fit for a health answer: credentials in it masked."""
    return _redactor().text(url)


def critical_result(message: str, **extra: Any) -> dict[str, Any]:
    return {"status": CRITICAL, "message": message, **extra}


def normalize(name: str, raw: object) -> dict[str, Any]:
    """A check's return value as a result dict; anything malformed is critical, with the reason."""
    if not isinstance(raw, Mapping):
        return critical_result(
            f"check {name!r} returned {type(raw).__name__}, expected a dict with a 'status' "
            f"of {', '.join(STATUSES)}"
        )
    result = {str(key): value for key, value in raw.items()}
    status = result.get("status")
    normalized = status.strip().lower() if isinstance(status, str) else status
    if normalized not in STATUSES:
        # Redacted like a valid result: the check's other fields reach /health all the same,
        # and the bad status itself may be a secret.
        redacted = _redactor().mapping(result)
        shown = _redactor().text(repr(status))
        redacted.update(
            critical_result(
                f"check {name!r} returned status={shown}, expected one of {', '.join(STATUSES)}"
            )
        )
        return redacted
    result["status"] = normalized
    message = result.get("message")
    result["message"] = f"{name} is {normalized}" if message is None else str(message)
    # A check's own fields and message reach /health and the log: redacted as log data.
    redacted = _redactor().mapping(result)
    redacted["message"] = _redactor().text(redacted["message"])
    return redacted
