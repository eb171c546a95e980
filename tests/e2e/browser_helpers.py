"""Debian's Chromium driven headless by Playwright, without Playwright's browser download.

Shared by test_streamlit_browser.py and test_victorialogs_ui.py. A missing
Chromium or Playwright FAILS the test (never skips): a green run means a real
browser ran. Flags: ../shared/FACTS.md, "Streamlit and a real browser".
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for candidate in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("this test needs Chromium: apt-get install chromium", pytrace=False)
    return found


def sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail("this test needs Playwright: pip install -e '.[dev]'", pytrace=False)
    return start()
