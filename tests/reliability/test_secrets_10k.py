"""10,000 generated payloads: no secret value in stdout, the OTLP bytes, or an alert payload.

The strategies are the unit suite's (tests/unit/test_redaction_and_robustness.py,
300 examples there): nested payloads with secrets under secret-like keys at any
depth. Here otel-tdd is configured once and each example is written through
every path -- ``StructuredLogger.info``, ``security_event``, a stdlib record with
``extra=``, a ``performance_context``, ``StructuredLogger.alert`` and
``otel_tdd.alerting.alert`` with the raw data -- then checked in three outputs:
the JSON lines on stdout, the OTLP protobuf the exporters would send, and the
Alertmanager body the alert sender would POST.

OTLP: the capture's processors sit on the same providers beside the OTLP ones and
receive the same span and record objects; the OTLP HTTP exporters send exactly
``encode_spans`` / ``encode_logs`` of their batch, which is what is encoded here.

Alerts: 20,000 loopback POSTs would dominate the run, so the seam is the client
that ``alert()`` hands its payload to (``AlertmanagerClient.submit``): a subclass
keeps the body its sender thread would POST (``json.dumps([payload])``) instead
of queueing it. Redaction happens in ``alert()`` before that; the unit test
(300 examples) checks the same through a real POST to a loopback Alertmanager.
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

from otel_tdd import _runtime
from otel_tdd.alerting import AlertmanagerClient, alert
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import Capture, capture_telemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_redaction_and_robustness import payloads

pytestmark = pytest.mark.integration

EXAMPLES = 10_000
checked = {"examples": 0, "secrets": 0}


class CapturingClient(AlertmanagerClient):
    """What would be POSTed, kept in memory; every alert accepted (no dedup, no queue)."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", dedup_window_s=0)  # never contacted
        self.bodies: list[bytes] = []

    def submit(self, payload: dict[str, Any]) -> bool:
        self.bodies.append(json.dumps([payload]).encode())  # the body ``_post`` sends
        return True


@pytest.fixture(scope="module")
def capture() -> Any:
    # alertmanager_url turns alerting on; the ``alerts`` client stands in for its sender.
    with capture_telemetry(log_level="INFO", alertmanager_url="http://127.0.0.1:9") as running:
        yield running


@pytest.fixture(scope="module")
def alerts(capture: Capture) -> CapturingClient:
    client = CapturingClient()
    runtime = _runtime.current()
    runtime.alertmanager = client  # where alert() looks its client up
    runtime.closers.append(client.close)
    return client


def outputs_of(capture: Capture, alerts: CapturingClient, payload: dict[str, Any]) -> list[bytes]:
    capture.clear()
    logger = StructuredLogger("prop")
    logger.info("payload", payload)
    logger.security_event("login", payload)
    logging.getLogger("stdlib").warning("extra", extra={"payload": payload, **payload})
    with logger.performance_context("op") as perf:
        perf.update(payload)
    alerts.bodies.clear()
    logger.alert("SecretsProbe", payload)
    alert("SecretsProbeDirect", payload, alert_channels=["slack"])
    assert len(alerts.bodies) == 2  # both reached the sender: the check is not vacuous
    stdout = capture.stream.getvalue()
    otlp_spans = encode_spans(capture.spans()).SerializeToString()
    otlp_logs = encode_logs(capture.otel_logs()).SerializeToString()
    return [stdout, otlp_spans, otlp_logs, *alerts.bodies]


@pytest.mark.timeout(900)
def test_no_secret_value_in_10000_generated_payloads(
    capture: Capture, alerts: CapturingClient
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads())
    def check(case: tuple[dict[str, Any], list[str]]) -> None:
        payload, secrets = case
        outputs = outputs_of(capture, alerts, payload)
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
