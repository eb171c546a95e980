"""``LocalStack``: start, watch and stop the stack's components as local processes.

The components (``registry.KINDS``) say what to run; this class orchestrates:
ports, start order, readiness, ownership-checked stops and the state directory
(layout and design in docs/local-stack.md). The tests use it directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from otel_tdd.stack import process
from otel_tdd.stack.collectors import (
    AGENT,
    RESOLVER,
    Agent,
    Gateway,
    gateway_index,
    gateway_names,
)
from otel_tdd.stack.component import StackError
from otel_tdd.stack.config import StackConfig
from otel_tdd.stack.private_files import make_private_dir
from otel_tdd.stack.registry import (
    COMPONENTS,
    CORE_COMPONENTS,
    component_for,
    default_ports,
    start_order,
)
from otel_tdd.stack.render import Receivers, loopback
from otel_tdd.stack.state import ProcessRecord
from otel_tdd.stack.view import ComponentStatus, StackView

__all__ = [
    "AGENT",
    "COMPONENTS",
    "CORE_COMPONENTS",
    "RESOLVER",
    "ComponentStatus",
    "LocalStack",
    "Receivers",
    "StackConfig",
    "StackError",
    "gateway_names",
]


def agent_not_running() -> StackError:
    return StackError("not running: start the stack with --gateways N", AGENT)


def _describe(pid: int) -> str:
    """Why a recorded pid is not one of ours any more, for a progress line."""
    cmdline = process.read_cmdline(pid)
    if cmdline is None:
        return f"not running (recorded pid {pid} is gone)"
    return f"stale pid file: pid {pid} now runs {' '.join(cmdline)[:80]!r}, not ours; left alone"


class LocalStack(StackView):
    """Start, watch and stop the stack's components as local processes.

    ``LocalStack(tmp, free_ports=True)`` is what the tests use; as a context manager
    it is up inside the ``with`` and down after it, whatever happens.
    """

    # -- state file

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state dir, with state.json read afresh."""
        with self._store.locked():
            self._state = self._store.load()
            yield

    def _save(self) -> None:
        self._store.save(self._state)

    def _forget_ports(self) -> None:
        """Drop the ports of what no longer runs, noting them for the next ``up``."""
        self._store.remember_ports(self._state.ports)
        self._state.ports = {}

    def _stop(self, component: str, proc: ProcessRecord) -> process.StopResult:
        owner = self._store.owner(component, proc)
        return process.stop(proc.pid, proc.argv, timeout=self.config.stop_timeout, owner=owner)

    # -- up

    def up(self) -> list[ComponentStatus]:
        """Start what is not running yet, wait until each is ready; idempotent."""
        started_at = time.monotonic()
        with self._locked():
            wanted = list(self.config.processes)
            self._stop_outdated(wanted)
            running = [c for c in wanted if self._is_ours(c)]
            for component in list(self._state.processes):
                if not self._is_ours(component):
                    stale = self._state.processes.pop(component)
                    then = "starting a new one" if component in wanted else "forgetting it"
                    self._progress(f"{component:<13} {_describe(stale.pid)}; {then}")
            if not any(self._is_ours(c) for c in self._state.processes):
                self._forget_ports()  # nothing of ours runs: ports are free to choose again
            self._save()
            to_start = [c for c in wanted if c not in running]
            for component in running:
                self._wait_ready_running(component)
            if not to_start:
                self._progress(f"stack already up in {self.state_dir}")
                self._save()
                return self.status()
            try:
                binaries = self._find_binaries(to_start)
                self._assign_ports(to_start)
                self._check_ports(to_start)
                self._start_and_wait(to_start, binaries)
            except BaseException:
                self._state = self._store.load()  # forget the ports of what did not start
                raise
            if AGENT in running and any(gateway_index(c) is not None for c in to_start):
                self._route_agent_to_live_gateways()  # a restarted gateway has new ports
            self._progress(f"stack up in {time.monotonic() - started_at:.1f}s ({self.state_dir})")
        return self.status()

    def _stop_outdated(self, wanted: Sequence[str]) -> None:
        """Stop what runs but must start again (the resolver with another interval)."""
        ctx = self._context()
        for name, proc in list(self._state.processes.items()):
            why = component_for(name).restart_reason(ctx, proc.argv, name in wanted)
            if why is None or not self._is_ours(name):
                continue
            result = self._stop(name, proc)
            del self._state.processes[name]
            self._save()
            self._progress(f"{name:<13} {result.value} (pid {proc.pid}): {why}")

    def _wait_ready_running(self, component: str) -> None:
        proc = self._state.processes[component]
        if not process.wait_until(
            lambda: self._is_ready(component), timeout=self.config.start_timeout, interval=0.2
        ):
            readiness = component_for(component).readiness(self._context())
            raise StackError(
                f"running (pid {proc.pid}) but not ready at {readiness}; see "
                f"`otel-tdd stack logs {component}`, or `otel-tdd stack down` and up again",
                component,
            )
        self._progress(f"{component:<13} already running (pid {proc.pid})")

    def _find_binaries(self, components: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        missing: list[str] = []
        for name in components:
            try:
                found[name] = component_for(name).find_binary(self._progress)
            except StackError as exc:
                if str(exc) not in missing:  # once for the agent and all gateways
                    missing.append(str(exc))
        if missing:
            raise StackError("cannot start the stack, missing binaries:\n  " + "\n  ".join(missing))
        return found

    def _assign_ports(self, components: Sequence[str]) -> None:
        needed = [(c, name) for c in components for name in default_ports(c)]
        picked = iter(process.free_ports(2 * len(needed)) if self.config.free_ports else [])
        last_ports = self._store.last_ports() if self.config.free_ports else {}
        taken = {p for ports in self._state.ports.values() for p in ports.values()}
        for component, name in needed:
            last = last_ports.get(component, {}).get(name)
            override = self.config.ports.get(f"{component}.{name}")
            # A gateway restarted under a running agent keeps its address, as a
            # StatefulSet pod keeps its name: the agent's queued share for it is
            # then delivered by its retries instead of being dropped by a reload.
            previous = self._state.ports.get(component, {}).get(name)
            if override is not None:
                port = override
            elif previous and Gateway.owns(component) and process.port_is_free(previous):
                port = previous
            elif last and last not in taken and process.port_is_free(last):
                port = last  # this state dir's port of its last run
            elif self.config.free_ports:
                port = next(p for p in picked if p not in taken)
            else:
                port = default_ports(component)[name]
            self._state.ports.setdefault(component, {})[name] = port
            taken.add(port)

    def _check_ports(self, components: Sequence[str]) -> None:
        seen: dict[int, str] = {}
        for component in components:
            for name, port in self._state.ports.get(component, {}).items():
                if port in seen:
                    raise StackError(f"{name} port {port} is also given to {seen[port]}", component)
                seen[port] = f"{component} {name} port {port}"
                if not process.port_is_free(port):
                    raise StackError(
                        f"{name} port {loopback(port)} is in use by another process; "
                        "free it, run `otel-tdd stack down` if it is an earlier stack, "
                        f"or use --free-ports / --port {component}.{name}=N",
                        component,
                    )

    def _start_and_wait(self, components: Sequence[str], binaries: dict[str, str]) -> None:
        started: dict[str, subprocess.Popen[bytes]] = {}
        ctx = self._context(self.config.processes)
        try:
            for name in components:
                home = make_private_dir(ctx.home(name), self.state_dir)
                launch = component_for(name).prepare(ctx, binaries[name])
                proc = process.start(
                    launch.argv,
                    log_path=self.log_path(name),
                    env=launch.env,
                    cwd=home,
                    stack_id=self.stack_id,
                    root=self.state_dir,
                )
                started[name] = proc
                self._state.processes[name] = ProcessRecord.of(proc.pid, launch.argv)
                self._save()  # before waiting: a crash of this command must not orphan it
            t0 = time.monotonic()
            for name, proc in started.items():
                self._await_ready(name, proc)
                self._progress(
                    f"{name:<13} ready in {time.monotonic() - t0:.1f}s "
                    f"(pid {proc.pid}) {component_for(name).main_url(self._context())}"
                )
        except BaseException:
            for name in reversed(list(started)):
                self._stop(name, self._state.processes.pop(name))
            self._save()
            raise
        self._save()

    def _await_ready(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        if process.wait_until(
            lambda: self._is_ready(name),
            timeout=self.config.start_timeout,
            alive=lambda: proc.poll() is None,
        ):
            return
        log = self.log_path(name)
        code = proc.poll()
        readiness = component_for(name).readiness(self._context())
        what = (
            f"exited with code {code} while starting"
            if code is not None
            else f"not ready at {readiness} after {self.config.start_timeout:.0f}s"
        )
        time.sleep(0.1)  # let the last log line land
        raise StackError(f"{what}; last lines of {log}:\n{process.tail(log, 20).rstrip()}", name)

    # -- down

    def down(self) -> list[tuple[str, process.StopResult, int]]:
        """Stop what ``up`` started, by pid, newest first; never a process that is not ours."""
        results: list[tuple[str, process.StopResult, int]] = []
        with self._locked():
            order = list(reversed(start_order(self._state.processes)))
            for component in order:
                proc = self._state.processes[component]
                result = self._stop(component, proc)
                results.append((component, result, proc.pid))
                if result is process.StopResult.NOT_OURS:
                    message = _describe(proc.pid)
                else:
                    message = f"{result.value} (pid {proc.pid})"
                self._progress(f"{component:<13} {message}")
                del self._state.processes[component]
                self._save()
            if not order:
                self._progress(f"nothing to stop in {self.state_dir}")
            self._forget_ports()
            self._save()
        return results

    # -- two-tier mode: the agent's gateway list

    def _write_agent_overlay(self, endpoints: Sequence[str]) -> None:
        Agent.write_overlay(self.state_dir, endpoints)

    def agent_gateways(self) -> list[str]:
        """The gateway endpoints the agent routes to now (its overlay's list)."""
        return Agent.routes(self.state_dir)

    def rebalance(self) -> list[str]:
        """Route the agent to the gateways that are running and ready; return their endpoints.

        The local stand-in for a resolver that follows the gateways' health (the
        ``k8s`` resolver in deploy/k8s): the static list is rewritten and the agent
        reloaded with SIGHUP when it changed. A gateway that is down is skipped;
        one that is only slow to answer its health check stays. Idempotent.
        """
        with self._locked():
            return self._route_agent_to_live_gateways()

    def _route_agent_to_live_gateways(self) -> list[str]:
        if not self._is_ours(AGENT):
            raise agent_not_running()
        # A gateway whose health check times out is busy, not gone: dropping it from
        # the ring would drop what the agent queued for it, and a loaded gateway
        # flapping in and out would lose more than it sheds.
        live = [
            self.gateway_otlp_endpoint(g)
            for g in self.gateways
            if self._is_ours(g) and process.http_probe(self.gateway_health_url(g)) is not False
        ]
        if not live:
            raise StackError("no gateway is running; `otel-tdd stack up` restarts them", AGENT)
        before = self.agent_gateways()
        if live == before:
            return live
        self._write_agent_overlay(live)
        try:
            self._reload(AGENT)
        except BaseException:
            # Put the old list back so that the next round sees a change and signals
            # again; the list on disk must never claim a reload that did not happen.
            self._write_agent_overlay(before)
            raise
        self._progress(f"{AGENT:<13} now routes to {', '.join(live)}")
        return live

    def _reload(self, component: str) -> None:
        """SIGHUP: the Collector re-reads its config files; wait until it runs again."""
        proc = self._state.processes[component]
        log = self.log_path(component)
        ready_line = "Everything is ready"

        def readies() -> int:
            return log.read_text(encoding="utf-8", errors="replace").count(ready_line)

        before = readies()
        if not process.is_ours(proc.pid, proc.argv, self._store.owner(component, proc)):
            raise StackError(f"pid {proc.pid} is not ours any more; not signalled", component)
        os.kill(proc.pid, signal.SIGHUP)
        if not process.wait_until(
            lambda: readies() > before and self._is_ready(component),
            timeout=self.config.start_timeout,
            alive=lambda: process.is_running(proc.pid),
        ):
            raise StackError(
                f"did not come back after reloading its config; last lines of {log}:\n"
                + process.tail(log, 20).rstrip(),
                component,
            )

    # -- context manager

    def __enter__(self) -> LocalStack:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"LocalStack({str(self.state_dir)!r}, components={self.config.components!r})"
