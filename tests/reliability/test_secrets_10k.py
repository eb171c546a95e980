"""10,000 generated payloads: no secret value in stdout, the OTLP bytes, or an alert payload.

The strategies are the unit suite's (tests/unit/test_redaction_and_robustness.py,
300 examples there): nested payloads with secrets under secret-like keys at any
depth. Here otel-tdd is configured once and each example is written through
every path -- ``StructuredLogger.info``, ``security_event``, a stdlib record with
``extra=``, a ``performance_context`` -- then checked in three outputs: the JSON
lines on stdout, the OTLP protobuf the exporters would send (the SDK's own
encoder over what reached the processors), and the Alertmanager payload built
from the same data.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from otel_tdd.alerting import build_payload
from otel_tdd.redaction import Redactor
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import Capture, capture_telemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_redaction_and_robustness import payloads

pytestmark = pytest.mark.integration

EXAMPLES = 10_000
checked = {"examples": 0, "secrets": 0}


@pytest.fixture(scope="module")
def capture() -> Any:
    with capture_telemetry(log_level="INFO") as running:
        yield running


def outputs_of(capture: Capture, payload: dict[str, Any]) -> list[bytes]:
    capture.clear()
    logger = StructuredLogger("prop")
    logger.info("payload", payload)
    logger.security_event("login", payload)
    logging.getLogger("stdlib").warning("extra", extra={"payload": payload, **payload})
    with logger.performance_context("op") as perf:
        perf.update(payload)
    stdout = capture.stream.getvalue()
    otlp_spans = encode_spans(capture.spans()).SerializeToString()
    otlp_logs = encode_logs(capture.otel_logs()).SerializeToString()
    alert = json.dumps(
        build_payload("A", Redactor().mapping(payload), "warning", ["slack"], "svc")
    ).encode()
    return [stdout, otlp_spans, otlp_logs, alert]


@pytest.mark.timeout(900)
def test_no_secret_value_in_10000_generated_payloads(capture: Capture) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads())
    def check(case: tuple[dict[str, Any], list[str]]) -> None:
        payload, secrets = case
        outputs = outputs_of(capture, payload)
        assert outputs[0] and outputs[2]  # something was written: the check is not vacuous
        for secret in secrets:
            needle = secret.encode()
            for output in outputs:
                assert needle not in output, (secret, output[:2000])
        checked["examples"] += 1
        checked["secrets"] += len(secrets)

    check()
    assert checked["examples"] >= EXAMPLES
    assert checked["secrets"] > EXAMPLES  # on average more than one secret per payload
    print(json.dumps(checked))
