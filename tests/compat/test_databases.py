"""Database drivers under ``otel-tdd run``: SQLAlchemy on sqlite3, psycopg on a real PostgreSQL.

Each app is unmodified and small: inside one ``job`` span (the OpenTelemetry API,
a no-op without the wrapper) it creates a table, writes and reads rows, logs what
it did, and runs one query that fails (a missing table), which it catches and logs
with its traceback. It runs bare, then under ``otel-tdd run`` through the real
Collector; the row proves the same output and exit code, one client span per
statement with the database semantic attributes, the job's records carrying its
ids on stdout and over OTLP, one error span and one error record, and nothing from
the wrapper on stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_services import Postgres, running_postgres
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

MESSAGES = {"job starts", "wrote 3 items", "read 3 items", "query failed"}

SQLALCHEMY_APP = """
import logging, sys
from opentelemetry import trace
from sqlalchemy import create_engine, text

logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("inventory")
engine = create_engine(sys.argv[1])
with trace.get_tracer("inventory").start_as_current_span("job"):
    log.info("job starts")
    with engine.begin() as db:
        db.execute(text("DROP TABLE IF EXISTS items"))
        key = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
        db.execute(text(f"CREATE TABLE items (id {key} PRIMARY KEY, name TEXT NOT NULL)"))
        for name in ("apple", "pear", "plum"):
            db.execute(text("INSERT INTO items (name) VALUES (:name)"), {"name": name})
    log.info("wrote 3 items")
    with engine.connect() as db:
        names = [row.name for row in db.execute(text("SELECT name FROM items ORDER BY id"))]
    log.info("read %d items", len(names))
    try:
        with engine.connect() as db:
            db.execute(text("SELECT * FROM missing_table"))
    except Exception as error:
        log.exception("query failed")
        print("error:", type(error).__name__)
print("names:", ",".join(names))
"""
# Statements the app runs, one client span each (SELECT of the missing table included).
SQLALCHEMY_STATEMENTS = 7

PSYCOPG_APP = """
import logging, sys
import psycopg
from opentelemetry import trace

logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("inventory")
with trace.get_tracer("inventory").start_as_current_span("job"):
    log.info("job starts")
    with psycopg.connect(sys.argv[1], autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL)")
        with conn.cursor() as cur:
            for name in ("apple", "pear", "plum"):
                cur.execute("INSERT INTO items (name) VALUES (%s)", (name,))
        log.info("wrote 3 items")
        names = [row[0] for row in conn.execute("SELECT name FROM items ORDER BY id")]
        log.info("read %d items", len(names))
        try:
            conn.execute("SELECT * FROM missing_table")
        except psycopg.Error as error:
            log.exception("query failed")
            print("error:", type(error).__name__)
print("names:", ",".join(names))
"""
PSYCOPG_STATEMENTS = 7


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


def run_row(
    tmp_path: Path, collector: Any, service: str, source: str, target: str
) -> tuple[Any, Any]:
    app = write_app(tmp_path, f"{service}.py", source)
    bare = run_app([PYTHON, str(app), target], cwd=tmp_path)
    wrapped = run_app([PYTHON, str(app), target], cwd=tmp_path, wrap=otlp_to(collector, service))
    assert bare.returncode == 0, bare.stderr
    # The app's own output and exit code; its log records are our JSON instead of the
    # bare run's lastResort lines on stderr, so the wrapped stderr is empty.
    assert (wrapped.returncode, wrapped.app_stdout()) == (bare.returncode, bare.app_stdout())
    assert wrapped.stderr == "", wrapped.stderr
    assert bare.app_stdout()[-1] == "names: apple,pear,plum"
    assert wrapper_problems(wrapped) == []
    return bare, wrapped


def db_attributes(span: dict[str, Any]) -> tuple[Any, Any]:
    """(system, statement) under the stable names or the older ones (both are emitted by
    contrib depending on OTEL_SEMCONV_STABILITY_OPT_IN)."""
    attrs = span["attributes"]
    system = attrs.get("db.system.name", attrs.get("db.system"))
    statement = attrs.get("db.query.text", attrs.get("db.statement"))
    return system, statement


def test_sqlalchemy_on_sqlite(module_collector: Any, tmp_path: Path, compat_row: Any) -> None:
    collector, service = module_collector, "compat-sqlalchemy"
    database = tmp_path / "inventory.db"
    _, wrapped = run_row(tmp_path, collector, service, SQLALCHEMY_APP, f"sqlite:///{database}")

    job = exported_job(collector, service, MESSAGES)
    assert_correlated(job, wrapped.json_records(), MESSAGES)
    # The instrumentor also reports each pool connect (a "connect" span): not a statement.
    connects = [s for s in job.children() if s["name"] == "connect"]
    queries = [s for s in job.children() if s["name"] != "connect"]
    assert connects and len(queries) == SQLALCHEMY_STATEMENTS, [s["name"] for s in queries]
    for span in queries:
        assert span["kind"] == "CLIENT" and span["scope"]["name"].endswith("sqlalchemy"), span
        assert db_attributes(span)[0] == "sqlite", span["attributes"]
    statements = [db_attributes(s)[1] for s in queries]
    assert sum("INSERT INTO items" in (text or "") for text in statements) == 3, statements
    failed = assert_one_error(job, "query failed")
    assert "missing_table" in db_attributes(failed)[1]
    assert failed in queries
    compat_row(
        "SQLAlchemy",
        "sqlite3 file database, engine.begin/connect, one failing SELECT",
        [
            "same output and exit code as bare",
            f"one CLIENT span per statement ({SQLALCHEMY_STATEMENTS}), db.system=sqlite, "
            "statement text (plus a 'connect' span per pool connect)",
            "the job's records carry its trace and span id on stdout and over OTLP",
            "one error span and one error record",
            "no WARNING/ERROR from the wrapper",
        ],
        distribution="sqlalchemy",
        notes=[instrumentation("sqlalchemy"), "its instrumentor supports sqlalchemy < 2.1"],
    )


def test_psycopg_on_postgresql(
    module_collector: Any, postgres: Postgres, tmp_path: Path, compat_row: Any
) -> None:
    collector, service = module_collector, "compat-psycopg"
    _, wrapped = run_row(tmp_path, collector, service, PSYCOPG_APP, postgres.dsn)

    job = exported_job(collector, service, MESSAGES)
    assert_correlated(job, wrapped.json_records(), MESSAGES)
    queries = job.children()
    assert len(queries) == PSYCOPG_STATEMENTS, [s["name"] for s in queries]
    for span in queries:
        assert span["kind"] == "CLIENT", span
        assert db_attributes(span)[0] == "postgresql", span["attributes"]
    failed = assert_one_error(job, "query failed")
    assert "missing_table" in db_attributes(failed)[1]
    assert failed in queries
    compat_row(
        "psycopg",
        "PostgreSQL 15 (Debian), autocommit connection, one failing SELECT",
        [
            "same output and exit code as bare",
            f"one CLIENT span per statement ({PSYCOPG_STATEMENTS}), db.system=postgresql, "
            "statement text",
            "the job's records carry its trace and span id on stdout and over OTLP",
            "one error span and one error record",
            "no WARNING/ERROR from the wrapper",
        ],
        notes=[instrumentation("psycopg")],
    )


@pytest.mark.parametrize("disabled", [None, "psycopg"], ids=["both-instrumentors", "psycopg-off"])
def test_sqlalchemy_on_postgresql_through_psycopg(
    module_collector: Any, postgres: Postgres, tmp_path: Path, compat_row: Any, disabled: str | None
) -> None:
    """Two instrumented layers: SQLAlchemy's span per statement, and psycopg's too.

    Both instrumentors see each statement, so a trace holds two CLIENT spans per query
    (as under stock opentelemetry-instrument), side by side: SQLAlchemy's span is not
    current while the driver runs. ``--disabled-instrumentations psycopg`` leaves one.
    The row records both, measured.
    """
    collector = module_collector
    service = f"compat-sqlalchemy-pg-{disabled or 'both'}"
    app = write_app(tmp_path, f"{service}.py", SQLALCHEMY_APP)
    url = postgres.url.replace("postgresql://", "postgresql+psycopg://")
    options = otlp_to(collector, service)
    if disabled:
        options += ["--disabled-instrumentations", disabled]
    bare = run_app([PYTHON, str(app), url], cwd=tmp_path)
    wrapped = run_app([PYTHON, str(app), url], cwd=tmp_path, wrap=options)
    assert bare.returncode == 0, bare.stderr
    assert (wrapped.returncode, wrapped.app_stdout()) == (bare.returncode, bare.app_stdout())
    assert wrapped.stderr == "" and wrapper_problems(wrapped) == [], wrapped.stderr

    job = exported_job(collector, service, MESSAGES)
    assert_correlated(job, wrapped.json_records(), MESSAGES)
    statements = [
        s
        for s in job.children()
        if s["scope"]["name"].endswith("sqlalchemy") and s["name"] != "connect"
    ]
    assert len(statements) == SQLALCHEMY_STATEMENTS, [s["name"] for s in statements]
    for span in statements:
        assert db_attributes(span)[0] == "postgresql", span["attributes"]
    drivers = [s for s in job.spans if s["scope"]["name"].endswith("psycopg")]
    errors = [s for s in job.spans if s["status_code"] == "ERROR"]
    if disabled:
        assert drivers == []
        assert [s["span_id"] for s in errors] == [
            s["span_id"] for s in statements if "missing_table" in db_attributes(s)[1]
        ]
    else:
        # psycopg's span of each statement too, beside SQLAlchemy's (both children of the
        # job: the SQLAlchemy span is not made current while the driver runs), plus the
        # dialect's first-connect queries (server version, settings).
        def verbs(spans: list[dict[str, Any]]) -> list[str]:
            return sorted(s["name"].split()[0].upper() for s in spans)

        beside = [d for d in drivers if d["parent_span_id"] == job.span["span_id"]]
        assert verbs(beside) == verbs(statements), ([d["name"] for d in drivers], verbs(statements))
        assert len(errors) == 2  # the failing SELECT, once per layer
    error_records = [r for r in job.records if r["severity_text"] == "ERROR"]
    assert [r["body"] for r in error_records] == ["query failed"]
    layers = (
        "one SQLAlchemy CLIENT span per statement and nothing beneath"
        if disabled
        else "two CLIENT spans per statement, SQLAlchemy's and psycopg's side by side "
        "(siblings under the caller's span; two error spans for the failing one)"
    )
    compat_row(
        "SQLAlchemy + psycopg",
        "PostgreSQL 15 through postgresql+psycopg://"
        + (" with --disabled-instrumentations psycopg" if disabled else ", both instrumentors"),
        [
            "same output and exit code as bare",
            layers,
            "the job's records carry its trace and span id on stdout and over OTLP",
            "one error record",
            "no WARNING/ERROR from the wrapper",
        ],
        distribution="sqlalchemy",
        notes=[instrumentation("sqlalchemy"), instrumentation("psycopg")],
    )
