"""The seed's domain, instrumented: epics, tasks and focus sessions over SQLite.

Two ways to run it:

    python examples/tdd_app.py                 # a short workload, then the metrics it produced
    python examples/tdd_app.py --epics 5 --tasks 3 --sessions 2
    python examples/tdd_app.py serve --port 8000   # an HTTP service (used by the stack tests)

With no OTLP endpoint configured it needs no server (the embedded default): JSON
logs on stdout, metrics rendered in Prometheus text at the end. With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, all three signals go to the Collector.

The service code is what the seed shows: StructuredLogger, correlation_context,
performance_tracked/performance_context, security_event, health checks and the
metric catalog. Only the import path changed (``monitoring.`` → ``otel_tdd.``).
Each request runs in the seed's ``performance_context("api_response",
alert_threshold_ms=1000)``, so a slow request raises an alert when
``OTEL_TDD_ALERTMANAGER_URL`` is set; failed logins are limited per user name.

As in the seed's app, epics are looked up through a small cache (adding a task
checks its epic, completing one reads the epic's project type: hits and misses
make ``tdd_cache_hit_ratio{cache="epics"}``), and epics and tasks are synced both
ways with a JSON file (``--sync-file``; tasks ticked off in the file are completed
here): each sync is timed into ``tdd_sync_duration_seconds`` and watched by the
seed's ``epic_sync_status`` health check. The demo syncs once at the end,
``serve`` every 5 seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import otel_tdd
from otel_tdd.correlation import continue_from_headers
from otel_tdd.graceful_shutdown import GracefulShutdown
from otel_tdd.health_check import HealthMonitor, memory_check, set_default_monitor
from otel_tdd.metrics import catalog
from otel_tdd.performance import memory_usage_mb
from otel_tdd.structured_logging import StructuredLogger, correlation_context

logger = StructuredLogger("tdd_application")

ACTIVE_WINDOW_S = 300.0  # tdd_active_users: users seen in the last 5 minutes
LOGIN_FAILURES_PER_MINUTE = 5  # per user name, then 429 and a rate_limit_exceeded event
REPORT_INTERVAL_S = 5.0  # serve mode: gauges, health checks and the sync run this often
EPIC_CACHE_SIZE = 256  # epics kept by the lookup cache (least recently used go first)
SYNC_STALE_S = 3600.0  # the seed's epic_sync_status: a sync older than an hour is a warning

SCHEMA = """
CREATE TABLE IF NOT EXISTS epics (id INTEGER PRIMARY KEY, name TEXT, project_type TEXT);
CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, epic_id INTEGER, title TEXT, done INT);
CREATE TABLE IF NOT EXISTS focus_sessions (id INTEGER PRIMARY KEY, task_id INTEGER, seconds REAL);
"""


class Database:
    """SQLite with every query timed into tdd_database_query_duration_seconds."""

    def __init__(self, path: str = ":memory:") -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.executescript(SCHEMA)
        catalog.database_up.set(1, {"database": "framework.db"})
        catalog.active_connections.set(1)  # one SQLite connection, open for the app's life
        # Start at 0 so the first failure is an increase() that alerts can see.
        catalog.database_connections_failed.add(0, {"database": "framework.db"})

    def execute(self, operation: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        started = time.perf_counter()
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
            self._conn.commit()
        catalog.database_query_duration.record(
            time.perf_counter() - started, {"operation": operation}
        )
        return rows

    def last_id(self) -> int:
        return int(self.execute("last_id", "SELECT last_insert_rowid()")[0][0])


class LookupCache:
    """A small LRU cache in front of a repeated lookup.

    Every lookup sets ``tdd_cache_hit_ratio{cache=<name>}`` to hits / lookups since
    start; a failed load (an unknown key) is a miss and is not cached.
    """

    def __init__(self, name: str, load: Callable[[int], Any], size: int) -> None:
        self.name = name
        self._load = load
        self._size = size
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: int) -> Any:
        with self._lock:
            found = key in self._items
            if found:
                self._items.move_to_end(key)
                value = self._items[key]
                self.hits += 1
            else:
                self.misses += 1
            ratio = self.hits / (self.hits + self.misses)
        catalog.cache_hit_ratio.set(ratio, {"cache": self.name})
        if found:
            return value
        value = self._load(key)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class EpicService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.logger = StructuredLogger("epic_service")
        self.cache = LookupCache("epics", self._load, EPIC_CACHE_SIZE)

    def _load(self, epic_id: int) -> dict[str, str]:
        rows = self.db.execute(
            "select_epic", "SELECT name, project_type FROM epics WHERE id = ?", (epic_id,)
        )
        if not rows:
            raise LookupError(f"no epic {epic_id}")
        name, project_type = rows[0]
        return {"name": name, "project_type": project_type}

    def get_epic(self, epic_id: int) -> dict[str, str]:
        """An epic by id, through the cache (epics are never renamed here)."""
        epic: dict[str, str] = self.cache.get(epic_id)
        return epic

    @logger.performance_tracked
    def create_epic(self, epic_data: dict[str, Any]) -> int:
        # Inherits the correlation context of the request that called it.
        self.logger.info(
            "Creating new epic",
            {"epic_name": epic_data["name"], "task_count": len(epic_data.get("tasks", []))},
        )
        with self.logger.performance_context("epic_creation"):
            self.db.execute(
                "insert_epic",
                "INSERT INTO epics (name, project_type) VALUES (?, ?)",
                (epic_data["name"], epic_data.get("type", "web")),
            )
            epic_id = self.db.last_id()
        catalog.epics_created.add(1, {"project_type": epic_data.get("type", "web")})
        return epic_id


class TaskService:
    def __init__(self, db: Database, epics: EpicService) -> None:
        self.db = db
        self.epics = epics
        self.logger = StructuredLogger("task_service")

    @logger.performance_tracked
    def add_task(self, epic_id: int, title: str) -> int:
        self.epics.get_epic(epic_id)  # LookupError for an unknown epic
        self.db.execute(
            "insert_task",
            "INSERT INTO tasks (epic_id, title, done) VALUES (?, ?, 0)",
            (epic_id, title),
        )
        return self.db.last_id()

    @logger.performance_tracked
    def complete_task(self, task_id: int) -> None:
        done = self.db.execute(
            "complete_task", "UPDATE tasks SET done = 1 WHERE id = ? RETURNING epic_id", (task_id,)
        )
        if not done:
            raise LookupError(f"no task {task_id}")
        self.completed(task_id, int(done[0][0]))

    def completed(self, task_id: int, epic_id: int) -> None:
        """Count a completion under its epic's project type (read through the cache)."""
        project_type = self.epics.get_epic(epic_id)["project_type"]
        catalog.tasks_completed.add(1, {"project_type": project_type})
        self.logger.info("Task completed", {"task_id": task_id})


class FocusService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.logger = StructuredLogger("focus_service")

    @logger.performance_tracked
    def record_session(self, task_id: int, seconds: float) -> None:
        self.db.execute(
            "insert_focus",
            "INSERT INTO focus_sessions (task_id, seconds) VALUES (?, ?)",
            (task_id, seconds),
        )
        catalog.focus_sessions.add(1)
        catalog.focus_session_duration.record(seconds)
        self.logger.info("Focus session recorded", {"task_id": task_id, "seconds": seconds})


class SyncService:
    """Epics and tasks synced both ways with a JSON file, the seed's bidirectional sync.

    Pull: a task marked done in the file and open here is completed here. Push: the
    file is rewritten (atomically) with every epic and task. Each sync is timed into
    ``tdd_sync_duration_seconds``; a failed one is an error and turns
    ``epic_sync_status`` critical until the next sync succeeds.
    """

    def __init__(self, db: Database, tasks: TaskService, path: str) -> None:
        self.db = db
        self.tasks = tasks
        self.path = path
        self.logger = StructuredLogger("sync_service")
        self.last_sync: float | None = None  # time.time() of the last successful sync
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def sync(self) -> dict[str, int] | None:
        """One sync; its counts, or None when it failed (logged and counted, not raised)."""
        with self._lock:
            started = time.perf_counter()
            try:
                counts = self._sync()
            # A file someone edited by hand can hold anything: LookupError, TypeError and
            # AttributeError are a malformed document, reported like any failed sync.
            except (
                OSError,
                ValueError,
                LookupError,
                TypeError,
                AttributeError,
                sqlite3.Error,
            ) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                catalog.errors.add(1, {"type": "sync_failed"})
                self.logger.exception("Epic sync failed", {"path": self.path})
                return None
            finally:
                catalog.sync_duration.record(time.perf_counter() - started, {"store": "file"})
            self.last_sync, self.last_error = time.time(), None
            return counts

    @logger.performance_tracked(name="epic_sync")
    def _sync(self) -> dict[str, int]:
        pulled = 0
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as file:
                remote = json.load(file)
            done_there = {int(t["id"]) for t in remote.get("tasks", []) if t.get("done")}
            for task_id in sorted(done_there):
                reopened = self.db.execute(
                    "sync_pull",
                    "UPDATE tasks SET done = 1 WHERE id = ? AND done = 0 RETURNING epic_id",
                    (task_id,),
                )
                if reopened:
                    self.tasks.completed(task_id, int(reopened[0][0]))
                    pulled += 1
        epics = self.db.execute("sync_push", "SELECT id, name, project_type FROM epics")
        tasks = self.db.execute("sync_push", "SELECT id, epic_id, title, done FROM tasks")
        document = {
            "synced_at": datetime.now(timezone.utc).isoformat(),
            "epics": [{"id": i, "name": n, "project_type": p} for i, n, p in epics],
            "tasks": [{"id": i, "epic_id": e, "title": t, "done": bool(d)} for i, e, t, d in tasks],
        }
        partial = f"{self.path}.partial"
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(document, file)
        os.replace(partial, self.path)
        counts = {"pulled": pulled, "epics": len(epics), "tasks": len(tasks)}
        if pulled:
            self.logger.info("Tasks completed in the sync file", counts)
        return counts

    def status(self) -> dict[str, Any]:
        """The seed's epic_sync_status health check."""
        if self.last_error is not None:
            return {"status": "critical", "message": f"Sync failed: {self.last_error}"}
        if self.last_sync is None:
            return {"status": "warning", "message": "Not synced yet"}
        last = datetime.fromtimestamp(self.last_sync, timezone.utc).isoformat()
        if time.time() - self.last_sync > SYNC_STALE_S:
            return {"status": "warning", "message": "Epic sync stale", "last_sync": last}
        return {"status": "healthy", "message": "Sync current", "last_sync": last}


class App:
    def __init__(self, db_path: str = ":memory:", sync_path: str | None = None) -> None:
        self.db = Database(db_path)
        self.epics = EpicService(self.db)
        self.tasks = TaskService(self.db, self.epics)
        self.focus = FocusService(self.db)
        if sync_path is None:
            # No file asked for: one in a directory that lives as long as the app.
            self._sync_dir = tempfile.TemporaryDirectory(prefix="tdd-app-sync-")
            sync_path = os.path.join(self._sync_dir.name, "epics.json")
        self.sync = SyncService(self.db, self.tasks, sync_path)
        self.extra_latency_s = 0.0
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str | None, float]] = {}  # user -> (session, last seen)
        self._failed_logins: dict[str, list[float]] = {}  # user name -> recent failures

    def seen(self, user_id: str | None, session_id: str | None) -> None:
        """A request from ``user_id``: feeds the active and concurrent user gauges."""
        if user_id:
            with self._lock:
                self._seen[user_id] = (session_id, time.monotonic())

    def report(self) -> None:
        """Set the gauges a dashboard reads: users, productivity, process memory and CPU."""
        now = time.monotonic()
        with self._lock:
            recent = [s for s, at in self._seen.values() if now - at < ACTIVE_WINDOW_S]
        catalog.active_users.set(len(recent))
        catalog.concurrent_users.set(len({s for s in recent if s}))
        (completed,) = self.db.execute("report", "SELECT COUNT(*) FROM tasks WHERE done = 1")[0]
        (focus_s,) = self.db.execute("report", "SELECT SUM(seconds) FROM focus_sessions")[0]
        # The seed's score, aggregated (no per-user label): tasks completed per focus hour.
        catalog.user_productivity_score.set(completed / (focus_s / 3600) if focus_s else 0.0)
        catalog.memory_usage.set(memory_usage_mb() * 1024 * 1024)
        catalog.cpu_usage.set(_cpu.ratio())

    def handle(self, endpoint: str, method: str, body: dict[str, Any]) -> tuple[int, Any]:
        """One request: the unit of correlation, timed into tdd_response_time_seconds."""
        started = time.perf_counter()
        status = 200
        # The seed's performance-based alert: slower than 1 s is a warning and, with
        # OTEL_TDD_ALERTMANAGER_URL set, an alert.
        with logger.performance_context("api_response", alert_threshold_ms=1000):
            try:
                result = self._route(endpoint, body)
            except KeyError as error:
                status, result = 400, {"error": f"missing field {error}"}
                catalog.errors.add(1, {"type": "bad_request"})
            except TooManyAttemptsError as error:
                status, result = 429, {"error": str(error)}
            except Exception as error:
                status, result = 500, {"error": str(error)}
                catalog.errors.add(1, {"type": type(error).__name__})
                logger.exception("Request failed", {"endpoint": endpoint})
            if self.extra_latency_s:
                time.sleep(self.extra_latency_s)
        if 400 <= status < 500:
            log_rejected(endpoint, status, result["error"])
        catalog.response_time.record(
            time.perf_counter() - started,
            {"endpoint": endpoint, "method": method, "status": str(status)},
        )
        return status, result

    def _route(self, endpoint: str, body: dict[str, Any]) -> Any:
        if endpoint == "/epics":
            return {"epic_id": self.epics.create_epic(body)}
        if endpoint == "/tasks":
            return {"task_id": self.tasks.add_task(int(body["epic_id"]), str(body["title"]))}
        if endpoint == "/tasks/complete":
            self.tasks.complete_task(int(body["task_id"]))
            return {"ok": True}
        if endpoint == "/focus":
            self.focus.record_session(int(body["task_id"]), float(body["seconds"]))
            return {"ok": True}
        if endpoint == "/login":
            return self._login(str(body.get("username")), body.get("password"))
        raise LookupError(f"no route {endpoint}")

    def _login(self, username: str, password: Any) -> dict[str, bool]:
        """A password check; past LOGIN_FAILURES_PER_MINUTE failures a user name is refused."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failed_logins.get(username, []) if now - t < 60]
            self._failed_logins[username] = recent
            limited = len(recent) >= LOGIN_FAILURES_PER_MINUTE
        if limited:
            logger.security_event(
                "rate_limit_exceeded",
                {"attempted_username": username, "limit_per_minute": LOGIN_FAILURES_PER_MINUTE},
            )
            raise TooManyAttemptsError(f"too many failed logins for {username}; retry in a minute")
        ok = password == "correct horse"
        logger.security_event(
            "authentication_success" if ok else "authentication_failure",
            {"attempted_username": username, "password": password},
        )
        if not ok:
            with self._lock:
                self._failed_logins[username].append(now)
        return {"ok": ok}


class TooManyAttemptsError(Exception):
    """Answered 429: a client past a rate limit, not an error of the app."""


@logger.rate_limited(max_logs_per_minute=5)
def log_rejected(endpoint: str, status: int, reason: str) -> None:
    """A rejected request is the client's problem: a few lines a minute tell the story; the
    rest are counted in tdd_log_records_suppressed_total instead of flooding the logs."""
    logger.warning("Request rejected", {"endpoint": endpoint, "status": status, "reason": reason})


class _CpuMeter:
    """CPU time used since the previous reading, per wall-clock second (1.0 = one core)."""

    def __init__(self) -> None:
        self._cpu, self._wall = time.process_time(), time.monotonic()

    def ratio(self) -> float:
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return round(used, 4)


_cpu = _CpuMeter()


def health_monitor(app: App) -> HealthMonitor:
    """The seed's health checks for this app (/health on OTEL_TDD_OPS_PORT when set)."""
    health = HealthMonitor()
    health.register_check("memory_usage", memory_check())

    def database_connection() -> dict[str, Any]:
        app.db.execute("health_check", "SELECT 1")
        return {"status": "healthy", "message": "Database responsive"}

    health.register_check("database_connection", database_connection)
    health.register_check("epic_sync_status", app.sync.status)
    set_default_monitor(health)
    return health


def run_workload(app: App, epics: int, tasks: int, sessions: int) -> dict[str, int]:
    """The demo: what a few users do in a day, each request in its own correlation context."""
    counts = {"epics": 0, "tasks_completed": 0, "focus_sessions": 0}
    for index in range(epics):
        user = f"user_{index % 3}"
        with correlation_context(user, f"req_epic_{index}", session_id=f"sess_{user}"):
            app.seen(user, f"sess_{user}")
            logger.info("Processing user request", {"action": "create_epic"})
            _, created = app.handle(
                "/epics",
                "POST",
                {"name": f"Epic {index}", "type": "web", "tasks": list(range(tasks))},
            )
            counts["epics"] += 1
            for task_index in range(tasks):
                _, task = app.handle(
                    "/tasks", "POST", {"epic_id": created["epic_id"], "title": f"Task {task_index}"}
                )
                app.handle("/tasks/complete", "POST", {"task_id": task["task_id"]})
                counts["tasks_completed"] += 1
                for _ in range(sessions):
                    app.handle(
                        "/focus",
                        "POST",
                        {"task_id": task["task_id"], "seconds": random.uniform(600, 1800)},
                    )
                    counts["focus_sessions"] += 1
            logger.info("Request processing completed")
    return counts


class _Handler(BaseHTTPRequestHandler):
    app: App

    def _respond(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if url.path == "/admin/latency":
            # Test hook: make every request slow (the alerting e2e test drives this).
            self.app.extra_latency_s = float(parse_qs(url.query).get("ms", ["0"])[0]) / 1000
            self._respond(200, {"extra_latency_ms": self.app.extra_latency_s * 1000})
            return
        headers = {key: value for key, value in self.headers.items()}
        with (
            continue_from_headers(headers, span_name=f"POST {url.path}"),
            correlation_context(
                body.get("user_id"), self.headers.get("X-Request-Id"), body.get("session_id")
            ),
        ):
            self.app.seen(body.get("user_id"), body.get("session_id"))
            status, payload = self.app.handle(url.path, "POST", body)
        self._respond(status, payload)

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines are already JSON records and spans


def serve(app: App, host: str, port: int) -> int:
    handler = type("Handler", (_Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = False  # so server_close() waits for the requests in flight
    health = health_monitor(app)
    health.start_periodic_checks(REPORT_INTERVAL_S)
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(REPORT_INTERVAL_S):
            app.sync.sync()
            app.report()

    app.sync.sync()
    app.report()
    threading.Thread(target=report, name="report-gauges", daemon=True).start()

    # SIGTERM (an orchestrator) and SIGINT (Ctrl-C): readiness turns 503, the
    # server stops taking requests (shutdown) and waits for the ones in flight
    # (server_close), then the telemetry is flushed, so the last requests' records
    # are not lost.
    shutdown = GracefulShutdown()
    shutdown.register_cleanup(server.shutdown, priority=1)
    shutdown.register_cleanup(server.server_close, priority=1)
    shutdown.register_cleanup(stop.set, priority=2)
    shutdown.register_cleanup(health.stop_periodic_checks, priority=2)
    shutdown.install_signal_handlers()

    logger.info("Serving", {"url": f"http://{host}:{server.server_address[1]}"})
    server.serve_forever()  # returns once the shutdown's first cleanup ran
    # The process's exit code is the shutdown's: 1 if a cleanup failed or the flush
    # was incomplete.
    result = shutdown.wait()
    return result.exit_code if result is not None else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("demo", "serve"), default="demo")
    parser.add_argument("--epics", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--service-name", default="tdd-app")
    parser.add_argument(
        "--sync-file", help="JSON file epics and tasks are synced with (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    otel_tdd.configure(service_name=args.service_name)
    app = App(sync_path=args.sync_file)
    if args.mode == "serve":
        return serve(app, args.host, args.port)
    counts = run_workload(app, args.epics, args.tasks, args.sessions)
    app.sync.sync()
    app.report()
    health_monitor(app).run_all_checks()
    logger.info("Workload finished", counts)
    metrics = otel_tdd.render_prometheus().decode()
    summary = [
        line
        for line in metrics.splitlines()
        if line.startswith(
            (
                "tdd_epics",
                "tdd_tasks",
                "tdd_focus_sessions_total",
                "tdd_response_time_seconds_count",
            )
        )
    ]
    print("\n# Prometheus metrics this run produced (what /metrics serves):", file=sys.stderr)
    print("\n".join(summary), file=sys.stderr)
    otel_tdd.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
