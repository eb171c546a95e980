"""The stack's components without processes: the registry, each kind's launch and rendering."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from otel_tdd.stack import collectors, registry
from otel_tdd.stack.component import Component, StackContext
from otel_tdd.stack.config import STACK_KNOBS, StackConfig
from otel_tdd.stack.local import COMPONENTS, CORE_COMPONENTS, LocalStack, StackError
from otel_tdd.stack.monitoring import Prometheus
from otel_tdd.stack.store_components import Jaeger, VictoriaLogs

STACK_MODULES = ("local.py", "view.py", "config.py", "state.py")


def context(tmp_path: Path, **options: object) -> StackContext:
    """Every process of ``options``' stack with made-up ports, as ``up`` has assigned them."""
    config = StackConfig(state_dir=tmp_path, **options)  # type: ignore[arg-type]
    ports: dict[str, dict[str, int]] = {}
    next_port = 20000
    for name in config.processes:
        ports[name] = {}
        for port in registry.default_ports(name):
            ports[name][port] = next_port
            next_port += 1
    return StackContext(tmp_path, config, ports, registry.members(config.processes))


# --- the registry ------------------------------------------------------------------------


def test_up_runs_the_stores_by_default_and_starts_them_before_what_sends_to_them(
    tmp_path: Path,
) -> None:
    assert COMPONENTS == ("collector", "prometheus", "alertmanager", "victoria-logs", "jaeger")
    assert StackConfig(state_dir=tmp_path).processes == (
        "victoria-logs",
        "jaeger",
        "collector",
        "alertmanager",
        "prometheus",
    )
    assert StackConfig(state_dir=tmp_path, components=CORE_COMPONENTS).processes == (
        "collector",
        "alertmanager",
        "prometheus",
    )


def test_every_kind_is_found_by_its_process_names_and_has_what_up_needs() -> None:
    for kind in registry.KINDS:
        name = kind.name_pattern.replace("N", "3") if kind.name_pattern else kind.kind
        component = registry.component_for(name)
        assert type(component) is kind and component.name == name
        assert isinstance(kind.start_rank, int)
    assert registry.component_for("gateway-3").ports["otlp_grpc"] == 4417 + 200
    with pytest.raises(KeyError):
        registry.component_for("tempo")


def test_the_help_lists_each_stores_binary_override() -> None:
    assert "OTEL_TDD_JAEGER_BIN" in STACK_KNOBS and "OTEL_TDD_VICTORIA_LOGS_BIN" in STACK_KNOBS
    assert list(STACK_KNOBS).index("OTELCOL_BIN") > list(STACK_KNOBS).index(
        "OTEL_TDD_ALERTMANAGER_BIN"
    )


def test_an_unknown_component_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"unknown component.*'tempo'.*victoria-logs, jaeger"):
        StackConfig(state_dir=tmp_path, components=("collector", "tempo"))


def test_the_orchestration_modules_name_no_component_kind() -> None:
    """Adding the stores touched no orchestration code: it goes through the Component API."""
    stack_dir = Path(collectors.__file__).parent
    for module in STACK_MODULES:
        source = (stack_dir / module).read_text().lower()
        for word in ("victoria", "jaeger", "alertmanager.yml", "prometheus.yml"):
            assert word not in source, f"{module} mentions {word}"


# --- the Collector learns where the stores are -------------------------------------------


@pytest.fixture
def collector_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A collector/ with config.yaml and the files.yaml overlay (the collector branch's)."""
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "config.yaml").write_text("receivers: {}\n")
    (assets / "files.yaml").write_text("exporters: {}\n")
    monkeypatch.setattr(collectors, "find_assets", lambda name: assets)
    return assets


def test_the_collector_sends_to_the_stores_of_its_stack_with_a_private_queue_dir(
    tmp_path: Path, collector_assets: Path
) -> None:
    ctx = context(tmp_path / "state")
    launch = registry.component_for("collector").prepare(ctx, "/bin/otelcol")
    env = launch.env or {}
    assert (
        env["OTELCOL_LOGS_STORE_ENDPOINT"]
        == f"http://127.0.0.1:{ctx.ports['victoria-logs']['http']}"
    )
    assert env["OTELCOL_TRACES_STORE_ENDPOINT"] == f"127.0.0.1:{ctx.ports['jaeger']['otlp_grpc']}"
    queue = Path(env["OTELCOL_QUEUE_DIR"])
    assert queue == tmp_path / "state" / "collector" / "queue"
    assert stat.S_IMODE(queue.stat().st_mode) == 0o700
    # The stores are there and no files were asked for: only config.yaml.
    assert launch.argv == ["/bin/otelcol", f"--config={tmp_path / 'state/collector/config.yaml'}"]


def test_the_files_overlay_when_asked_for_or_when_a_store_is_missing(
    tmp_path: Path, collector_assets: Path
) -> None:
    overlay = f"--config={tmp_path / 'state' / 'collector' / 'files.yaml'}"
    asked = context(tmp_path / "state", jsonl_files=True)
    assert registry.component_for("collector").prepare(asked, "otelcol").argv[-1] == overlay
    for components in (("collector",), ("collector", "jaeger"), CORE_COMPONENTS):
        alone = context(tmp_path / "state", components=components)
        launch = registry.component_for("collector").prepare(alone, "otelcol")
        assert launch.argv[-1] == overlay, components
        assert (
            "OTELCOL_LOGS_STORE_ENDPOINT" not in (launch.env or {}) or "victoria-logs" in components
        )
    assert (tmp_path / "state" / "collector" / "files.yaml").read_text() == "exporters: {}\n"


def test_no_files_overlay_over_a_config_of_your_own_or_before_it_exists(
    tmp_path: Path, collector_assets: Path
) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text("receivers: {}\n")
    ctx = context(tmp_path / "a", components=("collector",), collector_config=own)
    assert registry.component_for("collector").prepare(ctx, "otelcol").argv[1:] == [
        f"--config={tmp_path / 'a/collector/config.yaml'}"
    ]
    (collector_assets / "files.yaml").unlink()  # before the overlay: config.yaml wrote files
    ctx = context(tmp_path / "b", components=("collector",))
    assert len(registry.component_for("collector").prepare(ctx, "otelcol").argv) == 2


def test_each_gateway_sends_to_the_stores_of_its_stack_with_its_own_queue_dir(
    tmp_path: Path, collector_assets: Path
) -> None:
    (collector_assets / "gateway.yaml").write_text("receivers: {gateway: {}}\n")
    (collector_assets / "gateway-files.yaml").write_text("exporters: {gateway: files}\n")
    ctx = context(tmp_path / "state", gateways=2)
    queues = set()
    for name in ("gateway-1", "gateway-2"):
        launch = registry.component_for(name).prepare(ctx, "/bin/otelcol")
        env = launch.env or {}
        assert env["OTELCOL_LOGS_STORE_ENDPOINT"] == (
            f"http://127.0.0.1:{ctx.ports['victoria-logs']['http']}"
        )
        assert env["OTELCOL_TRACES_STORE_ENDPOINT"] == (
            f"127.0.0.1:{ctx.ports['jaeger']['otlp_grpc']}"
        )
        assert env["OTELCOL_GATEWAY_NAME"] == name
        queue = Path(env["OTELCOL_QUEUE_DIR"])
        assert queue == tmp_path / "state" / name / "queue"
        assert stat.S_IMODE(queue.stat().st_mode) == 0o700
        queues.add(queue)
        # The stores are there and no files were asked for: only gateway.yaml (its copy).
        config = tmp_path / "state" / name / "config.yaml"
        assert launch.argv == ["/bin/otelcol", f"--config={config}"]
        assert config.read_text() == "receivers: {gateway: {}}\n"
    assert len(queues) == 2


def test_the_gateways_files_overlay_when_asked_for_or_when_a_store_is_missing(
    tmp_path: Path, collector_assets: Path
) -> None:
    (collector_assets / "gateway.yaml").write_text("receivers: {}\n")
    (collector_assets / "gateway-files.yaml").write_text("exporters: {gateway: files}\n")
    overlay = f"--config={tmp_path / 'state' / 'gateway-2' / 'gateway-files.yaml'}"
    asked = context(tmp_path / "state", gateways=2, jsonl_files=True)
    launch = registry.component_for("gateway-2").prepare(asked, "otelcol")
    assert launch.argv[-1] == overlay
    # Where the overlay writes: the gateway's own data dir (what the view reads).
    assert (launch.env or {})["OTELCOL_FILE_DIR"] == str(tmp_path / "state" / "gateway-2" / "data")
    for components in (("collector",), ("collector", "victoria-logs"), CORE_COMPONENTS):
        alone = context(tmp_path / "state", components=components, gateways=2)
        assert registry.component_for("gateway-2").prepare(alone, "otelcol").argv[-1] == overlay
    copied = (tmp_path / "state" / "gateway-2" / "gateway-files.yaml").read_text()
    assert copied == "exporters: {gateway: files}\n"  # the gateway's overlay, not files.yaml


# --- Prometheus scrapes what the components offer ----------------------------------------


def test_prometheus_scrapes_both_stores_and_keeps_exemplars(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    launch = Prometheus().prepare(ctx, "/usr/bin/prometheus")
    assert "--enable-feature=exemplar-storage" in launch.argv
    rendered = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in rendered["scrape_configs"]
    }
    assert jobs["victorialogs"] == [f"127.0.0.1:{ctx.ports['victoria-logs']['http']}"]
    assert jobs["jaeger"] == [f"127.0.0.1:{ctx.ports['jaeger']['metrics']}"]
    assert jobs["otel-collector"] == [f"127.0.0.1:{ctx.ports['collector']['prometheus_exporter']}"]
    assert "node-exporter" not in jobs and "app" not in jobs
    am = rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == [f"127.0.0.1:{ctx.ports['alertmanager']['web']}"]


def test_a_stack_without_stores_scrapes_no_store_job(tmp_path: Path) -> None:
    ctx = context(tmp_path, components=CORE_COMPONENTS)
    Prometheus().prepare(ctx, "prometheus")
    rendered = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    names = [job["job_name"] for job in rendered["scrape_configs"]]
    assert "jaeger" not in names and "victorialogs" not in names and "prometheus" in names


# --- the stores' own launch ----------------------------------------------------------------


def test_the_stores_listen_on_loopback_with_their_data_in_the_state_dir(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    logs = VictoriaLogs().prepare(ctx, "/x/victoria-logs").argv
    port = ctx.ports["victoria-logs"]["http"]
    assert logs[:3] == [
        "/x/victoria-logs",
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={tmp_path / 'victoria-logs' / 'data'}",
    ]
    traces = Jaeger().prepare(ctx, "/x/jaeger").argv
    config_path = tmp_path / "jaeger" / "config.yaml"
    assert traces == ["/x/jaeger", f"--config={config_path}"]
    config = yaml.safe_load(config_path.read_text())
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc == f"127.0.0.1:{ctx.ports['jaeger']['otlp_grpc']}"
    badger = config["extensions"]["jaeger_storage"]["backends"]["badger_store"]["badger"]
    assert badger["directories"]["keys"].startswith(str(tmp_path / "jaeger" / "data"))
    assert config["extensions"]["jaeger_query"]["enable_tracing"] is False
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_a_store_binary_set_by_its_variable_is_used_and_a_bad_one_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "jaeger"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("OTEL_TDD_JAEGER_BIN", str(binary))
    assert Jaeger().find_binary(print) == str(binary)
    monkeypatch.setenv("OTEL_TDD_JAEGER_BIN", str(tmp_path / "missing"))
    with pytest.raises(StackError, match=r"^jaeger: OTEL_TDD_JAEGER_BIN=.*missing"):
        Jaeger().find_binary(print)


def test_urls_list_the_stores_after_the_rest(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    stack._state.ports = {name: dict(ports) for name, ports in context(tmp_path).ports.items()}
    keys = list(stack.urls)
    assert keys[:2] == ["otlp_grpc", "otlp_http"]
    assert keys[-3:] == ["victoria_logs", "victoria_logs_ui", "jaeger"]
    assert stack.urls["victoria_logs_ui"].endswith("/select/vmui/")


def test_a_component_knows_nothing_it_does_not_override() -> None:
    bare = Component("x")
    with pytest.raises(NotImplementedError):
        bare.main_url(StackContext(Path("/"), StackConfig(state_dir=Path("/")), {}))
