"""How the bootstrap activates instrumentors: never noisy, never half-initialised.

The process-level proofs (a real ``otel-tdd run``) are in
tests/compat/test_web_wrapper_start.py; these pin the rules one by one.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import DependencyConflict, DependencyConflictError

from otel_tdd.auto import bootstrap
from otel_tdd.auto.run import LIST_FLAG, parse_args


class FakeEntryPoint:
    """Enough of an EntryPoint for _activate: a name and a load() that returns a class."""

    def __init__(
        self, name: str, instrument: Callable[..., None], on_load: Callable[[], None] = lambda: None
    ):
        self.name = name
        self.value = f"fake:{name}"
        self._instrument = instrument
        self._on_load = on_load

    def load(self) -> type:
        self._on_load()
        instrument = self._instrument

        class Instrumentor:
            is_instrumented_by_opentelemetry = True

            def instrument(self, **kwargs: Any) -> None:
                instrument(**kwargs)

        return Instrumentor


def activate(entry_point: FakeEntryPoint) -> None:
    bootstrap._activate(entry_point, {})  # type: ignore[arg-type]


def test_an_activation_fired_inside_another_waits_until_that_one_has_finished() -> None:
    order: list[str] = []
    inner = FakeEntryPoint("inner", lambda **_: order.append("inner instrumented"))
    # Loading the outer one imports a library whose hook fires the inner one.
    outer = FakeEntryPoint(
        "outer", lambda **_: order.append("outer instrumented"), on_load=lambda: activate(inner)
    )
    activate(outer)
    assert order == ["outer instrumented", "inner instrumented"]
    assert bootstrap.STATUS["inner"] == ("active", "")


def test_an_absent_library_is_one_debug_record_and_the_reason_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def conflict(**kwargs: Any) -> None:
        assert kwargs["raise_exception_on_conflict"] is True
        raise DependencyConflictError(DependencyConflict("absentlib >= 1.0", None))

    with caplog.at_level(logging.DEBUG, logger="otel_tdd.auto"):
        activate(FakeEntryPoint("absent", conflict))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, f"instrumentor absent skipped: {bootstrap.STATUS['absent'][1]}")
    ]
    assert bootstrap.STATUS["absent"][0] == "skipped"
    assert "absentlib >= 1.0" in bootstrap.STATUS["absent"][1]


def test_a_failing_instrumentor_is_skipped_at_debug_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(**_: Any) -> None:
        raise RuntimeError("bug")

    with caplog.at_level(logging.DEBUG, logger="otel_tdd.auto"):
        activate(FakeEntryPoint("failing", fail))
    assert bootstrap.STATUS["failing"] == ("skipped", "failed: RuntimeError('bug')")
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("flask", "opentelemetry.instrumentation.flask:FlaskInstrumentor", "flask"),
        ("httpx2", "opentelemetry.instrumentation.httpx:HTTPX2ClientInstrumentor", "httpx"),
        ("django", "opentelemetry.instrumentation.django:DjangoInstrumentor", "django"),
        ("urllib", "opentelemetry.instrumentation.urllib:URLLibInstrumentor", "urllib.request"),
        ("no-such-thing", "somewhere.else:Instrumentor", None),
    ],
)
def test_the_import_that_activates_each_entry_point(
    name: str, value: str, expected: str | None
) -> None:
    entry_point = EntryPoint(name, value, "opentelemetry_instrumentor")
    assert bootstrap.trigger(entry_point) == expected


def test_after_call_activates_once_after_the_first_return() -> None:
    calls: list[str] = []
    module = types.SimpleNamespace(setup=lambda: calls.append("setup"))
    bootstrap._after_call("setup", lambda _module: calls.append("activated"), module)
    module.setup()
    module.setup()
    assert calls == ["setup", "activated", "setup"]


def test_list_instrumentations_needs_no_command() -> None:
    assert parse_args([LIST_FLAG]) == ({LIST_FLAG: ""}, [])
    assert parse_args(["--disabled-instrumentations", "flask", LIST_FLAG]) == (
        {"--disabled-instrumentations": "flask", LIST_FLAG: ""},
        [],
    )
