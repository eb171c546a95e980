"""configure() / shutdown(): the SDK composed as the standard variables say, nothing half-done."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import otel_tdd
from otel_tdd import lifecycle, providers
from otel_tdd.config import ConfigError
from otel_tdd.metrics import catalog
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import capture_telemetry, reset


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    reset()
    yield
    reset()


def test_configure_is_idempotent_and_thread_safe() -> None:
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(otel_tdd.configure())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(runtime) for runtime in results}) == 1
    assert otel_tdd.configure() is results[0]


def test_configure_again_with_other_settings_says_to_shut_down_first() -> None:
    otel_tdd.configure(service_name="a")
    with pytest.raises(ConfigError, match="shutdown"):
        otel_tdd.configure(service_name="b")
    assert otel_tdd.shutdown() is True
    assert otel_tdd.configure(service_name="b").settings.service_name == "b"


def test_invalid_setting_leaves_nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    before = trace.get_tracer_provider()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.7")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    with pytest.raises(ConfigError, match=r"OTEL_TRACES_SAMPLER_ARG='1\.7'"):
        otel_tdd.configure()
    assert not otel_tdd.is_configured()
    assert trace.get_tracer_provider() is before


def test_failure_while_building_shuts_down_what_was_built(monkeypatch: pytest.MonkeyPatch) -> None:
    shut_down: list[TracerProvider] = []
    real = providers._tracer_provider

    def recording(*args: Any) -> TracerProvider:
        provider = real(*args)
        original = provider.shutdown

        def shutdown() -> None:
            shut_down.append(provider)
            original()

        provider.shutdown = shutdown  # type: ignore[method-assign]
        return provider

    def failing(*_args: Any) -> Any:
        raise RuntimeError("log exporter exploded")

    monkeypatch.setattr(providers, "_tracer_provider", recording)
    monkeypatch.setattr(providers, "_logger_provider", failing)
    with pytest.raises(RuntimeError, match="exploded"):
        otel_tdd.configure()
    assert not otel_tdd.is_configured()
    assert len(shut_down) == 1, "the tracer provider built before the failure was not shut down"


def test_sdk_disabled_makes_spans_no_ops_but_keeps_json_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    with otel_tdd.correlation_context("u", "r"):
        assert not trace.get_current_span().is_recording()
        StructuredLogger("x").info("still logged")
    record = json.loads(stream.getvalue())
    assert record["message"] == "still logged"
    assert record["correlation_id"] is None
    assert record["user_id"] == "u"


def test_sampler_from_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    with capture_telemetry() as capture:
        with otel_tdd.correlation_context("u", "r"):
            StructuredLogger("x").info("unsampled")
        assert capture.spans() == []
        # The trace id still correlates the logs, sampled or not.
        assert capture.records()[0]["correlation_id"] is not None


def test_traceidratio_samples_about_its_share_of_root_spans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    traces = 4000
    with capture_telemetry() as capture:
        tracer = trace.get_tracer("sampling-test")
        decisions = []
        for _ in range(traces):
            with tracer.start_as_current_span("root") as root:
                with tracer.start_as_current_span("child") as child:
                    pass
            decisions.append((root.get_span_context().trace_flags.sampled, child))
        exported = capture.spans()
    share = sum(sampled for sampled, _ in decisions) / traces
    # Binomial: sd = sqrt(0.25 * 0.75 / 4000) = 0.0068; +-0.04 is about 6 sd.
    assert 0.21 <= share <= 0.29, share
    assert len([s for s in exported if s.name == "root"]) == sum(d for d, _ in decisions)
    # The trace id decides, so a child of the same trace gets the root's decision.
    for sampled, child in decisions:
        assert child.get_span_context().trace_flags.sampled == sampled


def test_parentbased_traceidratio_follows_the_remote_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    propagator = TraceContextTextMapPropagator()
    kept = {True: 0, False: 0}
    per_parent = 500
    with capture_telemetry():
        tracer = trace.get_tracer("sampling-test")
        for n in range(2 * per_parent):
            parent_sampled = n % 2 == 0
            flags = "01" if parent_sampled else "00"
            # A traceparent as an upstream service sends it. Small trace ids: the ratio
            # alone would keep them all, so the unsampled ones show the parent decides.
            header = f"00-{n + 1:032x}-{n + 1:016x}-{flags}"
            parent = propagator.extract({"traceparent": header})
            with tracer.start_as_current_span("server", context=parent) as span:
                kept[parent_sampled] += span.get_span_context().trace_flags.sampled
        roots = []
        for _ in range(4000):
            with tracer.start_as_current_span("root") as root:
                roots.append(root.get_span_context().trace_flags.sampled)
    assert kept == {True: per_parent, False: 0}  # the parent's decision, whatever the ratio
    assert 0.21 <= sum(roots) / len(roots) <= 0.29  # roots still at the ratio


def test_resource_takes_service_name_from_argument_over_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,team=tdd")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    runtime = otel_tdd.configure()
    assert runtime.tracer_provider is not None
    attributes = runtime.tracer_provider.resource.attributes
    assert attributes["service.name"] == "from-env"
    assert attributes["team"] == "tdd"
    assert attributes["telemetry.distro.name"] == "otel-tdd"
    otel_tdd.shutdown()
    runtime = otel_tdd.configure(service_name="from-arg")
    assert runtime.tracer_provider is not None
    assert runtime.tracer_provider.resource.attributes["service.name"] == "from-arg"


def test_prometheus_text_carries_the_seed_catalog_names() -> None:
    otel_tdd.configure()
    catalog.epics_created.add(2, {"project_type": "web"})
    catalog.tasks_completed.add(1, {"project_type": "web"})
    catalog.focus_sessions.add(1)
    catalog.response_time.record(0.2, {"endpoint": "/epics", "method": "POST", "status": "200"})
    catalog.database_query_duration.record(0.01, {"operation": "select"})
    catalog.memory_usage.set(1024)
    catalog.active_users.set(3)
    catalog.security_events.add(1, {"event_type": "x"})
    text = otel_tdd.render_prometheus().decode()
    for name in (
        'tdd_epics_created_total{otel_scope_name="otel_tdd"',
        "tdd_tasks_completed_total{",
        "tdd_focus_sessions_total{",
        'tdd_response_time_seconds_bucket{endpoint="/epics"',
        "tdd_response_time_seconds_count{",
        "tdd_database_query_duration_seconds_sum{",
        "tdd_memory_usage_bytes{",
        "tdd_active_users{",
        "tdd_security_events_total{",
    ):
        assert name in text, name
    assert 'project_type="web"} 2.0' in text
    assert 'le="0.25"' in text  # seconds buckets, not the SDK's millisecond defaults


def test_shutdown_is_safe_twice_and_removes_our_handler() -> None:
    import logging

    from otel_tdd.structured_logging import JsonLogHandler

    otel_tdd.configure()
    assert any(isinstance(h, JsonLogHandler) for h in logging.getLogger().handlers)
    assert otel_tdd.shutdown() is True
    assert otel_tdd.shutdown() is True
    assert not any(isinstance(h, JsonLogHandler) for h in logging.getLogger().handlers)


def test_first_use_configures_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    StructuredLogger("lazy").info("hello")
    assert otel_tdd.is_configured()
    assert json.loads(capsys.readouterr().out)["message"] == "hello"


def test_records_after_shutdown_still_print_but_nothing_is_reconfigured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    otel_tdd.configure()
    assert otel_tdd.shutdown() is True
    capsys.readouterr()
    StructuredLogger("late").info("in a finally block")
    assert json.loads(capsys.readouterr().out)["message"] == "in a finally block"
    assert not otel_tdd.is_configured()
    with otel_tdd.correlation_context("u", "r"):
        assert not trace.get_current_span().is_recording()
    assert otel_tdd.configure(service_name="again").settings.service_name == "again"
