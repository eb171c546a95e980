"""gunicorn config for one benchmark knob: a shorter GIL switch interval in the worker.

Passed as ``GUNICORN_CMD_ARGS=--config=.../switch_interval.py`` (the app is not
touched). CPython hands the GIL over every 5 ms by default; a request thread
coming back from a socket read waits up to that long while an export thread
encodes a batch. 0.5 ms tests whether that wait is where the time goes.
"""

from __future__ import annotations

import sys
from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    sys.setswitchinterval(0.0005)
