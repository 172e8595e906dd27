"""Browser tests: a real `streamlit run` server and headless Chromium driven by Playwright.

Registers the `e2e` marker. The `server` fixture starts the dashboard on a free port with its
own run store in a temporary directory, waits for `/_stcore/health`, and always stops the
server (and the workers it started) afterwards. The `browser` fixture launches Debian's
`chromium`; when it is missing the tests fail, saying how to install it, rather than skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FLCORE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
SERVER_START_S = 90


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives the dashboard in a real browser against a real `streamlit run` server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it and its workers), then SIGKILL what is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server_store(tmp_path_factory) -> Path:
    """The run store file of the `server` fixture's dashboard (empty at the start)."""
    return tmp_path_factory.mktemp("e2e-store") / "runs.db"


@pytest.fixture(scope="module")
def server(server_store):
    """The base URL of a dashboard server with an empty store of its own."""
    store = server_store
    port = _free_port()
    log_path = ROOT / "test-output" / "e2e-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FLCORE_STORE": str(store), "FLCORE_MAX_WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
             "--server.port", str(port), "--server.headless", "true", "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health within {SERVER_START_S} s; see {log_path}")
            time.sleep(0.3)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it. "
            "Install it with `sudo apt-get install chromium` (Debian/Ubuntu), or point FLCORE_CHROMIUM at a Chromium binary."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The browser tests need Playwright for Python: `pip install playwright` (its bundled browsers are not needed).")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
