"""A server's own logging and the app's, together: uvicorn serving an app that calls
``logging.basicConfig(format=...)`` at import, bare and under ``otel-tdd run``.

uvicorn configures its loggers (its ``LOGGING_CONFIG``, through ``dictConfig``)
before it imports the app; the app then puts its own console on the root logger.
otel_tdd/logs/framework.py hands uvicorn's default consoles to our JSON and
otel_tdd/logs/guard.py keeps the app's console; once the app owns the console,
both print as without otel-tdd (the app's lines in its format, uvicorn's in
uvicorn's), no JSON line repeats them, and every record still reaches OTLP with the
request's trace. After the two were merged, uvicorn's lines were marked as written by
the app's console and vanished from stdout while the app's JSON was still expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from compat_helpers import (
    Run,
    ours,
    serve_and_probe,
    wrapped,
    wrapped_env,
)
from run_helpers import clean_env

from otel_tdd.stack import process

pytestmark = pytest.mark.integration

FORMAT = "APP %(levelname)s %(name)s %(message)s"
APP = f"""
import logging

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

logging.basicConfig(format={FORMAT!r}, level=logging.INFO)
log = logging.getLogger("compat.app")


def ping(request):
    return PlainTextResponse("pong")


def hello(request):
    log.info("compat hello")
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/ping", ping), Route("/hello", hello)])
"""
PATHS = ("/ping", "/hello")
ROOT_WARNING = "put a console handler on the root logger"
STARTUP = "INFO:     Application startup complete."


def _serve(tmp_path: Path, name: str, argv: list[str], env: dict[str, str], port: int) -> Run:
    return serve_and_probe(
        argv, port=port, paths=PATHS, directory=tmp_path, name=name, env=env, cwd=tmp_path
    )


def _access_lines(text: str) -> list[str]:
    """uvicorn's access lines, the client's port left out (it differs between runs)."""
    return [
        re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        for line in text.splitlines()
        if '"GET /' in line
    ]


def test_uvicorn_with_an_app_that_calls_basic_config_prints_both_as_bare_and_exports_all(
    module_collector: Any, tmp_path: Path, compat_row: Any
) -> None:
    collector = module_collector
    service = "compat-uvicorn-basicconfig"
    (tmp_path / "logging_app.py").write_text(APP)

    def argv(port: int) -> list[str]:
        return ["uvicorn", "logging_app:app", "--host", "127.0.0.1", "--port", str(port)]

    port = process.free_ports(1)[0]
    bare = _serve(tmp_path, "bare", argv(port), clean_env(), port)
    port = process.free_ports(1)[0]
    run = _serve(
        tmp_path,
        "wrapped",
        wrapped(argv(port), collector.otlp_http_endpoint, service),
        wrapped_env(),
        port,
    )

    assert run.answers() == bare.answers() == [("/ping", 200, "pong"), ("/hello", 200, "hello")]
    assert run.exit_code == 0, run.output
    # The console as bare: uvicorn's lines in uvicorn's format, the app's in its own.
    for out in (bare, run):
        assert STARTUP in out.stderr.splitlines(), out.output
        assert out.stderr.count("APP INFO compat.app compat hello") == 1, out.output
    # (the readiness probe's /ping lines vary in number: /hello's is the one to compare)
    assert (
        _access_lines(run.stdout)[-1:]
        == _access_lines(bare.stdout)[-1:]
        == ['INFO:     127.0.0.1:PORT - "GET /hello HTTP/1.1" 200 OK']
    ), run.output
    assert set(_access_lines(run.stdout)) == set(_access_lines(bare.stdout)), run.output
    # No JSON repeats them: the console is the app's; the wrapper says so once, and
    # nothing else.
    repeated = [
        r for r in run.stdout_records if str(r.get("logger")).startswith(("uvicorn", "compat"))
    ]
    assert repeated == [], repeated
    wrapper_lines = [line for line in run.stderr.splitlines() if line.startswith("otel-tdd")]
    assert len(wrapper_lines) == 1 and ROOT_WARNING in wrapper_lines[0], run.stderr

    # Every record over OTLP once; /hello's access line and the app's record in its trace.
    hello = next(p for p in run.probes if p.path == "/hello")

    def exported() -> list[dict[str, Any]]:
        logs = ours(collector.logs(), service)
        return logs if any('"GET /hello HTTP/1.1" 200' in str(r["body"]) for r in logs) else []

    logs = collector.wait_for(exported, 30, f"{service}'s records after SIGTERM")
    bodies = [str(r["body"]) for r in logs]
    assert bodies.count("Application startup complete.") == 1, bodies
    app_record = [r for r in logs if r["body"] == "compat hello"]
    access = [r for r in logs if '"GET /hello HTTP/1.1" 200' in str(r["body"])]
    assert len(app_record) == len(access) == 1, bodies
    assert app_record[0]["trace_id"] == access[0]["trace_id"] == hello.trace_id, logs

    from compat_matrix import installed_version

    compat_row(
        "starlette",
        "uvicorn, an app that calls basicConfig(format=...) at import",
        [
            "console as bare: uvicorn's lines in its format, the app's in the app's",
            "no JSON line repeats them; one stderr warning that the console is the app's",
            "uvicorn's and the app's records over OTLP once, in the request's trace",
        ],
        notes=[f"uvicorn {installed_version('uvicorn')}"],
    )
