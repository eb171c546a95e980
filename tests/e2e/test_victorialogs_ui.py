"""VictoriaLogs' own web UI (vmui, ``/select/vmui/``) shows one trace's records in Chromium.

The stores tests' app (tests/integration/stores_fixtures.py: a VictoriaLogs of
ours on a free port, the ``shop`` app's two requests exported to it) and Debian's
Chromium driven headless by Playwright (browser_helpers.py). The page is opened
with the query ``trace_id:<id>`` in its URL, as a link from ``otel-tdd trace`` or
Grafana would; every record of that trace must appear in the page, none of the
other request's. The screenshot is kept in build/stores-walk/ (docs/img/ has the
one docs/stores.md shows).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from browser_helpers import CHROMIUM_FLAGS, chromium_path, sync_playwright

# The stores' fixtures and helpers live beside the integration tests that made them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from stores_helpers import WALK_DIR, App

pytest_plugins = ["stores_fixtures"]
pytestmark = pytest.mark.e2e

SCREENSHOT = WALK_DIR / "victorialogs-ui-trace.png"


def vmui_url(logs_url: str, trace_id: str) -> str:
    """vmui's own shareable form: the query and the time range in the hash route."""
    return f"{logs_url}/select/vmui/#/?query={quote(f'trace_id:{trace_id}')}&g0.range_input=1h"


def test_vmui_shows_the_records_of_the_trace_and_only_them(app: App, victoria_logs: str) -> None:
    trace, other = app.slow_failed, app.fast_ok
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 800},
        )
        try:
            page = browser.new_page()
            page.goto(vmui_url(victoria_logs, trace.trace_id))
            for message in trace.messages:
                page.get_by_text(message, exact=True).first.wait_for(timeout=30_000)
            query = page.get_by_role("textbox", name="Query")
            assert query.input_value() == f"trace_id:{trace.trace_id}"
            body = page.inner_text("body")
            for message in other.messages:
                assert message not in body, f"{message!r} is not of trace {trace.trace_id}"
            # One row per record: each message once, however the page groups them.
            for message in trace.messages:
                assert page.get_by_text(message, exact=True).count() == 1, message
            WALK_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000, "an empty screenshot"
