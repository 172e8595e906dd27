"""What the pages share: the store, the one runner per server process, page paths, UI state.

Every chart and table reads a `RunStore` (opened on the path in $FLCORE_STORE, or the default);
`st.session_state` holds only UI state: the config a "run again with changes" prefills
(`PREFILL`) and the runs or the sweep picked for a comparison (`COMPARE_IDS`, `COMPARE_SWEEP`);
the New run form keeps its own values (`form.FORM_VALUES`). The `Runner` is created once per
server process with `st.cache_resource`, keyed by the store path, and started at once so runs
queued before a restart are picked up; its worker processes do the training, never the web server.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import streamlit as st

from flcore import settings

if TYPE_CHECKING:
    from flcore.service.scheduler import Runner
    from flcore.store import RunStore

# Pages, as paths relative to app.py (what st.switch_page takes).
NEW_RUN_PAGE = "app_pages/new_run.py"
RUN_PAGE = "app_pages/run.py"
RUNS_PAGE = "app_pages/runs.py"
COMPARE_PAGE = "app_pages/compare.py"

# Session-state keys (UI state only).
PREFILL = "prefill_config"  # dict of config values New run should start from, set by "run again"
COMPARE_IDS = "compare_ids"  # run ids the Compare page starts with
COMPARE_SWEEP = "compare_sweep"  # the sweep id the Compare page starts with


def store_path() -> str:
    from flcore.store import default_store_path

    return str(default_store_path())


@st.cache_resource(show_spinner=False)
def _store(path: str) -> "RunStore":
    from flcore.store import RunStore

    return RunStore(path)


def get_store() -> "RunStore":
    """The run store for this server's $FLCORE_STORE."""
    return _store(store_path())


def store_problem() -> str | None:
    """Why the run store cannot be opened (a sentence naming its file and what to do), or None.
    Asked at every page view until it opens: an operator may fix the file while the server runs."""
    from flcore.store import StoreError

    try:
        get_store()
    except StoreError as err:
        return str(err)
    return None


@st.cache_resource(show_spinner=False)
def _damage(path: str) -> str | None:
    from flcore.store.health import damage_sentence, quick_check

    findings = quick_check(_store(path))
    return damage_sentence(_store(path), findings) if findings else None


def store_damage() -> str | None:
    """What SQLite's quick check found wrong with the store file, as a sentence (None: it is
    whole); checked once per server process, at start-up under serve.py."""
    return _damage(store_path())


def _max_workers() -> int | None:
    return settings.max_workers()


def _release_runner(runner: "Runner") -> None:
    runner.shutdown(wait=False)


@st.cache_resource(show_spinner=False, on_release=_release_runner)
def _runner(path: str, max_workers: int | None) -> "Runner":
    import torch

    from dashboard import charts
    from flcore.service.scheduler import Runner

    torch.set_num_threads(1)  # this process draws pages; the CPU budget's threads belong to the workers
    runner = Runner(path, max_workers=max_workers)
    runner.start()
    threading.Thread(target=charts.warm_up, name="flcore-chart-warm-up", daemon=True).start()
    return runner


def warm_up_pages() -> None:
    """Import what the pages use, read the default dataset and estimate the default run's cost,
    so that the first people to open New run after a start do not wait for it (serve.py calls
    this). The estimate counts a model's operations with torch's FlopCounterMode, whose first use
    imports torch's compiler stack: about a second, which five people opening New run at once
    each waited for on the import lock (measured by benchmarks/load.py: New run took 5-10 s)."""
    import sklearn.datasets  # noqa: F401  (the digits dataset)

    import dashboard.form
    import dashboard.frames
    import dashboard.tables  # noqa: F401
    from flcore.config import ExperimentConfig
    from flcore.service.quotas import run_cost

    run_cost(ExperimentConfig(), settings.current())  # reads the default dataset (once) to know its size


class _PageTimer:
    page = "?"  # the page drawn, once st.navigation chose it


@contextlib.contextmanager
def page_timer():
    """Time the page drawn inside: on leaving, append one JSON line to $FLCORE_PAGE_TIMES (when
    set) with the page, when it finished, its seconds and its CPU seconds on the server (this
    thread's), so an operator (and benchmarks/load.py) can see what each page costs the server.
    A file that cannot be written is said once on stderr and never breaks a page."""
    global _page_times_problem
    timer = _PageTimer()
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        yield timer
    finally:
        path = settings.page_times()
        if path is not None:
            line = json.dumps(
                {"page": timer.page, "at": round(time.time(), 3), "seconds": round(time.perf_counter() - started, 4),
                 "cpu_seconds": round(time.thread_time() - cpu, 4)}
            )  # fmt: skip
            try:
                with open(path, "a", encoding="utf-8") as out:
                    out.write(line + "\n")  # one write of one short line: lines of pages drawn at once do not mix
            except OSError as err:
                if _page_times_problem is None:
                    _page_times_problem = f"flcore: cannot record page times in {path} (FLCORE_PAGE_TIMES): {err.strerror or err}"
                    print(_page_times_problem, file=sys.stderr)


_page_times_problem: str | None = None


def read_page_times(path) -> list[dict]:
    """What `page_timer` recorded in `path`, in order: one dict per page drawn (none yet: [])."""
    from pathlib import Path

    path = Path(path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def get_runner() -> "Runner":
    """The one background runner of this server process (started on first use)."""
    return _runner(store_path(), _max_workers())


FIRST_ROUND_WAIT_S = 0.6  # how long Run waits for a started run's first round before opening its page


def wait_for_first_round(store: "RunStore", run_id: str, timeout: float = FIRST_ROUND_WAIT_S) -> None:
    """Return once the run has a round stored, has ended, is still queued (no worker was free,
    so nothing will come soon), or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = store.get_run(run_id)
        if info is None or info.rounds_done > 0 or not info.active:
            return
        if info.status == "queued" and time.monotonic() > deadline - timeout + 0.1:
            return  # the runner had no free worker: the run waits in the queue
        time.sleep(0.02)


def act(action: str, run_id: str) -> None:
    """A button's callback: cancel, resume or delete a run as the signed-in user. The engine
    checks the user may; a refusal is shown as a sentence."""
    from dashboard import access
    from flcore.service.quotas import QuotaError

    try:
        getattr(get_runner(), action)(run_id, access.user())
    except (PermissionError, QuotaError) as err:  # not the owner; or a resume past a limit
        st.toast(access.plain(err), icon=":material/block:")


def not_yours(info: Any, user: Any) -> str | None:
    """Why `user` may not act on the run (a button's help text), or None when they may."""
    if user.may_act_on(info.owner):
        return None
    from dashboard import access

    who = access.plain(info.owner) if info.owner else "an admin (the run is older than owners)"  # help text is Markdown
    return f"Only {who}{' or an admin' if info.owner else ''} can change this run; everyone can view and compare it."


_RUN_BUTTONS = {  # action: label, icon, what it does
    "cancel": ("Cancel", ":material/stop_circle:", "Stop the run after the round in progress; what it has done so far is kept."),
    "resume": ("Resume", ":material/play_arrow:", "Queue the run again; it continues from its last finished round."),
}


def cancel_or_resume_button(row: Any, info: Any, user: Any) -> None:
    """In `row`: Cancel for a queued or training run, or Resume for one its owner could resume;
    disabled, saying whose the run is, when `user` may not."""
    from flcore.store import actions

    action = "cancel" if info.active else "resume" if "resume" in actions(info) else None  # what the owner could do
    if action is None:
        return
    label, icon, why = _RUN_BUTTONS[action]
    row.button(
        label,
        icon=icon,
        key=f"{action}_button",
        disabled=action not in actions(info, user),
        help=not_yours(info, user) or why,
        on_click=act,
        args=(action, info.run_id),
    )


def open_run(run_id: str) -> None:
    st.switch_page(RUN_PAGE, query_params={"run": run_id})


def run_again(config_values: dict[str, Any]) -> None:
    """Open New run prefilled with `config_values`."""
    st.session_state[PREFILL] = dict(config_values)
    st.switch_page(NEW_RUN_PAGE)
