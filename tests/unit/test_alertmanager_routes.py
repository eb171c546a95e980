"""compose/alertmanager/alertmanager.yml: valid, routed as documented, no secrets inline.

Routing is checked with the real `amtool config routes test` (Debian's
prometheus-alertmanager package) against the cases in
compose/alertmanager/tests/routes.yml. amtool cannot evaluate inhibition, so
the inhibit rule is checked here against the labels the Prometheus alert rules
actually set; a live Alertmanager shows it end to end in the integration tests.
A missing amtool fails these tests.
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
AM_DIR = ROOT / "compose" / "alertmanager"
CONFIG = AM_DIR / "alertmanager.yml"
CASES = AM_DIR / "tests" / "routes.yml"
RULES_DIR = ROOT / "compose" / "prometheus" / "rules"
SECRETS_DIR = "/etc/alertmanager/secrets/"


def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail(
            "amtool not found: apt-get install prometheus prometheus-alertmanager",
            pytrace=False,
        )
    return path


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def cases() -> list[dict[str, Any]]:
    return list(yaml.safe_load(CASES.read_text())["cases"])


def test_amtool_check_config_accepts_it() -> None:
    result = subprocess.run(
        [amtool(), "check-config", str(CONFIG)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["name"])
def test_route(case: dict[str, Any]) -> None:
    labels = [f"{name}={value}" for name, value in case["labels"].items()]
    result = subprocess.run(
        [
            amtool(),
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={','.join(case['receivers'])}",
            *labels,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"{labels} expected {case['receivers']}, amtool: {result.stdout}{result.stderr}"
    )


def test_the_cases_cover_every_receiver() -> None:
    declared = {receiver["name"] for receiver in config()["receivers"]}
    reached = {name for case in cases() for name in case["receivers"]}
    assert declared == reached
    assert declared == {"webhook", "email", "slack", "critical"}


def test_grouping_is_per_alert_and_service() -> None:
    route = config()["route"]
    assert route["group_by"] == ["alertname", "service"]
    assert route["receiver"] == "webhook"


def test_no_secret_is_inline_only_files_under_the_secrets_dir() -> None:
    text = CONFIG.read_text()
    parsed = config()

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                yield key, value
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for key, value in walk(parsed):
        assert key not in {
            "api_url",
            "slack_api_url",
            "auth_password",
            "smtp_auth_password",
            "credentials",
            "bearer_token",
        }, f"inline secret field {key}"
        if key.endswith("_file"):
            assert str(value).startswith(SECRETS_DIR), f"{key}: {value}"
    assert "hooks.slack.com" not in text


# --------------------------------------------------------------------------
# Inhibition, checked against the Prometheus rules' labels
# --------------------------------------------------------------------------

_MATCHER = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager matcher semantics for the forms this config uses."""
    for matcher in matchers:
        found = _MATCHER.match(matcher)
        assert found, f"unsupported matcher {matcher!r}"
        name, op, value = found.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def inhibits(rule: dict[str, Any], source: dict[str, str], target: dict[str, str]) -> bool:
    return (
        matches(rule["source_matchers"], source)
        and matches(rule["target_matchers"], target)
        and all(source.get(label, "") == target.get(label, "") for label in rule["equal"])
    )


def alert_labels(alertname: str, service: str = "tdd-app") -> dict[str, str]:
    """The labels Prometheus sends for an alert, for a given job."""
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alertname:
                    labels = {
                        k: v.replace("{{ $labels.job }}", service)
                        for k, v in rule["labels"].items()
                    }
                    return {"alertname": alertname, "job": service, **labels}
    raise AssertionError(f"no alert rule {alertname}")


def inhibited(target: dict[str, str], *sources: dict[str, str]) -> bool:
    return any(
        inhibits(rule, source, target) for rule in config()["inhibit_rules"] for source in sources
    )


@pytest.mark.parametrize(
    "critical,warning",
    [
        ("HighResponseTime", "SlowResponseTime"),
        ("HighErrorRate", "HighErrorRatio"),
        ("DatabaseDown", "DatabaseConnectionFailure"),
        ("CollectorExporterFailing", "CollectorRefusingData"),
        ("CollectorDroppingData", "CollectorRefusingData"),
    ],
)
def test_a_critical_alert_silences_its_warning_twin_for_the_same_service(
    critical: str, warning: str
) -> None:
    service = "otel-collector-internal" if critical.startswith("Collector") else "tdd-app"
    assert inhibited(alert_labels(warning, service), alert_labels(critical, service))
    # ...but not the same warning for another service.
    assert not inhibited(alert_labels(warning, "other"), alert_labels(critical, service))
    # ...and never the other way round.
    assert not inhibited(alert_labels(critical, service), alert_labels(warning, service))


def test_a_critical_alert_does_not_silence_unrelated_warnings() -> None:
    assert not inhibited(alert_labels("HighMemoryUsage"), alert_labels("HighResponseTime"))
    assert not inhibited(alert_labels("SlowResponseTime"), alert_labels("HighErrorRate"))
    assert not inhibited(alert_labels("HighErrorRatio"), alert_labels("HighResponseTime"))


def test_an_unlabelled_critical_alert_from_code_silences_nothing() -> None:
    """Labels missing on both sides compare equal in Alertmanager: guard against it."""
    from_code = {"alertname": "database_connection_failure", "severity": "critical"}
    from_code_other = {"alertname": "cache_slow", "severity": "warning"}
    assert not inhibited(from_code_other, from_code)
    assert not inhibited(alert_labels("SlowResponseTime"), from_code | {"service": "tdd-app"})


def test_an_slo_page_silences_the_ticket_of_the_same_objective_only() -> None:
    """The generated SLO alerts (otel_tdd/slo_rules.py) carry symptom=slo-<name>."""
    from otel_tdd.slo import parse_spec
    from otel_tdd.slo_rules import BURN_ALERTS, alert_labels

    spec = parse_spec(
        {
            "service": "tdd-app",
            "objectives": [
                {"name": "availability", "objective": 99.9},
                {"name": "latency", "objective": 99, "latency_threshold": "500ms"},
            ],
        }
    )
    availability, latency = spec.objectives
    page, ticket = BURN_ALERTS[0], BURN_ALERTS[2]

    def labels(slo: Any, alert: Any) -> dict[str, str]:
        return {"alertname": alert.alertname, **alert_labels(slo, alert)}

    assert inhibited(labels(availability, ticket), labels(availability, page))
    assert not inhibited(labels(latency, ticket), labels(availability, page))
    assert not inhibited(labels(availability, page), labels(availability, ticket))
