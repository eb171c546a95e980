"""The upstream service of the HTTP-hop example: a board that asks tasks_service for tasks.

The one line of correlation code is the seed's ``correlation_context``: it puts
``user_id`` and ``request_id`` in W3C baggage. Under ``otel-tdd run`` the Flask
instrumentor makes the incoming request a SERVER span and the requests
instrumentor makes the call a CLIENT span that sends ``traceparent`` and
``baggage``: one trace and one correlation id across both services.

    TASKS_SERVICE_URL=http://127.0.0.1:8101 otel-tdd run --service-name board-service \\
        python examples/http_services/board_service.py --port 8100
    curl -H 'X-Request-Id: req-42' 'http://127.0.0.1:8100/board/1?user=alice'
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

import requests
from flask import Flask, request

from otel_tdd.correlation import current_ids
from otel_tdd.structured_logging import StructuredLogger, correlation_context

app = Flask(__name__)
logger = StructuredLogger("board_service")
TASKS_SERVICE_URL = os.environ.get("TASKS_SERVICE_URL", "http://127.0.0.1:8101")


@app.get("/board/<int:epic_id>")
def board(epic_id: int) -> dict[str, Any]:
    user_id = request.args.get("user", "anonymous")
    request_id = request.headers.get("X-Request-Id") or f"req_{uuid.uuid4().hex[:12]}"
    with correlation_context(user_id, request_id):
        logger.info("Building board", {"epic_id": epic_id})
        response = requests.get(f"{TASKS_SERVICE_URL}/tasks/{epic_id}", timeout=5)
        response.raise_for_status()
        tasks = response.json()
        ids = current_ids()
        logger.info("Board built", {"epic_id": epic_id, "tasks": len(tasks["tasks"])})
    return {
        "epic_id": epic_id,
        "tasks": tasks["tasks"],
        "seen": {
            "correlation_id": ids.correlation_id,
            "user_id": ids.user_id,
            "request_id": ids.request_id,
        },
        "downstream_seen": tasks["seen"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
