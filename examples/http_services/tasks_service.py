"""The downstream service of the HTTP-hop example: lists an epic's tasks.

No telemetry code beyond the seed's logger: under ``otel-tdd run`` the Flask
instrumentor turns each request into a SERVER span that continues the caller's
trace (W3C ``traceparent``) and restores the caller's baggage (``user_id``,
``request_id``), so this service's records carry the caller's correlation ids.

    otel-tdd run --service-name tasks-service \\
        flask --app examples/http_services/tasks_service.py run --port 8101 --no-reload
    otel-tdd run --service-name tasks-service \\
        gunicorn -w 2 -b 127.0.0.1:8101 --chdir examples/http_services tasks_service:app
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, request
from opentelemetry import trace

from otel_tdd.correlation import current_ids
from otel_tdd.metrics import catalog
from otel_tdd.structured_logging import StructuredLogger

app = Flask(__name__)
logger = StructuredLogger("tasks_service")

TASKS = {
    1: ["Write the failing test", "Make it pass", "Refactor"],
    2: ["Sketch the API", "Contract test"],
}


@app.get("/tasks/<int:epic_id>")
def list_tasks(epic_id: int) -> dict[str, Any]:
    started = time.perf_counter()
    # Which worker answered: the gunicorn test maps spans to processes with it.
    trace.get_current_span().set_attribute("app.pid", os.getpid())
    tasks = TASKS.get(epic_id, [])
    logger.info("Listing tasks", {"epic_id": epic_id, "count": len(tasks)})
    ids = current_ids()
    catalog.response_time.record(
        time.perf_counter() - started,
        {"endpoint": "/tasks", "method": request.method, "status": "200"},
    )
    return {
        "epic_id": epic_id,
        "tasks": tasks,
        "pid": os.getpid(),
        "seen": {
            "correlation_id": ids.correlation_id,
            "user_id": ids.user_id,
            "request_id": ids.request_id,
        },
    }
