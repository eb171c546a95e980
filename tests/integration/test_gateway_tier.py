"""The two-tier Collector (agent -> N gateways) as real processes: `otel-tdd stack up --gateways N`.

A workload of traces (some with an ERROR span, some slow, the rest plain) goes
through the OTel SDK to the agent (collector/agent.yaml), whose load_balancing
exporter routes by trace id to two gateways (collector/gateway.yaml). What each
gateway kept is read back from its own file output. Proven here:

* every span of a trace lands on one gateway, and both gateways get traces;
* tail sampling keeps every error and every slow trace, and a share of the rest;
  span metrics still count every span, sampled or not (through Prometheus);
* a gateway SIGKILLed mid-run: the agent is re-routed to the survivor, and what is
  lost is only what the dead gateway held (its decision_wait buffer) plus what the
  agent had queued for it until the re-route -- never a trace sent later;
* a gateway restarted within the agent's retry window: the share queued for it
  during the outage is delivered; only its sampling buffer is lost.

The loss figures are printed (run with -s) and written in docs/scaling.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from otel_tdd.stack import process
from otel_tdd.stack.assets import find_assets
from otel_tdd.stack.collector import collector_binary, collector_env
from otel_tdd.stack.local import RESOLVER, LocalStack, StackError
from otel_tdd.stack.otlp_files import read_spans

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.integration

COLLECTOR_DIR = find_assets("collector")
DECISION_WAIT_S = 2.0  # the gateways' tail-sampling hold, shortened for the tests
SLOW_MS = 1000  # gateway.yaml's default latency threshold
SPANS_PER_TRACE = 3
# The test stacks: 2 s decision_wait, everything else as shipped.
GATEWAY_ENV = {"OTELCOL_TAIL_DECISION_WAIT": f"{DECISION_WAIT_S:g}s"}
# How long before a SIGKILL a trace can still be only in the gateway's memory:
# decision_wait, plus the tail sampler's 1 s decision tick, plus the batching on
# the way (SDK 0.1 s, agent 0.2 s, gateway 0.2 s, file flush 0.2 s) and slack
# for two busy cores. Observed: at most ~2.3 s (docs/scaling.md).
HOLD_S = DECISION_WAIT_S + 1.0 + 1.0


def _binary() -> str:
    try:
        return str(collector_binary())
    except Exception as exc:  # CollectorBuildError: fail with its hint, never skip
        pytest.fail(f"the Collector binary is needed: {exc}", pytrace=False)


def _up(stack: LocalStack) -> None:
    try:
        stack.up()
    except StackError as exc:
        stack.down()
        pytest.fail(f"the two-tier stack did not start: {exc}", pytrace=False)


# --- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    trace_id: str
    kind: str  # "error", "slow" or "plain"
    at: float  # seconds since the workload started


class CountingExporter(SpanExporter):
    """The real OTLP exporter, counting what the agent refused (the app's view of loss)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclass
class Workload:
    """``count`` traces of 3 spans at ``rate`` per second: every 4th has an ERROR span,
    every 4th (offset 1) lasts 1.5 s by its timestamps, the rest are plain."""

    endpoint: str
    count: int = 400
    rate: float = 50.0
    service: str = field(default_factory=lambda: f"gw-{uuid.uuid4().hex[:8]}")
    sent: list[Sent] = field(default_factory=list)
    failed_spans: int = 0
    started: float = 0.0  # time.monotonic() when the first trace was sent

    def run(self, mark: threading.Event | None = None, mark_at: float = 0.5) -> None:
        """Send the traces at ``rate``; set ``mark`` after the ``mark_at`` share of them."""
        exporter = CountingExporter(OTLPSpanExporter(endpoint=self.endpoint, insecure=True))
        provider = TracerProvider(resource=Resource.create({"service.name": self.service}))
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=100, max_export_batch_size=256)
        )
        tracer = provider.get_tracer("gateway-tier-test")
        started = self.started = time.monotonic()
        for i in range(self.count):
            kind = ("error", "slow", "plain", "plain")[i % 4]
            now_ns = time.time_ns()
            begin = now_ns - 1_500_000_000 if kind == "slow" else now_ns
            root = tracer.start_span("GET /work", start_time=begin)
            parent = set_span_in_context(root)
            child = tracer.start_span("db.query", context=parent)
            if kind == "error":
                child.set_status(Status(StatusCode.ERROR, "boom"))
            child.end()
            tracer.start_span("render", context=parent).end()
            root.end()
            trace_id = format(root.get_span_context().trace_id, "032x")
            self.sent.append(Sent(trace_id, kind, time.monotonic() - started))
            if mark is not None and i == int(self.count * mark_at):
                mark.set()
            time.sleep(max(0.0, started + (i + 1) / self.rate - time.monotonic()))
        provider.force_flush()
        provider.shutdown()
        self.failed_spans = exporter.failed

    def ids(self, kind: str) -> set[str]:
        return {s.trace_id for s in self.sent if s.kind == kind}


def stored_by_gateway(stack: LocalStack, service: str) -> dict[str, dict[str, int]]:
    """trace id -> {gateway: number of its spans that gateway stored}."""
    found: dict[str, dict[str, int]] = {}
    for gateway in stack.gateways:
        for span in read_spans(stack.gateway_file_dir(gateway)):
            if span["service_name"] == service:
                per_gateway = found.setdefault(span["trace_id"], {})
                per_gateway[gateway] = per_gateway.get(gateway, 0) + 1
    return found


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    stack: LocalStack,
    detail: Callable[[], str] = str,
) -> None:
    """Poll ``predicate()`` until true; fail with ``detail()`` and every collector's log tail."""
    if not process.wait_until(predicate, timeout=timeout, interval=0.5):
        tails = "\n".join(
            f"--- {name} ---\n{process.tail(stack.log_path(name), 15)}" for name in stack.pids
        )
        pytest.fail(
            f"timed out after {timeout}s waiting for {what}: {detail()}\n{tails}", pytrace=False
        )


# --- the configs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["agent.yaml", "gateway.yaml"])
def test_tier_configs_are_valid_with_their_defaults_alone(name: str) -> None:
    """Env defaults make each config valid: no variable has to be set."""
    env = {k: v for k, v in collector_env().items() if not k.startswith("OTELCOL_")}
    result = subprocess.run(
        [_binary(), "validate", f"--config={COLLECTOR_DIR / name}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_agent_routes_traces_by_trace_id_and_the_gateways_tail_sample_and_count() -> None:
    config = yaml.safe_load((COLLECTOR_DIR / "agent.yaml").read_text())
    balancer = config["exporters"]["load_balancing"]
    assert balancer["routing_key"] == "traceID"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["load_balancing"]
    # Per-gateway queue and retry: the promise docs/scaling.md states and measures.
    otlp = balancer["protocol"]["otlp"]
    assert otlp["sending_queue"]["enabled"] and otlp["retry_on_failure"]["enabled"]
    assert "sending_queue" not in balancer and "retry_on_failure" not in balancer
    processors = config["service"]["pipelines"]["traces"]["processors"]
    assert processors[0] == "memory_limiter" and processors[-1] == "batch"

    gateway = yaml.safe_load((COLLECTOR_DIR / "gateway.yaml").read_text())
    policies = {p["type"] for p in gateway["processors"]["tail_sampling"]["policies"]}
    assert policies == {"status_code", "latency", "probabilistic"}
    pipelines = gateway["service"]["pipelines"]
    assert "tail_sampling" in pipelines["traces"]["processors"]
    # Span metrics come from the unsampled stream.
    assert pipelines["traces/span_metrics"]["exporters"] == ["span_metrics"]
    assert "tail_sampling" not in pipelines["traces/span_metrics"]["processors"]


# --- routing and sampling -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    """Agent, 2 gateways and Prometheus on free ports, one workload sent through them."""
    from conftest import StackUnderTest

    stack = StackUnderTest(
        tmp_path_factory.mktemp("two-gateways"),
        free_ports=True,
        components=("collector", "prometheus"),
        gateways=2,
        collector_env=GATEWAY_ENV,
        jsonl_files=True,
    )
    _up(stack)
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def routed(two_gateways: StackUnderTest) -> tuple[StackUnderTest, Workload]:
    workload = Workload(two_gateways.otlp_grpc_endpoint, count=240, rate=60.0)
    workload.run()
    assert workload.failed_spans == 0, "the agent refused spans"
    wanted = workload.ids("error") | workload.ids("slow")
    wait_for(
        lambda: wanted <= set(stored_by_gateway(two_gateways, workload.service)),
        DECISION_WAIT_S + 20,
        "every error and slow trace in the gateways' files",
        two_gateways,
    )
    time.sleep(1.0)  # the last sampled plain traces' file flush
    return two_gateways, workload


def test_every_span_of_a_trace_lands_on_the_same_gateway(
    routed: tuple[StackUnderTest, Workload],
) -> None:
    stack, workload = routed
    stored = stored_by_gateway(stack, workload.service)
    split = {t: g for t, g in stored.items() if len(g) > 1}
    assert not split, f"traces split across gateways: {split}"
    incomplete = {t: g for t, g in stored.items() if sum(g.values()) != SPANS_PER_TRACE}
    assert not incomplete, f"traces missing spans: {incomplete}"
    per_gateway = {g: sum(1 for v in stored.values() if g in v) for g in stack.gateways}
    print(f"\ntraces kept per gateway: {per_gateway}")
    assert all(count > 0 for count in per_gateway.values()), per_gateway


def test_tail_sampling_keeps_every_error_and_slow_trace_and_a_share_of_the_rest(
    routed: tuple[StackUnderTest, Workload],
) -> None:
    stack, workload = routed
    stored = set(stored_by_gateway(stack, workload.service))
    assert workload.ids("error") <= stored, workload.ids("error") - stored
    assert workload.ids("slow") <= stored, workload.ids("slow") - stored
    plain = workload.ids("plain")
    kept = len(plain & stored) / len(plain)
    print(f"\nplain traces kept: {len(plain & stored)}/{len(plain)} ({kept:.0%}; policy: 10%)")
    # 120 plain traces at 10%: 12 expected; a binomial outside 2..30 is ~1e-4 likely.
    assert 2 / 120 <= kept <= 30 / 120, kept


def test_span_metrics_count_every_span_sampled_or_not_across_gateways(
    routed: tuple[StackUnderTest, Workload],
) -> None:
    stack, workload = routed
    promql = f'sum(traces_span_metrics_calls_total{{service_name="{workload.service}"}})'
    expected = float(len(workload.sent) * SPANS_PER_TRACE)
    last: list[float | None] = [None]

    def counted() -> bool:
        last[0] = stack.query_value(promql)
        return last[0] == expected

    stack.wait_for(counted, 45, f"{promql} == {expected} (last: {last})")
    # Both gateways' exporters are scraped, each series labelled with its gateway.
    series = f'traces_span_metrics_calls_total{{service_name="{workload.service}"}}'
    instances = stack.query(f"count by (collector_instance_id) ({series})")
    assert len(instances) == 2, instances
    targets = stack.query('up{job="otel-collector"}')
    assert len(targets) == 2 and all(t["value"][1] == "1" for t in targets), targets


# --- a gateway dies mid-run ---------------------------------------------------------------------


@dataclass(frozen=True)
class LossReport:
    sent_error_traces: int
    lost: list[Sent]
    killed_at: float
    recovered_at: float
    agent_dropped_spans: int

    def summary(self) -> str:
        lost_at = ", ".join(f"{s.at:.2f}" for s in self.lost)
        return (
            f"lost {len(self.lost)}/{self.sent_error_traces} error traces "
            f"(sent at [{lost_at}] s); killed at {self.killed_at:.2f} s, "
            f"agent routed to the survivor / gateway back at {self.recovered_at:.2f} s; "
            f"agent dropped {self.agent_dropped_spans} spans"
        )


def _dropped_by_agent(stack: LocalStack) -> int:
    log = stack.log_path("agent").read_text(errors="replace")
    return sum(int(n) for n in re.findall(r'"dropped_items": (\d+)', log))


def _kill_mid_run(tmp_path: Path, recover: str) -> tuple[LocalStack, Workload, LossReport]:
    """Run the workload through agent + 2 gateways; SIGKILL gateway-2 at 8 s of 12.

    ``recover="rebalance"``: the stack's own ``resolver`` process (what ``up
    --gateways N`` starts: `otel-tdd stack rebalance --watch 1`) notices and routes
    the agent to the survivor; nothing in the test calls it. ``recover="restart"``:
    no resolver; gateway-2 is started again 3 s later on the same address (``stack
    up``), the agent unchanged.
    """
    stack = LocalStack(
        tmp_path / "stack",
        free_ports=True,
        components=("collector",),
        gateways=2,
        collector_env=GATEWAY_ENV,
        jsonl_files=True,
        resolver_interval=1.0 if recover == "rebalance" else None,
    )
    _up(stack)
    try:
        return _kill_mid_run_on(stack, recover)
    except BaseException:
        stack.down()
        raise


def _kill_mid_run_on(stack: LocalStack, recover: str) -> tuple[LocalStack, Workload, LossReport]:
    # 12 s at 50 traces/s, the kill at 8 s: well after the first traces are decided,
    # so that "nothing older than HOLD_S before the kill is lost" means something.
    workload = Workload(stack.otlp_grpc_endpoint, count=600, rate=50.0)
    kill_now = threading.Event()
    times: dict[str, float] = {}
    thread_errors: list[str] = []
    stop = threading.Event()

    def rerouted() -> None:
        # The resolver logs "agent now routes to ..." once the reloaded agent is ready.
        log = stack.log_path(RESOLVER)
        while not stop.wait(0.02):
            if "now routes to" in log.read_text(errors="replace"):
                times["recovered"] = time.monotonic()
                return

    def killer() -> None:
        kill_now.wait()
        victim = stack.pids["gateway-2"]
        os.kill(victim, signal.SIGKILL)
        times["killed"] = time.monotonic()
        if recover == "restart":
            time.sleep(3.0)
            try:
                stack.up()
            except StackError as exc:
                thread_errors.append(f"restart: {exc}")
                return
            times["recovered"] = time.monotonic()

    threads = [threading.Thread(target=killer, daemon=True)]
    if recover == "rebalance":
        threads.append(threading.Thread(target=rerouted, daemon=True))
    for thread in threads:
        thread.start()
    try:
        workload.run(kill_now, mark_at=2 / 3)
        threads[0].join(timeout=60)
        assert "killed" in times and "recovered" in times, (times, thread_errors)
        survivors_settle = DECISION_WAIT_S + 12  # retries (<= 5 s apart), decision, flush
        errors = workload.ids("error")
        killed_at = times["killed"] - workload.started
        recovered_at = times["recovered"] - workload.started
        window_end = recovered_at + 0.5 if recover == "rebalance" else killed_at + 0.2
        safe = {
            s.trace_id: s.at
            for s in workload.sent
            if s.kind == "error" and not killed_at - HOLD_S <= s.at <= window_end
        }
        missing: dict[str, float] = {}

        def all_safe_stored() -> bool:
            stored = stored_by_gateway(stack, workload.service)
            missing.clear()
            missing.update({t: at for t, at in safe.items() if t not in stored})
            return not missing

        wait_for(
            all_safe_stored,
            survivors_settle + 20,
            f"every error trace sent outside [{killed_at - HOLD_S:.2f}, {window_end:.2f}] s",
            stack,
            lambda: f"missing, by send time: {sorted(round(at, 2) for at in missing.values())}",
        )
        time.sleep(DECISION_WAIT_S + 1)  # stragglers from inside the window
    finally:
        stop.set()
    stored = set(stored_by_gateway(stack, workload.service))
    lost = [s for s in workload.sent if s.kind == "error" and s.trace_id not in stored]
    report = LossReport(
        sent_error_traces=len(errors),
        lost=lost,
        killed_at=killed_at,
        recovered_at=recovered_at,
        agent_dropped_spans=_dropped_by_agent(stack),
    )
    return stack, workload, report


def test_killing_a_gateway_mid_run_reroutes_to_the_survivor_and_loses_only_the_window(
    tmp_path: Path,
) -> None:
    stack, workload, report = _kill_mid_run(tmp_path, "rebalance")
    try:
        print(f"\n[rebalance] {report.summary()}")
        assert workload.failed_spans == 0, "the app saw refusals (the agent's reload must not)"
        assert stack.agent_gateways() == [stack.gateway_otlp_endpoint("gateway-1")]
        # The agent reloaded: no new span goes to the dead address.
        assert report.recovered_at - report.killed_at <= 2.5, report.summary()
        # Lost: what gateway-2 held for its decision (<= decision_wait + batching before
        # the kill) and what the agent had queued for it until the re-route. Never
        # anything older, never anything sent after the re-route.
        for sent in report.lost:
            assert report.killed_at - HOLD_S <= sent.at <= report.recovered_at + 0.5, (
                report.summary()
            )
        window = [
            s
            for s in workload.sent
            if s.kind == "error" and report.killed_at - HOLD_S <= s.at <= report.recovered_at + 0.5
        ]
        assert len(report.lost) <= len(window), report.summary()
        # Survivor-only after the re-route: error traces sent later are all on gateway-1.
        stored = stored_by_gateway(stack, workload.service)
        later = [s for s in workload.sent if s.kind == "error" and s.at > report.recovered_at + 0.5]
        assert later and all(set(stored[s.trace_id]) == {"gateway-1"} for s in later)
    finally:
        stack.down()


def test_a_gateway_restarted_within_the_retry_window_gets_its_queued_share(
    tmp_path: Path,
) -> None:
    stack, workload, report = _kill_mid_run(tmp_path, "restart")
    try:
        print(f"\n[restart] {report.summary()}")
        assert workload.failed_spans == 0
        assert report.agent_dropped_spans == 0, "the agent's retries should have delivered"
        # Only the dead gateway's sampling buffer is lost: nothing sent after the kill.
        for sent in report.lost:
            assert report.killed_at - HOLD_S <= sent.at <= report.killed_at + 0.2, report.summary()
        # The outage's share reached the restarted gateway-2 through the agent's retries.
        stored = stored_by_gateway(stack, workload.service)
        outage = [
            s
            for s in workload.sent
            if s.kind == "error" and report.killed_at + 0.2 < s.at < report.recovered_at
        ]
        # (Every one of them is stored: _kill_mid_run waited for all error traces
        # outside [kill - HOLD_S, kill + 0.2 s].) Those routed to gateway-2 are there.
        assert any("gateway-2" in stored.get(s.trace_id, {}) for s in outage), report.summary()
    finally:
        stack.down()


# --- the command line ---------------------------------------------------------------------------


def test_cli_up_with_gateways_status_rebalance_down(tmp_path: Path) -> None:
    state = tmp_path / "cli-stack"
    env = {**os.environ, "OTEL_TDD_STACK_DIR": str(state)}

    def recorded() -> dict[str, Any]:
        return dict(json.loads((state / "state.json").read_text())["processes"])

    def cli(*args: str) -> tuple[int, str]:
        result = subprocess.run(
            [sys.executable, "-m", "otel_tdd.cli", "stack", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        return result.returncode, result.stdout + result.stderr

    try:
        code, out = cli("up", "--free-ports", "--components", "collector", "--gateways", "2")
        assert code == 0, out
        for name in ("agent", "gateway-1", "gateway-2", "resolver"):
            assert f"{name:<13} ready in" in out, out
        assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" in out
        code, out = cli("status")
        assert code == 0 and out.count(" running  ready ") == 4, out
        pids = {n: p["pid"] for n, p in recorded().items()}
        assert set(pids) == {"agent", "gateway-1", "gateway-2", "resolver"}, pids
        stack = LocalStack(state)
        survivor = stack.gateway_otlp_endpoint("gateway-1")
        assert len(stack.agent_gateways()) == 2
        os.kill(pids["gateway-2"], signal.SIGKILL)
        # Nobody types `rebalance`: the resolver process drops the dead gateway.
        assert process.wait_until(lambda: stack.agent_gateways() == [survivor], timeout=10), (
            process.tail(stack.log_path(RESOLVER), 20)
        )
        # The overlay is written before the agent's reload, the log line after it.
        routed = f"agent         now routes to {survivor}"
        process.wait_until(lambda: routed in process.tail(stack.log_path(RESOLVER)), timeout=10)
        code, out = cli("logs", "resolver", "-n", "5")
        assert code == 0 and routed in out, out
        code, out = cli("rebalance")  # by hand too, with the same answer
        assert code == 0 and f"agent         routes to {survivor}\n" in out, out
        code, out = cli("status")
        assert "gateway-2" in out and " stopped " in out and code == 1, out
        # `up` again restarts gateway-2 on its address and the agent routes to it again.
        code, out = cli("up", "--free-ports", "--components", "collector", "--gateways", "2")
        assert code == 0 and "gateway-2     ready in" in out, out
        assert process.wait_until(lambda: len(stack.agent_gateways()) == 2, timeout=10)

        # Another --resolver-interval replaces the resolver; 0 stops it; both by pid.
        first = recorded()["resolver"]
        up_again = ("up", "--free-ports", "--components", "collector", "--gateways", "2")
        code, out = cli(*up_again, "--resolver-interval", "2")
        assert code == 0 and "resolver      stopped" in out and "resolver      ready in" in out
        assert "--watch=2" in recorded()["resolver"]["argv"]
        assert not process.is_running(first["pid"]), out
        code, out = cli(*up_again, "--resolver-interval", "0")
        assert code == 0 and "resolver" not in recorded(), out
        code, out = cli("status")
        assert code == 0 and "resolver" not in out, out
        pids = {n: p["pid"] for n, p in recorded().items()}
        pids["old-resolver"] = first["pid"]
        code, out = cli("logs", "gateway-1", "-n", "5")
        assert code == 0, out
    finally:
        code, out = cli("down")
    assert code == 0, out
    assert process.wait_until(
        lambda: not any(process.is_running(p) for p in pids.values()), timeout=10
    ), out
