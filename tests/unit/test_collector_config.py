"""The shipped Collector configs: stores by default, persistent queues, the files overlay.

What the Collector itself accepts is checked by running the binary
(tests/integration/test_collector.py validates every config and the merges); these
tests pin the choices a valid config could still get wrong: where each signal goes,
that the store queues are on disk, and that the overlay replaces whole lists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tdd.stack.collector import find_config

COLLECTOR = find_config().parent
LOGS_STORE = "otlp_http/victorialogs"
TRACES_STORE = "otlp_grpc/jaeger"
# Exporter types the Collector v0.161 calls deprecated aliases (otlp_grpc, otlp_http).
DEPRECATED_TYPES = {"otlp", "otlphttp"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((COLLECTOR / name).read_text())
    return data


def merged(base: Any, over: Any) -> Any:
    """The Collector's rule for two --config files: maps merge key by key, lists are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in over.items()}}
    return over


@pytest.fixture
def config() -> dict[str, Any]:
    return load("config.yaml")


def pipeline_exporters(cfg: dict[str, Any]) -> dict[str, list[str]]:
    return {name: p["exporters"] for name, p in cfg["service"]["pipelines"].items()}


def test_traces_go_to_jaeger_and_logs_to_victorialogs(config: dict[str, Any]) -> None:
    assert pipeline_exporters(config) == {
        "traces": [TRACES_STORE, "span_metrics"],
        "metrics": ["prometheus"],
        "logs": [LOGS_STORE],
    }
    logs = config["exporters"][LOGS_STORE]
    assert logs["logs_endpoint"] == (
        "${env:OTELCOL_LOGS_STORE_ENDPOINT:-http://127.0.0.1:9428}/insert/opentelemetry/v1/logs"
    )
    # Without it every resource attribute becomes a VictoriaLogs stream field.
    assert logs["headers"] == {"VL-Stream-Fields": "service.name,deployment.environment"}
    traces = config["exporters"][TRACES_STORE]
    assert traces["endpoint"] == "${env:OTELCOL_TRACES_STORE_ENDPOINT:-127.0.0.1:14317}"
    assert traces["tls"] == {"insecure": True}


def default_of(value: str) -> str:
    """``${env:NAME:-default}`` -> ``default``."""
    assert value.startswith("${env:") and ":-" in value, value
    return value.split(":-", 1)[1].split("}", 1)[0]


def test_no_store_default_points_at_our_own_receivers(config: dict[str, Any]) -> None:
    """Jaeger's own default OTLP port is 4317, ours: a default there would loop traces back."""
    protocols = config["receivers"]["otlp"]["protocols"]
    ours = {default_of(protocols[p]["endpoint"]) for p in ("grpc", "http")}
    assert default_of(config["exporters"][TRACES_STORE]["endpoint"]) not in ours
    assert (
        default_of(config["exporters"][LOGS_STORE]["logs_endpoint"]).removeprefix("http://")
        not in ours
    )


@pytest.mark.parametrize("exporter", [LOGS_STORE, TRACES_STORE])
def test_store_exporters_queue_on_disk_and_retry(config: dict[str, Any], exporter: str) -> None:
    settings = config["exporters"][exporter]
    queue = settings["sending_queue"]
    assert queue["enabled"] is True
    assert queue["storage"] == "file_storage"
    retry = settings["retry_on_failure"]
    assert retry["enabled"] is True
    # 0 would retry forever and never count a loss; the alerts rely on a finite window.
    assert retry["max_elapsed_time"] not in (0, "0", "0s")
    assert "file_storage" in config["service"]["extensions"]
    storage = config["extensions"]["file_storage"]
    assert storage["directory"] == "${env:OTELCOL_QUEUE_DIR:-./otelcol-queue}"
    assert storage["create_directory"] is True


def test_prometheus_exporter_serves_exemplars(config: dict[str, Any]) -> None:
    assert config["exporters"]["prometheus"]["enable_open_metrics"] is True


def test_files_overlay_replaces_every_store_with_its_file() -> None:
    base = load("config.yaml")
    overlay = load("files.yaml")
    assert set(overlay["service"]["pipelines"]) == set(base["service"]["pipelines"])
    result = merged(base, overlay)
    assert pipeline_exporters(result) == {
        "traces": ["file/traces", "span_metrics"],
        "metrics": ["prometheus", "file/metrics"],
        "logs": ["file/logs"],
    }
    # No stores, so no queue directory either; health_check is kept.
    assert result["service"]["extensions"] == ["health_check"]
    # Receivers and processors come from config.yaml untouched.
    for name, pipeline in result["service"]["pipelines"].items():
        original = base["service"]["pipelines"][name]
        assert pipeline["receivers"] == original["receivers"], name
        assert pipeline["processors"] == original["processors"], name
    for kind in ("traces", "logs", "metrics"):
        path = result["exporters"][f"file/{kind}"]["path"]
        assert path == f"${{env:OTELCOL_FILE_DIR:-./otelcol-data}}/{kind}.jsonl"


CONFIGS = sorted(p.name for p in COLLECTOR.glob("*.yaml") if p.name != "manifest.yaml")


@pytest.mark.parametrize("name", CONFIGS)
def test_no_config_uses_a_deprecated_exporter_name(name: str) -> None:
    exporters = load(name).get("exporters") or {}
    used = {key.split("/", 1)[0] for key in exporters}
    assert not used & DEPRECATED_TYPES, (name, sorted(used & DEPRECATED_TYPES))


def test_every_exporter_a_pipeline_names_is_configured() -> None:
    for files in (False, True):
        cfg = load("config.yaml")
        if files:
            cfg = merged(cfg, load("files.yaml"))
        known = set(cfg["exporters"]) | set(cfg.get("connectors") or {})
        for name, exporters in pipeline_exporters(cfg).items():
            assert set(exporters) <= known, (files, name, set(exporters) - known)


def test_configs_are_in_the_package_data() -> None:
    """files.yaml ships beside config.yaml (the wheel maps collector/ as a whole)."""
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"collector" = "otel_tdd/_assets/collector"' in pyproject
    assert (COLLECTOR / "files.yaml").is_file()


def test_the_image_owns_the_queue_directory_a_volume_is_mounted_on() -> None:
    """A named volume starts as a copy of the image's directory: it must be the user's."""
    dockerfile = (COLLECTOR / "Dockerfile").read_text()
    queue = re.search(r"OTELCOL_QUEUE_DIR=(\S+)", dockerfile)
    assert queue, "collector/Dockerfile must set OTELCOL_QUEUE_DIR"
    assert f"mkdir -p /out{queue.group(1)}" in dockerfile
    assert re.search(r"COPY --from=build --chown=nonroot:nonroot /out(\S+) (\S+)", dockerfile)
    compose_dir = COLLECTOR.parent / "compose"
    compose = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    env = compose["services"]["otel-collector"]["environment"]
    assert env["OTELCOL_QUEUE_DIR"] == queue.group(1)
