"""The seed's catalog under its Prometheus names, and the cardinality guard."""

from __future__ import annotations

from pathlib import Path

import yaml

import otel_tdd
from otel_tdd.metrics import OVERFLOW_VALUE, CardinalityGuard, catalog
from otel_tdd.testing import Capture, capture_telemetry

RULES_DIR = Path(__file__).resolve().parents[2] / "compose" / "prometheus" / "rules"

# The seed's "Application Metrics Categories", every name as written there.
# Each is an instrument of the catalog, except the names in SEED_RECORDING_RULES:
# a rate is computed by Prometheus, not counted by the app (docs/metrics.md).
SEED_CATALOG = [
    "tdd_epics_created_total",
    "tdd_tasks_completed_total",
    "tdd_focus_sessions_total",
    "tdd_user_productivity_score",
    "tdd_response_time_seconds",
    "tdd_database_query_duration_seconds",
    "tdd_cache_hit_ratio",
    "tdd_sync_duration_seconds",
    "tdd_memory_usage_bytes",
    "tdd_active_connections",
    "tdd_error_rate",
    "tdd_concurrent_users",
    "tdd_auth_attempts_total",
    "tdd_csrf_violations_total",
    "tdd_rate_limit_hits_total",
    "tdd_security_events_total",
]
# tdd_error_rate: errors per request per service over 5m, from tdd_errors_total and
# tdd_response_time_seconds_count (compose/prometheus/rules/recording.yml).
SEED_RECORDING_RULES = {"tdd_error_rate"}
SEED_INSTRUMENTS = [name for name in SEED_CATALOG if name not in SEED_RECORDING_RULES]


def recorded_names() -> set[str]:
    names = set()
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def test_every_seed_name_is_an_instrument_or_a_recording_rule() -> None:
    instruments = {instrument.name for instrument in catalog.instruments()}
    recorded = recorded_names()
    for name in SEED_CATALOG:
        expected_rule = name in SEED_RECORDING_RULES
        assert (name in recorded) == expected_rule, name
        assert (name in instruments) != expected_rule, name  # one source per name


def test_every_seed_metric_renders_under_its_exact_prometheus_name(otel_capture: Capture) -> None:
    instruments = {instrument.name: instrument for instrument in catalog.instruments()}
    assert set(SEED_INSTRUMENTS) <= set(instruments)
    for name in SEED_INSTRUMENTS:
        instrument = instruments[name]
        if hasattr(instrument, "add"):
            instrument.add(1)  # type: ignore[attr-defined]
        elif hasattr(instrument, "record"):
            instrument.record(0.1)  # type: ignore[attr-defined]
        else:
            instrument.set(1)  # type: ignore[attr-defined]
    lines = otel_tdd.render_prometheus().decode().splitlines()
    exposed = {line.split("{")[0].split(" ")[0] for line in lines if not line.startswith("#")}
    for name in SEED_INSTRUMENTS:
        if instruments[name].kind == "histogram":
            assert {f"{name}_bucket", f"{name}_sum", f"{name}_count"} <= exposed, name
        else:
            assert name in exposed, name


def test_guard_collapses_values_past_the_limit_and_counts_trips() -> None:
    guard = CardinalityGuard("m", limit=3)
    seen = [guard({"user": f"u{n}", "kind": "a"})["user"] for n in range(5)]
    assert seen == ["u0", "u1", "u2", OVERFLOW_VALUE, OVERFLOW_VALUE]
    assert guard({"user": "u1", "kind": "a"})["user"] == "u1"  # known values still pass
    assert guard.trips == 2


def test_catalog_metrics_with_exploding_labels_keep_totals_right() -> None:
    with capture_telemetry(metric_cardinality_limit=10) as capture:
        for n in range(250):
            catalog.epics_created.add(1, {"project_type": f"type_{n}"})
        points = capture.metrics()["tdd_epics_created_total"]
        values = {attrs["project_type"] for attrs, _ in points}
        assert len(values) == 11  # ten real values and the overflow bucket
        assert capture.metric_value("tdd_epics_created_total") == 250
        assert (
            capture.metric_value("tdd_epics_created_total", {"project_type": OVERFLOW_VALUE}) == 240
        )
        assert (
            capture.metric_value(
                "tdd_metric_cardinality_overflow_total", {"metric": "tdd_epics_created_total"}
            )
            == 240
        )
