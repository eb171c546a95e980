"""otel-tdd's lean instrumentor options reach instrument(), and the caller's own win."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from otel_tdd.auto import bootstrap, lean


class _EntryPoint:
    def __init__(self, name: str, calls: list[dict[str, Any]]) -> None:
        self.name = name
        self.value = f"fake:{name}"
        self._calls = calls

    def load(self) -> type:
        calls = self._calls

        class Instrumentor:
            is_instrumented_by_opentelemetry = True

            def instrument(self, **kwargs: Any) -> None:
                calls.append(kwargs)

        return Instrumentor


def test_fastapi_is_activated_without_the_asgi_send_and_receive_spans() -> None:
    calls: list[dict[str, Any]] = []
    bootstrap._activate(_EntryPoint("fastapi", calls), {})  # type: ignore[arg-type]
    assert calls[0]["exclude_spans"] == ["receive", "send"]


def test_an_option_the_caller_passes_wins_and_other_instrumentors_get_none() -> None:
    calls: list[dict[str, Any]] = []
    bootstrap._activate(_EntryPoint("fastapi", calls), {"exclude_spans": None})  # type: ignore[arg-type]
    bootstrap._activate(_EntryPoint("flask", calls), {})  # type: ignore[arg-type]
    assert calls[0]["exclude_spans"] is None
    assert "exclude_spans" not in calls[1]


def test_every_lean_option_is_one_the_instrumentor_documents() -> None:
    # exclude_spans is FastAPIInstrumentor.instrument_app's documented parameter; the
    # entry point's instrument() passes it on (a renamed option would be ignored silently).
    import inspect

    assert set(lean.LEAN_OPTIONS) == {"fastapi"}
    parameters = inspect.signature(FastAPIInstrumentor.instrument_app).parameters
    assert set(lean.LEAN_OPTIONS["fastapi"]) <= set(parameters)
