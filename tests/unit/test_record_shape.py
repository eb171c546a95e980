"""The record's fields, blocks and baggage ids are written once (otel_tdd/logs/record.py):
the JSON schema, the correlation API and the pipeline's steps all agree with that list."""

from __future__ import annotations

import dataclasses
import json

from otel_tdd.correlation import BAGGAGE_KEYS, CorrelationIds
from otel_tdd.logs.record import (
    ATTRIBUTE_BLOCKS,
    BAGGAGE_IDS,
    BLOCKS,
    CORE_FIELDS,
    EMPTY_IDS,
    ID_FIELDS,
    LEVEL_NAMES,
    REDACTED_BLOCKS,
    REQUIRED_BLOCKS,
)
from otel_tdd.logs.render import bounded_line
from otel_tdd.logs.steps import Redact, _ids_of
from otel_tdd.testing import log_record_schema, validate_record


def test_the_schema_lists_exactly_the_records_fields_and_blocks_in_order() -> None:
    schema = log_record_schema()
    assert list(schema["properties"]) == [*CORE_FIELDS, *BLOCKS]
    assert schema["required"] == [*CORE_FIELDS, *REQUIRED_BLOCKS]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["level"]["enum"] == list(LEVEL_NAMES.values())
    assert schema["properties"]["exception"]["type"] == "string"
    for block in BLOCKS:
        if block != "exception":
            assert schema["properties"][block]["type"] == "object", block


def test_the_baggage_ids_are_one_list_everywhere() -> None:
    assert BAGGAGE_KEYS is BAGGAGE_IDS
    assert tuple(f.name for f in dataclasses.fields(CorrelationIds)) == ID_FIELDS
    assert tuple(EMPTY_IDS) == ID_FIELDS
    ids = _ids_of({})  # an empty Context: no span, no baggage
    assert tuple(ids) == ID_FIELDS and set(ids.values()) == {None}


def test_the_steps_derive_their_blocks_from_the_list() -> None:
    # The caller's maps are redacted; the pipeline's own (rate_limit, context) and the
    # traceback (text, redacted as text) are not walked as maps.
    assert Redact.FIELDS == REDACTED_BLOCKS == ("data", "performance", "security", "alert")
    # OTLP carries every map block but the context (process and environment are on the
    # Resource, the thread name only in the JSON line).
    assert ATTRIBUTE_BLOCKS == ("data", "performance", "security", "alert", "rate_limit")


def test_a_bounded_line_keeps_every_field_and_block_and_passes_the_schema() -> None:
    event = dict.fromkeys(ID_FIELDS)
    event.update(
        timestamp="2026-12-02T12:00:00.000Z",
        level="ERROR",
        logger="shape",
        message="m",
        data={"big": "x" * 10},
        performance={"duration_ms": 1.0},
        security={"event_type": "login"},
        alert={"name": "a", "severity": "critical"},
        rate_limit={"suppressed": 2},
        exception="Traceback ...",
        context={"thread_id": "t", "process_id": 1, "environment": "e"},
    )
    record = json.loads(bounded_line(event, "why"))
    assert list(record) == [*CORE_FIELDS, *BLOCKS]
    assert record["data"] == {"_truncated": "why"}
    validate_record(record)
