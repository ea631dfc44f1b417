"""Playwright (sync API) on Debian's Chromium against pytest-django's live server.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``apt-get install chromium``;
``.ci/run`` installs it). Playwright's sync API keeps an event loop running in the test thread, so
Django's "no ORM calls from async code" check must be off for these tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers import celery_worker_process

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium ({CHROMIUM}: apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        missing.append("Playwright (pip install -r requirements-dev.txt)")
    if missing:
        # CI (.ci/run) sets OUTPOST_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
        if os.environ.get("OUTPOST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests need {' and '.join(missing)}")
        pytest.skip(f"browser tests need {' and '.join(missing)}")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[subprocess.Popen]:
    """A real Celery worker on the platform queue, so provisioning really happens in the background."""
    with celery_worker_process(queues=["platform"], concurrency=2) as process:
        yield process
