"""Values OTLP cannot carry as they are never cost the records around them.

Found by the 10,000-payload run (tests/reliability/test_secrets_10k.py): an int
beyond 64 bits in log data or a performance_context made the OTLP encoder
raise, which fails the whole export batch (up to 512 innocent spans or records),
and made orjson drop the stdout line; a 10 MB string went into OTLP whole.
"""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from otel_tdd.redaction import MAX_STRING_CHARS
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import capture_telemetry

HUGE = 2**70


def test_an_int_beyond_64_bits_travels_as_text_on_stdout_and_in_otlp() -> None:
    with capture_telemetry(log_level="INFO") as capture:
        logger = StructuredLogger("odd")
        logger.info("huge int", {"n": HUGE, "fine": 7, "nested": {"m": -HUGE}})
        with logger.performance_context("op") as perf:
            perf.update({"n": HUGE})
        records = capture.records(validate=False)
        otel_logs = capture.otel_logs()
        spans = capture.spans()

        assert records[0]["data"] == {"n": str(HUGE), "fine": 7, "nested": {"m": str(-HUGE)}}
        assert otel_logs[0].log_record.attributes is not None
        assert otel_logs[0].log_record.attributes["data"]["n"] == str(HUGE)
        assert spans[0].attributes is not None
        assert spans[0].attributes["performance.n"] == str(HUGE)
        # The SDK's own encoder, as the exporters use it: no exception, nothing dropped.
        assert encode_logs(otel_logs).SerializeToString()
        assert encode_spans(spans).SerializeToString()


def test_a_10_mb_string_is_truncated_in_otlp_as_on_stdout() -> None:
    blob = "x" * 10_000_000
    with capture_telemetry(log_level="INFO") as capture:
        StructuredLogger("odd").info("big", {"blob": blob, "ok": "short"})
        line = capture.lines()[0]
        attributes = capture.otel_logs()[0].log_record.attributes

    assert len(line) < 64 * 1024
    assert json.loads(line)["data"]["blob"].startswith("x" * 100)
    assert attributes is not None
    sent = attributes["data"]["blob"]
    assert len(sent) < MAX_STRING_CHARS + 100 and sent.endswith("chars]")
    assert attributes["data"]["ok"] == "short"
