"""A team on one server: page-open times while the run queue is busy, and how long runs wait.

Starts the dashboard (`streamlit run dashboard/serve.py`) on 127.0.0.1 with its own temporary
store, the default CPU budget, password sign-in for `--users` people and the default quotas, and
drives them at once, each in their own browser context of one headless Chromium (Playwright's
async API). Each person signs in through the sign-in page, then submits `--runs` runs from New run (rounds cycling through 50, 100 and
150, so the queue stays busy for a while), watches each on its Run page for a moment, and looks
at Runs and Compare in between. Every page open is timed from navigation until the page's main
content is drawn (New run: its partition preview; Run: its progress bar and first chart; Runs:
the table; Compare: its chart). What the server owes is read from the server itself: it records
every page script it runs (`FLCORE_PAGE_TIMES`), with its seconds and its CPU seconds, including
the reruns a click or a new round causes. The benchmark also times, in the browser, each page's
request for its script (the `rerun_script` message on the websocket) until the server's
`script_finished` arrives: that adds the wait for a script thread and the browser's own delay in
reading the socket. Runs are timed from submission to done, from the store.

Everything is bounded: a fixed number of people, runs and page visits, a timeout on each wait.
The browsers are on the same machine as the server, so their rendering competes for its cores
too. `--browser-nice 19` gives Chromium the lowest priority, which comes closer to a team whose
browsers run on their own machines: the server and the workers get the cores first. Chromium
sets its own processes' priorities (as root it raises its main and GPU processes to -8), and
Linux shares the CPU between sessions before it looks at niceness (autogroups, on by default),
so a `nice` in front of the command changes nothing: the benchmark sets the niceness of every
thread of the Chromium it started, and of Chromium's autogroup, every half second while it runs.

    python benchmarks/load.py [--users 5] [--runs 3] [--browser-nice 19]

It ends with a `RESULT ...` line for scripts to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

ROUNDS = (50, 100, 150)
PASSWORD = "load-test-password"
DRAWN = "(n) => { const p = document.querySelectorAll('.js-plotly-plot'); return p.length >= n && [...p].every(e => e._fullLayout); }"
WAIT_MS = 120_000


class ServerClock:
    """Server-side time of each page script, read off a page's websocket: from the browser's
    `rerun_script` request to the server's `script_finished` (of the whole page, not of a
    fragment's re-check)."""

    def __init__(self) -> None:
        self.asked: float | None = None
        self.times: list[float] = []

    def watch(self, page) -> None:
        page.on("websocket", lambda ws: (ws.on("framesent", self.sent), ws.on("framereceived", self.received)))

    def sent(self, payload) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        if isinstance(payload, bytes) and BackMsg.FromString(payload).WhichOneof("type") == "rerun_script":
            self.asked = time.perf_counter()

    def received(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if not isinstance(payload, bytes) or self.asked is None:
            return
        msg = ForwardMsg.FromString(payload)
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
            self.times.append(time.perf_counter() - self.asked)
            self.asked = None


class User:
    def __init__(self, name: str, context, url: str, opens: dict[str, list[float]], server: dict[str, list[float]]) -> None:
        self.name, self.context, self.url, self.opens, self.server = name, context, url, opens, server
        self.clock = ServerClock()

    async def timed(self, page, what: str, path: str, ready) -> None:
        started, before = time.perf_counter(), len(self.clock.times)
        await page.goto(self.url + path)
        await ready(page)
        self.opens[what].append(time.perf_counter() - started)
        if len(self.clock.times) > before:
            self.server[what].append(self.clock.times[before])

    async def act(self, runs: int, offset: int) -> None:
        page = await self.context.new_page()
        page.set_default_timeout(WAIT_MS)
        self.clock.watch(page)
        await asyncio.sleep(offset)  # people do not all click at the same instant
        await page.goto(self.url + "/auth/signin")
        await page.fill("#user", self.name)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await new_run_ready(page)
        for i in range(runs):
            await self.timed(page, "new run", "/", new_run_ready)
            rounds = ROUNDS[(i + offset) % len(ROUNDS)]
            box = page.locator('[data-testid="stNumberInput"]').filter(has=page.get_by_text("Rounds", exact=True))
            await box.locator("input").fill(str(rounds))
            await box.locator("input").press("Enter")
            await page.get_by_text(f"· {rounds} rounds").first.wait_for()
            started = time.perf_counter()
            await page.locator(".st-key-run_button button").first.click()
            await page.wait_for_url("**/run?run=*")
            await run_ready(page)
            self.opens["run (after Run)"].append(time.perf_counter() - started)
            run_url = page.url.removeprefix(self.url)
            await asyncio.sleep(3)  # watch it for a moment
            await self.timed(page, "runs", "/runs", runs_ready)
            await self.timed(page, "compare", "/compare", compare_ready)
            await self.timed(page, "run", run_url, run_ready)
        await asyncio.sleep(2)


async def new_run_ready(page) -> None:
    await page.get_by_text("Ready:").first.wait_for()
    await page.wait_for_function(DRAWN, arg=2)


async def run_ready(page) -> None:
    await page.locator('[data-testid="stProgress"]').first.wait_for()
    await page.locator('[data-testid="stTab"], .stAlert').first.wait_for()


async def runs_ready(page) -> None:
    await page.locator('[data-testid="stDataFrame"]').first.wait_for()


async def compare_ready(page) -> None:
    await page.get_by_text("Final metrics").first.wait_for()
    await page.wait_for_function(DRAWN, arg=2)


class Deprioritize:
    """Every half second, give every thread of every Chromium process started by this benchmark
    (the descendants of this process whose program is Chromium's) the niceness `nice`, and
    their session's autogroup too (where the kernel groups by session)."""

    def __init__(self, nice: int) -> None:
        self.nice = nice
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Deprioritize:
        if self.nice:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while not self.stopped.wait(0.5):
            for pid in self._chromium():
                self._lower(pid)

    def _chromium(self) -> list[int]:
        children: dict[int, list[int]] = defaultdict(list)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    children[int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])].append(int(entry))
        mine, stack = [], [os.getpid()]
        while stack:  # the descendants of this process
            pid = stack.pop()
            mine.append(pid)
            stack += children[pid]
        chromium = []
        for pid in mine:
            with contextlib.suppress(OSError):
                if "chrom" in Path(os.readlink(f"/proc/{pid}/exe")).name:
                    chromium.append(pid)
        return chromium

    def _lower(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(self.nice))
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                if os.getpriority(os.PRIO_PROCESS, int(tid)) != self.nice:
                    os.setpriority(os.PRIO_PROCESS, int(tid), self.nice)


def page_times(path: Path) -> dict[str, list[dict]]:
    """The server's record of each page script it ran (FLCORE_PAGE_TIMES), by page title."""
    from dashboard.state import read_page_times

    pages: dict[str, list[dict]] = defaultdict(list)
    for entry in read_page_times(path):
        pages[entry["page"]].append(entry)
    return pages


async def drive(url: str, users: int, runs: int, chromium: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    from harness import CHROMIUM_ARGS
    from playwright.async_api import async_playwright

    opens: dict[str, list[float]] = defaultdict(list)
    server: dict[str, list[float]] = defaultdict(list)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        contexts = [await browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(users)]
        people = [User(f"user{i}", c, url, opens, server) for i, c in enumerate(contexts)]
        await asyncio.gather(*(u.act(runs, offset=i) for i, u in enumerate(people)))
        await browser.close()
    return opens, server


def main() -> None:
    from harness import DashboardServer, missing_chromium

    from flcore.store import RunStore

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="runs each user submits")
    parser.add_argument("--browser-nice", type=int, default=0, help="start Chromium at this niceness (0-19)")
    args = parser.parse_args()
    problem = missing_chromium()
    if problem:
        sys.exit(problem)
    from harness import CHROMIUM

    from flcore.auth import Users

    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "runs.db"
        users = Users(Path(tmp) / "users.json")
        for i in range(args.users):
            users.add(f"user{i}", PASSWORD)
        times_path = Path(tmp) / "page-times.jsonl"
        env = {"FLCORE_USERS": str(users.path), "FLCORE_PAGE_TIMES": str(times_path)}
        with DashboardServer(store_path, ROOT / "test-output" / "load-server.log", env) as server:
            started, began = time.perf_counter(), time.time()
            with Deprioritize(args.browser_nice):
                opens, server_side = asyncio.run(drive(server.url, args.users, args.runs, CHROMIUM))
            store = RunStore(store_path)
            deadline = time.monotonic() + 600
            while any(r.status in ("queued", "running") for r in store.list_runs()) and time.monotonic() < deadline:
                time.sleep(0.5)
            runs = store.list_runs()
            elapsed = time.perf_counter() - started
        scripts = page_times(times_path)
    done = [r.finished_at - r.created_at for r in runs if r.status == "done"]
    every = [t for times in opens.values() for t in times]
    print(
        f"{args.users} users x {args.runs} runs on {server.url} (browsers at nice {args.browser_nice}): "
        f"{len(runs)} runs stored, {len(done)} done, {elapsed:.0f} s in all"
    )
    print("                        in the browser                   request -> script finished, seen by the browser")
    for what, times in opens.items():
        srv = server_side.get(what) or [float("nan")]
        print(
            f"  open {what:16s} n={len(times):3d}  median {statistics.median(times):5.2f} s  max {max(times):5.2f} s"
            f"   median {statistics.median(srv):5.2f} s  max {max(srv):5.2f} s"
        )
    print(f"  submit -> done        n={len(done):3d}  median {statistics.median(done):5.2f} s  max {max(done):5.2f} s")
    print("page scripts on the server (every full run: opens, clicks, redraws for new rounds)")
    for page, entries in sorted(scripts.items()):
        wall, cpu = [e["seconds"] for e in entries], [e["cpu_seconds"] for e in entries]
        worst = max(entries, key=lambda e: e["seconds"])
        print(
            f"  {page:20s} n={len(entries):3d}  median {statistics.median(wall):5.2f} s  max {max(wall):5.2f} s"
            f" (ended {worst['at'] - began:3.0f} s in)   CPU median {statistics.median(cpu):5.3f} s  max {max(cpu):5.3f} s"
        )
    wall = [e["seconds"] for entries in scripts.values() for e in entries] or [float("nan")]
    cpu = [e["cpu_seconds"] for entries in scripts.values() for e in entries] or [float("nan")]
    roundtrip = [t for times in server_side.values() for t in times] or [float("nan")]
    print(
        f"RESULT workload=team users={args.users} runs={len(runs)} browser_nice={args.browser_nice} page_open_median_s={statistics.median(every):.2f} "
        f"page_open_max_s={max(every):.2f} script_median_s={statistics.median(wall):.2f} script_max_s={max(wall):.2f} "
        f"script_cpu_max_s={max(cpu):.2f} roundtrip_median_s={statistics.median(roundtrip):.2f} roundtrip_max_s={max(roundtrip):.2f} "
        f"submit_to_done_median_s={statistics.median(done):.1f} submit_to_done_max_s={max(done):.1f}"
    )


if __name__ == "__main__":
    main()
