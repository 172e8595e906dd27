"""The dashboard end to end: a real server, a real browser, real background runs.

A user submits a run from New run, watches the round counter grow and the accuracy chart
reach the last round, reloads and still sees the finished run; starts a run with the default
settings and sees its first round charted (the seconds are printed; benchmarks/dashboard.py
measures them); and cancels a long run. Each
page is saved as a screenshot under test-output/screenshots/.
"""

from __future__ import annotations

import re
import time

import pytest
from harness import ACCURACY_X, CHART_X, open_tab, set_number, shoot, wait_for_text

from flcore.store import RunStore

pytestmark = pytest.mark.e2e

RUN_LIMIT_S = 150  # a 60-round run on a loaded 2-core machine, worker start-up included
ROUNDS = 60  # long enough (a second or two) that the page shows the round counter grow


wait_for_app = wait_for_text


def round_counter(page, wait: bool = False) -> tuple[int, int] | None:
    """(rounds done, rounds) from the progress bar; between two redraws it may be missing."""
    bar = page.locator('[data-testid="stProgress"]')
    if wait:
        bar.first.wait_for(timeout=30_000)
    if not bar.count():
        return None
    try:
        text = bar.first.inner_text(timeout=2_000)
    except Exception:  # replaced by a redraw while we read it
        return None
    match = re.search(r"Round (\d+) of (\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def accuracy_rounds(page) -> list[float]:
    return page.evaluate(ACCURACY_X) or []


def test_a_small_run_from_new_run_to_the_last_round_and_after_a_reload(server, page, browser, screenshots):
    page.goto(server + "/")
    wait_for_app(page, "Ready:")
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)  # the partition preview
    shoot(page, screenshots / "01-new-run.png")

    set_number(page, "Rounds", ROUNDS)
    wait_for_app(page, f"· {ROUNDS} rounds")
    page.locator(".st-key-run_button button").first.click()
    page.wait_for_url(re.compile(r"/run\?run=[0-9a-f]+"), timeout=30_000)
    run_url = page.url

    seen = []
    deadline = time.monotonic() + RUN_LIMIT_S
    while time.monotonic() < deadline:
        counter = round_counter(page)
        if counter:
            assert counter[1] == ROUNDS
            if not seen or counter[0] != seen[-1]:
                seen.append(counter[0])
            if counter[0] == ROUNDS:
                break
        page.wait_for_timeout(250)
    assert seen and seen[-1] == ROUNDS, f"the round counter reached only {seen} in {RUN_LIMIT_S} s"
    assert len(seen) >= 2 and seen == sorted(seen), f"the round counter did not grow: {seen}"
    page.wait_for_function(f"() => {{ const x = ({ACCURACY_X})(); return x && x.length && Math.max(...x) === {ROUNDS}; }}", timeout=30_000)
    wait_for_app(page, "Finished.")
    shoot(page, screenshots / "02-run-finished.png")
    for tab, charts, title, name in (
        ("Time and communication", 3, "Accuracy against data sent", "02a-run-time-and-communication.png"),
        ("Clients", 3, "Participation", "02b-run-clients.png"),
        ("Drift", 4, "Client drift", "02c-run-drift.png"),
        ("Data", 3, "Labels per client", "02d-run-data.png"),
    ):
        open_tab(page, tab, charts, title)
        shoot(page, screenshots / name)
    page.get_by_role("tab", name="Global model").click()

    page.reload()
    wait_for_app(page, f"Round {ROUNDS} of {ROUNDS}")
    wait_for_app(page, "Finished.")
    page.wait_for_function(f"() => {{ const x = ({ACCURACY_X})(); return x && x.length === {ROUNDS}; }}", timeout=30_000)

    other = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()  # another browser, same URL
    try:
        other.goto(run_url)
        wait_for_app(other, f"Round {ROUNDS} of {ROUNDS}")
    finally:
        other.context.close()


def test_default_settings_chart_the_first_round(server, server_store, page, screenshots):
    """One click on Run with the defaults charts round 1 without a reload. The seconds it takes
    are printed here and measured by benchmarks/dashboard.py, not asserted."""
    page.goto(server + "/")
    wait_for_app(page, "Ready:")
    page.locator(".st-key-run_button button").first.click()
    pressed = time.monotonic()
    page.wait_for_url(re.compile(r"/run\?run=[0-9a-f]+"), timeout=30_000)
    page.wait_for_function(f"() => {{ const x = ({ACCURACY_X})(); return x && x.length >= 1; }}", timeout=60_000)
    first_round_s = time.monotonic() - pressed
    print(f"\nfirst round charted {first_round_s:.1f} s after pressing Run")
    counter = round_counter(page, wait=True)
    assert counter is not None and counter[1] == 20
    shoot(page, screenshots / "03-run-in-progress.png")
    # Free the worker for the next test. Through the store, not the button: the 20-round default
    # run may finish (and its Cancel button vanish) while a click waits. A finished run ignores it.
    RunStore(server_store).request_cancel(page.url.rsplit("run=", 1)[1])


def test_a_second_run_can_be_cancelled(server, page, screenshots):
    page.goto(server + "/")
    wait_for_app(page, "Ready:")
    set_number(page, "Rounds", 500)  # long enough to be still going when Cancel is pressed
    wait_for_app(page, "· 500 rounds")
    page.locator(".st-key-run_button button").first.click()
    page.wait_for_url(re.compile(r"/run\?run=[0-9a-f]+"), timeout=30_000)
    page.wait_for_function(f"() => {{ const x = ({ACCURACY_X})(); return x && x.length >= 1; }}", timeout=60_000)
    page.locator(".st-key-cancel_button button").first.click()
    wait_for_app(page, "Cancelled.")
    done, total = round_counter(page, wait=True)
    assert total == 500 and 1 <= done < 500
    page.locator(".st-key-resume_button").first.wait_for()  # a cancelled run can be resumed
    shoot(page, screenshots / "04-run-cancelled.png")


def test_runs_and_compare_pages(server, page, screenshots):
    page.goto(server + "/runs")
    wait_for_app(page, "Selected run")
    page.locator('[data-testid="stDataFrame"]').wait_for()
    shoot(page, screenshots / "05-runs.png")

    page.goto(server + "/compare")
    wait_for_app(page, "Final metrics")
    page.locator(".js-plotly-plot").nth(1).wait_for()
    shoot(page, screenshots / "06-compare.png")


def test_a_sweep_queued_from_the_command_line_is_trained_by_the_server_and_drawn_with_bands(server, server_store, page, screenshots):
    """A sweep queued into the server's store (as `python -m flcore sweep --no-wait` does) is
    trained by the server's runner; Compare draws each setting's mean over seeds with a band."""
    from flcore.config import ExperimentConfig
    from flcore.service.sweep import expand

    grid = {"strategy": ["fedavg", "median"], "seeds": [0, 1]}
    combos = expand(grid, ExperimentConfig.create(rounds=4, num_clients=6, clients_per_round=3), "strategies")
    store = RunStore(server_store)
    sweep_id, run_ids = store.create_sweep("strategies", grid, [c.config for c in combos], owner="someone")
    deadline = time.monotonic() + RUN_LIMIT_S
    while any(store.get_run(r).status != "done" for r in run_ids):
        assert time.monotonic() < deadline, [(r, store.get_run(r).status, store.get_run(r).error) for r in run_ids]
        time.sleep(0.5)

    page.goto(server + "/compare")
    wait_for_app(page, "Runs to compare")
    page.get_by_role("radio", name="A sweep").click()  # Streamlit's segmented control
    wait_for_app(page, "Final accuracy over seeds")
    page.locator(".js-plotly-plot").nth(1).wait_for()
    bands = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map((el) => el.data.filter((t) => t.fill).length)""")
    assert bands[0] >= 2, bands  # one band per setting (fedavg, median) on the accuracy chart
    wait_for_app(page, "4 done")  # the caption counts the sweep's finished runs
    shoot(page, screenshots / "06b-compare-sweep.png")


def test_a_live_page_sends_nothing_while_no_round_arrives_and_stops_checking_when_done(server, server_store, page):
    """The Run page of a running run checks the store a few times a second, but a check that
    finds no new round sends the browser no chart and redraws nothing; a new round is drawn;
    a finished run's page does not check at all."""
    import os

    from flcore.config import ExperimentConfig
    from flcore.federation.simulation import Simulation

    store = RunStore(server_store)
    config = ExperimentConfig.create(num_clients=4, rounds=10, model="logistic", batch_size=32, name="watched by a test")
    run_id = store.create_run(config)
    store.claim(run_id)
    store.mark_running(run_id, os.getpid())  # this test is its worker
    sim = Simulation(config)
    store.save_partition(run_id, sim.label_counts)
    steps = sim.run()
    for _ in range(2):
        store.append_round(run_id, next(steps))

    received: list[bytes] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framereceived", lambda payload: received.append(bytes(payload, "utf-8") if isinstance(payload, str) else payload)
        ),
    )
    rounds_drawn = f"() => {{ const x = ({ACCURACY_X})(); return x ? x.length : 0; }}"
    page.goto(f"{server}/run?run={run_id}")
    page.wait_for_function(f"() => ({rounds_drawn})() === 2", timeout=60_000)
    page.wait_for_timeout(1500)
    page.evaluate(
        "() => { window.plotChanges = 0; new MutationObserver((m) => { window.plotChanges += m.length; })"
        ".observe(document.querySelector('.js-plotly-plot'), {subtree: true, childList: true, attributes: true}); }"
    )
    start = len(received)
    page.wait_for_timeout(3000)
    quiet = received[start:]
    assert quiet, "the page stopped checking the running run"
    assert not any(b"Global test accuracy" in frame for frame in quiet), "a check without a new round sent a chart"
    assert sum(len(frame) for frame in quiet) < 500 * len(quiet)  # only the checks' small lifecycle messages
    assert page.evaluate("() => window.plotChanges") == 0

    store.append_round(run_id, next(steps))  # a new round is drawn without a reload
    page.wait_for_function(f"() => ({rounds_drawn})() === 3", timeout=30_000)

    for result in steps:
        store.append_round(run_id, result)
    store.finish(run_id, "done")
    wait_for_app(page, "Finished.")
    page.wait_for_timeout(1000)
    start = len(received)
    page.wait_for_timeout(3000)
    assert received[start:] == [], "a finished run's page kept checking the store"


# The traces of the chart whose title contains `title`: name, marker symbol and colour, first x.
CHART_TRACES = """(title) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title ? (el.layout.title.text ?? el.layout.title) : '';
    if (String(t).includes(title) && el._fullLayout)
      return el.data.map((d) => ({name: d.name, symbol: d.marker && d.marker.symbol, color: d.marker && d.marker.color}));
  }
  return null;
}"""


def _store_finished_run(store: RunStore, **settings) -> str:
    """A run trained here and written through the worker API, as a worker would."""
    import os

    from flcore.config import ExperimentConfig
    from flcore.federation.simulation import Simulation

    config = ExperimentConfig.create(model="logistic", batch_size=32, **settings)
    run_id = store.create_run(config)
    store.claim(run_id)
    store.mark_running(run_id, os.getpid())
    sim = Simulation(config)
    store.save_partition(run_id, sim.label_counts)
    for result in sim.run():
        store.append_round(run_id, result)
    store.finish(run_id, "done", sim.privacy.stop_message)
    return run_id


def test_drift_singles_out_attackers_and_epsilon_grows_next_to_accuracy(server, server_store, page, screenshots):
    """The drift chart of a run with sign-flipping attackers on a skewed split marks the attackers
    (x, far left and high) in the colours every chart gives its clients; a private, compressed
    run shows epsilon next to accuracy, up to its budget. Screenshots: 07-drift*.png, 08-privacy.png."""
    from dashboard.charts import client_color

    store = RunStore(server_store)
    attacked = _store_finished_run(
        store, name="drift under attack", num_clients=10, rounds=8, partition="dirichlet", alpha=0.3, strategy="median",
        attack="sign_flip", attack_fraction=0.2,
    )  # fmt: skip
    page.goto(f"{server}/run?run={attacked}")
    wait_for_app(page, "Finished.")
    page.get_by_role("tab", name="Drift").click()
    page.wait_for_function(f"() => ({CHART_TRACES})('Client drift') !== null", timeout=30_000)
    traces = page.evaluate(f"() => ({CHART_TRACES})('Client drift')")
    malicious = {c for c in store.clients_frame(attacked).query("malicious")["client_id"].unique()}
    assert len(malicious) == 2
    for trace in traces:
        client = int(trace["name"].split()[1])
        assert trace["color"] == client_color(client)
        assert (trace["symbol"] == "x") == (client in malicious) == trace["name"].endswith("(malicious)")
    chart = page.locator(".js-plotly-plot").filter(has_text="Client drift")
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    chart.screenshot(path=str(screenshots / "07-drift-chart.png"))
    shoot(page, screenshots / "07-drift-tab.png")

    private = _store_finished_run(
        store, name="private and compressed", num_clients=100, clients_per_round=10, rounds=40, partition="iid", lr=0.3,
        dp="central", dp_noise_multiplier=1.0, dp_clip=2.0, dp_target_epsilon=4.2, compression="topk", compression_ratio=0.2,
        error_feedback=True,
    )  # fmt: skip
    done = store.get_run(private).rounds_done
    assert 0 < done < 40
    page.goto(f"{server}/run?run={private}")
    wait_for_app(page, "The privacy budget dp_target_epsilon=4.2 allows")
    page.wait_for_function(f"() => {{ const x = ({CHART_X})('Privacy spent'); return x && x.length === {done}; }}", timeout=30_000)
    shoot(page, screenshots / "08-privacy.png")

    # Compare opens on the two newest finished runs: these two, on the axes of what accuracy cost.
    page.goto(server + "/compare")
    wait_for_app(page, "Final metrics")
    page.wait_for_function(f"() => ({CHART_TRACES})('against privacy spent') !== null", timeout=30_000)
    assert [t["name"] for t in page.evaluate(f"() => ({CHART_TRACES})('against privacy spent')")] == [
        "private and compressed (central (user-level) epsilon, delta 1e-05)"
    ]
    page.wait_for_function(f"() => ({CHART_TRACES})('against data sent') !== null", timeout=30_000)  # drawn below the others
    assert len(page.evaluate(f"() => ({CHART_TRACES})('against data sent')")) == 2
    shoot(page, screenshots / "09-compare-tradeoffs.png")


def test_a_ditto_run_shows_every_clients_own_model_above_the_global_one(server, server_store, page, screenshots):
    """On two classes per client, the Every client tab draws each client's accuracy with the global
    model and with its own, round by round, in the colours every chart gives the clients, and the
    mean and worst-10% lines. Screenshot: 10-every-client.png."""
    from dashboard.charts import client_color

    store = RunStore(server_store)
    run_id = _store_finished_run(
        store, name="ditto on two classes each", dataset="digits", partition="shards", shards_per_client=2, num_clients=8, rounds=5,
        personalization="ditto",
    )  # fmt: skip
    page.goto(f"{server}/run?run={run_id}")
    wait_for_app(page, "Finished.")
    page.get_by_role("tab", name="Every client").click()
    page.wait_for_function(f"() => ({CHART_TRACES})('Accuracy of every client') !== null", timeout=30_000)
    page.wait_for_function(f"() => ({CHART_TRACES})('worst-10% client accuracy') !== null", timeout=30_000)
    boxes = page.evaluate(f"() => ({CHART_TRACES})('Accuracy of every client')")
    points = [t for t in boxes if (t["name"] or "").startswith("client ")]
    assert sorted(int(t["name"].split()[1]) for t in points) == list(range(8))  # few clients: each one a point
    assert all(t["color"] == client_color(int(t["name"].split()[1])) for t in points)
    lines = {t["name"] for t in page.evaluate(f"() => ({CHART_TRACES})('worst-10% client accuracy')")}
    assert {"global model: mean", "own model: mean", "global model: worst 10%", "own model: worst 10%"} <= lines
    last = store.rounds_frame(run_id).iloc[-1]
    assert last["personal_accuracy_mean"] > last["client_accuracy_mean"]
    page.get_by_text("Every client after round 5").scroll_into_view_if_needed()  # the table of every client, below
    page.wait_for_timeout(800)
    shoot(page, screenshots / "10-every-client.png")
