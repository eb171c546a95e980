"""gunicorn config for one benchmark knob: otel-tdd's export pacing turned off in the worker.

Passed as ``GUNICORN_CMD_ARGS=--config=.../no_pacing.py`` (the app is not touched):
the export threads encode each batch in one go again, as the SDK does alone
(otel_tdd/export_pacing.py), to measure what pacing is worth.
"""

from __future__ import annotations

from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    from otel_tdd import export_pacing

    export_pacing.SLICE_SECONDS = 0.0
