"""Property tests: no generated secret reaches any output; innocent keys stay as they are.

Secrets hide under keys from a spelling generator (case, ``_ - .`` and space
separators, camelCase, prefixes and suffixes) in nested dicts, lists, tuples, sets,
dataclasses, attrs classes, pydantic models, named tuples, header pairs (str and
ASGI bytes) and ``dict.items()`` views, and in free text placed in messages,
``%``-args, exceptions and tracebacks. Every output is checked: the stdout lines,
the OTLP log and span encodings (exactly what the OTLP exporters send), ``/health``
and the Alertmanager payload. 15,500 cases, derandomized so CI is repeatable: 10,500
checked end to end in every output (payloads and texts), 4,000 key spellings on the
redactor and 1,000 innocent-key cases (docs/reliability.md "Hostile input and secrets").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import attrs
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import Tracer

from otel_tdd import _runtime
from otel_tdd.alerting import AlertmanagerClient
from otel_tdd.health_check import HealthMonitor
from otel_tdd.performance import performance_tracked
from otel_tdd.redaction import REDACTED, Redactor
from otel_tdd.structured_logging import JsonLogHandler, StructuredLogger
from otel_tdd.testing import Capture, capture_telemetry


def cases(count: int) -> Callable[[Any], Any]:
    """Hypothesis settings for CI: fixed examples (derandomized, no database), no deadline."""
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- key spellings ---------------------------------------------------------------------------

SECRET_WORDS: list[tuple[str, ...]] = [
    ("password",),
    ("passwd",),
    ("pwd",),
    ("pass",),
    ("passphrase",),
    ("secret",),
    ("token",),
    ("api", "key"),
    ("apikey",),
    ("auth",),
    ("authorization",),
    ("bearer",),
    ("credentials",),
    ("cookie",),
    ("set", "cookie"),
    ("sessionid",),
    ("jsessionid",),
    ("phpsessid",),
    ("connect", "sid"),
    ("private", "key"),
    ("secret", "key"),
    ("access", "key"),
    ("encryption", "key"),
    ("dsn",),
    ("database", "url"),
    ("connection", "string"),
    ("otp",),
    ("pin",),
    ("mfa", "code"),
    ("signature",),
    ("jwt",),
    ("credit", "card"),
    ("card", "number"),
    ("cvv",),
    ("cvc",),
    ("ssn",),
]
SECRET_PREFIXES = ["db", "user", "x", "aws", "old", "new", "my", "client", "refresh", "stripe"]
SECRET_SUFFIXES = ["value", "hash", "2", "old", "raw", "header", "b64"]
# Keys that hold a secret word only as part of a longer word, or not at all.
INNOCENT_WORDS: list[tuple[str, ...]] = [
    ("max", "tokens"),
    ("prompt", "tokens"),
    ("completion", "tokens"),
    ("tokens",),
    ("tokenizer",),
    ("secretary",),
    ("passenger",),
    ("passport",),
    ("bypass",),
    ("compass",),
    ("author",),
    ("authority",),
    ("pinned",),
    ("spinner",),
    ("keyboard",),
    ("monkey",),
    ("public", "key"),
    ("key",),
    ("card", "type"),
    ("session", "id"),
    ("user", "id"),
    ("name",),
    ("api", "version"),
    ("signed",),
]
INNOCENT_PREFIXES = ["total", "max", "user", "request", "item"]


@st.composite
def spellings(
    draw: st.DrawFn, words_from: list[tuple[str, ...]], affixes: bool = True, spaces: bool = True
) -> str:
    """One spelling of a key: its words with prefixes/suffixes, in some case and style."""
    words = list(draw(st.sampled_from(words_from)))
    if affixes:
        prefix = SECRET_PREFIXES if words_from is SECRET_WORDS else INNOCENT_PREFIXES
        if draw(st.booleans()):
            words.insert(0, draw(st.sampled_from(prefix)))
        if words_from is SECRET_WORDS and draw(st.booleans()):
            words.append(draw(st.sampled_from(SECRET_SUFFIXES)))
    style = draw(st.sampled_from(["sep", "camel", "pascal"]))
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    separator = draw(st.sampled_from(["_", "-", ".", " "] if spaces else ["_", "-", "."]))
    case = draw(st.sampled_from([str.lower, str.upper, str.capitalize]))
    return separator.join(case(w) for w in words)


secret_keys = spellings(SECRET_WORDS)
bare_secret_keys = spellings(SECRET_WORDS, spaces=False)  # usable unquoted in free text
innocent_keys = spellings(INNOCENT_WORDS)
# Secrets are long random tokens with a marker, so any leak is easy to find in the output.
# They hold punctuation people put in passwords (/ @ : ; # ?), and spaces where the shape
# allows (quoted values, structured data): each piece between them starts with a marker of
# its own (fragments()), so a secret masked only up to its first ; or @ is still caught.
_PIECE = st.text(alphabet=string.ascii_letters + string.digits, min_size=4, max_size=10)
_FIRST = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=16)
MARK = "Q_j"  # starts every later piece; in no key, innocent value or filler word drawn here


def _punctuated(separators: str) -> st.SearchStrategy[str]:
    def join(parts: tuple[str, list[tuple[str, str]]]) -> str:
        first, rest = parts
        return "SECRET" + first + "".join(sep + MARK + piece for sep, piece in rest)

    rest = st.lists(st.tuples(st.sampled_from(list(separators)), _PIECE), max_size=2)
    return st.tuples(_FIRST, rest).map(join)


token_values = _punctuated("-._")  # token68: Bearer/Basic credentials
jwt_parts = _punctuated("-_")  # base64url: a JWT's signature
secret_values = _punctuated("/@:;#?")  # unquoted values, URL passwords, bare keys
spaced_values = _punctuated("/@:;#? ")  # quoted values and structured data


def fragments(secret: str) -> list[str]:
    """The marked pieces of a secret: each must be absent from every output."""
    first, *rest = secret.split(MARK)
    return [secret, first[:-1] if rest else first, *(MARK + piece[:4] for piece in rest)]


innocent_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(alphabet=string.ascii_letters + string.digits, max_size=12),
)


# --- structured payloads ---------------------------------------------------------------------


@dataclasses.dataclass
class DataclassLogin:
    user: str
    password: str
    extra: Any = None


@attrs.define
class AttrsSession:
    name: str
    auth_token: str
    extra: Any = None


class PydanticDatabase(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    host: str
    databaseUrl: str
    extra: Any = None


class TupleClient(NamedTuple):
    label: str
    client_secret: str
    extra: Any


KINDS = [
    "dict",
    "list",
    "tuple",
    "set",
    "headers",
    "asgi",
    "items",
    "dataclass",
    "attrs",
    "pydantic",
    "namedtuple",
]


@st.composite
def payloads(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A nested payload and the secrets hidden in it, at least one."""
    secrets: list[str] = []

    def secret() -> str:
        value = draw(spaced_values)
        secrets.append(value)
        return value

    def node(depth: int) -> Any:
        if depth >= 5 or draw(st.integers(0, 3)) == 0:
            return {draw(secret_keys): secret()} if draw(st.booleans()) else draw(innocent_scalars)
        kind = draw(st.sampled_from(KINDS))
        width = draw(st.integers(1, 3))
        if kind == "dict":
            out: dict[str, Any] = {}
            for _ in range(width):
                if draw(st.booleans()):
                    out[draw(secret_keys)] = secret()
                else:
                    out[draw(innocent_keys)] = node(depth + 1)
            return out
        if kind in ("list", "tuple"):
            items = [node(depth + 1) for _ in range(width)]
            return items if kind == "list" else tuple(items)
        if kind == "set":  # sets hold hashable scalars: no key, so no secret
            return frozenset(draw(st.text(string.ascii_letters, max_size=8)) for _ in range(width))
        if kind == "headers":
            value = secret()
            shown = draw(
                st.sampled_from([value, f"Bearer {value}", f"Basic {value}", f"token {value}"])
            )
            return [("Content-Type", "text/plain"), (draw(secret_keys), shown)]
        if kind == "asgi":
            return [(b"accept", b"*/*"), (draw(secret_keys).encode(), secret().encode())]
        if kind == "items":
            return {draw(secret_keys): secret(), "n": 1}.items()
        if kind == "dataclass":
            return DataclassLogin("bob", secret(), node(depth + 1))
        if kind == "attrs":
            return AttrsSession("s", secret(), node(depth + 1))
        if kind == "pydantic":
            return PydanticDatabase(host="db", databaseUrl=secret(), extra=node(depth + 1))
        return TupleClient("c", secret(), node(depth + 1))

    payload = {draw(secret_keys): secret()}
    for _ in range(draw(st.integers(0, 3))):
        payload[draw(innocent_keys)] = node(1)
    return payload, secrets


# --- free text -------------------------------------------------------------------------------


def _luhn_complete(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


@st.composite
def free_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(text, the secret in it): a secret in one of the shapes the free-text rules know."""
    value = draw(secret_values)
    shape = draw(st.integers(0, 10))
    if shape <= 2:
        key = draw(bare_secret_keys)
        template = draw(
            st.sampled_from(
                [
                    "{k}={v}",
                    "{k}: {v}",
                    "{k} = {v}",
                    "{k}='{s}'",
                    '{k}="{s}"',
                    "?{k}={v}&page=2",
                    "--{k}={v}",
                ]
            )
        )
        if "{s}" in template:
            value = draw(spaced_values)
        text = template.format(k=key, v=value, s=value)
    elif shape == 3:
        value = draw(spaced_values)
        key = draw(secret_keys)
        template = draw(
            st.sampled_from(
                [
                    '{{"{k}": "{v}"}}',
                    "{{'{k}': '{v}'}}",
                    "{{b'{k}': b'{v}'}}",  # a bytes dict's repr (ASGI scopes)
                    "headers=[('Accept', '*/*'), ('{k}', '{v}')]",  # a header list's repr
                ]
            )
        )
        text = template.format(k=key, v=value)
    elif shape == 4:
        text = draw(st.sampled_from(["Authorization: Bearer {v}", "auth header Basic {v}="]))
        text = text.format(v=draw(st.sampled_from([value, draw(token_values)])))
        value = text.split()[-1].rstrip("=")
    elif shape == 10:  # a scheme other than Bearer/Basic after an authorization-like key
        key = draw(st.sampled_from(["Authorization", "authorization", "Proxy-Authorization"]))
        scheme = draw(st.sampled_from(["token", "ApiKey", "Digest", "Negotiate", "NTLM", "Bearer"]))
        separator = draw(st.sampled_from([": ", "=", " = "]))
        text = f"{key}{separator}{scheme} {value}"
    elif shape == 5:
        scheme = draw(st.sampled_from(["postgresql", "https", "redis", "amqp"]))
        text = f"{scheme}://app:{value}@db.internal:5432/app"
    elif shape == 6:
        value = draw(jwt_parts)
        text = f"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.{value}"
    elif shape == 7:
        value = "AKIA" + draw(
            st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16)
        )
        text = f"aws key {value} used"
    elif shape == 8:
        body = "4" + draw(st.text(string.digits, min_size=14, max_size=14))
        digits = _luhn_complete(body)
        separator = draw(st.sampled_from(["", " ", "-"]))
        value = separator.join(digits[i : i + 4] for i in range(0, 16, 4))
        text = f"card {value} charged"
    else:
        key = draw(secret_keys)
        text = f"{key.replace(' ', '_')}: {value}"
    words = st.text(alphabet=string.ascii_letters + " ", max_size=20)
    return f"{draw(words)} {text} {draw(words)}", value


# --- the outputs -----------------------------------------------------------------------------


class RecordingAlertmanager(AlertmanagerClient):
    """Keeps what would be POSTed (the client's JSON body) instead of sending it."""

    def __init__(self) -> None:  # no sender thread: nothing leaves the process
        self.bodies: list[bytes] = []

    def submit(self, payload: dict[str, Any]) -> bool:
        self.bodies.append(json.dumps([payload]).encode())
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        return


@dataclasses.dataclass
class Harness:
    capture: Capture
    alertmanager: RecordingAlertmanager
    stdlib: logging.Logger
    logger: StructuredLogger
    tracer: Tracer

    def reset(self) -> None:
        self.capture.clear()
        self.alertmanager.bodies.clear()

    def outputs(self, *extra: bytes) -> list[bytes]:
        return [
            self.capture.stream.getvalue(),
            encode_logs(self.capture.otel_logs()).SerializeToString(),
            encode_spans(self.capture.spans()).SerializeToString(),
            *self.alertmanager.bodies,
            *extra,
        ]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """One configuration for all examples (configure per example would cost 100x)."""
    with capture_telemetry(alertmanager_url="http://127.0.0.1:9") as capture:
        recorder = RecordingAlertmanager()
        _runtime.current().alertmanager = recorder
        stdlib = logging.Logger("props.stdlib", logging.DEBUG)  # outside pytest's reach
        stdlib.propagate = False
        stdlib.addHandler(JsonLogHandler())
        provider = _runtime.current().tracer_provider
        assert provider is not None
        tracer = provider.get_tracer("props")
        yield Harness(capture, recorder, stdlib, StructuredLogger("props"), tracer)
    # The figures docs/reliability.md quotes (shown with -s).
    print(f"\nredaction properties: {json.dumps(CHECKED)}")


def health_body(check: Callable[[], Any]) -> bytes:
    monitor = HealthMonitor()
    monitor.register_check("probe", check, critical=False)
    return monitor.get_detailed_status().json_bytes()


# End to end (every output checked): 4,000 payloads + 6,500 texts = 10,500 cases.
PAYLOAD_CASES = 4_000
TEXT_CASES = 6_500
CHECKED = {"payload_examples": 0, "payload_secrets": 0, "text_examples": 0, "outputs_checked": 0}


def assert_no_secret(secrets: list[str], blobs: list[bytes]) -> None:
    CHECKED["outputs_checked"] += len(blobs)
    for secret in secrets:
        for piece in fragments(secret):
            for blob in blobs:
                assert piece.encode() not in blob, (piece, secret)


# A valid status, and invalid ones (the check's result is reported critical, fields and all).
HEALTH_STATUSES = ["warning", "degraded", "", "OK!"]


@pytest.mark.timeout(900)
@cases(PAYLOAD_CASES)
@given(payloads(), st.sampled_from(HEALTH_STATUSES))
def test_no_secret_under_a_secret_key_reaches_any_output(
    harness: Harness, case: tuple[dict[str, Any], list[str]], status: str
) -> None:
    payload, secrets = case
    harness.reset()
    log = harness.logger
    log.info("payload", payload)
    harness.stdlib.warning("extra", extra={"payload": payload})
    # In a span, so the span events they add are in the span encoding checked below.
    with harness.tracer.start_as_current_span("probe"):
        log.security_event("login_failure", payload)
        log.alert("SecretsProbe", payload)
    with log.performance_context("op") as perf:
        perf.update(payload)
    body = health_body(lambda: {"status": status, "detail": payload})
    records = harness.capture.records(validate=False)
    # Every path wrote (the absence below is not vacuous): the three log calls, the
    # performance record, the alert record and the health change record.
    assert len(records) >= 5 and len(harness.alertmanager.bodies) == 1
    assert records[0]["data"] != {}
    CHECKED["payload_examples"] += 1
    CHECKED["payload_secrets"] += len(set(secrets))
    assert_no_secret(secrets, harness.outputs(body))


_current_text = {"value": ""}


@performance_tracked
def _failing_operation() -> None:
    raise ValueError(_current_text["value"])


@pytest.mark.timeout(900)
@cases(TEXT_CASES)
@given(free_texts(), st.sampled_from(HEALTH_STATUSES))
def test_no_secret_in_free_text_reaches_any_output(
    harness: Harness, case: tuple[str, str], status: str
) -> None:
    text, secret = case
    harness.reset()
    log = harness.logger
    log.info(text)
    harness.stdlib.warning("request: %s (%r)", text, text)
    try:
        raise ConnectionError(text)
    except ConnectionError:
        log.exception("failed")
        harness.stdlib.exception("failed: %s", text)
    with pytest.raises(ValueError), log.performance_context("op"):
        raise ValueError(text)
    _current_text["value"] = text
    with pytest.raises(ValueError):
        _failing_operation()
    with harness.tracer.start_as_current_span("probe"):
        log.security_event(text)
        log.alert(text, {"note": text})

    def failing_check() -> Any:
        raise ConnectionError(text)

    body = health_body(failing_check)
    body += health_body(lambda: {"status": status, "message": text, "note": text})
    assert len(harness.alertmanager.bodies) == 1
    CHECKED["text_examples"] += 1
    assert_no_secret([secret], harness.outputs(body))


@pytest.mark.timeout(900)
@cases(4_000)
@given(secret_keys, spaced_values)
def test_every_spelling_of_a_secret_key_is_redacted(key: str, value: str) -> None:
    redactor = Redactor()  # fresh: no verdict cached from another example
    assert redactor.is_secret_key(key), key
    masked = redactor.mapping({key: value, "n": [(key, value)]})
    assert masked[key] == REDACTED
    # The pair's value is masked; its name is text and may be masked too ("bearer x").
    ((_name, pair_value),) = masked["n"]
    assert pair_value == REDACTED


@pytest.mark.timeout(900)
@cases(1_000)
@given(st.dictionaries(innocent_keys, innocent_scalars, min_size=1, max_size=6))
def test_innocent_keys_stay_unmasked(harness: Harness, data: dict[str, Any]) -> None:
    harness.reset()
    harness.logger.info("usage", data)
    (record,) = harness.capture.records(validate=False)
    assert record["data"] == data
    # Extra configured words match whole words too: "a" or "id" does not mask "name".
    assert Redactor(["a", "i", "na"]).mapping(data) == data
