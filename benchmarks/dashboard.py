"""What a dashboard user waits for, measured side by side in one run.

API mode (default), in this process:

- `first_round_s`: `Runner.submit` of the default config until round 1 is in the store, through
  a real worker (`--start-method` picks how workers start: `forkserver`, the default, forks
  them from a process that has torch and flcore imported already; `spawn` starts a fresh
  interpreter per run, as flcore did before).
- `rerun_idle_s` / `rerun_busy_s`: one New run page rerun after an alpha change (Streamlit's
  AppTest, the real page code), with no run and with a run training in a worker.

Browser mode (`--browser`): a real `streamlit run` server on 127.0.0.1 and headless Chromium
driven by Playwright, as in the end-to-end tests, median of `--reps`:

- workload `demo`: press Run on New run with the default settings and watch the Run page.
  `first_point_s`: click to the first point on the accuracy chart; `finished_s`: click to
  "Finished."; `watched_train_s`: the run's rounds' own `wall_time_s`, summed; then the same
  config queued with no page open (the browser on about:blank): `unwatched_train_s`.
  `ratio` = watched / unwatched: what watching costs the training.
- workload `big_run`: a real run of 1,000 clients, 100 sampled per round, 500 rounds, stored
  first. `open_s`: navigating to its Run page until the charts of its first tab are drawn
  (median of reps); `tab_s`: the slowest switch to another tab until its charts are drawn;
  `rerun_server_s`: the web server's CPU time (utime + stime from /proc) from storing one more
  round of the still-running run until the open page shows it and the server has recorded the
  page's script as finished (median over reps, for the tab whose rerun costs most);
  `rerun_script_cpu_s`: the CPU time of that page script alone, as the server recorded it
  (`FLCORE_PAGE_TIMES`), the rest being the live checks and sending what the script drew.

    python benchmarks/dashboard.py [--reps 3]
    python benchmarks/dashboard.py --browser [--reps 3] [--only demo|big_run]

It ends with `RESULT ...` lines for scripts to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

BIG = dict(
    dataset="synthetic", synthetic_sizes="equal", num_clients=1000, clients_per_round=100, rounds=500, partition="quantity_skew", quantity_sigma=1.0,
    min_samples_per_client=2, model="logistic", local_epochs=1, batch_size=10, lr=0.05, name="big run",
)  # fmt: skip


def wait_for(check, timeout=120.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"gave up waiting for {what}")


# API mode -----------------------------------------------------------------------------------
def first_round_seconds(store_path: Path, reps: int, start_method: str | None) -> list[float]:
    from flcore.config import ExperimentConfig
    from flcore.service.scheduler import Runner

    times = []
    config = ExperimentConfig.create()  # validated before the clock starts, as the form does
    with Runner(store_path, max_workers=1, start_method=start_method) as runner:
        time.sleep(8)  # a server is up long before its first Run: let the forkserver import flcore
        for _ in range(reps):
            started = time.perf_counter()
            run_id = runner.submit(config)
            wait_for(lambda rid=run_id: runner.store.get_run(rid).rounds_done >= 1, what="round 1")
            times.append(time.perf_counter() - started)
            wait_for(lambda rid=run_id: runner.store.get_run(rid).status == "done", what="the run to end")
    return times


def rerun_seconds(reps: int, busy: bool) -> list[float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from flcore.config import ExperimentConfig
    from flcore.service.scheduler import Runner

    runner = None
    if busy:
        runner = Runner(os.environ["FLCORE_STORE"], max_workers=1)
        runner.start()
        run_id = runner.submit(ExperimentConfig.create(rounds=5000, num_clients=50))
        wait_for(lambda: runner.store.get_run(run_id).rounds_done >= 1, what="round 1")
    try:
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
        times = []
        for i in range(reps):
            started = time.perf_counter()
            at.number_input(key="cfg.alpha").set_value(0.3 + 0.1 * i).run()
            times.append(time.perf_counter() - started)
        return times
    finally:
        if runner is not None:
            runner.cancel(run_id)
            runner.shutdown()
        st.cache_resource.clear()


def api_mode(args) -> None:
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.db"
        os.environ["FLCORE_STORE"] = str(store)
        firsts = {m: first_round_seconds(store, args.reps, m) for m in args.start_methods}
        idle = rerun_seconds(args.reps + 2, busy=False)
        busy = rerun_seconds(args.reps + 2, busy=True)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    for method, first in firsts.items():
        print(f"Run -> round 1 stored (default config, {method} worker)  median {med(first):.2f} s  all {[round(t, 2) for t in first]}")
    print(f"New run rerun after a widget change, no run          median {med(idle):.3f} s")
    print(f"New run rerun after a widget change, a run training  median {med(busy):.3f} s")
    for method, first in firsts.items():
        print(f"RESULT workload=first_round start_method={method} first_round_s={med(first):.3f}")
    print(f"RESULT workload=rerun rerun_idle_s={med(idle):.4f} rerun_busy_s={med(busy):.4f} ratio={med(busy) / med(idle):.2f}")


# Browser mode -------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def train_seconds(store, run_id: str) -> float:
    return float(store.rounds_frame(run_id)["wall_time_s"].sum())


def demo_rep(page, server, store) -> dict[str, float]:
    from harness import ACCURACY_X, wait_for_text

    from flcore.config import ExperimentConfig

    page.goto(server.url + "/")
    wait_for_text(page, "Ready:")
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)  # the preview: the page has settled
    page.wait_for_timeout(500)
    page.locator(".st-key-run_button button").first.click()
    clicked = time.perf_counter()
    page.wait_for_function(f"() => {{ const x = ({ACCURACY_X})(); return x && x.length >= 1; }}", timeout=120_000, polling=20)
    first_point = time.perf_counter() - clicked
    page.get_by_text("Finished.").first.wait_for(timeout=180_000)
    finished = time.perf_counter() - clicked
    watched_id = page.url.rsplit("run=", 1)[1]
    watched = train_seconds(store, watched_id)

    page.goto("about:blank")
    run_id = store.create_run(ExperimentConfig.create(), source="benchmark")
    wait_for(lambda: store.get_run(run_id).status in ("done", "failed"), timeout=180, what="the unwatched run")
    return {
        "first_point_s": first_point, "finished_s": finished,
        "watched_train_s": watched, "unwatched_train_s": train_seconds(store, run_id),
    }  # fmt: skip


def store_big_run(store, rounds_first: int):
    """A real run of the BIG config: `rounds_first` rounds stored and the run left running (this
    process is its worker), and the simulation with its state to store the rest."""
    from flcore.config import ExperimentConfig
    from flcore.federation.simulation import Simulation
    from flcore.service.checkpoint import state_to_bytes

    config = ExperimentConfig.create(**BIG)
    run_id = store.create_run(config, source="benchmark")
    store.claim(run_id)
    store.mark_running(run_id, os.getpid())
    sim = Simulation(config)
    store.save_partition(run_id, sim.label_counts)
    steps = sim.run()
    for _ in range(rounds_first):
        result = next(steps)
        store.append_round(run_id, result, state_to_bytes(result.state))
    return run_id, sim, steps


TABS = {"Global model": 2, "Time and communication": 3, "Clients": 3, "Drift": 4, "Data": 3}  # tab: its charts
ALL_DRAWN = "(n) => { const p = document.querySelectorAll('.js-plotly-plot'); return p.length >= n && [...p].every(e => e._fullLayout); }"


def open_tab(page, tab: str, charts: int) -> None:
    page.get_by_role("tab", name=tab).click()
    page.wait_for_function(ALL_DRAWN, arg=charts, timeout=60_000, polling=20)


def run_page_scripts(times: Path) -> list[dict]:
    """The Run page scripts the server has finished, as it recorded them (FLCORE_PAGE_TIMES)."""
    from dashboard.state import read_page_times

    return [entry for entry in read_page_times(times) if entry["page"] == "Run"]


def big_run(page, server, store, reps: int, times: Path) -> dict[str, float]:
    from harness import CHART_X

    from flcore.service.checkpoint import state_to_bytes

    started = time.perf_counter()
    first = BIG["rounds"] - len(TABS) * reps - 1
    run_id, sim, steps = store_big_run(store, first)
    print(f"  stored {first} rounds of the big run in {time.perf_counter() - started:.0f} s")
    url = f"{server.url}/run?run={run_id}"
    accuracy_rounds = f"() => {{ const x = ({CHART_X})('Global test accuracy'); return x && x.length ? Math.max(...x) : 0; }}"

    # A live rerun: store one more round of the running run, wait until the open page shows it.
    page.goto(url)
    page.wait_for_function(f"() => ({accuracy_rounds})() >= {first}", timeout=120_000)
    rerun: dict[str, list[float]] = {tab: [] for tab in TABS}
    script_cpu: dict[str, list[float]] = {tab: [] for tab in TABS}
    for tab, charts in TABS.items():
        open_tab(page, tab, charts)
        page.wait_for_timeout(1000)
        for _ in range(reps):
            before, scripts = cpu_seconds(server.proc.pid), len(run_page_scripts(times))
            result = next(steps)
            store.append_round(run_id, result, state_to_bytes(result.state))
            page.get_by_text(f"Round {result.round} of").first.wait_for(timeout=60_000)
            deadline = time.monotonic() + 60
            while len(run_page_scripts(times)) == scripts and time.monotonic() < deadline:
                time.sleep(0.02)  # the server has not finished the page's script yet
            page.wait_for_function(ALL_DRAWN, arg=charts, timeout=60_000, polling=20)
            page.wait_for_timeout(300)  # let the server finish sending what the rerun drew
            rerun[tab].append(cpu_seconds(server.proc.pid) - before)
            script_cpu[tab] += [e["cpu_seconds"] for e in run_page_scripts(times)[scripts:]]
    result = next(steps)
    store.append_round(run_id, result)
    store.finish(run_id, "done")

    # Opening the finished run: its page with the first tab drawn, then each other tab.
    opens, tab_switch = [], []
    for _ in range(reps):
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function(f"() => ({accuracy_rounds})() >= {BIG['rounds']}", timeout=120_000, polling=20)
        page.get_by_text("Finished.").first.wait_for(timeout=60_000)
        page.wait_for_function(ALL_DRAWN, arg=2, timeout=60_000, polling=20)
        opens.append(time.perf_counter() - started)
        for tab, charts in list(TABS.items())[1:]:
            started = time.perf_counter()
            open_tab(page, tab, charts)
            tab_switch.append(time.perf_counter() - started)
    medians = {tab: statistics.median(v) for tab, v in rerun.items()}
    scripts = {tab: statistics.median(v) if v else float("nan") for tab, v in script_cpu.items()}
    print(f"  big run: open {[round(t, 2) for t in opens]} s; other tabs {[round(t, 2) for t in tab_switch]} s; "
          f"rerun server CPU by tab {({k: round(v, 3) for k, v in medians.items()})}; "
          f"of which the page script {({k: round(v, 3) for k, v in scripts.items()})}")  # fmt: skip
    return {
        "open_s": statistics.median(opens), "tab_s": max(tab_switch), "rerun_server_s": max(medians.values()),
        "rerun_script_cpu_s": max(scripts.values()),
    }  # fmt: skip


def browser_mode(args) -> None:
    from harness import DashboardServer, launch_chromium, missing_chromium
    from playwright.sync_api import sync_playwright

    from flcore.store import RunStore

    problem = missing_chromium()
    if problem:
        sys.exit(problem)
    med = statistics.median
    lines = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        store_path = Path(tmp) / "runs.db"
        store = RunStore(store_path)
        times = Path(tmp) / "page-times.jsonl"
        env = {"FLCORE_MAX_WORKERS": str(args.max_workers or 1), "FLCORE_PAGE_TIMES": str(times)}
        with DashboardServer(store_path, ROOT / "test-output" / "benchmark-server.log", env) as server:
            browser = launch_chromium(p)
            page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
            if args.only in (None, "demo"):
                reps = []
                for i in range(args.reps):
                    reps.append(demo_rep(page, server, store))
                    print(f"  demo rep {i + 1}: " + " ".join(f"{k}={v:.2f}" for k, v in reps[-1].items()))
                m = {k: med(r[k] for r in reps) for k in reps[0]}
                lines.append(
                    f"RESULT workload=demo first_point_s={m['first_point_s']:.2f} finished_s={m['finished_s']:.2f} "
                    f"watched_train_s={m['watched_train_s']:.2f} unwatched_train_s={m['unwatched_train_s']:.2f} "
                    f"ratio={med(r['watched_train_s'] / r['unwatched_train_s'] for r in reps):.2f}"
                )
            if args.only in (None, "big_run"):
                b = big_run(page, server, store, args.reps, times)
                lines.append(
                    f"RESULT workload=big_run open_s={b['open_s']:.2f} rerun_server_s={b['rerun_server_s']:.3f} "
                    f"rerun_script_cpu_s={b['rerun_script_cpu_s']:.3f} tab_s={b['tab_s']:.2f}"
                )
            browser.close()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="the real-browser measurements")
    parser.add_argument("--only", choices=("demo", "big_run"), help="browser mode: one workload only")
    parser.add_argument("--max-workers", type=int, help="browser mode: FLCORE_MAX_WORKERS of the server (default 1)")
    parser.add_argument(
        "--start-methods", nargs="+", default=["forkserver", "spawn"], help="API mode: how workers start, compared side by side"
    )
    args = parser.parse_args()
    browser_mode(args) if args.browser else api_mode(args)


if __name__ == "__main__":
    main()
