"""Logger fuzz: arbitrary Python objects through StructuredLogger and stdlib logging.

Recursive containers, raising dunders, lone surrogates, line separators, huge ints,
strings and containers: nothing raises into the app, each call gives exactly one
valid JSON line within ``MAX_RECORD_BYTES`` (and one OTLP record whose batch still
encodes), and a record that cannot be written is counted in
``tdd_telemetry_dropped_total{signal="logs"}``, never silently gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

from otel_tdd import lifecycle
from otel_tdd.export_accounting import dropped_totals
from otel_tdd.logs.record import MAX_RECORD_BYTES
from otel_tdd.structured_logging import JsonLogHandler, StructuredLogger
from otel_tdd.testing import Capture, capture_telemetry, log_record_schema


def cases(count: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- hostile objects -------------------------------------------------------------------------


class Raising:
    """Every dunder a logger might call raises (repr, str, format, bool, len, iter, eq)."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("iter")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    __hash__ = object.__hash__


class NonStrRepr:
    def __repr__(self) -> Any:
        return 42

    __str__ = __repr__


class HugeRepr:
    def __repr__(self) -> str:
        return "r" * 2_000_000


class RaisingMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("iter")

    def __len__(self) -> int:
        return 3


class RaisingError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str of an exception")


def _self_list() -> list[Any]:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    return cyclic


def _self_dict() -> dict[str, Any]:
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic
    cyclic["again"] = [cyclic, cyclic]
    return cyclic


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# Built once: the expensive shapes, picked by the strategy rather than generated.
HUGE: list[Callable[[], Any]] = [
    lambda: "x" * 300_000,
    lambda: list(range(200_000)),
    lambda: {str(i): i for i in range(50_000)},
    lambda: 10**5000,
    lambda: -(2**70),
    lambda: _deep(10_000),
    lambda: b"\xff\xfe" * 100_000,
    _self_list,
    _self_dict,
]
ODD: list[Callable[[], Any]] = [
    Raising,
    NonStrRepr,
    HugeRepr,
    RaisingMapping,
    lambda: RaisingError("x"),
    lambda: ValueError("v\udc80"),
    object,
    lambda: {1, 2, 3},
    lambda: float("nan"),
    lambda: float("inf"),
    {"a": 1}.items,
    {"a": 1}.keys,
    lambda: iter([1, 2]),
    lambda: type,
]

characters = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates
    st.sampled_from(["\n", "\r", "\x00", "\u2028", "\u2029", "\u0085", '"', "\\", "%"]),
)
texts = st.text(alphabet=characters, max_size=40)
scalars = st.one_of(
    texts,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(max_size=20),
    st.sampled_from(ODD).map(lambda make: make()),
)
keys = st.one_of(texts, st.integers(), st.none(), st.tuples(st.integers(), texts))
objects = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=5),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=20,
)
# One example in ten is huge: each costs megabytes of repr and rendering.
anything = st.integers(0, 9).flatmap(
    lambda pick: st.sampled_from(HUGE).map(lambda make: make()) if pick == 0 else objects
)


def _calls(log: StructuredLogger, stdlib: logging.Logger, obj: Any, text: str) -> int:
    """Log ``obj`` every way an app might; returns how many records that is."""
    log.info(text, {"value": obj, text: obj})
    log.warning(obj)
    log.error(text, obj)  # data that is not a mapping at all
    stdlib.warning("v=%s r=%r " + text, obj, obj, extra={"value": obj})
    stdlib.info(obj)
    stdlib.error("bad %d %s", obj)  # a broken %-format with a hostile argument
    try:
        raise RaisingError(text) if isinstance(obj, int) else ValueError(obj)
    except Exception:
        stdlib.exception(text)
        log.exception(text)
    return 8


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    with capture_telemetry() as captured:
        yield captured


def _stdlib_logger() -> logging.Logger:
    """Our handler only, outside ``getLogger``'s registry (pytest adds its own handlers,
    which re-raise format errors, to registered loggers)."""
    logger = logging.Logger("fuzz.stdlib", logging.DEBUG)
    logger.propagate = False
    logger.addHandler(JsonLogHandler())
    return logger


STDLIB = _stdlib_logger()
SCHEMA = jsonschema.Draft202012Validator(log_record_schema())  # built once, not per line


@cases(1_500)
@given(anything, texts)
def test_any_object_gives_one_valid_bounded_line_per_record_and_never_raises(
    capture: Capture, obj: Any, text: str
) -> None:
    capture.clear()
    expected = _calls(StructuredLogger("fuzz"), STDLIB, obj, text)
    lines = capture.lines()
    assert len(lines) == expected
    for line in lines:
        assert len(line.encode()) <= MAX_RECORD_BYTES
        SCHEMA.validate(json.loads(line))
    otel_records = capture.otel_logs()
    assert len(otel_records) == expected
    assert encode_logs(otel_records).SerializeToString()  # the OTLP batch still encodes


class FlakyStream:
    """A stdout whose writes fail when told to (a full disk, a closed pipe)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.fail = False

    def write(self, line: bytes) -> int:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.lines.append(line)
        return len(line)

    def flush(self) -> None:
        return


@pytest.fixture(scope="module")
def flaky() -> Iterator[FlakyStream]:
    stream = FlakyStream()
    lifecycle.shutdown()
    lifecycle.configure(
        _hooks=lifecycle.TestHooks(stream=stream),  # type: ignore[arg-type]
        service_name="fuzz",
        log_level="DEBUG",
    )
    try:
        yield stream
    finally:
        lifecycle.shutdown()


@cases(300)
@given(anything, texts, st.lists(st.booleans(), min_size=8, max_size=8))
def test_a_record_that_cannot_be_written_is_counted_never_raised(
    flaky: FlakyStream, obj: Any, text: str, failures: list[bool]
) -> None:
    flaky.lines.clear()
    before = dropped_totals().get("logs", 0)
    log = StructuredLogger("fuzz")
    outcomes = iter(failures[4:])

    class Switching(logging.Handler):
        """Runs before ours on each stdlib record and decides whether its write fails."""

        def emit(self, record: logging.LogRecord) -> None:
            flaky.fail = next(outcomes)

    switch = Switching()
    STDLIB.handlers.insert(0, switch)
    try:
        for fail in failures[:4]:
            flaky.fail = fail
            log.info(text, {"value": obj})
        STDLIB.warning("v=%s", obj)
        STDLIB.info(obj)
        STDLIB.error("bad %d", obj)
        STDLIB.warning(text, extra={"value": obj})
    finally:
        STDLIB.handlers.remove(switch)
        flaky.fail = False
    lost = dropped_totals().get("logs", 0) - before
    assert lost == sum(failures)  # each failed write counted once
    assert len(flaky.lines) == 8 - lost  # and every other record written, once
