"""A tiny FastAPI service for ``otel-tdd run`` under uvicorn, a console script.

No telemetry code beyond logging: under ``otel-tdd run`` the FastAPI instrumentor
(opentelemetry-instrumentation-fastapi, loaded through its entry point) makes each
request a SERVER span, and the records logged while it runs, through stdlib
logging or the seed's ``StructuredLogger``, are JSON lines carrying its trace id.

    otel-tdd run --service-name tasks-api \\
        uvicorn --app-dir examples --host 127.0.0.1 --port 8102 fastapi_app:app
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException

from otel_tdd.correlation import current_ids
from otel_tdd.structured_logging import StructuredLogger

app = FastAPI(title="tasks-api")
logger = StructuredLogger("tasks_api")
# A library's plain stdlib logger: it gets the same JSON and correlation.
library_log = logging.getLogger("tasks_api.storage")

TASKS = {1: "Write the failing test", 2: "Make it pass", 3: "Refactor"}


@app.get("/tasks/{task_id}")
async def read_task(task_id: int) -> dict[str, Any]:
    library_log.info("loading task %d", task_id)
    if task_id not in TASKS:
        logger.warning("Unknown task", {"task_id": task_id})
        raise HTTPException(status_code=404, detail="no such task")
    logger.info("Serving task", {"task_id": task_id})
    return {"task_id": task_id, "title": TASKS[task_id], "trace_id": current_ids().correlation_id}
