"""What a dashboard user waits for: Run to the first stored round, and a widget change.

The dashboard promises that the first round of a default run appears within a few seconds of
pressing Run, and that the New run page answers a widget change quickly even while a run
trains (the web process never trains). The tests prove the behaviour; this script measures
the seconds, in one process, side by side:

- `first_round_s`: `Runner.submit` of the default config until round 1 is in the store
  (a real spawned worker: interpreter start, imports, data, round 1). The page polls the
  store every 0.5 s until round 1, so a browser shows it at most about half a second later.
- `rerun_idle_s` / `rerun_busy_s`: one New run page rerun after an alpha change (Streamlit's
  AppTest, the real page code), with no run and with a run training in a worker.

    python benchmarks/dashboard.py [--reps 3]

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


def wait_for(check, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError("gave up waiting")


def first_round_seconds(store_path: Path, reps: int) -> list[float]:
    from flcore.config import ExperimentConfig
    from flcore.runner import Runner

    times = []
    with Runner(store_path, max_workers=1) as runner:
        runner.start()
        for _ in range(reps):
            started = time.perf_counter()
            run_id = runner.submit(ExperimentConfig.create())
            wait_for(lambda: runner.store.get_run(run_id).rounds_done >= 1)
            times.append(time.perf_counter() - started)
            wait_for(lambda: runner.store.get_run(run_id).status == "done")
    return times


def rerun_seconds(reps: int, busy: bool) -> list[float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from flcore.config import ExperimentConfig
    from flcore.runner import Runner

    runner = None
    if busy:
        runner = Runner(os.environ["FLCORE_STORE"], max_workers=1)
        runner.start()
        run_id = runner.submit(ExperimentConfig.create(rounds=5000, num_clients=50))
        wait_for(lambda: runner.store.get_run(run_id).rounds_done >= 1)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.db"
        os.environ["FLCORE_STORE"] = str(store)
        first = first_round_seconds(store, args.reps)
        idle = rerun_seconds(args.reps + 2, busy=False)
        busy = rerun_seconds(args.reps + 2, busy=True)
    med = statistics.median
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print(f"Run -> round 1 stored (default config, new worker)  median {med(first):.2f} s  all {[round(t, 2) for t in first]}")
    print(f"New run rerun after a widget change, no run          median {med(idle):.3f} s")
    print(f"New run rerun after a widget change, a run training  median {med(busy):.3f} s")
    print(f"RESULT workload=first_round first_round_s={med(first):.3f}")
    print(f"RESULT workload=rerun rerun_idle_s={med(idle):.4f} rerun_busy_s={med(busy):.4f} ratio={med(busy) / med(idle):.2f}")


if __name__ == "__main__":
    main()
