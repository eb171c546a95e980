"""The Prometheus rules in compose/prometheus/rules: valid, unit-tested, documented.

promtool comes from Debian's `prometheus` package; a missing binary fails these
tests (it does not skip them): the rules are only as good as their checks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "compose" / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RULE_TESTS_DIR = PROM_DIR / "tests"
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/otel-tdd/otel-tdd/blob/main/docs/runbooks/"

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))

# The alert names are an interface: runbooks, docs, Alertmanager inhibition and
# people's muscle memory use them. Renaming one must be deliberate.
EXPECTED_ALERTS = {
    "HighResponseTime": "2m",
    "SlowResponseTime": "3m",
    "HighErrorRate": "2m",
    "HighErrorRatio": "5m",
    "DatabaseDown": "1m",
    "DatabaseConnectionFailure": "1m",
    "HighMemoryUsage": "5m",
    "ScrapeTargetDown": "1m",
    "CollectorRefusingData": "5m",
    "CollectorExporterFailing": "5m",
    "CollectorDroppingData": "5m",
    "TelemetryStoreDown": "1m",
    "TelemetryStoreNotAccepting": "1m",
    "TelemetryDropped": "1m",
    "HealthCheckFailing": "2m",
    "AlertDeliveryFailing": "0m",
    "AuthFailureSpike": "5m",
    "CsrfViolations": "1m",
}

STORE_SEEN_BY_COLLECTOR = {"TelemetryStoreNotAccepting"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: apt-get install prometheus prometheus-alertmanager",
            pytrace=False,
        )
    return path


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], check=False, capture_output=True, text=True, timeout=120, cwd=cwd
    )


def load_rules() -> dict[str, list[dict[str, Any]]]:
    """Rule file name -> list of groups."""
    return {path.name: yaml.safe_load(path.read_text())["groups"] for path in RULE_FILES}


def all_rules() -> list[dict[str, Any]]:
    return [rule for groups in load_rules().values() for g in groups for rule in g["rules"]]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def recording_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def test_rule_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    assert RULE_TEST_FILES, f"no promtool test files in {RULE_TESTS_DIR}"


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    result = run(promtool(), "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TEST_FILES, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(test_file: Path) -> None:
    result = run(promtool(), "test", "rules", test_file.name, cwd=RULE_TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_shipped_alerts_and_their_for_windows() -> None:
    found = {rule["alert"]: rule.get("for", "0m") for rule in alerting_rules()}
    assert found == EXPECTED_ALERTS


def test_alert_names_and_group_names_are_unique() -> None:
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(names) == len(set(names))
    for file_name, groups in load_rules().items():
        group_names = [g["name"] for g in groups]
        assert len(group_names) == len(set(group_names)), file_name


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_routing_labels_and_annotations(rule: dict[str, Any]) -> None:
    labels = rule.get("labels", {})
    assert labels.get("severity") in {"critical", "warning"}
    # Alertmanager groups and inhibits by service; it is the OTel service.name. An alert
    # about a store seen from the Collector's metrics names the store, so that
    # TelemetryStoreDown of that store silences it.
    expected = "{{ $labels.store }}" if rule["alert"] in STORE_SEEN_BY_COLLECTOR else None
    assert labels.get("service") == (expected or "{{ $labels.job }}")
    assert re.fullmatch(r"[a-z]+", labels.get("symptom", "")), "symptom label missing"
    annotations = rule.get("annotations", {})
    assert annotations.get("summary")
    assert annotations.get("description")
    assert annotations.get("runbook_url") == f"{RUNBOOK_BASE}{rule['alert']}.md"


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_a_runbook(rule: dict[str, Any]) -> None:
    runbook = RUNBOOKS_DIR / f"{rule['alert']}.md"
    assert runbook.is_file(), f"missing {runbook.relative_to(ROOT)}"
    text = runbook.read_text()
    assert text.startswith(f"# {rule['alert']}"), "a runbook starts with its alert's name"
    for section in ("Meaning", "Impact", "First checks", "Mitigation"):
        assert f"## {section}" in text, f"{runbook.name}: no '## {section}' section"


def test_every_rule_in_a_group_of_its_file_uses_only_known_recording_rules() -> None:
    recorded = recording_names()
    for rule in all_rules():
        for name in re.findall(r"\b(job:[a-z0-9_]+:[a-z0-9_]+)\b", rule["expr"]):
            assert name in recorded, f"{rule.get('alert') or rule.get('record')}: {name}"


def test_no_rule_uses_per_user_labels() -> None:
    """user_id (the seed's label) and other per-request ids never reach metrics."""
    for rule in all_rules():
        text = yaml.safe_dump(rule)
        for label in ("user_id", "session_id", "request_id"):
            assert label not in text, rule


def test_no_quantile_of_a_bare_histogram() -> None:
    """The seed's histogram_quantile(0.95, tdd_response_time_seconds) is wrong.

    A quantile needs the rate of each bucket, summed by (at least) `le`.
    """
    form = re.compile(r"\s*[0-9.]+\s*,\s*sum by \([^)]*\ble\b[^)]*\)\s*\(rate\(\w+_bucket\b")
    for rule in all_rules():
        for match in re.finditer(r"histogram_quantile\(", rule["expr"]):
            assert form.match(rule["expr"], match.end()), rule["expr"]


def _test_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in RULE_TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((path.name, case))
    return cases


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_every_alert_is_unit_tested_firing_and_not_firing(alert: str) -> None:
    cases = [case for _, case in _test_cases() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"{alert}: no firing case"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert}: no silent case"


@pytest.mark.parametrize("alert", sorted(a for a, f in EXPECTED_ALERTS.items() if f != "0m"))
def test_every_for_window_is_tested_one_evaluation_before_it_ends(alert: str) -> None:
    """Some test checks the alert is silent one evaluation (1m) before it fires."""
    cases = [case for _, case in _test_cases() if case["alertname"] == alert]
    firing = {_minutes(c["eval_time"]) for c in cases if c.get("exp_alerts")}
    silent = {_minutes(c["eval_time"]) for c in cases if not c.get("exp_alerts")}
    assert any(t - 1 in silent for t in firing), f"{alert}: no silent case 1m before a firing one"


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)m", duration)
    assert match, f"eval_time {duration!r}: use whole minutes in the rule tests"
    return int(match.group(1))


@pytest.mark.parametrize("test_file", RULE_TEST_FILES, ids=lambda p: p.name)
def test_rule_tests_order_recording_groups_first(test_file: Path) -> None:
    """With recording rules loaded, promtool must evaluate them first.

    promtool evaluates groups missing from group_eval_order in arbitrary order,
    which makes alert timings in the tests flaky by one interval.
    """
    spec = yaml.safe_load(test_file.read_text())
    loaded = [(RULE_TESTS_DIR / f).resolve() for f in spec["rule_files"]]
    if RULES_DIR / "recording.yml" not in loaded or len(loaded) == 1:
        return
    groups = [g["name"] for f in loaded for g in yaml.safe_load(f.read_text())["groups"]]
    order = spec.get("group_eval_order", [])
    assert sorted(order) == sorted(groups), "list every group in group_eval_order"
    recording = [g["name"] for g in load_rules()["recording.yml"]]
    assert order[: len(recording)] == recording


def test_warning_twins_share_symptom_with_their_critical_alert() -> None:
    """Alertmanager inhibits a warning by a critical with the same service+symptom."""
    by_name = {rule["alert"]: rule["labels"] for rule in alerting_rules()}
    for critical, warning in [
        ("HighResponseTime", "SlowResponseTime"),
        ("HighErrorRate", "HighErrorRatio"),
        ("DatabaseDown", "DatabaseConnectionFailure"),
        ("CollectorExporterFailing", "CollectorRefusingData"),
        ("CollectorDroppingData", "CollectorRefusingData"),
        ("TelemetryStoreDown", "TelemetryStoreNotAccepting"),
        ("TelemetryStoreDown", "ScrapeTargetDown"),
    ]:
        assert by_name[critical]["severity"] == "critical"
        assert by_name[warning]["severity"] == "warning"
        assert by_name[critical]["symptom"] == by_name[warning]["symptom"]
