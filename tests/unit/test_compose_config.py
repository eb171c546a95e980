"""compose/: the Prometheus config and the docker-compose stack, checked without Docker.

No Docker engine runs here, so `docker compose config` cannot; instead these
tests check what would break a user's `docker compose up`: files that do not
exist, ports open to the network, floating image tags, secrets in files, and
config files that disagree with each other (ports, paths, job names).
promtool comes from Debian's `prometheus` package; a missing binary fails.
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
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
PROMETHEUS_YML = COMPOSE_DIR / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = COMPOSE_DIR / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = COMPOSE_DIR / "grafana"

# Job names are an interface: `otel-tdd stack up` rewrites targets by job
# name, and rules and dashboards select on them (docs/stack.md lists them).
EXPECTED_JOBS = {
    "otel-collector": "otel-collector:8889",
    "otel-collector-internal": "otel-collector:8888",
    "app": "host.docker.internal:9464",
    "node-exporter": "node-exporter:9100",
    "prometheus": "localhost:9090",
    "alertmanager": "alertmanager:9093",
    # The stores' own metrics; the local stack maps these jobs to its components
    # victorialogs and jaeger.
    "victorialogs": "victoria-logs:9428",
    "jaeger": "jaeger:14269",
}
JAEGER_CONFIG = COMPOSE_DIR / "jaeger" / "config.yaml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: apt-get install prometheus prometheus-alertmanager",
            pytrace=False,
        )
    return path


def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_YML.read_text())


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}


# --------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------


def test_promtool_check_config_accepts_prometheus_yml_and_finds_the_rules() -> None:
    # rule_files resolve relative to the config file, as in the container.
    result = subprocess.run(
        [promtool(), "check", "config", PROMETHEUS_YML.name],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROMETHEUS_YML.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    n_rule_files = len(list((PROMETHEUS_YML.parent / "rules").glob("*.yml")))
    assert f"SUCCESS: {n_rule_files} rule files found" in result.stdout + result.stderr


def test_scrape_jobs_are_the_documented_ones_with_one_target_each() -> None:
    found = {}
    for name, job in jobs().items():
        (static,) = job["static_configs"]
        (target,) = static["targets"]
        found[name] = target
    assert found == EXPECTED_JOBS


def test_the_collector_job_keeps_the_app_job_and_instance_labels() -> None:
    assert jobs()["otel-collector"].get("honor_labels") is True
    assert not jobs()["otel-collector-internal"].get("honor_labels", False)


def test_the_app_job_keeps_up_but_drops_series_the_collector_already_sends() -> None:
    (relabel,) = jobs()["app"]["metric_relabel_configs"]
    assert relabel["action"] == "drop"
    assert relabel["source_labels"] == ["__name__"]
    pattern = re.compile(f"^(?:{relabel['regex']})$")
    assert pattern.match("tdd_response_time_seconds_bucket")
    assert pattern.match("target_info")
    assert not pattern.match("process_resident_memory_bytes")


def test_rules_and_alertmanager_are_wired() -> None:
    config = prometheus_config()
    assert config["rule_files"] == ["rules/*.yml"]
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_scrape_and_evaluation_intervals_are_short_for_a_dev_stack() -> None:
    global_ = prometheus_config()["global"]
    assert global_["scrape_interval"] == "5s"
    assert global_["evaluation_interval"] == "5s"
    datasource = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    # Grafana's $__rate_interval depends on knowing the scrape interval.
    assert datasource["jsonData"]["timeInterval"] == global_["scrape_interval"]


# --------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------


def test_compose_has_the_seven_services() -> None:
    assert set(compose()["services"]) == {
        "otel-collector",
        "prometheus",
        "alertmanager",
        "grafana",
        "node-exporter",
        "victoria-logs",  # the stores: tests/unit/test_compose_stores.py
        "jaeger",
    }


def test_images_are_pinned_and_the_collector_is_built_from_the_repo() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} floats"
    collector = compose()["services"]["otel-collector"]
    assert collector["build"] == "../collector"
    assert collector["image"] == "otel-tdd-collector:local"


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is open to the network"


def _bind_mounts() -> list[tuple[str, Path, str]]:
    mounts = []
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target, *_ = str(volume).split(":")
            if source.startswith("."):
                mounts.append((name, (COMPOSE_DIR / source).resolve(), target))
    return mounts


@pytest.mark.parametrize(
    "service,source,target", _bind_mounts(), ids=lambda v: str(v).rsplit("/", 1)[-1]
)
def test_every_mounted_file_exists_in_the_repo(service: str, source: Path, target: str) -> None:
    assert source.exists(), f"{service}: {source.relative_to(ROOT)} (-> {target}) is missing"
    assert ROOT in source.parents, f"{service}: {source} is outside the repository"


def _mount_target(service: str, source: str) -> str:
    for volume in compose()["services"][service]["volumes"]:
        src, target, *_ = volume.split(":")
        if src == source:
            return str(target)
    raise AssertionError(f"{service}: {source} is not mounted")


def test_prometheus_finds_its_rules_where_prometheus_yml_says() -> None:
    config_target = _mount_target("prometheus", "./prometheus/prometheus.yml")
    rules_target = _mount_target("prometheus", "./prometheus/rules")
    assert rules_target == str(Path(config_target).parent / "rules")
    command = compose()["services"]["prometheus"]["command"]
    assert f"--config.file={config_target}" in command


def test_prometheus_has_lifecycle_but_not_the_admin_api() -> None:
    command = compose()["services"]["prometheus"]["command"]
    assert "--web.enable-lifecycle" in command
    assert not any("admin-api" in arg for arg in command)


def test_prometheus_keeps_the_exemplars_the_collector_serves() -> None:
    command = compose()["services"]["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    # Exemplars travel only in OpenMetrics, which the Collector's exporter must offer.
    config = yaml.safe_load((ROOT / "collector" / "config.yaml").read_text())
    assert config["exporters"]["prometheus"]["enable_open_metrics"] is True
    assert jobs()["otel-collector"]["honor_labels"] is True


def _victoria_logs_port() -> str:
    command = compose()["services"]["victoria-logs"]["command"]
    (listen,) = [arg for arg in command if arg.startswith("-httpListenAddr=")]
    return listen.rsplit(":", 1)[1]


def test_the_collector_sends_to_the_compose_stores() -> None:
    env = compose()["services"]["otel-collector"]["environment"]
    assert env["OTELCOL_LOGS_STORE_ENDPOINT"] == f"http://victoria-logs:{_victoria_logs_port()}"
    jaeger = yaml.safe_load(JAEGER_CONFIG.read_text())
    grpc_port = jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    assert env["OTELCOL_TRACES_STORE_ENDPOINT"] == f"jaeger:{grpc_port}"
    assert {"victoria-logs", "jaeger"} <= set(compose()["services"]["otel-collector"]["depends_on"])


def test_the_collector_queue_is_on_a_named_volume() -> None:
    env = compose()["services"]["otel-collector"]["environment"]
    volumes = compose()["services"]["otel-collector"]["volumes"]
    named = {v.split(":")[1]: v.split(":")[0] for v in volumes if not v.startswith(".")}
    assert env["OTELCOL_QUEUE_DIR"] in named, volumes
    assert named[env["OTELCOL_QUEUE_DIR"]] in compose()["volumes"]


def test_store_scrape_targets_match_the_store_ports() -> None:
    assert EXPECTED_JOBS["victorialogs"] == f"victoria-logs:{_victoria_logs_port()}"
    jaeger = yaml.safe_load(JAEGER_CONFIG.read_text())
    (reader,) = jaeger["service"]["telemetry"]["metrics"]["readers"]
    assert EXPECTED_JOBS["jaeger"] == f"jaeger:{reader['pull']['exporter']['prometheus']['port']}"


def test_prometheus_scrape_targets_match_the_collector_ports() -> None:
    env = compose()["services"]["otel-collector"]["environment"]
    exporter_port = env["OTELCOL_PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1]
    assert EXPECTED_JOBS["otel-collector"] == f"otel-collector:{exporter_port}"
    assert EXPECTED_JOBS["otel-collector-internal"] == (
        f"otel-collector:{env['OTELCOL_TELEMETRY_PORT']}"
    )


def test_the_collector_gets_every_variable_its_config_reads() -> None:
    service = compose()["services"]["otel-collector"]
    config_target = _mount_target("otel-collector", "../collector/config.yaml")
    assert f"--config={config_target}" in service["command"]
    wanted = {
        "OTELCOL_OTLP_GRPC_ENDPOINT",
        "OTELCOL_OTLP_HTTP_ENDPOINT",
        "OTELCOL_PROMETHEUS_ENDPOINT",
        "OTELCOL_HEALTH_ENDPOINT",
        "OTELCOL_TELEMETRY_HOST",
        "OTELCOL_TELEMETRY_PORT",
        "OTELCOL_LOGS_STORE_ENDPOINT",
        "OTELCOL_TRACES_STORE_ENDPOINT",
        "OTELCOL_QUEUE_DIR",
    }
    assert wanted <= set(service["environment"])
    config = ROOT / "collector" / "config.yaml"
    if config.exists():
        used = set(re.findall(r"\$\{env:(OTELCOL_\w+)", config.read_text()))
        assert used <= set(service["environment"]), used - set(service["environment"])


def test_grafana_refuses_to_start_without_an_admin_password() -> None:
    env = compose()["services"]["grafana"]["environment"]
    assert re.fullmatch(
        r"\$\{GF_SECURITY_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_grafana_mounts_match_its_provisioning() -> None:
    provider = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )["providers"][0]
    dashboards_target = _mount_target("grafana", "./grafana/dashboards")
    assert provider["options"]["path"] == dashboards_target
    assert provider["folder"] == "otel-tdd"
    assert _mount_target("grafana", "./grafana/provisioning") == "/etc/grafana/provisioning"
    env = compose()["services"]["grafana"]["environment"]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_target + "/")
    assert (GRAFANA_DIR / "dashboards" / Path(home).name).is_file()


def test_alertmanager_secret_files_are_the_ones_its_config_reads() -> None:
    """Every *_file path in alertmanager.yml is a compose secret, fed from the env."""
    config_text = ALERTMANAGER_YML.read_text()
    wanted = set(re.findall(r"_file:\s*(\S+)", config_text))
    assert wanted, "alertmanager.yml reads no secret files?"
    service = compose()["services"]["alertmanager"]
    targets = {secret["target"]: secret["source"] for secret in service["secrets"]}
    assert set(targets) == wanted
    declared = compose()["secrets"]
    for source in targets.values():
        assert set(declared[source]) == {"environment"}, source
        assert re.fullmatch(r"ALERTMANAGER_[A-Z_]+", declared[source]["environment"])
    assert "--cluster.listen-address=" in service["command"]


# --------------------------------------------------------------------------
# No secrets in compose/
# --------------------------------------------------------------------------

# Literal secrets that must never appear (the seed had some of them).
FORBIDDEN = [
    re.compile(r"hooks\.slack\.com/services/", re.I),
    re.compile(r"admin123"),
    re.compile(r"YOUR_SLACK_WEBHOOK_URL"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # Inline secret fields instead of their *_file variants.
    re.compile(r"^\s*(?:smtp_)?auth_password\s*:", re.M),
    re.compile(r"^\s*(?:slack_)?api_url\s*:", re.M),
    re.compile(r"^\s*(?:bearer_token|credentials)\s*:", re.M),
]

# key: value where the key names a secret; the value must be a reference.
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|credentials?)[\w.-]*
    [\ \t]*[:=][\ \t]*
    (?P<value>\$\{[^}]*\}|[^\s#,]+)
    """
)
ALLOWED_VALUE = re.compile(
    r"""(?x)
    \$\{[A-Z_]+(?::[?-][^}]*)?\}    # ${VAR} / ${VAR:?msg}: from the environment
    | /etc/alertmanager/secrets/\w+  # a secret file
    | /run/secrets/\w+
    | ALERTMANAGER_[A-Z_]+          # a compose secret's variable name
    | Bearer
    | \.\.\. | <[a-z-]+>             # placeholders in comments
    """
)


def _text_files() -> list[Path]:
    return [
        path
        for path in sorted(COMPOSE_DIR.rglob("*"))
        if path.is_file() and path.suffix in {".yml", ".yaml", ".json", ".py", ".txt", ".md"}
    ]


@pytest.mark.parametrize("path", _text_files(), ids=lambda p: str(p.relative_to(COMPOSE_DIR)))
def test_no_secret_literal_in_compose(path: Path) -> None:
    text = path.read_text()
    for pattern in FORBIDDEN:
        assert not pattern.search(text), f"{path.relative_to(ROOT)}: {pattern.pattern}"
    for match in SECRET_ASSIGNMENT.finditer(text):
        value = match.group("value").strip("'\"")
        assert ALLOWED_VALUE.fullmatch(value), (
            f"{path.relative_to(ROOT)}: {match.group(0)!r} looks like a secret in a file"
        )
