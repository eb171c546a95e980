"""A worker that test_shutdown_child.py stops with SIGTERM in the middle of its work.

Configured through the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``), as a
user's app would be. Each work item is one span and one log record, numbered.
It prints JSON events on stdout for the test: ``ready`` (with the ops server's
URL), ``progress`` every 20 items, and ``stopped`` with the number of items it
finished once it sees the shutdown flag. The cleanups are the seed's
"Container Orchestration" example, shortened, registered in all three forms.

Usage: python shutdown_child_app.py SERVICE_NAME [--failing-cleanup]
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

import otel_tdd
from otel_tdd.graceful_shutdown import GracefulShutdown
from otel_tdd.health_check import is_shutting_down
from otel_tdd.structured_logging import StructuredLogger

MAX_ITEMS = 1_000_000  # far more than a test waits for: the signal always lands mid-work


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> None:
    runtime = otel_tdd.configure(sys.argv[1], ops_port=0, log_stream="none")
    ops_url = runtime.ops_server.url
    tracer = runtime.tracer
    logger = StructuredLogger("shutdown_child")
    shutdown = GracefulShutdown(cleanup_timeout_s=5)
    ran: list[str] = []

    def cleanup_ran(name: str, **data: object) -> None:
        ran.append(name)
        logger.info(f"cleanup {name} ran", {"cleanup": name, "position": len(ran), **data})

    @shutdown.register_cleanup(priority=1)
    def stop_accepting_requests() -> None:
        # What a kubelet would see now, asked over HTTP from inside the shutdown.
        try:
            with urllib.request.urlopen(ops_url + "/health/ready", timeout=5) as response:
                readiness = response.status
        except urllib.error.HTTPError as error:
            readiness = error.code
        cleanup_ran("stop_accepting_requests", readiness_status=readiness)
        time.sleep(0.3)  # the seed's grace period for in-flight work, shortened

    @shutdown.register_cleanup(priority=2)
    def complete_active_requests() -> None:
        with tracer.start_as_current_span("drain request queue"):
            cleanup_ran("complete_active_requests")

    @shutdown.register_cleanup  # default priority: after the numbered ones
    def save_user_sessions() -> None:
        cleanup_ran("save_user_sessions")

    def cleanup_resources() -> None:
        cleanup_ran("cleanup_resources")

    shutdown.register_cleanup(cleanup_resources, priority=3)

    if "--failing-cleanup" in sys.argv:

        @shutdown.register_cleanup(priority=4)
        def flaky_cache_flush() -> None:
            cleanup_ran("flaky_cache_flush")
            raise ConnectionError("cache already gone")

    shutdown.install_signal_handlers()
    say("ready", ops_url=ops_url)

    finished = 0
    for item in range(MAX_ITEMS):
        if is_shutting_down():
            break
        with tracer.start_as_current_span("work item", attributes={"item": item}):
            logger.info("work item done", {"item": item})
        finished += 1
        if finished % 20 == 0:
            say("progress", finished=finished)
        time.sleep(0.002)
    say("stopped", finished=finished)
    while True:  # the shutdown ends the process through SystemExit in this thread
        time.sleep(0.05)


if __name__ == "__main__":
    main()
