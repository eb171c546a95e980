"""compose/grafana: generated dashboards that match their generator and their Prometheus.

Grafana itself cannot run here, so the dashboards are checked for what would
break them: stale JSON (edited by hand, or the generator changed without a
rerun), panels without a query, refId or unit, a stat or time series without
thresholds and without the reason why, a datasource uid other than the
provisioned one, PromQL that does not parse (promtool), recording rules that
do not exist. grafana-foundation-sdk (dev dependency) and promtool (Debian's
prometheus package) must be installed: a missing one fails, never skips.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from otel_tdd import stores_query

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "compose" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
GENERATOR = GRAFANA_DIR / "build_dashboards.py"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
STORE_DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "stores.yml"
RECORDING_RULES = ROOT / "compose" / "prometheus" / "rules" / "recording.yml"
SDK_PIN = "grafana-foundation-sdk==1769699379!11.6.0"

EXPECTED = {
    "overview.json": ("otel-tdd-overview", "TDD Framework - Application Overview"),
    "performance.json": ("otel-tdd-performance", "TDD Framework - Performance"),
    "business.json": ("otel-tdd-business", "TDD Framework - Business"),
    "security.json": ("otel-tdd-security", "TDD Framework - Security"),
}


def generator() -> ModuleType:
    """compose/grafana/build_dashboards.py, imported by path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("build_dashboards", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def query_panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, panel)
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        if panel["type"] != "row"
    ]


def provisioned_uid() -> str:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return str(datasource["uid"])


def test_the_committed_json_is_what_the_generator_produces() -> None:
    module = generator()
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        pytest.fail(
            f"grafana-foundation-sdk is not installed: pip install '{SDK_PIN}' "
            "(it is in the dev dependencies: pip install -e '.[dev]')",
            pytrace=False,
        )
    generated = module.build_all()
    assert set(generated) == {p.name for p in DASHBOARDS_DIR.glob("*.json")}
    for name, text in generated.items():
        assert (DASHBOARDS_DIR / name).read_text() == text, (
            f"{name} is stale: run python compose/grafana/build_dashboards.py"
        )


def test_the_four_dashboards() -> None:
    found = {name: (d["uid"], d["title"]) for name, d in dashboards().items()}
    assert found == EXPECTED
    for dashboard in dashboards().values():
        assert "otel-tdd" in dashboard["tags"]


def test_the_datasource_uid_is_the_provisioned_one() -> None:
    """Prometheus for every panel but the logs panels, which read VictoriaLogs."""
    uid = provisioned_uid()
    assert uid == generator().DATASOURCE_UID == "prometheus"
    for name, dashboard in dashboards().items():
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] == uid, (name, variable["name"])
        for panel in panels(dashboard):
            if panel["type"] in ("row", "logs"):
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, panel["title"]


def logs_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, panel in query_panels() if panel["type"] == "logs"]


def test_the_overview_and_performance_show_error_logs_from_the_provisioned_log_store() -> None:
    stores = yaml.safe_load(STORE_DATASOURCES.read_text())["datasources"]
    provisioned = {d["uid"]: d["type"] for d in stores}
    module = generator()
    assert provisioned[module.LOGS_DATASOURCE_UID] == module.LOGS_DATASOURCE_TYPE
    expected = {"type": module.LOGS_DATASOURCE_TYPE, "uid": module.LOGS_DATASOURCE_UID}
    found = {name for name, panel in logs_panels() if "error" in panel["title"].lower()}
    assert found == {"overview.json", "performance.json"}
    for name, panel in logs_panels():
        assert panel["datasource"] == expected, (name, panel["title"])
        assert panel["description"], (name, panel["title"])
        (target,) = panel["targets"]
        assert target["datasource"] == expected
        # The plugin's raw-records query (/select/logsql/query), written as LogsQL.
        assert target["queryType"] == "instant" and target["editorMode"] == "code"
        assert target["refId"] == "A" and target["expr"]
        # The field VictoriaLogs stores OTLP's severity number in (as `otel-tdd logs
        # --level error` queries it): ERROR and FATAL, whatever the text says.
        assert target["expr"] == stores_query.logsql(level="error").split(" | ")[0]
    assert [q["panel"] for q in module.panel_queries(datasource="victorialogs")] == [
        "Error logs",
        "Error logs",
    ]


LATENCY_PANELS = {
    "overview.json": {"Response time P95"},
    "performance.json": {
        "Response time P95 by endpoint",
        "Response time P95 by instance",
        "Tracked operations P95",
        "Database query P95",
    },
}


def test_latency_panels_show_exemplars_of_the_buckets_they_query() -> None:
    """Prometheus keeps exemplars on scraped bucket series only, not on recording rules;
    the provisioned Prometheus datasource links their trace_id to the Jaeger datasource."""
    with_exemplars: dict[str, set[str]] = {}
    for name, panel in query_panels():
        flags = {bool(t.get("exemplar")) for t in panel["targets"]}
        if True not in flags:
            continue
        with_exemplars.setdefault(name, set()).add(panel["title"])
        assert flags == {True}, (name, panel["title"], "some queries without exemplars")
        assert panel["type"] == "timeseries", (name, panel["title"])
        for target in panel["targets"]:
            assert re.search(r"\brate\(\w+_bucket\{", target["expr"]), (name, target["expr"])
    assert with_exemplars == LATENCY_PANELS
    (prometheus,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    (link,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    stores = {d["uid"]: d for d in yaml.safe_load(STORE_DATASOURCES.read_text())["datasources"]}
    assert link == {"name": "trace_id", "datasourceUid": "jaeger"}
    assert stores[link["datasourceUid"]]["type"] == "jaeger"


def test_the_overview_p95_is_the_alerts_recording_rule_over_the_selected_instances() -> None:
    """Over the buckets for its exemplars, yet the same value the alerts compare."""
    rules = {
        rule["record"]: rule["expr"]
        for group in yaml.safe_load(RECORDING_RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    (query,) = [
        q
        for q in generator().panel_queries()
        if q["dashboard"] == "overview.json" and q["panel"] == "Response time P95"
        and q["raw_expr"].startswith("histogram_quantile")
    ]  # fmt: skip
    unfiltered = re.sub(r"\{[^}]*\}", "", query["raw_expr"])
    assert unfiltered == rules["job:tdd_response_time_seconds:p95_5m"]


def test_the_builder_refuses_exemplars_on_a_recording_rule() -> None:
    module = generator()
    builder = module._Builder(module._sdk())
    with pytest.raises(ValueError, match="_bucket"):
        builder.timeseries(
            "Rule",
            "s",
            [("job:tdd_response_time_seconds:p95_5m", "")],
            description="d",
            no_thresholds="a reason long enough",
            exemplars=True,
        )


@pytest.mark.parametrize(
    "dashboard,panel", query_panels(), ids=lambda v: v["title"] if isinstance(v, dict) else v
)
def test_every_panel_has_queries_with_ref_ids_and_a_unit(
    dashboard: str, panel: dict[str, Any]
) -> None:
    """A unit for every panel of numbers (a logs panel shows records)."""
    targets = panel.get("targets", [])
    assert targets, "no query"
    ref_ids = [target.get("refId") for target in targets]
    assert all(ref_ids), f"a query without refId: {ref_ids}"
    assert len(set(ref_ids)) == len(ref_ids), f"duplicate refId: {ref_ids}"
    assert all(target.get("expr") for target in targets), "an empty query"
    if panel["type"] != "logs":
        assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert panel.get("description"), "no description"


THRESHOLDED_TYPES = {"stat", "gauge", "timeseries"}


@pytest.mark.parametrize(
    "dashboard,panel",
    [(name, panel) for name, panel in query_panels() if panel["type"] in THRESHOLDED_TYPES],
    ids=lambda v: v["title"] if isinstance(v, dict) else v,
)
def test_every_stat_gauge_and_time_series_has_a_unit_and_thresholds_or_says_why_not(
    dashboard: str, panel: dict[str, Any]
) -> None:
    """A coloured level beyond the base step, or "No threshold: <reason>" in the description."""
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults.get("unit"), "no unit"
    thresholds = defaults.get("thresholds") or {}
    steps = thresholds.get("steps") or []
    marker = generator().NO_THRESHOLD
    reason = panel["description"].partition(marker)[2].strip()
    if len(steps) > 1:
        assert thresholds.get("mode") == "absolute", thresholds
        assert steps[0].get("value") is None, f"the base step has a value: {steps}"
        values = [step["value"] for step in steps[1:]]
        assert values == sorted(values) and len(set(values)) == len(values), values
        assert marker not in panel["description"], "thresholds, yet says there are none"
    else:
        assert len(reason) > 20, f"no threshold step beyond the base, and no reason: {steps}"


def test_the_builder_refuses_a_panel_without_thresholds_or_reason() -> None:
    module = generator()
    builder = module._Builder(module._sdk())
    with pytest.raises(ValueError, match="no_thresholds"):
        builder.timeseries("Bare", "s", [("up", "")], description="d")
    with pytest.raises(ValueError, match="no_thresholds"):
        builder.stat(
            "Both",
            "s",
            "up",
            description="d",
            thresholds=((None, "green"), (1, "red")),
            no_thresholds="a reason",
        )


def test_business_panels_mostly_carry_thresholds() -> None:
    """The issue's gap: the business dashboard had none; volume panels may say why not."""
    business = [p for p in panels(dashboards()["business.json"]) if p["type"] != "row"]
    with_steps = [
        p["title"]
        for p in business
        if len(p["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])) > 1
    ]
    assert len(with_steps) >= 6, with_steps


def test_panel_ids_are_unique_and_the_grid_is_24_wide() -> None:
    for name, dashboard in dashboards().items():
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), name
        for panel in panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])


def test_service_and_instance_variables() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert set(variables) == {"service", "instance"}, name
        for variable in variables.values():
            assert variable["includeAll"] and variable["multi"]
            assert variable["allValue"] == ".*"
        assert "job" in variables["service"]["query"]
        assert "$service" in variables["instance"]["query"]


def test_app_queries_filter_on_the_selected_service() -> None:
    for query in generator().panel_queries():
        raw = query["raw_expr"]
        if re.search(r"\b(tdd_|job:tdd_|traces_span_metrics_)", raw):
            assert 'job=~"$service"' in raw, (query["dashboard"], query["panel"], raw)
        if re.search(r"\btdd_\w+\{", raw):
            assert 'instance=~"$instance"' in raw, (query["dashboard"], query["panel"], raw)


def test_no_panel_takes_a_quantile_of_a_bare_histogram() -> None:
    for query in generator().panel_queries():
        for match in re.finditer(r"histogram_quantile\(", query["raw_expr"]):
            rest = query["raw_expr"][match.end() :]
            assert re.match(r"[0-9.]+, sum by \([^)]*\ble\)\s*\(rate\(\w+_bucket\{", rest), (
                query["panel"],
                query["raw_expr"],
            )


def test_recording_rules_used_by_panels_exist() -> None:
    recorded = {
        rule["record"]
        for group in yaml.safe_load(RECORDING_RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for query in generator().panel_queries():
        for name in re.findall(r"\bjob:[a-z0-9_]+:[a-z0-9_]+\b", query["raw_expr"]):
            assert name in recorded, (query["panel"], name)


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (variables substituted) as a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool not found: apt-get install prometheus prometheus-alertmanager",
            pytrace=False,
        )
    queries = generator().panel_queries()
    assert len(queries) > 40
    rules = {
        "groups": [
            {
                "name": "panel-queries",
                "rules": [
                    {"record": f"panel_query_{i}", "expr": q["expr"]} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    rule_file = tmp_path / "panels.yml"
    rule_file.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_panel_queries_substitutes_every_variable() -> None:
    module = generator()
    for query in module.panel_queries():
        assert "$" not in query["expr"] and "[[" not in query["expr"], query
        assert query["ref_id"] and query["dashboard"] in EXPECTED
    (one,) = [
        q
        for q in module.panel_queries(substitutions={"service": "tdd-app"})
        if q["dashboard"] == "overview.json" and q["panel"] == "Active users"
    ]
    assert one["expr"] == 'sum(tdd_active_users{job=~"tdd-app", instance=~".*"})'


def test_substitute_refuses_an_unknown_variable() -> None:
    module = generator()
    assert module.substitute("rate(x[${__rate_interval}])") == "rate(x[1m])"
    assert module.substitute('up{job=~"[[service]]"}', {"service": "a"}) == 'up{job=~"a"}'
    with pytest.raises(KeyError, match="nope"):
        module.substitute('up{job=~"$nope"}')


def test_list_queries_cli_prints_json() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--list-queries", "--var", "__rate_interval=30s"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    queries = json.loads(result.stdout)
    assert queries == generator().panel_queries(substitutions={"__rate_interval": "30s"})


RULES_DIR = ROOT / "compose" / "prometheus" / "rules"


def test_alert_thresholds_are_read_from_the_rules() -> None:
    rules = generator().alert_rules
    found = rules.alert_thresholds(RULES_DIR)
    assert found["SlowResponseTime"] == 0.5 and found["HighResponseTime"] == 1.0
    assert found["HighErrorRate"] == 0.1 and found["AuthFailureSpike"] == 0.2
    assert found["HighMemoryUsage"] == 2 * 1024**3  # `> 2 * 1024 * 1024 * 1024`
    # `tdd_error_rate > 0.05 and on (job) ... >= 1`: two comparisons, no single threshold.
    assert "HighErrorRatio" not in found
    with pytest.raises(KeyError, match="HighErrorRatio"):
        rules.threshold("HighErrorRatio")


def test_a_description_states_an_alert_threshold_in_its_scale() -> None:
    rules = generator().alert_rules
    assert rules.describe("{SlowResponseTime} s, {HighResponseTime:ms} ms") == "0.5 s, 1000 ms"
    assert rules.describe("above {HighMemoryUsage:GiB} GiB") == "above 2 GiB"
    with pytest.raises(ValueError, match="unknown scale 'h'"):
        rules.describe("{SlowResponseTime:h}")
    with pytest.raises(KeyError, match="NoSuchAlert"):
        rules.describe("{NoSuchAlert}")


def test_a_changed_alert_threshold_moves_the_panels_that_colour_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboards colour what the alerts fire on: edit the rule, and the panel follows."""
    module = generator()
    for path in RULES_DIR.glob("*.yml"):
        text = path.read_text()
        text = text.replace("job:tdd_response_time_seconds:p95_5m > 0.5", "x > 0.7")
        text = text.replace(
            "tdd_memory_usage_bytes > 2 * 1024", "tdd_memory_usage_bytes > 3 * 1024"
        )
        (tmp_path / path.name).write_text(text)
    monkeypatch.setattr(module.alert_rules, "RULES_DIR", tmp_path)
    performance = json.loads(module.build_all()["performance.json"])
    by_title = {panel["title"]: panel for panel in panels(performance)}

    def steps(title: str) -> list[Any]:
        return [
            s["value"] for s in by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]

    assert steps("Tracked operations P95") == [None, 0.7, 1.0]
    assert "(0.7 s, 1 s)" in by_title["Tracked operations P95"]["description"]
    assert steps("Span duration P95 by span name") == [None, 700.0, 1000.0]
    assert "(700 ms, 1000 ms)" in by_title["Span duration P95 by span name"]["description"]
    assert steps("App memory") == [None, 3 * 1024**3]
    assert "above 3 GiB" in by_title["App memory"]["description"]


def test_a_copy_of_compose_builds_from_its_own_files(tmp_path: Path) -> None:
    """The wheel carries compose/ as otel_tdd/_assets/compose: a copy loaded by path
    (as otel_tdd.slo_cli does) uses its own dashgen/ and rules, then the checkout its own."""
    copy = tmp_path / "compose"
    shutil.copytree(GRAFANA_DIR, copy / "grafana", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(RULES_DIR, copy / "prometheus" / "rules")
    spec = importlib.util.spec_from_file_location(
        "copied", copy / "grafana" / "build_dashboards.py"
    )
    assert spec and spec.loader
    copied = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copied)
    assert copied.alert_rules.RULES_DIR == copy / "prometheus" / "rules"
    objectives = [{"name": "availability", "objective": 99.9, "window": "28d", "kind": "k"}]
    copied_slo = copied.build_slo("svc", objectives)
    assert copied.build_all() == generator().build_all()
    checkout = generator()
    assert checkout.alert_rules.RULES_DIR == RULES_DIR
    assert checkout.build_slo("svc", objectives) == copied_slo
