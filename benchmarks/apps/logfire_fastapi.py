"""The FastAPI app, unmodified, with Logfire's matching instrument_* calls."""

from __future__ import annotations

import logfire
import logfire_setup

logfire_setup.configure()
logfire.instrument_httpx()

from fastapi_app import app  # noqa: E402 - instrument first, as Logfire's docs do

logfire.instrument_fastapi(app)
logfire_setup.add_log_handler()

__all__ = ["app"]
