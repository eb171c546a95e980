"""Settings: standard OTEL_* variables as documented, our OTEL_TDD_* knobs, clear errors."""

from __future__ import annotations

import logging

import pytest

from otel_tdd.config import KNOBS, SIMPLE_KNOBS, ConfigError, load_settings

BAD_VALUES = [
    ("OTEL_TRACES_SAMPLER", "sometimes", "always_on"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.7", "0.0 to 1.0"),
    ("OTEL_TRACES_SAMPLER_ARG", "half", "0.0 to 1.0"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector:4318", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:port", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/protobuf, grpc"),
    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "udp", "http/protobuf, grpc"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", "key=value"),
    ("OTEL_TRACES_EXPORTER", "jaeger", "otlp, console, none"),
    ("OTEL_METRICS_EXPORTER", "none,otlp", "'none' alone"),
    ("OTEL_LOGS_EXPORTER", "zipkin", "otlp, console, none"),
    ("OTEL_SDK_DISABLED", "maybe", "true or false"),
    ("OTEL_TDD_LOG_LEVEL", "LOUD", "DEBUG"),
    ("OTEL_TDD_LOG_STREAM", "syslog", "stdout, stderr, none"),
    ("OTEL_TDD_CAPTURE_LOGGING", "2", "true or false"),
    ("OTEL_TDD_FRAMEWORK_LOGS", "sometimes", "true or false"),
    ("OTEL_TDD_LOG_SAMPLE_RATE", "-0.1", "0.0 to 1.0"),
    ("OTEL_TDD_PERFORMANCE_LOG_LEVEL", "verbose", "DEBUG"),
    ("OTEL_TDD_METRIC_CARDINALITY_LIMIT", "0", "from 1 to"),
    ("OTEL_TDD_METRIC_CARDINALITY_LIMIT", "many", "from 1 to"),
    ("OTEL_TDD_OPS_PORT", "70000", "0 to 65535"),
    ("OTEL_TDD_OPS_PORT", "http", "0 to 65535"),
    ("OTEL_TDD_ALERTMANAGER_URL", "alertmanager:9093", "scheme http or https"),
]
# The SDK's own knobs, which made configure() raise a bare ValueError (issue 14), and
# numbers that int()/float() take but no other SDK does.
SDK_BAD_VALUES = [
    ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "from 1"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-5", "from 1"),
    ("OTEL_BSP_SCHEDULE_DELAY", "-1", "from 1"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "from 1"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", "OTEL_BSP_MAX_QUEUE_SIZE (2048)"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "0", "from 1"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0", "above 0"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "-1", "above 0"),
    ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "abc", "0 or more"),
    ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "-1", "0 or more"),
    ("OTEL_PROPAGATORS", "bogus", "installed propagators"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "0", "above 0"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1", "above 0"),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", "above 0"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a b", "without spaces"),
    ("OTEL_TDD_OPS_HOST", "bad host!", "IP address"),
    ("OTEL_TDD_OPS_PORT", "8_080", "0 to 65535"),
    ("OTEL_TDD_OPS_PORT", "\u0668\u0660\u0668\u0660", "0 to 65535"),  # Arabic-Indic 8080
    ("OTEL_TDD_LOG_SAMPLE_RATE", "1e-400", "too small"),
    ("OTEL_TDD_LOG_SAMPLE_RATE", "nan", "0.0 to 1.0"),
    ("OTEL_TDD_METRIC_CARDINALITY_LIMIT", "1_000", "from 1 to"),
    ("OTEL_TDD_METRIC_CARDINALITY_LIMIT", "10000000000000000000", "from 1 to 1000000"),
    ("OTEL_METRICS_EXEMPLAR_FILTER", "bogus", "trace_based"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zip", "gzip, deflate, none"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes", "cumulative, delta"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "readable PEM file"),
]
BAD_VALUES += SDK_BAD_VALUES


@pytest.mark.parametrize(("variable", "value", "accepted"), BAD_VALUES)
def test_every_malformed_knob_names_variable_value_and_what_is_accepted(
    variable: str, value: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value})
    message = str(caught.value)
    assert variable in message
    assert repr(value) in message
    assert accepted in message
    assert caught.value.variable == variable


def test_every_knob_of_ours_is_documented_and_validated() -> None:
    table = {
        variable for _arg, variable, _parse in SIMPLE_KNOBS if variable.startswith("OTEL_TDD_")
    }
    assert table == set(KNOBS), "KNOBS (the --help list) and the validation table drifted"
    tested = {variable for variable, _value, _accepted in BAD_VALUES}
    untestable = {"OTEL_TDD_ENVIRONMENT", "OTEL_TDD_OPS_HOST", "OTEL_TDD_REDACT_KEYS"}  # free text
    assert set(KNOBS) - untestable <= tested


def test_arguments_win_over_environment_and_are_named_in_errors() -> None:
    settings = load_settings(
        {"sampler": "always_off"}, environ={"OTEL_TRACES_SAMPLER": "always_on"}
    )
    assert settings.sampler == "always_off"
    with pytest.raises(ConfigError, match=r"configure\(sampler_arg=...\)=1.5"):
        load_settings({"sampler": "traceidratio", "sampler_arg": 1.5}, environ={})
    with pytest.raises(ConfigError, match=r"configure\(colour=\.\.\.\)"):
        load_settings({"colour": "blue"}, environ={})


def test_embedded_default_needs_no_server() -> None:
    settings = load_settings(environ={})
    assert settings.traces_exporters == ()
    assert settings.logs_exporters == ()
    assert settings.metrics_exporters == ("prometheus",)
    assert settings.log_level == logging.INFO
    assert settings.sampler == "parentbased_always_on"
    assert not settings.otlp_enabled()


def test_an_otlp_endpoint_sends_all_three_signals_over_otlp() -> None:
    settings = load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert settings.traces_exporters == ("otlp",)
    assert settings.logs_exporters == ("otlp",)
    assert settings.metrics_exporters == ("prometheus", "otlp")
    assert settings.otlp_protocols == {s: "http/protobuf" for s in ("traces", "metrics", "logs")}


def test_per_signal_endpoint_and_protocol_variants() -> None:
    settings = load_settings(
        environ={
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        }
    )
    assert settings.traces_exporters == ("otlp",)
    assert settings.logs_exporters == ()  # only traces has an endpoint
    assert settings.otlp_protocols["traces"] == "grpc"
    assert settings.otlp_protocols["logs"] == "http/protobuf"


def test_exporter_variables_as_documented() -> None:
    settings = load_settings(
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "otlp",
        }
    )
    assert settings.traces_exporters == ("console",)
    assert settings.logs_exporters == ()
    assert settings.metrics_exporters == ("otlp",)


def test_sampler_arg_is_ignored_for_samplers_that_take_none() -> None:
    settings = load_settings(
        environ={"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.5"}
    )
    assert settings.sampler_arg is None
    ratio = load_settings(
        environ={
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert ratio.sampler_arg == 0.25


@pytest.mark.parametrize(("variable", "value", "accepted"), SDK_BAD_VALUES)
def test_configure_raises_config_error_never_a_bare_value_error(
    variable: str, value: str, accepted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import otel_tdd

    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    if variable == "OTEL_EXPORTER_OTLP_ENDPOINT":
        monkeypatch.setenv(variable, value)
    try:
        with pytest.raises(ConfigError) as caught:
            otel_tdd.configure("strict")
    finally:
        otel_tdd.shutdown()
    assert variable in str(caught.value) and accepted in str(caught.value)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("a=%E2%82", "valid percent-encoding"),
        ("authorization=Bearer%20s3cret%0D%0AX-Evil:%201", "control characters"),
        ("x-key=ok,bad name=v", "header names"),
    ],
)
def test_bad_otlp_headers_are_refused_without_showing_their_values(
    value: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OTEL_EXPORTER_OTLP_HEADERS": value})
    message = str(caught.value)
    assert "OTEL_EXPORTER_OTLP_HEADERS" in message and accepted in message
    assert "s3cret" not in message and "%E2" not in message


def test_good_otlp_headers_pass() -> None:
    load_settings(environ={"OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20def,x-tenant=t1"})


def test_an_endpoint_error_never_shows_a_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://me:hunter2@host"})
    assert "hunter2" not in str(caught.value) and "me:***@host" in str(caught.value)


def test_a_bad_propagator_does_not_break_importing_the_package() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import otel_tdd.structured_logging, otel_tdd\n"
        "try:\n    otel_tdd.configure('x')\n"
        "except otel_tdd.ConfigError as e:\n    print('CONFIG', e.variable)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "OTEL_PROPAGATORS": "bogus"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "CONFIG OTEL_PROPAGATORS"


@pytest.mark.parametrize(("variable", "value", "accepted"), SDK_BAD_VALUES[:6])
def test_otel_tdd_config_exits_non_zero_for_a_bad_sdk_knob(
    variable: str, value: str, accepted: str
) -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "config"],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert variable in result.stderr and accepted in result.stderr
