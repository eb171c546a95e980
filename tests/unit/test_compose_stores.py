"""compose/: the trace and log stores and Grafana's links between them, without Docker.

Grafana cannot run here, so these tests check what would break the walk in
Grafana: a link to a uid that does not exist or to a datasource of the wrong
type, a field name that is not the one our stores use, an image that is not
the version `otel-tdd stores build` builds, a port or a data dir that the
config and compose disagree on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tdd import exemplars_query, stores_query
from otel_tdd.stack.store_configs import LOGS_RETENTION, load_jaeger_config
from otel_tdd.stack.stores import JAEGER, VICTORIA_LOGS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
DATASOURCES = COMPOSE_DIR / "grafana" / "provisioning" / "datasources"

# Jaeger publishes images by its v2 release number; the Go module we build is
# tagged v1.x. Same commit, two names (its CHANGELOG: "v1.76.0 / v2.13.0").
JAEGER_IMAGE_FOR_MODULE = {"v1.76.0": "2.13.0"}
# The field VictoriaLogs stores an OTLP record's trace id in (seen on v1.52.1,
# and what `otel-tdd logs --trace` queries).
TRACE_ID_FIELD = "trace_id"


def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def datasources() -> dict[str, dict[str, Any]]:
    """Every provisioned datasource by uid (uids must be unique across files)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DATASOURCES.glob("*.yml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            assert source["uid"] not in found, f"{path.name}: uid {source['uid']} twice"
            found[source["uid"]] = source
    return found


def mount(name: str, source: str) -> str:
    for volume in service(name)["volumes"]:
        src, target, *_ = volume.split(":")
        if src == source:
            return str(target)
    raise AssertionError(f"{name}: {source} is not mounted")


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"-{name}=")]
    return value


# --- the stores' services -------------------------------------------------------------------


def test_store_images_are_the_versions_we_build() -> None:
    assert service("victoria-logs")["image"] == (
        f"victoriametrics/victoria-logs:{VICTORIA_LOGS.version}"
    )
    assert service("jaeger")["image"] == (
        f"jaegertracing/jaeger:{JAEGER_IMAGE_FOR_MODULE[JAEGER.version]}"
    )


def test_victoria_logs_keeps_its_data_on_the_volume_for_seven_days() -> None:
    args = service("victoria-logs")["command"]
    assert flag(args, "storageDataPath") == mount("victoria-logs", "victoria-logs-data")
    assert flag(args, "retentionPeriod") == LOGS_RETENTION
    listen_port = flag(args, "httpListenAddr").rsplit(":", 1)[1]
    assert service("victoria-logs")["ports"] == [f"127.0.0.1:9428:{listen_port}"]
    assert stores_query.DEFAULT_URLS[stores_query.ENV_LOGS_URL] == "http://127.0.0.1:9428"


def test_jaeger_runs_the_shipped_config_with_badger_on_the_volume() -> None:
    jaeger = service("jaeger")
    target = mount("jaeger", "./jaeger/config.yaml")
    assert jaeger["command"] == [f"--config={target}"]
    data = mount("jaeger", "jaeger-data")
    config = load_jaeger_config()
    for backend in config["extensions"]["jaeger_storage"]["backends"].values():
        for directory in backend["badger"]["directories"].values():
            assert directory.startswith(data + "/"), directory


def test_jaeger_publishes_its_query_ports_and_nothing_else() -> None:
    query = load_jaeger_config()["extensions"]["jaeger_query"]
    http_port = query["http"]["endpoint"].rsplit(":", 1)[1]
    grpc_port = query["grpc"]["endpoint"].rsplit(":", 1)[1]
    published = [p.split()[0] for p in service("jaeger")["ports"]]
    assert published == [f"127.0.0.1:16686:{http_port}", f"127.0.0.1:16685:{grpc_port}"]
    assert stores_query.DEFAULT_URLS[stores_query.ENV_JAEGER_URL] == "http://127.0.0.1:16686"


# --- Grafana's links -----------------------------------------------------------------------


def test_datasources_have_fixed_uids_and_the_right_types() -> None:
    found = datasources()
    assert {uid: s["type"] for uid, s in found.items()} == {
        "prometheus": "prometheus",
        "jaeger": "jaeger",
        "victorialogs": "victoriametrics-logs-datasource",
    }
    assert found["jaeger"]["url"] == "http://jaeger:16686"
    assert found["victorialogs"]["url"] == "http://victoria-logs:9428"


def test_the_victoria_logs_plugin_is_installed_pinned() -> None:
    env = service("grafana")["environment"]
    plugin, version = env["GF_INSTALL_PLUGINS"].split(" ")
    assert plugin == datasources()["victorialogs"]["type"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert {"victoria-logs", "jaeger"} <= set(service("grafana")["depends_on"])


def test_exemplars_link_to_jaeger_by_the_label_the_exporter_writes() -> None:
    (destination,) = datasources()["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {"name": "trace_id", "datasourceUid": "jaeger"}
    assert destination["name"] in exemplars_query.TRACE_ID_LABELS  # what `exemplars` reads too


def test_a_trace_links_to_its_log_records_by_trace_id() -> None:
    link = datasources()["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert link["datasourceUid"] == "victorialogs"
    assert link["customQuery"] is True
    # `$$` is Grafana provisioning's literal `$`; the query is LogsQL on our field.
    assert link["query"] == f'{TRACE_ID_FIELD}:"$${{__span.traceId}}"'
    assert stores_query.logsql(trace_id="ab" * 16).startswith(f'{TRACE_ID_FIELD}:"')


def test_a_log_record_links_to_its_trace_by_its_trace_id_field() -> None:
    (field,) = datasources()["victorialogs"]["jsonData"]["derivedFields"]
    assert field["matcherType"] == "label"
    assert field["matcherRegex"] == TRACE_ID_FIELD
    assert field["datasourceUid"] == "jaeger"
    assert field["url"] == "$${__value.raw}"


@pytest.mark.parametrize("uid", ["prometheus", "jaeger", "victorialogs"])
def test_every_link_names_an_existing_datasource(uid: str) -> None:
    found = datasources()
    text = yaml.safe_dump(found[uid]["jsonData"])
    for target in re.findall(r"datasourceUid: (\S+)", text):
        assert target in found, f"{uid} links to unknown uid {target}"
        assert target != uid
