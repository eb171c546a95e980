"""The Django project, unmodified, with Logfire's matching instrument_* calls."""

from __future__ import annotations

import os

import logfire
import logfire_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")
logfire_setup.configure()
logfire.instrument_requests()
logfire.instrument_django()

from djangoapp.wsgi import application  # noqa: E402 - instrument first, as Logfire's docs do

logfire_setup.add_log_handler()

__all__ = ["application"]
