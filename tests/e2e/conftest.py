"""Browser tests: a real `streamlit run` server and headless Chromium driven by Playwright.

Registers the `e2e` marker. The `server` fixture starts the dashboard on a free port with its
own run store in a temporary directory (see `harness.DashboardServer`) and always stops the
server and the workers it started afterwards. The `browser` fixture launches Debian's
`chromium`; when it is missing the tests fail, saying how to install it, rather than skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import ROOT, DashboardServer, launch_chromium, missing_chromium

SCREENSHOTS = ROOT / "test-output" / "screenshots"


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives the dashboard in a real browser against a real `streamlit run` server")


@pytest.fixture(scope="module")
def server_store(tmp_path_factory) -> Path:
    """The run store file of the `server` fixture's dashboard (empty at the start)."""
    return tmp_path_factory.mktemp("e2e-store") / "runs.db"


@pytest.fixture(scope="module")
def server(server_store):
    """The base URL of a dashboard server with an empty store of its own."""
    dashboard = DashboardServer(server_store, ROOT / "test-output" / "e2e-server.log", {"FLCORE_MAX_WORKERS": "1"})
    try:
        dashboard.start()
    except RuntimeError as err:
        pytest.fail(str(err))
    try:
        yield dashboard.url
    finally:
        dashboard.stop()


@pytest.fixture(scope="module")
def browser():
    problem = missing_chromium()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
