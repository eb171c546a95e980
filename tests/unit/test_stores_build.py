"""otel_tdd.stack.stores: where the store builds go, and what happens without Go.

The real builds run in tests/integration/stores_fixtures.py (its session fixture
calls build_store); here a fake `go` shows the errors and the cache rules, and
the shipped Jaeger config is checked against what the local render makes of it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from otel_tdd.stack import stores
from otel_tdd.stack.store_configs import (
    JaegerPorts,
    find_jaeger_config,
    jaeger_urls,
    load_jaeger_config,
    render_jaeger_config,
    victoria_logs_args,
)
from otel_tdd.stack.stores import StoreBuildError, build_store, cached_store_path, store_binary


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each test gets its own cache and no *_BIN from the caller's shell."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OTEL_TDD_CACHE_DIR", str(cache))
    for store in stores.STORES.values():
        monkeypatch.delenv(store.env_bin, raising=False)
    return cache


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_go(bin_dir: Path, version: str, rest: str = "exit 0\n") -> Path:
    return write_script(
        bin_dir / "go", f'[ "$1 $2" = "env GOVERSION" ] && echo {version} && exit 0\n{rest}'
    )


def test_each_store_is_cached_by_name_and_version(isolated: Path) -> None:
    assert cached_store_path("jaeger") == isolated / "stores" / "jaeger" / "v1.76.0" / "jaeger"
    assert cached_store_path("victoria-logs") == (
        isolated / "stores" / "victoria-logs" / "v1.52.1" / "victoria-logs"
    )


def test_a_cached_binary_is_not_rebuilt_even_without_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = cached_store_path("victoria-logs")
    write_script(target, "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    said: list[str] = []
    assert build_store("victoria-logs", progress=said.append) == target
    assert "up to date" in said[0]


@pytest.mark.parametrize("name", ["jaeger", "victoria-logs"])
def test_no_go_says_how_to_get_it_or_where_to_point(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StoreBuildError) as error:
        build_store(name, progress=lambda _: None)
    message = str(error.value)
    assert f"building {name} needs Go >= 1.25" in message
    assert "no `go` on PATH" in message
    assert stores.STORES[name].env_bin in message


def test_too_old_go_is_refused_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go(tmp_path / "bin", "go1.22.4")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(StoreBuildError, match=r"needs Go >= 1\.25, but .* is go1\.22\.4"):
        build_store("jaeger", progress=lambda _: None)


def test_a_failing_build_names_the_log_and_quotes_its_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go(
        tmp_path / "bin", "go1.26.8", 'echo "go: module lookup disabled by GOPROXY=off"\nexit 1\n'
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(StoreBuildError) as error:
        build_store("jaeger", progress=lambda _: None)
    message = str(error.value)
    log = cached_store_path("jaeger").parent / "build.log"
    assert str(log) in message
    assert "module lookup disabled" in message
    assert not cached_store_path("jaeger").exists()


def test_jaeger_is_built_from_a_wrapper_module_that_repeats_its_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake go records its arguments and, for `build -o OUT`, writes OUT.
    record = tmp_path / "calls"
    fake_go(
        tmp_path / "bin",
        "go1.26.8",
        f'echo "$@" >> {record}\n'
        'while [ $# -gt 0 ]; do [ "$1" = "-o" ] && printf x > "$2"; shift; done\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    built = build_store("jaeger", progress=lambda _: None)
    assert built == cached_store_path("jaeger") and built.read_text() == "x"
    src = built.parent / "src"
    go_mod = (src / "go.mod").read_text()
    assert "require github.com/jaegertracing/jaeger v1.76.0" in go_mod
    assert "replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0" in go_mod
    assert 'import _ "github.com/jaegertracing/jaeger/cmd/jaeger"' in (src / "tools.go").read_text()
    tidy, build = record.read_text().splitlines()
    assert tidy == f"-C {src} mod tidy"
    assert build.startswith(f"-C {src} build -trimpath -ldflags -s -w -o ")
    assert build.endswith("github.com/jaegertracing/jaeger/cmd/jaeger")


def test_victoria_logs_is_go_installed_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go(
        tmp_path / "bin",
        "go1.26.8",
        '[ "$1" = install ] && printf vl > "$GOBIN/victoria-logs" && echo "$@" > "$GOBIN/args"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    built = build_store("victoria-logs", progress=lambda _: None)
    assert built.read_text() == "vl"
    assert (built.parent / "gobin" / "args").read_text().strip() == (
        "install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1"
    )


def test_path_of_an_unbuilt_store_says_to_build_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert stores.cli(["path", "jaeger"]) == 1
    err = capsys.readouterr().err
    assert "otel-tdd stores build jaeger" in err and "OTEL_TDD_JAEGER_BIN" in err


def test_bin_variable_wins_and_a_bad_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = write_script(tmp_path / "vl", "exit 0\n")
    monkeypatch.setenv("OTEL_TDD_VICTORIA_LOGS_BIN", str(binary))
    assert store_binary("victoria-logs") == binary
    assert stores.cli(["path", "victoria-logs"]) == 0
    assert capsys.readouterr().out.strip() == str(binary)
    monkeypatch.setenv("OTEL_TDD_VICTORIA_LOGS_BIN", str(tmp_path / "missing"))
    with pytest.raises(StoreBuildError, match=r"OTEL_TDD_VICTORIA_LOGS_BIN=.*missing is not"):
        store_binary("victoria-logs")


def test_unknown_store_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        stores.cli(["path", "tempo"])
    assert "invalid choice: 'tempo'" in capsys.readouterr().err
    with pytest.raises(StoreBuildError, match="unknown store 'tempo'"):
        cached_store_path("tempo")


# --- the shipped Jaeger config and its local render ------------------------------------


PORTS = JaegerPorts(
    otlp_grpc=40001, otlp_http=40002, query_http=40003, query_grpc=40004, health=40005,
    metrics=40006,
)  # fmt: skip


def test_shipped_config_keeps_badger_with_a_ttl_and_no_self_tracing() -> None:
    config = load_jaeger_config()
    assert find_jaeger_config().parent.name == "jaeger"
    extensions = config["extensions"]
    assert extensions["jaeger_query"]["enable_tracing"] is False
    (backend,) = extensions["jaeger_storage"]["backends"].values()
    assert backend["badger"]["ephemeral"] is False
    assert backend["badger"]["ttl"]["spans"] == "168h"
    assert (
        extensions["jaeger_query"]["storage"]["traces"] in extensions["jaeger_storage"]["backends"]
    )
    storage = config["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    assert storage == extensions["jaeger_query"]["storage"]["traces"]
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline == {
        "receivers": ["otlp"],
        "processors": ["batch"],
        "exporters": ["jaeger_storage_exporter"],
    }
    assert set(config["service"]["extensions"]) == set(extensions)


def test_local_render_puts_every_endpoint_on_loopback_and_data_in_our_dir(tmp_path: Path) -> None:
    rendered = render_jaeger_config(load_jaeger_config(), PORTS, tmp_path)
    text = yaml.safe_dump(rendered)
    assert "0.0.0.0" not in text
    assert "/tmp/badger" not in text
    protocols = rendered["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:40001"
    assert protocols["http"]["endpoint"] == "127.0.0.1:40002"
    query = rendered["extensions"]["jaeger_query"]
    assert (query["http"]["endpoint"], query["grpc"]["endpoint"]) == (
        "127.0.0.1:40003",
        "127.0.0.1:40004",
    )
    assert rendered["extensions"]["healthcheckv2"]["http"]["endpoint"] == "127.0.0.1:40005"
    (reader,) = rendered["service"]["telemetry"]["metrics"]["readers"]
    assert reader["pull"]["exporter"]["prometheus"] == {"host": "127.0.0.1", "port": 40006}
    (name, backend) = next(iter(rendered["extensions"]["jaeger_storage"]["backends"].items()))
    assert backend["badger"]["directories"] == {
        "keys": str(tmp_path / name / "keys"),
        "values": str(tmp_path / name / "values"),
    }
    assert backend["badger"]["ttl"] == {"spans": "168h"}  # the rest as shipped
    assert load_jaeger_config()["extensions"]["jaeger_query"]["http"]["endpoint"] == (
        "0.0.0.0:16686"
    )  # the shipped data is not mutated


def test_urls_follow_the_rendered_ports() -> None:
    urls = jaeger_urls(PORTS, load_jaeger_config())
    assert urls["query"] == "http://127.0.0.1:40003"
    assert urls["health"] == "http://127.0.0.1:40005/status"
    assert urls["metrics"] == "http://127.0.0.1:40006/metrics"


def test_victoria_logs_on_loopback_with_a_7_day_retention_and_1s_flushes(tmp_path: Path) -> None:
    args = victoria_logs_args(Path("/x/victoria-logs"), 9999, tmp_path)
    assert args == [
        "/x/victoria-logs",
        "-httpListenAddr=127.0.0.1:9999",
        f"-storageDataPath={tmp_path}",
        "-retentionPeriod=7d",
        "-inmemoryDataFlushInterval=1s",
    ]


def test_cli_build_all_reuses_both_cached_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in stores.STORES:
        write_script(cached_store_path(name), "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a build would fail: no Go
    assert stores.cli(["build"]) == 0
    err = capsys.readouterr().err
    assert "jaeger v1.76.0 up to date" in err
    assert "victoria-logs v1.52.1 up to date" in err


def test_cli_build_without_go_exits_1_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert stores.cli(["build", "victoria-logs"]) == 1
    assert "error: building victoria-logs needs Go >= 1.25" in capsys.readouterr().err
