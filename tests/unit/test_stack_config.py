"""The local stack's process list and the resolver's watch loop, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_tdd.stack import cli as stack_cli
from otel_tdd.stack import local
from otel_tdd.stack.local import CORE_COMPONENTS, RESOLVER, StackConfig, StackError


def test_two_tier_mode_runs_gateways_first_and_the_resolver_last(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, components=CORE_COMPONENTS, gateways=2)
    assert config.processes == (
        "gateway-1",
        "gateway-2",
        "agent",
        "alertmanager",
        "prometheus",
        RESOLVER,
    )


def test_no_resolver_on_a_single_node_or_when_turned_off(tmp_path: Path) -> None:
    assert RESOLVER not in StackConfig(state_dir=tmp_path).processes
    off = StackConfig(state_dir=tmp_path, gateways=2, resolver_interval=None)
    assert RESOLVER not in off.processes and "gateway-2" in off.processes


@pytest.mark.parametrize("interval", [0.0, 0.1, -1.0, 7200.0])
def test_an_out_of_range_resolver_interval_names_the_value_and_the_fix(
    tmp_path: Path, interval: float
) -> None:
    with pytest.raises(StackError, match=r"--resolver-interval .*choose 0\.2 to 3600 seconds"):
        StackConfig(state_dir=tmp_path, gateways=1, resolver_interval=interval)


def test_cli_resolver_interval_zero_means_no_resolver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[StackConfig] = []

    class Recording:
        def __init__(self, *, config: StackConfig, progress: object) -> None:
            seen.append(config)

        def up(self) -> None:
            pass

    monkeypatch.setattr(stack_cli, "LocalStack", Recording)
    monkeypatch.setattr(stack_cli, "_print_urls", lambda stack: None)
    argv = ["up", "--dir", str(tmp_path), "--gateways", "2", "--resolver-interval", "0"]
    assert stack_cli.cli(argv) == 0
    assert seen[0].resolver_interval is None and RESOLVER not in seen[0].processes
    assert stack_cli.cli(["up", "--dir", str(tmp_path), "--gateways", "2"]) == 0
    assert seen[1].resolver_interval == 1.0 and seen[1].processes[-1] == RESOLVER


class _FlakyStack:
    """rebalance() fails the same way twice, then on a file that does not parse,
    then the agent is gone."""

    state_dir = Path("/nowhere")

    def __init__(self, agent_running: bool = True) -> None:
        self.rounds = 0
        self.agent_running = agent_running

    def rebalance(self) -> list[str]:
        self.rounds += 1
        if self.rounds == 3:
            raise KeyError("exporters")
        raise StackError("no gateway is running; `otel-tdd stack up` restarts them", "agent")

    def is_running(self, component: str) -> bool:
        assert component == "agent"
        return self.agent_running and self.rounds < 4


def test_the_watch_loop_survives_failed_rounds_and_stops_with_the_agent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stack_cli.time, "sleep", lambda seconds: None)
    stack = _FlakyStack()
    assert stack_cli._watch_gateways(stack, 1.0) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert stack.rounds == 4
    assert out.startswith(f"{RESOLVER:<13} watching the gateways every 1s")
    # Reported once, not once per round; any other error is survived too; then the
    # clean exit when the agent stopped.
    assert out.count("no gateway is running") == 1, out
    assert "KeyError('exporters')" in out
    assert out.rstrip().endswith("agent is not running any more; stopping")


def test_watching_a_stack_whose_agent_is_not_running_is_an_error() -> None:
    with pytest.raises(StackError, match="agent: not running: start the stack with --gateways N"):
        stack_cli._watch_gateways(_FlakyStack(agent_running=False), 1.0)  # type: ignore[arg-type]


def test_a_failed_agent_reload_leaves_the_old_list_so_the_next_round_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = local.LocalStack(tmp_path, gateways=2)
    ports = {"otlp_grpc": 0, "otlp_http": 0, "prometheus_exporter": 0, "telemetry": 0}
    stack._state.ports = {
        "gateway-1": {**ports, "otlp_grpc": 14417, "health": 13134},
        "gateway-2": {**ports, "otlp_grpc": 14517, "health": 13234},
    }
    both = ["127.0.0.1:14417", "127.0.0.1:14517"]
    stack._write_agent_overlay(both)
    monkeypatch.setattr(stack, "_is_ours", lambda component: True)
    # gateway-2 refuses its health check; gateway-1 answers.
    monkeypatch.setattr(local.process, "http_probe", lambda url, timeout=1.0: "13134" in url)
    reloads: list[str] = []

    def reload_fails(component: str) -> None:
        reloads.append(component)
        raise StackError("did not come back after reloading its config", component)

    monkeypatch.setattr(stack, "_reload", reload_fails)
    with pytest.raises(StackError, match="did not come back"):
        stack._route_agent_to_live_gateways()
    assert stack.agent_gateways() == both  # not a list the agent never loaded
    monkeypatch.setattr(stack, "_reload", reloads.append)
    assert stack._route_agent_to_live_gateways() == ["127.0.0.1:14417"]
    assert reloads == ["agent", "agent"] and stack.agent_gateways() == ["127.0.0.1:14417"]
