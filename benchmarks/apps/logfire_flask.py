"""The Flask app, unmodified, with Logfire's matching instrument_* calls."""

from __future__ import annotations

import logfire
import logfire_setup

logfire_setup.configure()
logfire.instrument_requests()

from flask_app import app  # noqa: E402 - instrument first, as Logfire's docs do

logfire.instrument_flask(app)
logfire_setup.add_log_handler()

__all__ = ["app"]
