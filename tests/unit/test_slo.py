"""SLOs as code: specs validated with clear errors, rules generated and proven by promtool.

The example spec (examples/slos.yaml) is generated into a temporary directory; the
rules pass `promtool check rules`, and every generated `promtool test rules` file
passes. Those files are shown to be able to fail: a rule with the wrong threshold,
or with `or` instead of `and` between its windows, fails them. promtool and amtool
come from Debian's packages; a missing one fails these tests, never skips them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tdd import slo_cli
from otel_tdd.slo import SpecError, load_spec, parse_spec
from otel_tdd.slo_rules import BURN_ALERTS, RATIO_WINDOWS, format_duration, render_rules
from otel_tdd.stack import cli as stack_cli
from otel_tdd.stack.local import LocalStack, StackError
from otel_tdd.stack.monitoring import add_slo_rules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "slos.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus", pytrace=False)
    return path


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`otel-tdd slo generate examples/slos.yaml` into a temporary directory."""
    out = tmp_path_factory.mktemp("slo")
    assert slo_cli.cli(["generate", str(EXAMPLE), "--out", str(out)]) == 0
    return out


def rules_of(out: Path) -> dict[str, Any]:
    (path,) = (out / "rules").glob("*.yml")
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def alerts_of(out: Path) -> list[dict[str, Any]]:
    return [r for g in rules_of(out)["groups"] for r in g["rules"] if "alert" in r]


# --- generation ---------------------------------------------------------------------------


def test_generate_writes_rules_tests_and_a_dashboard_for_the_example(generated: Path) -> None:
    assert [p.name for p in (generated / "rules").iterdir()] == ["slo-tdd-app.yml"]
    tests = sorted(p.name for p in (generated / "tests").iterdir())
    assert tests == sorted(
        f"slo-tdd-app-{slo}-{part}.test.yml"
        for slo in ("availability", "latency")
        for part in [*(a.long for a in BURN_ALERTS), "budget"]
    )
    assert [p.name for p in (generated / "dashboards").iterdir()] == ["slo-tdd-app.json"]


def test_generating_again_after_a_rename_leaves_no_ghost_rules(tmp_path: Path) -> None:
    """The old service's rules and tests go; another spec's and a hand-written file stay."""
    spec_file, out = tmp_path / "slos.yaml", tmp_path / "out"
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec_file.write_text(yaml.safe_dump(spec))
    assert slo_cli.cli(["generate", str(spec_file), "--out", str(out), "--no-dashboard"]) == 0
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**spec, "service": "billing"}))
    assert slo_cli.cli(["generate", str(other), "--out", str(out), "--no-dashboard"]) == 0
    (out / "rules" / "slo-handmade.yml").write_text("groups: []\n")
    spec_file.write_text(yaml.safe_dump({**spec, "service": "tdd-web"}))
    assert slo_cli.cli(["generate", str(spec_file), "--out", str(out), "--no-dashboard"]) == 0
    rules = sorted(p.name for p in (out / "rules").iterdir())
    assert rules == ["slo-billing.yml", "slo-handmade.yml", "slo-tdd-web.yml"]
    tests = {p.name.split("-")[1] for p in (out / "tests").iterdir()}
    assert tests == {"billing", "tdd"} and not list((out / "tests").glob("slo-tdd-app-*"))


def test_promtool_check_rules_accepts_the_generated_rules(generated: Path) -> None:
    result = run(promtool(), "check", "rules", *(generated / "rules").glob("*.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 30 rules found" in result.stdout  # 2 x (7 ratios + 4 alerts + 4 budget)


def test_the_generated_promtool_tests_pass(generated: Path) -> None:
    files = sorted((generated / "tests").glob("*.test.yml"))
    result = run(promtool(), "test", "rules", *(f.name for f in files), cwd=generated / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files) == 10


def test_every_alert_is_tested_on_both_sides_of_its_window_pair(generated: Path) -> None:
    for alert in BURN_ALERTS:
        for slo in ("availability", "latency"):
            path = generated / "tests" / f"slo-tdd-app-{slo}-{alert.long}.test.yml"
            cases = yaml.safe_load(path.read_text())["tests"]
            assert [c["name"].rsplit(": ", 1)[1] for c in cases] == ["fires", "long", "short"]
            expected = [c["alert_rule_test"][0]["exp_alerts"] for c in cases]
            assert [len(e) for e in expected] == [1, 0, 0]
            assert all(c["alert_rule_test"][0]["alertname"] == alert.alertname for c in cases)
            # Each silent case proves one window above and the other below the threshold.
            sides = [[s["exp_samples"][0]["value"] for s in c["promql_expr_test"]] for c in cases]
            assert sides == [[1, 1], [1, 0], [0, 1]]


def _mutated_suite_fails(
    generated: Path,
    tmp_path: Path,
    change: Any,
    test_file: str = "slo-tdd-app-availability-1h.test.yml",
) -> str:
    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    (path,) = (copy / "rules").glob("*.yml")
    path.write_text(change(path.read_text()))
    result = run(promtool(), "test", "rules", test_file, cwd=copy / "tests")
    assert result.returncode != 0, "the generated tests did not catch a broken rule"
    return result.stdout + result.stderr


def test_the_generated_tests_catch_a_wrong_threshold(generated: Path, tmp_path: Path) -> None:
    output = _mutated_suite_fails(generated, tmp_path, lambda t: t.replace("> 0.0144", "> 0.5"))
    assert "fires" in output


def test_the_generated_tests_catch_a_pair_joined_by_or(generated: Path, tmp_path: Path) -> None:
    def either_window(text: str) -> str:
        return re.sub(r"(> 0\.0144)\n(\s+)and\n", r"\1\n\2or\n", text)

    output = _mutated_suite_fails(generated, tmp_path, either_window)
    assert "long" in output


def test_the_generated_tests_catch_a_wrong_budget(generated: Path, tmp_path: Path) -> None:
    def wrong_budget(text: str) -> str:
        return text.replace('slo="availability"} / 0.001', 'slo="availability"} / 0.01')

    output = _mutated_suite_fails(
        generated, tmp_path, wrong_budget, "slo-tdd-app-availability-budget.test.yml"
    )
    assert "slo:error_budget_remaining:ratio" in output


def test_the_generated_tests_catch_an_sli_with_no_value_before_the_first_failure(
    generated: Path, tmp_path: Path
) -> None:
    """Without ``or vector(0)`` the error series of a service that never failed is
    missing: the ratio and the budget left have no value ("No data"), not 0 and 1."""

    def empty_until_a_failure(text: str) -> str:
        fixed = re.sub(r"\((sum\(rate\([^)]*\)\)) or vector\(0\)\)", r"\1", text)
        assert fixed != text
        return fixed

    output = _mutated_suite_fails(
        generated, tmp_path, empty_until_a_failure, "slo-tdd-app-availability-budget.test.yml"
    )
    assert 'exp: {service="tdd-app", slo="availability"} 1E+00' in output
    assert "got: nil" in output  # no value at all, not a wrong one


def test_the_burn_rate_group_has_its_own_interval_at_every_scale() -> None:
    """Not the global evaluation interval (compose's 5s): 30s, scaled."""
    spec = load_spec(EXAMPLE)
    for scale, interval in ((1.0, "30s"), (0.1, "3s"), (1 / 60, "1s")):
        burn = render_rules(spec, scale=scale)["groups"][0]
        assert burn["name"].startswith("slo-") and not burn["name"].endswith("-budget")
        assert burn["interval"] == interval, scale


def test_the_rules_follow_the_sre_workbook(generated: Path) -> None:
    alerts = {(a["alert"], a["labels"]["slo"]): a for a in alerts_of(generated)}
    page = alerts[("SLOBurnRatePage1h", "availability")]
    assert page["expr"].split("\n") == [
        'slo:sli_error:ratio_rate1h{service="tdd-app", slo="availability"} > 0.0144',
        "and",
        'slo:sli_error:ratio_rate5m{service="tdd-app", slo="availability"} > 0.0144',
    ]
    assert "for" not in page
    factors = {a.alertname: (a.factor, a.long, a.short, a.severity) for a in BURN_ALERTS}
    assert factors == {
        "SLOBurnRatePage1h": (14.4, "1h", "5m", "critical"),
        "SLOBurnRatePage6h": (6.0, "6h", "30m", "critical"),
        "SLOBurnRateTicket1d": (3.0, "1d", "2h", "warning"),
        "SLOBurnRateTicket3d": (1.0, "3d", "6h", "warning"),
    }
    latency = alerts[("SLOBurnRateTicket3d", "latency")]
    assert latency["expr"].endswith("> 0.01")  # 1x the 1 % budget of a 99 % objective
    recorded = [
        r["record"] for g in rules_of(generated)["groups"] for r in g["rules"] if "record" in r
    ]
    for window in RATIO_WINDOWS:
        assert recorded.count(f"slo:sli_error:ratio_rate{window}") == 2
    assert recorded.count("slo:error_budget_remaining:ratio") == 2


def test_every_alert_has_routing_labels_and_a_runbook(generated: Path) -> None:
    for alert in alerts_of(generated):
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["severity"] in {"critical", "warning"}
        assert labels["service"] == "tdd-app" and labels["symptom"] == f"slo-{labels['slo']}"
        runbook = annotations["runbook_url"].rsplit("/", 1)[1]
        assert (RUNBOOKS / runbook).is_file(), runbook
        assert annotations["summary"] and annotations["description"]


def test_the_availability_sli_reads_the_catalog_series(generated: Path) -> None:
    (ratio,) = [
        r
        for g in rules_of(generated)["groups"]
        for r in g["rules"]
        if r.get("record") == "slo:sli_error:ratio_rate5m" and r["labels"]["slo"] == "availability"
    ]
    assert ratio["expr"] == (
        '(sum(rate(tdd_errors_total{job="tdd-app"}[5m])) or vector(0))\n/\n'
        'sum(rate(tdd_response_time_seconds_count{job="tdd-app"}[5m]))'
    )


def test_a_latency_sli_counts_requests_above_the_bucket_boundary() -> None:
    spec = parse_spec(
        {
            "service": "api",
            "objectives": [
                {"name": "fast", "objective": 99, "latency_threshold": "1s"},
                {
                    "name": "spans",
                    "objective": 99,
                    "series": "span_metrics",
                    "latency_threshold": "250ms",
                },
            ],
        }
    )
    exprs = {
        r["labels"]["slo"]: r["expr"]
        for g in render_rules(spec)["groups"]
        for r in g["rules"]
        if r.get("record") == "slo:sli_error:ratio_rate5m"
    }
    # le as the Collector writes it ("1") or as Prometheus 3 normalises it ("1.0").
    assert 'tdd_response_time_seconds_bucket{job="api", le=~"1|1\\\\.0"}[5m]' in exprs["fast"]
    assert (
        'traces_span_metrics_duration_milliseconds_bucket{service_name="api", '
        'span_kind="SPAN_KIND_SERVER", le=~"250|250\\\\.0"}[5m]'
    ) in exprs["spans"]


def test_a_scale_shrinks_windows_but_keeps_the_names() -> None:
    spec = load_spec(EXAMPLE)
    groups = render_rules(spec, scale=1 / 60)["groups"]
    ratio_1h = next(
        r for r in groups[0]["rules"] if r.get("record") == "slo:sli_error:ratio_rate1h"
    )
    assert "[1m]" in ratio_1h["expr"] and "[1h]" not in ratio_1h["expr"]
    assert groups[0]["interval"] == "1s" and groups[1]["interval"] == "1s"
    page = next(r for r in groups[0]["rules"] if r.get("alert") == "SLOBurnRatePage1h")
    assert page["labels"]["long_window"] == "1h"
    assert format_duration(1.5) == "1500ms" and format_duration(86400) == "1d"
    with pytest.raises(ValueError, match="rounds to 0ms"):
        format_duration(0.0001)


def test_the_dashboard_reads_only_series_the_rules_record(generated: Path) -> None:
    dashboard = json.loads((generated / "dashboards" / "slo-tdd-app.json").read_text())
    assert dashboard["uid"] == "otel-tdd-slo-tdd-app" and "slo" in dashboard["tags"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Error budget remaining", "Burn rate", "SLI (good events)"} <= titles
    recorded = {
        r["record"] for g in rules_of(generated)["groups"] for r in g["rules"] if "record" in r
    }
    used = {name for e in exprs for name in re.findall(r"slo:[a-z_:0-9]+", e)}
    assert used and used <= recorded, used - recorded
    rules = [{"record": f"check:q{i}", "expr": e} for i, e in enumerate(exprs)]
    check = generated / "dashboard-queries.yml"
    check.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    result = run(promtool(), "check", "rules", check)
    assert result.returncode == 0, result.stdout + result.stderr


# --- validation ---------------------------------------------------------------------------


def spec_with(**fields: Any) -> dict[str, Any]:
    return {"service": "api", "objectives": [{"name": "availability", "objective": 99.9, **fields}]}


@pytest.mark.parametrize("objective", [100, 100.5, 0, -1])
def test_an_objective_outside_0_to_100_names_the_field_and_the_range(objective: float) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec_with(objective=objective))
    assert error.value.field == "objectives[0].objective"
    assert f"objectives[0].objective: {objective} is out of range" in str(error.value)
    # The true accepted range, not 0-100: below 94.44 the page could hardly ever fire.
    assert "more than 94.44 (below, the page alert" in str(error.value)
    assert "and less than 100 (100 would leave no error budget)" in str(error.value)


def test_a_missing_objective_says_it_is_required() -> None:
    fields = spec_with()
    del fields["objectives"][0]["objective"]
    with pytest.raises(SpecError) as error:
        parse_spec(fields)
    assert str(error.value).endswith("objectives[0].objective: missing; required: a percentage "
                                     "such as 99.9")  # fmt: skip
    assert "None" not in str(error.value)


def test_an_objective_too_low_to_ever_page_names_the_lowest_accepted() -> None:
    with pytest.raises(SpecError, match=r"objectives\[0\].objective: 90 .*more than 94\.44"):
        parse_spec(spec_with(objective=90))
    assert parse_spec(spec_with(objective=94.5)).objectives[0].budget == 0.055


def test_an_unknown_series_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec_with(series="tdd_requests_failed_total"))
    message = str(error.value)
    assert error.value.field == "objectives[0].series"
    assert "unknown series 'tdd_requests_failed_total'" in message
    assert "catalog (tdd_errors_total" in message and "span_metrics" in message


@pytest.mark.parametrize(
    "series,threshold,boundaries",
    [
        ("catalog", "300ms", "0.25s, 0.5s"),
        ("catalog", "0.3", "0.25s, 0.5s"),
        ("span_metrics", "750ms", "500ms, 1000ms"),
    ],
)
def test_a_latency_threshold_off_the_buckets_names_the_boundaries(
    series: str, threshold: str, boundaries: str
) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec_with(series=series, latency_threshold=threshold))
    assert error.value.field == "objectives[0].latency_threshold"
    assert f"{threshold} is not a bucket boundary" in str(error.value)
    assert boundaries in str(error.value)


def test_the_catalog_boundaries_are_the_sdk_views_buckets() -> None:
    from otel_tdd.metrics import SECONDS_BUCKETS, catalog

    assert catalog.response_time.advice["explicit_bucket_boundaries_advisory"] == list(
        SECONDS_BUCKETS
    )
    for bound in SECONDS_BUCKETS:
        assert parse_spec(spec_with(objective=99, latency_threshold=f"{bound}s"))


@pytest.mark.parametrize(
    "change,field,words",
    [
        ({"window": "7d"}, "objectives[0].window", "choose 28d or 30d"),
        ({"objective": "high"}, "objectives[0].objective", "not a number"),
        ({"name": "Bad Name"}, "objectives[0].name", "then use a-z, 0-9"),
        ({"latency_threshold": "soon"}, "objectives[0].latency_threshold", "not a duration"),
        ({"target": 99}, "objectives[0].target", "unknown field"),
    ],
)
def test_other_bad_fields_name_themselves(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec_with(**change))
    assert error.value.field == field and words in str(error.value)


def test_a_spec_in_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n\n[tool.otel-tdd.slos]\nservice = "api"\n\n'
        '[[tool.otel-tdd.slos.objectives]]\nname = "availability"\nobjective = 99.5\n'
        'window = "28d"\n'
    )
    spec = load_spec(pyproject)
    assert spec.service == "api" and spec.objectives[0].window == "28d"
    assert slo_cli.find_spec(tmp_path) == pyproject
    (tmp_path / "slos.yaml").write_text(EXAMPLE.read_text())
    assert slo_cli.find_spec(tmp_path) == tmp_path / "slos.yaml"


def test_the_cli_exits_2_with_the_error_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "slos.yaml"
    bad.write_text(yaml.safe_dump(spec_with(objective=100)))
    assert slo_cli.cli(["validate", str(bad)]) == 2
    assert f"{bad}: objectives[0].objective: 100 is out of range" in capsys.readouterr().err
    assert slo_cli.cli(["generate", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert slo_cli.cli(["validate", str(EXAMPLE)]) == 0
    assert "valid: tdd-app" in capsys.readouterr().out
    assert slo_cli.cli(["generate", str(EXAMPLE), "--scale", "0", "--out", str(tmp_path)]) == 2
    assert "--scale: 0 is out of range" in capsys.readouterr().err


def test_the_top_level_command_knows_slo(capsys: pytest.CaptureFixture[str]) -> None:
    from otel_tdd.cli import main

    assert main(["slo", "validate", str(EXAMPLE)]) == 0
    assert "availability (99.9 % availability)" in capsys.readouterr().out


# --- the stack loads them -------------------------------------------------------------------


def test_stack_up_copies_the_generated_rules_beside_the_shipped_ones(
    generated: Path, tmp_path: Path
) -> None:
    stack = LocalStack(tmp_path / "stack", slo_rules_dir=generated / "rules")
    rules = tmp_path / "rules"
    rules.mkdir()
    add_slo_rules(stack.config.slo_rules_dir, rules, print)
    assert (rules / "slo-tdd-app.yml").read_text() == (
        generated / "rules" / "slo-tdd-app.yml"
    ).read_text()
    empty = LocalStack(tmp_path / "stack2", slo_rules_dir=tmp_path / "nothing")
    with pytest.raises(StackError, match="run `otel-tdd slo generate` first"):
        add_slo_rules(empty.config.slo_rules_dir, rules, print)


def test_stack_up_defaults_to_the_generate_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    class Recording:
        def __init__(self, *, config: Any, progress: object) -> None:
            seen.append(config)

        def up(self) -> None:
            pass

    monkeypatch.setattr(stack_cli, "LocalStack", Recording)
    monkeypatch.setattr(stack_cli, "_print_urls", lambda stack: None)
    monkeypatch.chdir(tmp_path)
    assert stack_cli.cli(["up", "--dir", str(tmp_path / "s")]) == 0
    assert seen[0].slo_rules_dir is None  # nothing generated here
    assert slo_cli.cli(["generate", str(EXAMPLE), "--no-dashboard"]) == 0
    assert stack_cli.cli(["up", "--dir", str(tmp_path / "s")]) == 0
    assert seen[1].slo_rules_dir == tmp_path / ".otel-tdd" / "slo" / "rules"
