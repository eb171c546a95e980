"""redis-py against a real ``redis-server`` under ``otel-tdd run``.

The app, unmodified and small: inside one ``job`` span (the OpenTelemetry API, a
no-op without the wrapper) it sets, reads, counts and deletes keys, logs what it
did, and runs one command that Redis refuses (INCR on a string), which it catches
and logs. Bare, then under the wrapper through the real Collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_services import Redis, running_redis
from matrix_runs import (
    PYTHON,
    assert_correlated,
    assert_one_error,
    exported_job,
    instrumentation,
    otlp_to,
    run_app,
    wrapper_problems,
    write_app,
)

pytestmark = pytest.mark.integration

MESSAGES = {"job starts", "visits: 2", "command failed"}
REDIS_APP = """
import logging, sys
import redis
from opentelemetry import trace

logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("visits")
client = redis.Redis.from_url(sys.argv[1], decode_responses=True)
with trace.get_tracer("visits").start_as_current_span("job"):
    log.info("job starts")
    client.set("page:name", "home")
    name = client.get("page:name")
    client.incr("page:visits")
    visits = client.incr("page:visits")
    log.info("visits: %d", visits)
    client.delete("page:visits")
    try:
        client.incr("page:name")
    except redis.ResponseError as error:
        log.exception("command failed")
        print("error:", error)
print("name:", name, "visits:", visits)
"""
# set, get, incr (redis-py sends INCRBY), incr, delete, the refused incr: a span each.
COMMANDS = ["SET", "GET", "INCRBY", "INCRBY", "DEL", "INCRBY"]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_redis_py_commands(
    module_collector: Any, redis_server: Redis, tmp_path: Path, compat_row: Any
) -> None:
    collector, service = module_collector, "compat-redis"
    app = write_app(tmp_path, "visits.py", REDIS_APP)
    argv = [PYTHON, str(app), redis_server.url]
    bare = run_app(argv, cwd=tmp_path)
    wrapped = run_app(argv, cwd=tmp_path, wrap=otlp_to(collector, service))
    assert bare.returncode == 0, bare.stderr
    assert (wrapped.returncode, wrapped.app_stdout()) == (bare.returncode, bare.app_stdout())
    assert bare.app_stdout()[-1] == "name: home visits: 2"
    assert wrapped.stderr == "" and wrapper_problems(wrapped) == [], wrapped.stderr

    job = exported_job(collector, service, MESSAGES)
    assert_correlated(job, wrapped.json_records(), MESSAGES)
    commands = sorted(job.children(), key=lambda s: s["start_time_unix_nano"])
    assert [s["name"] for s in commands] == COMMANDS
    for span in commands:
        attrs = span["attributes"]
        assert span["kind"] == "CLIENT", span
        assert attrs.get("db.system", attrs.get("db.system.name")) == "redis", attrs
        port = attrs.get("server.port", attrs.get("net.peer.port"))
        assert port == redis_server.port, attrs
    # The statement names the command and hides the values (no data leaks into spans).
    assert commands[0]["attributes"]["db.statement"] == "SET ? ?", commands[0]["attributes"]
    failed = assert_one_error(job, "command failed")
    assert failed is commands[-1] or failed == commands[-1]
    compat_row(
        "redis-py",
        "redis-server 7 (Debian): SET, GET, INCR, DEL, one refused command",
        [
            "same output and exit code as bare",
            "one CLIENT span per command, db.system=redis, statement without values, server port",
            "the job's records carry its trace and span id on stdout and over OTLP",
            "one error span and one error record",
            "no WARNING/ERROR from the wrapper",
        ],
        distribution="redis",
        notes=[instrumentation("redis")],
    )
