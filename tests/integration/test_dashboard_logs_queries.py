"""The dashboards' logs panels, their LogsQL run on a real VictoriaLogs.

Grafana cannot run here; its VictoriaLogs plugin sends a logs panel's `expr` to
/select/logsql/query as it is. So each logs panel's query (from the committed
dashboards, compose/grafana/build_dashboards.py --list-queries --datasource
victorialogs) runs against VictoriaLogs holding OTLP records of every level, as the
Collector's otlp_http exporter writes them: the error panels must return exactly the
ERROR and FATAL ones, however their severity text is spelled.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from stores_helpers import STREAM_FIELDS, start, wait_for

from otel_tdd import stores_query
from otel_tdd.stack import process
from otel_tdd.stack.store_configs import victoria_logs_args, victoria_logs_url

pytest_plugins = ["stores_fixtures"]

GENERATOR = Path(__file__).resolve().parents[2] / "compose" / "grafana" / "build_dashboards.py"
# (severity text, severity number): OTLP's levels, two spellings of error.
LEVELS = [("DEBUG", 5), ("INFO", 9), ("WARNING", 13), ("ERROR", 17), ("error", 17),
          ("CRITICAL", 21)]  # fmt: skip


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def own_victoria_logs(
    store_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A VictoriaLogs of this module's own: the session's one is shared with tests that
    count every service's records by level (test_stores.py)."""
    base = tmp_path_factory.mktemp("dashboard-victoria-logs")
    (port,) = process.free_ports(1)
    argv = victoria_logs_args(store_binaries["victoria-logs"], port, base / "data")
    url = victoria_logs_url(port)
    running = start(argv, base / "victoria-logs.log", f"{url}/health", "VictoriaLogs")
    yield url
    process.stop(running.pid, running.argv)


def _send(victoria_logs: str, service: str) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(
                endpoint=f"{victoria_logs}/insert/opentelemetry/v1/logs",
                headers={"VL-Stream-Fields": STREAM_FIELDS},
            )
        )
    )
    logger = provider.get_logger("dashboard-logs")
    now = time.time_ns()
    for i, (text, number) in enumerate(LEVELS):
        logger.emit(
            ApiLogRecord(timestamp=now + i * 1_000_000, body=f"{text} record", severity_text=text,
                         severity_number=SeverityNumber(number))
        )  # fmt: skip
    provider.force_flush(5000)
    provider.shutdown()


def test_the_error_logs_panels_return_exactly_the_error_and_fatal_records(
    own_victoria_logs: str,
) -> None:
    victoria_logs = own_victoria_logs
    module = generator()
    queries = module.panel_queries(datasource=module.LOGS_DATASOURCE_UID)
    assert {q["dashboard"] for q in queries} == {"overview.json", "performance.json"}
    service = f"dash-{uuid.uuid4().hex[:8]}"
    _send(victoria_logs, service)
    everything = f'"service.name":"{service}"'
    wait_for(
        lambda: len(stores_query.fetch_logs(victoria_logs, everything)) == len(LEVELS),
        30,
        f"VictoriaLogs to hold the {len(LEVELS)} records of {service}",
    )
    for query in queries:
        # The panel's query, narrowed to this test's records (the panel shows every service).
        found = stores_query.fetch_logs(victoria_logs, f"({query['expr']}) {everything}")
        assert sorted(r.message for r in found) == [
            "CRITICAL record",
            "ERROR record",
            "error record",
        ], (query["dashboard"], query["expr"])
