"""deploy/k8s/stores: VictoriaLogs cluster mode and Jaeger v2 on OpenSearch, checked offline.

Like tests/unit/test_k8s_manifests.py: `kubernetes-validate` checks every
document strictly against the Kubernetes schemas; the rest are the mistakes a
schema cannot see: a vlinsert that does not list every vlstorage pod, a
Service that selects nothing, a probe on an unnamed port, a Jaeger config
that drifted from compose's one in more than its storage, an image that is
not the version `otel-tdd stores build` builds. The Jaeger binary itself
validates the config in tests/integration/test_stores_exemplars.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from otel_tdd.stack.store_configs import LOGS_RETENTION, load_jaeger_config
from otel_tdd.stack.stores import JAEGER, VICTORIA_LOGS

ROOT = Path(__file__).resolve().parents[2]
STORES = ROOT / "deploy" / "k8s" / "stores"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
JAEGER_IMAGE = "jaegertracing/jaeger:2.13.0"  # the v2 release of module v1.76.0
assert JAEGER.version == "v1.76.0", "bump JAEGER_IMAGE with the module"


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((STORES / "kustomization.yaml").read_text())
    return data


def jaeger_k8s_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((STORES / "jaeger-config.yaml").read_text())
    return data


def documents() -> list[dict[str, Any]]:
    """Every resource, plus the ConfigMap kustomize generates from jaeger-config.yaml."""
    found = []
    for name in kustomization()["resources"]:
        found += [d for d in yaml.safe_load_all((STORES / name).read_text()) if d]
    for generator in kustomization()["configMapGenerator"]:
        data = {}
        for entry in generator["files"]:
            key, _, path = entry.partition("=")
            data[key] = (STORES / path).read_text()
        found.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
             "data": data}
        )  # fmt: skip
    return found


def find(kind: str, name: str) -> dict[str, Any]:
    (match,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return match


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(workload)["containers"]
    assert isinstance(only, dict)
    return only


def flags(workload: dict[str, Any], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in container(workload)["args"] if a.startswith(f"-{name}=")]


WORKLOADS = ("StatefulSet", "Deployment", "CronJob")


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"]) | {
        entry.partition("=")[2]
        for generator in kustomization()["configMapGenerator"]
        for entry in generator["files"]
    }
    on_disk = {p.name for p in STORES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", VERSIONS)
def test_every_document_is_valid_for_kubernetes(version: str) -> None:
    errors = []
    for doc in documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_images_are_the_versions_we_build() -> None:
    images = {
        d["metadata"]["name"]: container(d)["image"] for d in documents() if d["kind"] in WORKLOADS
    }
    assert images == {
        "vlstorage": f"victoriametrics/victoria-logs:{VICTORIA_LOGS.version}",
        "vlinsert": f"victoriametrics/victoria-logs:{VICTORIA_LOGS.version}",
        "vlselect": f"victoriametrics/victoria-logs:{VICTORIA_LOGS.version}",
        "jaeger": JAEGER_IMAGE,
        "jaeger-index-cleaner": f"jaegertracing/jaeger-es-index-cleaner:{JAEGER.version[1:]}",
    }


def test_every_workload_runs_locked_down() -> None:
    for doc in documents():
        if doc["kind"] not in WORKLOADS:
            continue
        name = doc["metadata"]["name"]
        assert pod_spec(doc)["securityContext"]["runAsNonRoot"] is True, name
        security = container(doc)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert "memory" in container(doc)["resources"]["limits"], name


# --- VictoriaLogs cluster mode --------------------------------------------------------------


def test_vlinsert_and_vlselect_list_every_vlstorage_pod() -> None:
    storage = find("StatefulSet", "vlstorage")
    service = storage["spec"]["serviceName"]
    assert find("Service", service)["spec"]["clusterIP"] == "None"
    expected = [f"vlstorage-{i}.{service}:9428" for i in range(storage["spec"]["replicas"])]
    for role in ("vlinsert", "vlselect"):
        assert flags(find("Deployment", role), "storageNode") == expected, role
    assert flags(storage, "storageNode") == []


def test_vlstorage_keeps_its_data_on_its_claim_for_seven_days() -> None:
    storage = find("StatefulSet", "vlstorage")
    (claim,) = storage["spec"]["volumeClaimTemplates"]
    (mount,) = container(storage)["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert flags(storage, "storageDataPath") == [mount["mountPath"]]
    assert flags(storage, "retentionPeriod") == [LOGS_RETENTION]


def test_services_select_pods_and_target_named_ports() -> None:
    pods = {
        d["metadata"]["name"]: d for d in documents() if d["kind"] in ("StatefulSet", "Deployment")
    }
    for service in (d for d in documents() if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        targets = [
            p for p in pods.values()
            if selector.items() <= p["spec"]["template"]["metadata"]["labels"].items()
        ]  # fmt: skip
        assert targets, f"Service/{service['metadata']['name']} selects nothing"
        for target in targets:
            named = {p["name"] for p in container(target)["ports"]}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in named, (service["metadata"]["name"], port)


def test_probes_use_named_ports_and_selectors_match_templates() -> None:
    for doc in documents():
        if doc["kind"] not in ("StatefulSet", "Deployment"):
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        named = {p["name"] for p in container(doc)["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert container(doc)[probe]["httpGet"]["port"] in named


# --- Jaeger on OpenSearch -------------------------------------------------------------------


def test_the_k8s_jaeger_config_is_composes_but_for_the_storage() -> None:
    k8s, compose = jaeger_k8s_config(), load_jaeger_config()
    for config in (k8s, compose):
        del config["extensions"]["jaeger_storage"]
        del config["extensions"]["jaeger_query"]["storage"]
        del config["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    assert k8s == compose


def test_the_k8s_jaeger_config_stores_in_opensearch_with_secrets_from_files() -> None:
    config = jaeger_k8s_config()
    backends = config["extensions"]["jaeger_storage"]["backends"]
    (name,) = backends
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] == name
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == name
    opensearch = backends[name]["opensearch"]
    basic = opensearch["auth"]["basic"]
    assert "password" not in basic  # only password_file: no secret in the ConfigMap
    mounts = {m["name"]: m["mountPath"] for m in container(find("Deployment", "jaeger"))[
        "volumeMounts"
    ]}  # fmt: skip
    for path in (basic["password_file"], opensearch["tls"]["ca_file"]):
        assert path.startswith(mounts["opensearch"] + "/"), path
    volumes = {v["name"]: v for v in pod_spec(find("Deployment", "jaeger"))["volumes"]}
    assert volumes["opensearch"]["secret"]["secretName"] == "jaeger-opensearch"
    assert volumes["config"]["configMap"]["name"] == "jaeger-config"
    # The index cleaner drops what the indices' prefix names.
    cleaner = container(find("CronJob", "jaeger-index-cleaner"))["args"]
    assert f"--index-prefix={opensearch['indices']['index_prefix']}" in cleaner
    assert cleaner[:2] == [LOGS_RETENTION.removesuffix("d"), opensearch["server_urls"][0]]


def test_jaeger_container_ports_are_the_configs() -> None:
    config = jaeger_k8s_config()
    ports = {
        p["name"]: p["containerPort"] for p in container(find("Deployment", "jaeger"))["ports"]
    }

    def port(endpoint: str) -> int:
        return int(endpoint.rsplit(":", 1)[1])

    protocols = config["receivers"]["otlp"]["protocols"]
    query = config["extensions"]["jaeger_query"]
    health = config["extensions"]["healthcheckv2"]["http"]
    (reader,) = config["service"]["telemetry"]["metrics"]["readers"]
    assert ports == {
        "otlp-grpc": port(protocols["grpc"]["endpoint"]),
        "otlp-http": port(protocols["http"]["endpoint"]),
        "query-http": port(query["http"]["endpoint"]),
        "query-grpc": port(query["grpc"]["endpoint"]),
        "metrics": reader["pull"]["exporter"]["prometheus"]["port"],
        "health": port(health["endpoint"]),
    }
    probe = container(find("Deployment", "jaeger"))["readinessProbe"]["httpGet"]
    assert probe["path"] == health["status"]["path"]
