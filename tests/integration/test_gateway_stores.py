"""The two-tier Collector sending to the stores: agent -> 2 gateways -> Jaeger and VictoriaLogs.

`otel-tdd stack up --gateways 2` with the stores in the stack: no JSONL overlay,
each gateway exports what tail sampling kept to Jaeger and the logs to
VictoriaLogs through its own persistent queue (collector/gateway.yaml). A few
traces with an ERROR span (always kept) and one log record each, sent to the
agent, come back from the stores by trace id: every span, on one gateway, and
every record with its trace id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from otel_tdd import stores_query
from otel_tdd.stack.local import StackError

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.integration

TRACES = 6
SPANS_PER_TRACE = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    from conftest import StackUnderTest

    stack = StackUnderTest(
        tmp_path_factory.mktemp("gateway-stores"),
        free_ports=True,
        components=("collector", "victoria-logs", "jaeger"),
        gateways=2,
        collector_env={"OTELCOL_TAIL_DECISION_WAIT": "2s"},
    )
    try:
        stack.up()
    except StackError as exc:
        stack.down()
        pytest.fail(f"the two-tier stack with stores did not start: {exc}", pytrace=False)
    try:
        yield stack
    finally:
        stack.down()


def _send(endpoint: str, service: str) -> list[str]:
    """TRACES traces of an ERROR child span and a root, one ERROR record in each; their ids."""
    resource = Resource.create({"service.name": service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
    )
    tracer = tracer_provider.get_tracer("gateway-stores")
    logger = logger_provider.get_logger("gateway-stores")
    ids = []
    for i in range(TRACES):
        root = tracer.start_span("GET /work")
        child = tracer.start_span("db.query", context=set_span_in_context(root))
        child.set_status(Status(StatusCode.ERROR, "boom"))
        logger.emit(
            body=f"query {i} failed",
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            context=set_span_in_context(child),
        )
        child.end()
        root.end()
        ids.append(format(root.get_span_context().trace_id, "032x"))
    tracer_provider.force_flush()
    logger_provider.force_flush()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return ids


def test_the_gateways_store_kept_traces_in_jaeger_and_logs_in_victoria_logs(
    stack: StackUnderTest,
) -> None:
    jaeger, victoria_logs = stack.urls["jaeger"], stack.urls["victoria_logs"]
    # Only the stores: no JSONL overlay copied next to any gateway's config.
    for gateway in stack.gateways:
        assert not (stack.state_dir / gateway / "gateway-files.yaml").exists(), gateway
    service = f"gw-stores-{uuid.uuid4().hex[:8]}"
    ids = _send(stack.otlp_grpc_endpoint, service)

    def all_in_jaeger() -> bool:
        try:
            return all(
                len(stores_query.fetch_trace(jaeger, trace_id)) == SPANS_PER_TRACE
                for trace_id in ids
            )
        except stores_query.StoreQueryError:
            return False  # not there yet: Jaeger answers 404

    stack.wait_for(all_in_jaeger, 45, f"Jaeger to hold the {TRACES} error traces")
    for trace_id in ids:
        spans = stores_query.fetch_trace(jaeger, trace_id)
        assert sorted(s.name for s in spans) == ["GET /work", "db.query"], trace_id
    query = f'"service.name":"{service}"'
    stack.wait_for(
        lambda: len(stores_query.fetch_logs(victoria_logs, query)) == TRACES,
        45,
        f"VictoriaLogs to hold the {TRACES} records",
    )
    records = stores_query.fetch_logs(victoria_logs, query)
    assert sorted(r.trace_id for r in records) == sorted(ids)
    # Each gateway queued through its own file_storage directory.
    for gateway in stack.gateways:
        queue = stack.state_dir / gateway / "queue"
        assert any(queue.iterdir()), f"{gateway}: nothing in {queue}"
        assert not any(stack.gateway_file_dir(gateway).glob("*.jsonl")), gateway
