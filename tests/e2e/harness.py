"""A real dashboard server and a real browser, for the end-to-end tests and the benchmarks.

`DashboardServer` starts `streamlit run dashboard/serve.py` on a free 127.0.0.1 port with its own
environment (run store, worker settings), waits for `/_stcore/health` and always stops the
whole process group (server and workers). `launch_chromium` starts Debian's `chromium` through
Playwright with the flags this sandbox needs. The JavaScript snippets read what a page drew
from Plotly's own figure data, so a test or a benchmark waits for exactly what a user sees.
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

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FLCORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
SERVER_START_S = 90

# The x values of the first trace of the chart whose title contains `title` (typed arrays decoded),
# or null when no such chart is drawn.
CHART_X = """(title) => {
  const values = (x) => {
    if (!x) return [];
    if (Array.isArray(x) || ArrayBuffer.isView(x)) return Array.from(x).map(Number);
    const a = x._inputArray;
    if (!a) return [];
    const n = Object.keys(a).filter((k) => /^[0-9]+$/.test(k)).length;
    return Array.from({length: n}, (_, i) => Number(a[i]));
  };
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title ? (el.layout.title.text ?? el.layout.title) : '';
    if (String(t).includes(title)) return el.data && el.data.length ? values(el.data[0].x) : [];
  }
  return null;
}"""
ACCURACY_X = f"() => ({CHART_X})('Global test accuracy')"
CONTENT_HEIGHT = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  return main ? main.scrollHeight : document.body.scrollHeight;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DashboardServer:
    """`streamlit run dashboard/serve.py` in its own process group; a context manager."""

    def __init__(self, store: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.store, self.log_path = Path(store), Path(log_path)
        self.env = {**os.environ, "FLCORE_STORE": str(store), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DashboardServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "dashboard/serve.py",
                 "--server.port", str(self.port), "--server.headless", "true", "--server.address", "127.0.0.1"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not answer /_stcore/health within {SERVER_START_S} s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the server's process group (it and its workers), then SIGKILL what is left."""
        proc = self.proc
        if proc is None:
            return
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

    def __enter__(self) -> "DashboardServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def missing_chromium() -> str | None:
    """Why the browser cannot run here, as a sentence saying how to fix it; None when it can."""
    if not Path(CHROMIUM).exists():
        return (
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it. Install it with "
            "`sudo apt-get install chromium` (Debian/Ubuntu), or point FLCORE_CHROMIUM at a Chromium binary."
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "The browser tests need Playwright for Python: `pip install playwright` (its bundled browsers are not needed)."
    return None


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_for_text(page, text: str, timeout_ms: int = 60_000) -> None:
    """Wait until the page shows `text` (Streamlit renders after its websocket connects)."""
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout_ms)


def shoot(page, path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so grow the
    window until it holds all of it (charts below the fold grow once they are drawn)."""
    page.mouse.move(1, 1)  # no tooltip over the page
    height = 0
    for _ in range(5):
        new = max(1000, min(int(page.evaluate(CONTENT_HEIGHT)) + 80, 9000))
        if new == height:
            break
        height = new
        page.set_viewport_size({"width": 1500, "height": height})
        page.wait_for_timeout(800)  # let Plotly redraw at the new size
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1500, "height": 1000})


def set_number(page, label: str, value: int) -> None:
    box = page.locator('[data-testid="stNumberInput"]').filter(has=page.get_by_text(label, exact=True))
    field = box.locator("input")
    field.fill(str(value))
    field.press("Enter")


# True when the page shows exactly `n` drawn charts and one of them has a title containing `title`.
TAB_DRAWN = """([n, title]) => {
  const p = [...document.querySelectorAll('.js-plotly-plot')];
  const named = (e) => e.layout && e.layout.title && String(e.layout.title.text ?? e.layout.title).includes(title);
  return p.length === n && p.every((e) => e._fullLayout) && p.some(named);
}"""


def open_tab(page, name: str, charts: int, title: str, timeout_ms: int = 30_000) -> None:
    """Click the Run page's tab `name` and wait until it has drawn its `charts` charts, one of
    them titled `title`: the tab shown before may hold as many charts until the rerun replaces
    them, so the count alone cannot tell the two apart."""
    page.get_by_role("tab", name=name).click()
    page.wait_for_function(TAB_DRAWN, arg=[charts, title], timeout=timeout_ms)
