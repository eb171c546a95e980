"""The Docker image builds the same distribution, with the same ocb, as `collector build`."""

from __future__ import annotations

import re

import yaml

from otel_tdd.stack.collector import BUILDER_VERSION, find_collector_dir


def test_dockerfile_pins_the_same_builder_and_builds_our_manifest() -> None:
    collector_dir = find_collector_dir()
    dockerfile = (collector_dir / "Dockerfile").read_text()
    match = re.search(r"ARG OCB_VERSION=(\S+)", dockerfile)
    assert match, "collector/Dockerfile must pin OCB_VERSION"
    assert f"v{match.group(1)}" == BUILDER_VERSION or match.group(1) == BUILDER_VERSION
    assert "builder --config=collector/manifest.yaml" in dockerfile
    name = yaml.safe_load((collector_dir / "manifest.yaml").read_text())["dist"]["name"]
    assert "/otelcol-tdd" in dockerfile and name == "otelcol-tdd"


def test_compose_runs_the_image_with_the_mounted_config() -> None:
    compose_dir = find_collector_dir().parent / "compose"
    compose = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    service = compose["services"]["otel-collector"]
    assert service["build"] == "../collector"
    assert "--config=/etc/otelcol/config.yaml" in service["command"]
    assert "../collector/config.yaml:/etc/otelcol/config.yaml:ro" in service["volumes"]
