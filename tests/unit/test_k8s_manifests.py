"""deploy/k8s: the manifests, validated offline and checked against the files they come from.

No cluster runs here. `kubernetes-validate` (PyPI) carries the OpenAPI schemas of
Kubernetes 1.25-1.37 and checks every document strictly (unknown fields are
errors); the rest are the mistakes a schema cannot see: ConfigMaps that drifted
from collector/, env variables no config reads, a Service that selects nothing,
a probe on a port the container does not name, a resolver pointing at the wrong
Service. The Collector binary validates the agent's Kubernetes overlay, and
promtool the scrape config (a missing binary fails, with its install line).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from otel_tdd.stack.collector import CollectorBuildError, collector_binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
COLLECTOR = ROOT / "collector"
# 1.30: the first release where the app's `preStop: sleep` is on by default (beta).
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "generate_configmaps", K8S / "generate_configmaps.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return data


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every resource the kustomization lists."""
    found = []
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((BASE / name).read_text()):
            if doc:
                found.append((name, doc))
    return found


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def collector_bin() -> str:
    try:
        return str(collector_binary())
    except CollectorBuildError as exc:
        pytest.fail(f"the Collector binary is needed: {exc}", pytrace=False)


# --- files and schemas --------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", VERSIONS)
def test_every_document_is_valid_for_kubernetes(version: str) -> None:
    errors = []
    for name, doc in documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_images_are_pinned_and_kustomize_can_retag_them() -> None:
    retaggable = {image["name"] for image in kustomization()["images"]}
    for name, doc in documents():
        if doc["kind"] not in ("Deployment", "DaemonSet"):
            continue
        image = container(doc)["image"]
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{name}: {image}"
        assert repository in retaggable, f"{name}: {image} not in kustomization images"


def test_services_select_pods_and_target_named_ports() -> None:
    workloads = [d for _, d in documents() if d["kind"] in ("Deployment", "DaemonSet")]
    for _, service in documents():
        if service["kind"] != "Service":
            continue
        selector = service["spec"]["selector"]
        matching = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {len(matching)}"
        port_names = {p["name"] for p in container(matching[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


def test_pod_selectors_match_their_templates() -> None:
    for name, doc in documents():
        if doc["kind"] in ("Deployment", "DaemonSet"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name


# --- one source of truth: collector/ --------------------------------------------------------------


def test_the_configmaps_are_the_collector_files_byte_for_byte() -> None:
    agent = find("ConfigMap", "otelcol-agent-config")["data"]
    gateway = find("ConfigMap", "otelcol-gateway-config")["data"]
    assert agent["agent.yaml"] == (COLLECTOR / "agent.yaml").read_text()
    assert agent["agent-k8s.yaml"] == (COLLECTOR / "agent-k8s.yaml").read_text()
    assert gateway["gateway.yaml"] == (COLLECTOR / "gateway.yaml").read_text()


def test_generated_files_are_fresh() -> None:
    """Run `python deploy/k8s/generate_configmaps.py` after editing collector/*.yaml."""
    stale = [
        str(path.relative_to(ROOT))
        for path, text in _generator().rendered_files().items()
        if path.read_text() != text
    ]
    assert not stale, f"stale (run deploy/k8s/generate_configmaps.py): {stale}"


@pytest.mark.parametrize(
    ("workload", "configmap"),
    [
        (("DaemonSet", "otelcol-agent"), "otelcol-agent-config"),
        (("Deployment", "otelcol-gateway"), "otelcol-gateway-config"),
    ],
)
def test_collector_pods_mount_their_configmap_and_read_its_files(
    workload: tuple[str, str], configmap: str
) -> None:
    doc = find(*workload)
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [
        m
        for m in container(doc)["volumeMounts"]
        if m["name"] in volumes and "configMap" in volumes[m["name"]]
    ]
    assert volumes[mount["name"]]["configMap"]["name"] == configmap
    keys = set(find("ConfigMap", configmap)["data"])
    read = [a.removeprefix("--config=") for a in container(doc)["args"]]
    assert read and all(Path(path).parent == Path(mount["mountPath"]) for path in read)
    assert [Path(path).name for path in read] == sorted(keys, key=lambda k: "k8s" in k)
    # The pod template changes with the config, so that a new config rolls the pods.
    digest = find("ConfigMap", configmap)["metadata"]["annotations"]["otel-tdd/config-sha256"]
    assert doc["spec"]["template"]["metadata"]["annotations"]["otel-tdd/config-sha256"] == digest


@pytest.mark.parametrize(
    ("workload", "files"),
    [
        (("DaemonSet", "otelcol-agent"), ["agent.yaml", "agent-k8s.yaml"]),
        (("Deployment", "otelcol-gateway"), ["gateway.yaml"]),
    ],
)
def test_collector_env_sets_only_variables_the_config_reads(
    workload: tuple[str, str], files: list[str]
) -> None:
    doc = find(*workload)
    data = find("ConfigMap", f"{workload[1]}-config")["data"]
    read = {m for f in files for m in re.findall(r"\$\{env:([A-Z_]+)", data[f])}
    set_here = set(env_of(doc)) - {"GOMEMLIMIT"}
    assert set_here <= read, set_here - read
    # In a pod the Collector must listen beyond loopback, on the ports it declares
    # (the stores' endpoints are where it sends: the next test checks them).
    env = env_of(doc)
    declared = {p["containerPort"] for p in container(doc)["ports"]}
    for name, value in env.items():
        if name.endswith("_ENDPOINT") and name not in STORE_ENDPOINTS and isinstance(value, str):
            host, _, port = value.rpartition(":")
            assert host == "0.0.0.0" and int(port) in declared, (name, value)


# The gateway's exporters: variable -> (store Service in deploy/k8s/stores, its port's name).
STORE_ENDPOINTS = {
    "OTELCOL_LOGS_STORE_ENDPOINT": ("vlinsert", "http"),
    "OTELCOL_TRACES_STORE_ENDPOINT": ("jaeger-collector", "otlp-grpc"),
}


def store_documents() -> list[dict[str, Any]]:
    stores = K8S / "stores"
    listed = yaml.safe_load((stores / "kustomization.yaml").read_text())["resources"]
    return [d for name in listed for d in yaml.safe_load_all((stores / name).read_text()) if d]


def test_the_gateways_send_to_the_cluster_stores_with_a_queue_on_their_volume() -> None:
    gateway = find("Deployment", "otelcol-gateway")
    env = env_of(gateway)
    services = {d["metadata"]["name"]: d for d in store_documents() if d["kind"] == "Service"}
    for variable, (service_name, port_name) in STORE_ENDPOINTS.items():
        service = services[service_name]
        port = {p["name"]: p["port"] for p in service["spec"]["ports"]}[port_name]
        # Same namespace as the stores' kustomization: the short Service name resolves.
        url = urlsplit(env[variable] if "//" in env[variable] else f"//{env[variable]}")
        assert (url.hostname, url.port) == (service_name, port), (variable, env[variable])
    stores_namespace = yaml.safe_load((K8S / "stores" / "kustomization.yaml").read_text())
    assert stores_namespace["namespace"] == kustomization()["namespace"]
    # vlinsert (not vlselect) takes writes; the config appends the OTLP path.
    config = yaml.safe_load(find("ConfigMap", "otelcol-gateway-config")["data"]["gateway.yaml"])
    logs = config["exporters"]["otlp_http/victorialogs"]["logs_endpoint"]
    assert logs.endswith("/insert/opentelemetry/v1/logs"), logs
    # The persistent queues live on a mounted volume, not the read-only root.
    queue = Path(env["OTELCOL_QUEUE_DIR"])
    mounts = {m["name"]: Path(m["mountPath"]) for m in container(gateway)["volumeMounts"]}
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    (volume,) = [n for n, path in mounts.items() if path in queue.parents or path == queue]
    assert "emptyDir" in volumes[volume] or "persistentVolumeClaim" in volumes[volume]
    assert container(gateway)["securityContext"]["readOnlyRootFilesystem"] is True


def test_agent_config_with_the_k8s_overlay_is_valid_for_our_collector(tmp_path: Path) -> None:
    data = find("ConfigMap", "otelcol-agent-config")["data"]
    for key, text in data.items():
        (tmp_path / key).write_text(text)
    env = {
        k: v for k, v in env_of(find("DaemonSet", "otelcol-agent")).items() if isinstance(v, str)
    }
    result = subprocess.run(
        [
            collector_bin(),
            "validate",
            *(f"--config={tmp_path / k}" for k in ("agent.yaml", "agent-k8s.yaml")),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = subprocess.run(
        [
            collector_bin(),
            "print-config",
            *(f"--config={tmp_path / k}" for k in ("agent.yaml", "agent-k8s.yaml")),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        check=False,
    )
    # What the merged config really says: the overlay replaced the static list.
    assert printed.returncode == 0, printed.stderr
    merged = yaml.safe_load(printed.stdout)
    for exporter in ("load_balancing", "load_balancing/metrics"):
        resolver = merged["exporters"][exporter]["resolver"]
        assert resolver["static"] is None and resolver["k8s"]["service"] == "otelcol-gateway"


def test_gateway_config_with_the_pods_env_is_valid_for_our_collector(tmp_path: Path) -> None:
    data = find("ConfigMap", "otelcol-gateway-config")["data"]
    (tmp_path / "gateway.yaml").write_text(data["gateway.yaml"])
    gateway = find("Deployment", "otelcol-gateway")
    env = {k: v for k, v in env_of(gateway).items() if isinstance(v, str)}
    env["OTELCOL_GATEWAY_NAME"] = "otelcol-gateway-0"  # a fieldRef in the pod
    result = subprocess.run(
        [collector_bin(), "validate", f"--config={tmp_path / 'gateway.yaml'}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = subprocess.run(
        [collector_bin(), "print-config", f"--config={tmp_path / 'gateway.yaml'}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    merged = yaml.safe_load(printed.stdout)
    # What the pod's Collector really sends to: the cluster stores.
    exporters = merged["exporters"]
    assert exporters["otlp_grpc/jaeger"]["endpoint"] == "jaeger-collector:4317"
    assert exporters["otlp_http/victorialogs"]["logs_endpoint"] == (
        "http://vlinsert:9428/insert/opentelemetry/v1/logs"
    )
    assert merged["extensions"]["file_storage"]["directory"] == env["OTELCOL_QUEUE_DIR"]


def test_the_agents_resolver_follows_the_headless_gateway_service() -> None:
    overlay = yaml.safe_load((COLLECTOR / "agent-k8s.yaml").read_text())
    service = find("Service", "otelcol-gateway")
    assert service["spec"]["clusterIP"] == "None"
    grpc = {p["name"]: p["port"] for p in service["spec"]["ports"]}["otlp-grpc"]
    for exporter in ("load_balancing", "load_balancing/metrics"):
        resolver = overlay["exporters"][exporter]["resolver"]
        assert resolver["static"] is None
        assert resolver["k8s"] == {"service": service["metadata"]["name"], "ports": [grpc]}
    # The gateways listen where the resolver sends.
    assert env_of(find("Deployment", "otelcol-gateway"))["OTELCOL_OTLP_GRPC_ENDPOINT"].endswith(
        f":{grpc}"
    )
    # RBAC: the agent's service account may list and watch EndpointSlices.
    role = find("Role", "otelcol-agent-resolver")
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["discovery.k8s.io"] and rule["resources"] == ["endpointslices"]
    assert {"list", "watch"} <= set(rule["verbs"])
    binding = find("RoleBinding", "otelcol-agent-resolver")
    agent = find("DaemonSet", "otelcol-agent")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == agent["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"][0]["namespace"] == kustomization()["namespace"]


# --- the app -------------------------------------------------------------------------------------


def test_the_app_probes_and_stops_on_the_ops_port() -> None:
    app = find("Deployment", "tdd-app")
    spec = app["spec"]["template"]["spec"]
    main = container(app)
    env = env_of(app)
    ops = {p["name"]: p["containerPort"] for p in main["ports"]}["ops"]
    assert env["OTEL_TDD_OPS_PORT"] == str(ops)
    assert env["OTEL_TDD_OPS_HOST"] == "0.0.0.0"
    assert main["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "ops"}
    assert main["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "ops"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "ops"}
    pre_stop = main["lifecycle"]["preStop"]["sleep"]["seconds"]
    # preStop + the SDK's flush timeout (10 s) + cleanups must fit in the grace period.
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + 10 + 10
    # Telemetry goes to the node's agent.
    agent = find("Service", "otelcol-agent")
    assert agent["spec"]["internalTrafficPolicy"] == "Local"
    http = {p["name"]: p["port"] for p in agent["spec"]["ports"]}["otlp-http"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{agent['metadata']['name']}:{http}"


# --- Prometheus ----------------------------------------------------------------------------------


def scrape_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        find("ConfigMap", "prometheus-scrape")["data"]["prometheus.yml"]
    )
    return data


# Fields of kubernetes_sd_configs that Prometheus accepts (its docs, 2.x), and roles.
_K8S_SD_FIELDS = {
    "role",
    "namespaces",
    "selectors",
    "api_server",
    "kubeconfig_file",
    "attach_metadata",
}
_K8S_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}


def test_the_scrape_config_passes_promtool(tmp_path: Path) -> None:
    """promtool checks everything but the discovery itself: Debian's Prometheus 2.42
    is built without the kubernetes (and consul...) SD plugins, so each
    kubernetes_sd_configs is checked here and swapped for a static target there."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: apt-get install prometheus", pytrace=False)
    config = scrape_config()
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs"):
            assert set(sd) <= _K8S_SD_FIELDS, (job["job_name"], set(sd) - _K8S_SD_FIELDS)
            assert sd["role"] in _K8S_SD_ROLES, job["job_name"]
            assert set(sd.get("namespaces", {})) <= {"own_namespace", "names"}, job["job_name"]
        job["static_configs"] = [{"targets": ["pod.invalid:1"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_jobs_keep_composes_names_and_label_handling() -> None:
    compose = yaml.safe_load((ROOT / "compose" / "prometheus" / "prometheus.yml").read_text())
    compose_jobs = {j["job_name"]: j for j in compose["scrape_configs"]}
    jobs = {j["job_name"]: j for j in scrape_config()["scrape_configs"]}
    assert set(jobs) <= set(compose_jobs), set(jobs) - set(compose_jobs)
    assert {"otel-collector", "otel-collector-internal", "app"} <= set(jobs)
    assert jobs["otel-collector"].get("honor_labels") is True
    assert jobs["app"]["metric_relabel_configs"] == compose_jobs["app"]["metric_relabel_configs"]


def test_scrape_jobs_keep_ports_the_pods_name() -> None:
    named = {
        p["name"]
        for _, d in documents()
        if d["kind"] in ("Deployment", "DaemonSet")
        for p in container(d)["ports"]
    }
    named |= {
        p["name"]
        for d in store_documents()
        if d["kind"] in ("Deployment", "StatefulSet")
        for p in container(d)["ports"]
    }
    for job in scrape_config()["scrape_configs"]:
        for rule in job["relabel_configs"]:
            if rule.get("source_labels") == ["__meta_kubernetes_pod_container_port_name"]:
                assert rule["regex"] in named, (job["job_name"], rule["regex"])


def test_the_store_jobs_keep_every_store_pod_on_its_metrics_port() -> None:
    """Each store workload's pods match its job's name filter and expose the kept port."""
    jobs = {j["job_name"]: j for j in scrape_config()["scrape_configs"]}
    workloads = [d for d in store_documents() if d["kind"] in ("Deployment", "StatefulSet")]
    expected = {"vlinsert": "victorialogs", "vlselect": "victorialogs", "vlstorage":
                "victorialogs", "jaeger": "jaeger"}  # fmt: skip
    assert {w["metadata"]["name"] for w in workloads} == set(expected)
    for workload in workloads:
        job = jobs[expected[workload["metadata"]["name"]]]
        rules = {tuple(r["source_labels"]): r for r in job["relabel_configs"] if "regex" in r}
        name_rule = rules[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]
        port_rule = rules[("__meta_kubernetes_pod_container_port_name",)]
        label = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        assert re.fullmatch(name_rule["regex"], label), (job["job_name"], label)
        assert port_rule["regex"] in {p["name"] for p in container(workload)["ports"]}
