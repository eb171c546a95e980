"""The local stack's process list and the resolver's watch loop, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_tdd.stack import local
from otel_tdd.stack.local import RESOLVER, StackConfig, StackError


def test_two_tier_mode_runs_gateways_first_and_the_resolver_last(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, gateways=2)
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

    monkeypatch.setattr(local, "LocalStack", Recording)
    monkeypatch.setattr(local, "_print_urls", lambda stack: None)
    argv = ["up", "--dir", str(tmp_path), "--gateways", "2", "--resolver-interval", "0"]
    assert local.cli(argv) == 0
    assert seen[0].resolver_interval is None and RESOLVER not in seen[0].processes
    assert local.cli(["up", "--dir", str(tmp_path), "--gateways", "2"]) == 0
    assert seen[1].resolver_interval == 1.0 and seen[1].processes[-1] == RESOLVER


class _FlakyStack:
    """rebalance() fails the same way twice, then the agent is gone."""

    state_dir = Path("/nowhere")

    def __init__(self) -> None:
        self.rounds = 0

    def rebalance(self) -> list[str]:
        self.rounds += 1
        raise StackError("no gateway is running; `otel-tdd stack up` restarts them", "agent")

    def is_running(self, component: str) -> bool:
        assert component == "agent"
        return self.rounds < 3


def test_the_watch_loop_survives_failed_rounds_and_stops_with_the_agent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local.time, "sleep", lambda seconds: None)
    stack = _FlakyStack()
    assert local._watch_gateways(stack, 1.0) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert stack.rounds == 3
    assert out.startswith(f"{RESOLVER:<13} watching the gateways every 1s")
    # Reported once, not once per round; then the clean exit when the agent stopped.
    assert out.count("no gateway is running") == 1, out
    assert out.rstrip().endswith("agent is not running any more; stopping")
