"""Clients that come and go, end to end: a user sets availability, dropout and stragglers on New
run, runs it, and sees the client timeline and the simulated-clock charts drawn from the store.
The pages are saved under test-output/screenshots/ (14*)."""

from __future__ import annotations

import re
import time

import pytest
from harness import CHART_X, open_tab, set_number, shoot, wait_for_text

from dashboard.charts import TIMELINE
from flcore.store import RunStore

pytestmark = pytest.mark.e2e

ROUNDS = 25
RUN_LIMIT_S = 150

# The timeline grid's states by client and round, as the browser holds them (typed arrays decoded).
TIMELINE_TEXT = """() => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title ? (el.layout.title.text ?? el.layout.title) : '';
    if (String(t).includes('Client timeline') && el.data && el.data[0].text) return el.data[0].text.map((row) => Array.from(row));
  }
  return null;
}"""


def test_a_run_whose_clients_come_and_go_draws_its_timeline_and_clock(server, server_store, page, screenshots):
    page.goto(server + "/")
    wait_for_text(page, "Ready:")
    set_number(page, "Rounds", ROUNDS)
    wait_for_text(page, f"· {ROUNDS} rounds")
    for label, value, words in (
        ("Chance a client is online", 0.6, "clients online 60% of rounds"),
        ("Chance a client drops out", 0.2, "20% drop out"),
        ("Fraction of stragglers", 0.3, "30% stragglers are dropped"),
    ):
        set_number(page, label, value)
        wait_for_text(page, words)
    shoot(page, screenshots / "14a-new-run-clients-come-and-go.png")
    page.locator(".st-key-run_button button").first.click()
    page.wait_for_url(re.compile(r"/run\?run=[0-9a-f]+"), timeout=30_000)
    run_id = page.url.rsplit("run=", 1)[1]
    store = RunStore(server_store, readonly=True)
    deadline = time.monotonic() + RUN_LIMIT_S
    while store.get_run(run_id).status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.get_run(run_id).status == "done", store.get_run(run_id).error
    wait_for_text(page, "Finished.")

    rounds = store.rounds_frame(run_id)
    open_tab(page, "Time and communication", 3, "Test accuracy against simulated time")
    page.wait_for_function(
        f"() => {{ const x = ({CHART_X})('Test accuracy against simulated time'); return x && x.length === {ROUNDS}; }}", timeout=30_000
    )
    clock = page.evaluate(f"() => ({CHART_X})('Test accuracy against simulated time')")
    assert clock == pytest.approx(rounds["sim_clock_s"].tolist(), rel=1e-6)
    shoot(page, screenshots / "14b-run-simulated-clock.png")

    open_tab(page, "Clients", 4, "Client timeline")  # the two per-client charts, participation and the timeline
    grid = page.evaluate(TIMELINE_TEXT)
    clients, offline = store.clients_frame(run_id), store.offline_frame(run_id)
    assert len(grid) == 10 and len(grid[0]) == ROUNDS
    words = {status: label for status, (label, _) in TIMELINE.items()}
    assert {"trained", "late", "dropped"} <= set(clients["status"])
    for row in clients.itertuples():
        assert grid[row.client_id][row.round - 1] == words[row.status]
    for r, counts in zip(offline["round"], offline["counts"]):
        assert [grid[c][r - 1] == words["offline"] for c in range(10)] == [bool(n) for n in counts]
    marked = sum(cell != words["idle"] for row in grid for cell in row)  # every other cell: online, not sampled
    assert marked == len(clients) + sum(sum(counts) for counts in offline["counts"])
    shoot(page, screenshots / "14c-run-client-timeline.png")
