"""Building and locating the Collector: cache keys, errors that say what to do, the manifest."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from otel_tdd.stack import collector
from otel_tdd.stack.collector import (
    BINARY_NAME,
    BUILDER_VERSION,
    DEFAULT_ENV,
    CollectorBuildError,
    build_collector,
    cached_binary_path,
    cli,
    collector_binary,
    collector_env,
    find_config,
    find_manifest,
    manifest_key,
)

CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"

REQUIRED = {
    "receivers": [f"{CORE}/receiver/otlpreceiver"],
    "processors": [
        f"{CORE}/processor/memorylimiterprocessor",
        f"{CORE}/processor/batchprocessor",
        f"{CONTRIB}/processor/resourceprocessor",
        f"{CONTRIB}/processor/attributesprocessor",
        f"{CONTRIB}/processor/redactionprocessor",
        f"{CONTRIB}/processor/transformprocessor",
        f"{CONTRIB}/processor/tailsamplingprocessor",
    ],
    "exporters": [
        f"{CONTRIB}/exporter/prometheusexporter",
        f"{CONTRIB}/exporter/prometheusremotewriteexporter",
        f"{CONTRIB}/exporter/fileexporter",
        f"{CORE}/exporter/debugexporter",
        f"{CORE}/exporter/otlpexporter",
        f"{CORE}/exporter/otlphttpexporter",
        f"{CONTRIB}/exporter/loadbalancingexporter",
    ],
    "connectors": [f"{CONTRIB}/connector/spanmetricsconnector"],
    "extensions": [
        f"{CONTRIB}/extension/healthcheckextension",
        f"{CONTRIB}/extension/storage/filestorage",
    ],
    "providers": [
        f"{CORE}/confmap/provider/envprovider",
        f"{CORE}/confmap/provider/fileprovider",
        f"{CORE}/confmap/provider/yamlprovider",
    ],
}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test gets its own cache and no OTELCOL_BIN from the caller's shell."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OTEL_TDD_CACHE_DIR", str(cache))
    monkeypatch.delenv("OTELCOL_BIN", raising=False)
    return cache


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_go(bin_dir: Path, version: str) -> Path:
    return write_script(bin_dir / "go", f'[ "$1 $2" = "env GOVERSION" ] && echo {version}\n')


def manifest_modules() -> dict[str, list[tuple[str, str]]]:
    data = yaml.safe_load(find_manifest().read_text())
    return {
        kind: [tuple(entry["gomod"].split()) for entry in data.get(kind, [])] for kind in REQUIRED
    }


# --- cache ------------------------------------------------------------------------------


def test_cache_key_changes_with_the_manifest(tmp_path: Path, isolated: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("dist: {name: otelcol-tdd}\n")
    same = tmp_path / "b.yaml"
    same.write_text(first.read_text())
    changed = tmp_path / "c.yaml"
    changed.write_text("dist: {name: otelcol-tdd}\n# one more pin\n")

    assert manifest_key(first) == manifest_key(same)
    assert manifest_key(first) != manifest_key(changed)
    assert re.fullmatch(r"[0-9a-f]{16}", manifest_key(first))
    assert cached_binary_path(first) == isolated / "collector" / manifest_key(first) / BINARY_NAME
    assert cached_binary_path(first) != cached_binary_path(changed)


def test_cache_dir_defaults_to_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TDD_CACHE_DIR")
    assert cached_binary_path().parent.parent == (Path.home() / ".cache" / "otel-tdd" / "collector")


def test_unchanged_manifest_is_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = write_script(cached_binary_path(), "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Go: a rebuild would fail
    lines: list[str] = []
    assert build_collector(progress=lines.append) == cached
    assert any("up to date" in line for line in lines)


# --- OTELCOL_BIN and the cached binary -------------------------------------------------------


def test_otelcol_bin_not_executable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "otelcol-contrib"
    plain.write_text("not a program")
    plain.chmod(0o644)
    monkeypatch.setenv("OTELCOL_BIN", str(plain))
    with pytest.raises(CollectorBuildError, match="OTELCOL_BIN"):
        collector_binary()


def test_otelcol_bin_missing_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTELCOL_BIN", str(tmp_path / "nope"))
    with pytest.raises(CollectorBuildError, match=r"OTELCOL_BIN=.*nope"):
        collector_binary()


def test_otelcol_bin_wins_over_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_script(cached_binary_path(), "exit 0\n")
    mine = write_script(tmp_path / "otelcol-contrib", "exit 0\n")
    monkeypatch.setenv("OTELCOL_BIN", str(mine))
    assert collector_binary() == mine


def test_unbuilt_collector_says_to_run_build() -> None:
    with pytest.raises(CollectorBuildError, match="otel-tdd collector build"):
        collector_binary()


def test_cli_path_exits_1_with_the_message_when_not_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(["path"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "otel-tdd collector build" in captured.err


def test_cli_path_prints_only_the_binary(capsys: pytest.CaptureFixture[str]) -> None:
    cached = write_script(cached_binary_path(), "exit 0\n")
    assert cli(["path"]) == 0
    assert capsys.readouterr().out == f"{cached}\n"


# --- Go toolchain errors -----------------------------------------------------------------


def test_no_go_on_path_explains_how_to_get_it_or_use_otelcol_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(CollectorBuildError) as info:
        build_collector(progress=lambda _: None)
    message = str(info.value)
    assert "Go >= 1.25" in message
    assert "from your distribution or go.dev" in message
    assert "OTELCOL_BIN=/path/to/otelcol-contrib" in message


def test_too_old_go_is_rejected_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    fake_go(bin_dir, "go1.22.4")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(CollectorBuildError, match=r"Go >= 1\.25.*go1\.22\.4"):
        build_collector(progress=lambda _: None)


def test_builder_failure_names_the_log_and_quotes_its_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    bin_dir = tmp_path / "bin"
    fake_go(bin_dir, "go1.26.8")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    write_script(
        isolated / "builder" / BUILDER_VERSION / "builder",
        'echo "resolving modules"\necho "403 Forbidden: module not available" >&2\nexit 3\n',
    )
    lines: list[str] = []
    with pytest.raises(CollectorBuildError) as info:
        build_collector(progress=lines.append)
    message = str(info.value)
    log = cached_binary_path().parent / "build.log"
    assert str(log) in message
    assert "exit code 3" in message
    assert "403 Forbidden: module not available" in message
    assert "403 Forbidden" in log.read_text()
    assert not cached_binary_path().exists(), "a failed build must not look cached"
    assert lines and all(re.match(r"\[\s*\d+\.\ds\] ", line) for line in lines)


def test_build_renders_manifest_into_the_cache_and_caches_the_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """A stand-in ocb writes the binary where the rendered manifest says."""
    bin_dir = tmp_path / "bin"
    fake_go(bin_dir, "go1.26.8")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    write_script(
        isolated / "builder" / BUILDER_VERSION / "builder",
        'cfg="${1#--config=}"\n'
        "out=$(sed -n 's/^  output_path: //p' \"$cfg\")\n"
        'mkdir -p "$out" && printf "#!/bin/sh\\n" > "$out/otelcol-tdd" '
        '&& chmod +x "$out/otelcol-tdd"\n',
    )
    built = build_collector(progress=lambda _: None)
    assert built == cached_binary_path()
    assert os.access(built, os.X_OK)
    rendered = yaml.safe_load((built.parent / "manifest.yaml").read_text())
    assert rendered["dist"]["output_path"] == str(built.parent / "src")
    assert rendered["dist"]["go"] == str(bin_dir / "go")
    assert collector_binary() == built


# --- the shipped files ----------------------------------------------------------------------


def test_manifest_has_every_component() -> None:
    modules = manifest_modules()
    for kind, required in REQUIRED.items():
        listed = [module for module, _ in modules[kind]]
        missing = [m for m in required if m not in listed]
        assert not missing, f"{kind}: missing {missing}"


def test_manifest_pins_one_release_matching_the_builder() -> None:
    beta = BUILDER_VERSION
    stable = "v1.67.0"  # the v1 modules released together with v0.161.0
    versions = {version for entries in manifest_modules().values() for _, version in entries}
    assert versions == {beta, stable}, versions
    for module, version in manifest_modules()["providers"]:
        assert version == stable, module


def test_manifest_and_config_are_found_in_the_checkout() -> None:
    assert find_manifest().parent.name == "collector"
    assert find_config().parent == find_manifest().parent
    assert find_config().is_file()


def test_config_uses_the_agreed_variables_with_their_defaults() -> None:
    # OTELCOL_FILE_DIR lives in the files overlay merged over config.yaml.
    text = find_config().read_text() + (find_config().parent / "files.yaml").read_text()
    for name, default in DEFAULT_ENV.items():
        assert f"${{env:{name}:-{default}}}" in text, name


def test_collector_env_fills_defaults_but_keeps_what_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTELCOL_PROMETHEUS_ENDPOINT", "127.0.0.1:9999")
    env = collector_env({"OTELCOL_FILE_DIR": "/tmp/x"})
    assert env["OTELCOL_PROMETHEUS_ENDPOINT"] == "127.0.0.1:9999"
    assert env["OTELCOL_FILE_DIR"] == "/tmp/x"
    assert env["OTELCOL_HEALTH_ENDPOINT"] == "127.0.0.1:13133"


def test_module_has_no_dependency_beyond_stdlib_and_yaml() -> None:
    source = Path(collector.__file__).read_text()
    imported = set(re.findall(r"^(?:from|import) ([a-z_]+)", source, re.MULTILINE))
    assert imported <= {
        "__future__",
        "argparse",
        "contextlib",
        "hashlib",
        "os",
        "re",
        "shutil",
        "subprocess",
        "sys",
        "threading",
        "time",
        "collections",
        "pathlib",
        "typing",
        "yaml",
        "fcntl",
    }, imported
