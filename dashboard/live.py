"""Pages that follow the store and cost nothing while nothing changes.

A page showing runs in progress must show each new round, but redrawing its charts on a timer
made a watching browser and the web server take CPU from the run they watched. So a live page
draws itself once from the store, and registers `rerun_when_changed`: a fragment that reruns
on a timer, draws nothing, and only reads a cheap fingerprint of what the page shows (a run's
status and rounds done, say). When the fingerprint differs from the one the page was drawn
with, it reruns the page; otherwise the browser receives no element and redraws nothing.
A page with nothing in progress registers no timer at all. Changes that matter at once (a new
status, the first round) redraw at the next check; further rounds at most every `pace_s`
seconds, because one redraw of a page of charts costs a browser about half a second of CPU
(measured in headless Chromium, 2 cores) and would otherwise be taken from the run it shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import streamlit as st

FIRST_ROUND_POLL_S = 0.25  # until a run's first round is stored: it should show at once
POLL_S = 0.5  # how often to look while a run trains
BIG_RUN_POLL_S = 1.0  # ... a big run, whose page redraws only every BIG_RUN_REDRAW_S anyway
REDRAW_S = 1.0  # a page redraws for new rounds at most this often
BIG_RUN_REDRAW_S = 3.0  # ... or this often for runs whose pages take longer to draw
BIG_RUN_ROWS = 20_000  # client rows above which a run counts as big


def run_fingerprint(info) -> tuple | None:
    """What a run's page depends on that changes while it runs (None once it is deleted)."""
    if info is None:
        return None
    return (info.status, info.rounds_done, info.cancel_requested)


def poll_seconds(info) -> float:
    """How often to look at a run in progress: fast until its first round, less often once a big
    run's new rounds wait BIG_RUN_REDRAW_S for their redraw (each look costs the server a few ms:
    six of them between two redraws were a third of a big run's live redraw cost)."""
    if info.rounds_done == 0:
        return FIRST_ROUND_POLL_S
    return BIG_RUN_POLL_S if _big(info) else POLL_S


def redraw_seconds(info) -> float:
    """How long a run's page waits between redraws for new rounds (longer for big runs)."""
    return BIG_RUN_REDRAW_S if _big(info) else REDRAW_S


def _big(info) -> bool:
    """Whether a run has stored more than BIG_RUN_ROWS client rows (its page takes longer to draw)."""
    return info.config.clients_per_round_resolved * info.rounds_done >= BIG_RUN_ROWS


def run_changed_at_once(drawn: tuple | None, current: tuple | None) -> bool:
    """Whether a run's page must redraw at once: deleted, a new status or cancel flag, or its
    first round (the first point is what a user who pressed Run waits for)."""
    if drawn is None or current is None:
        return True
    return drawn[0] != current[0] or drawn[2] != current[2] or drawn[1] == 0


def rerun_when_changed(
    fingerprint: Callable[[], Hashable],
    drawn: Hashable,
    every: float | None,
    *,
    at_once: Callable[[Hashable, Hashable], bool] = lambda drawn, current: True,
    pace_s: float = 0.0,
) -> None:
    """Every `every` seconds, rerun the page if `fingerprint()` is no longer `drawn`: at once
    when `at_once(drawn, current)`, else once the page has shown for `pace_s` seconds.

    Draws nothing, so a check that finds no change sends the browser no element at all.
    `every=None` registers no timer (a page with nothing in progress)."""
    if every is None:
        return
    drawn_at = time.monotonic()

    @st.fragment(run_every=every)
    def watch() -> None:
        current = fingerprint()
        if current != drawn and (at_once(drawn, current) or time.monotonic() - drawn_at >= pace_s):
            st.rerun()

    watch()
