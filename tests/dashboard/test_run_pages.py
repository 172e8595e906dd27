"""The Run, Runs and Compare pages under AppTest, reading runs a real simulation wrote into a
real store in a temporary directory."""

from __future__ import annotations

import pytest
from dashboard_helpers import errors, figure, figure_titled, no_exceptions, page, record_run, record_sweep, shown, texts

RUN, RUNS, COMPARE, NEW = "app_pages/run.py", "app_pages/runs.py", "app_pages/compare.py", "app_pages/new_run.py"


@pytest.fixture
def finished(store) -> str:
    return record_run(store, attack="sign_flip", attack_fraction=0.34)


# Run ----------------------------------------------------------------------------------------
TABS = {
    "Global model": ("Global test accuracy", "Global test loss"),
    "Time and communication": ("Test accuracy against simulated time", "Simulated duration", "Accuracy against data sent by clients"),
    "Clients": ("Training loss per client", "Update size per client", "Participation"),
    "Every client": ("Accuracy of every client on its own test data", "Mean and worst-10% client accuracy"),
    "Drift": (
        "Client drift: who pulls away",
        "Client agreement per round",
        "Drift: agreement with the global update",
        "Drift: distance from the new global model",
    ),
    "Data": ("Labels per client", "Training samples per client", "Labels of the sampled clients"),
}


def open_tab(at, tab: str):
    at.session_state["run_tab"] = tab
    return at.run()


def test_a_finished_run_shows_status_progress_every_chart_and_downloads(store, finished):
    at = page(RUN, run=finished)
    no_exceptions(at)
    info = store.get_run(finished)
    assert shown(at.title[0].value) == info.name
    assert "Round 3 of 3" in at.get("progress")[0].proto.text
    assert "Finished" in at.success[0].value
    assert [t.label for t in at.tabs] == [*TABS, "Settings and downloads"]
    for tab, expected in TABS.items():  # only the open tab is drawn, and each tab draws its charts
        open_tab(at, tab)
        no_exceptions(at)
        titles = [figure(c)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
        assert len(titles) == len(expected), (tab, titles)
        for title in expected:
            assert any(t.startswith(title) for t in titles), f"no {title!r} chart in tab {tab!r}"
        assert len(at.caption) >= len(titles)  # every chart has a caption under it
        if tab == "Global model":  # each chart shows what the store holds
            accuracy = figure_titled(at, "Global test accuracy")["data"][0]
            assert accuracy["y"] == pytest.approx(store.rounds_frame(finished)["test_accuracy"].tolist())
        if tab == "Clients":
            losses = figure_titled(at, "Training loss per client")["data"]
            malicious = store.clients_frame(finished).query("malicious")["client_id"].unique()
            assert malicious.size and {f"client {c} (malicious)" for c in malicious} <= {t["name"] for t in losses}
    open_tab(at, "Settings and downloads")
    downloads = [d.proto.label for d in at.get("download_button")]
    assert downloads == ["Rounds (CSV)", "Clients (CSV)", "Evaluations (CSV)", "Partition (CSV)", "Config (JSON)", "Everything (JSON)"]
    assert any(j.proto.body and '"num_clients": 6' in j.proto.body for j in at.json)


def test_clients_that_come_and_go_are_drawn_from_the_store(store):
    run_id = record_run(
        store, num_clients=8, clients_per_round=4, rounds=5, availability=0.6, dropout=0.25, stragglers=0.5,
        straggler_policy="partial", round_deadline_s=20.0,
    )  # fmt: skip
    rounds, clients, offline = store.rounds_frame(run_id), store.clients_frame(run_id), store.offline_frame(run_id)
    assert {"dropped", "partial"} <= set(clients["status"]) and len(offline)
    at = page(RUN, run=run_id)
    no_exceptions(at)
    assert "clients online 60% of rounds" in texts(at) and "50% stragglers send partial work" in texts(at)
    open_tab(at, "Time and communication")
    no_exceptions(at)
    timed = figure_titled(at, "Test accuracy against simulated time")["data"][0]
    assert timed["x"] == pytest.approx(rounds["sim_clock_s"].tolist()) and timed["y"] == pytest.approx(rounds["test_accuracy"].tolist())
    durations = figure_titled(at, "Simulated duration of each round")
    assert durations["data"][0]["y"] == pytest.approx(rounds["sim_round_s"].tolist())
    assert any(shape["y0"] == 20.0 for shape in durations["layout"]["shapes"])  # the deadline line

    open_tab(at, "Clients")
    no_exceptions(at)
    timeline = figure_titled(at, "Client timeline")
    z = timeline["data"][0]["z"]
    words = {"trained": "trained", "partial": "partial work", "late": "late (not used)", "dropped": "dropped out"}
    text = timeline["data"][0]["text"]
    for row in clients.itertuples():  # every sampled client, in its state
        assert text[row.client_id][row.round - 1] == words[row.status]
    for r, counts in zip(offline["round"], offline["counts"]):
        for c, n in enumerate(counts):
            assert (text[c][r - 1] == "offline") == bool(n)
    assert len(z) == 8 and len(z[0]) == 5
    assert {t["name"] for t in timeline["data"][1:]} >= {"trained", "partial work", "dropped out", "offline"}  # the legend
    losses = figure_titled(at, "Training loss per client")["data"]
    assert all(not any(y is None or y != y for y in t["y"]) for t in losses)  # lines only where an update arrived


def test_a_failed_run_shows_its_stored_error_as_a_sentence(store):
    run_id = record_run(store, stop_after=1, status="failed", error="The worker ran out of memory in round 2.")
    at = page(RUN, run=run_id)
    no_exceptions(at)
    assert errors(at) == ["The worker ran out of memory in round 2."]
    assert at.button(key="resume_button")


def test_resume_queues_a_cancelled_run_again(store):
    run_id = record_run(store, stop_after=1, status="cancelled")
    at = page(RUN, run=run_id)
    assert "Cancelled" in at.warning[0].value
    at.button(key="resume_button").click().run()
    no_exceptions(at)
    assert store.get_run(run_id).status in ("queued", "running", "done")
    assert "Cancelled" not in texts(at)


def test_cancel_on_a_running_run_asks_the_worker_to_stop(store):
    run_id = record_run(store, stop_after=1, status=None)  # left running after round 1
    at = page(RUN, run=run_id)
    no_exceptions(at)
    assert "Round 1 of 3" in at.get("progress")[0].proto.text
    assert len(figure_titled(at, "Global test accuracy")["data"][0]["x"]) == 1
    at.button(key="cancel_button").click().run()
    assert store.get_run(run_id).cancel_requested
    assert "Cancelling" in texts(at)


def test_a_running_run_says_how_many_of_the_rounds_clients_trained(store):
    from flcore.service.execute import _ClientProgress

    run_id = record_run(store, stop_after=1, status=None)  # left running after round 1, round 2 training
    _ClientProgress(store, run_id, 2)(37, 131)  # what its worker writes while round 2 trains
    at = page(RUN, run=run_id)
    no_exceptions(at)
    bar = at.get("progress")[0].proto
    assert "Round 1 of 3 · training round 2: 37 of 131 clients done" in bar.text
    assert "starting" not in bar.text
    assert bar.value == int(100 * (1 + 37 / 131) / 3)  # the bar moves inside the round too
    store.finish(run_id, "done")
    at.run()
    assert "clients" not in at.get("progress")[0].proto.text  # nothing trains any more


def test_the_page_follows_the_store_as_rounds_arrive(store):
    """Nothing is held in the session: each (fragment) run redraws from what the store holds."""
    run_id = record_run(store, stop_after=1, status=None)
    at = page(RUN, run=run_id)
    assert len(figure_titled(at, "Global test accuracy")["data"][0]["x"]) == 1
    store.delete_run(run_id)
    at.run()
    assert "deleted" in texts(at)


def test_an_unknown_or_missing_run_id_offers_the_stored_runs(store, finished):
    at = page(RUN, run="nope")
    no_exceptions(at)
    assert "no run with id 'nope'" in texts(at)
    pick = at.selectbox(key="run_pick")
    assert pick.options == [f"{store.get_run(finished).name} ({finished}, done)"]
    pick.set_value(finished).run()
    assert at.query_params.get("run") == finished
    assert shown(at.title[0].value) == store.get_run(finished).name


def test_run_again_with_changes_prefills_new_run(store):
    run_id = record_run(store, strategy="median", num_clients=7, name="median seven")
    at = page(RUN, run=run_id)
    at.button(key="again_button").click().run()
    no_exceptions(at)
    assert shown(at.title[0].value) == "New run"
    assert at.selectbox(key="cfg.strategy").value == "median"
    assert at.number_input(key="cfg.num_clients").value == 7
    assert at.number_input(key="cfg.rounds").value == 3
    assert "median seven" in texts(at)


# Runs ---------------------------------------------------------------------------------------
def test_runs_lists_every_run_with_its_summary(store, finished):
    other = record_run(store, stop_after=1, status="cancelled", strategy="krum", num_clients=5)
    at = page(RUNS)
    no_exceptions(at)
    table = at.dataframe[0].value
    assert list(table["id"]) == [other, finished]  # newest first
    for column in ("name", "dataset", "split", "strategy", "clients", "status", "progress", "final accuracy", "created"):
        assert column in table.columns
    assert table.loc[0, "strategy"] == "Krum" and table.loc[0, "status"] == "cancelled"
    assert table.loc[1, "progress"] == 1.0


def test_runs_opens_and_deletes_a_run(store, finished):
    other = record_run(store, stop_after=1, status="cancelled")
    at = page(RUNS)
    at.selectbox(key="runs_pick").set_value(finished).run()
    at.button(key="open_button").click().run()
    no_exceptions(at)
    assert at.query_params.get("run") == finished
    assert shown(at.title[0].value) == store.get_run(finished).name

    at = page(RUNS)
    at.selectbox(key="runs_pick").set_value(other).run()
    at.button(key="delete_button").click().run()
    assert "cannot be undone" in texts(at)
    assert store.get_run(other) is not None  # nothing deleted before the confirmation
    at.button(key="confirm_delete").click().run()
    no_exceptions(at)
    assert store.get_run(other) is None
    assert list(at.dataframe[0].value["id"]) == [finished]


def test_runs_run_again_with_changes_prefills_new_run(store, finished):
    at = page(RUNS)
    at.button(key="again_button").click().run()
    assert shown(at.title[0].value) == "New run"
    assert at.selectbox(key="cfg.attack").value == "sign_flip"
    assert at.number_input(key="cfg.attack_fraction").value == pytest.approx(0.34)


def test_runs_with_no_runs_points_to_new_run(store):
    at = page(RUNS)
    no_exceptions(at)
    assert "No runs yet" in texts(at)


# Compare ------------------------------------------------------------------------------------
def test_compare_overlays_curves_and_names_the_settings_that_differ(store, finished):
    other = record_run(store, strategy="median", alpha=5.0)
    at = page(COMPARE)
    no_exceptions(at)
    assert sorted(at.multiselect(key="compare_pick").value) == sorted([finished, other])
    accuracy = figure_titled(at, "Test accuracy by round")
    assert len(accuracy["data"]) == 2
    assert figure_titled(at, "Test loss by round")
    metrics, diff = at.dataframe[0].value, at.dataframe[1].value
    assert len(metrics) == 2 and {"final accuracy", "best accuracy", "final loss"} <= set(metrics.columns)
    assert {"Aggregation", "Dirichlet alpha", "Attack", "Fraction of malicious clients"} <= set(diff.index)
    assert "Number of clients" not in diff.index


def test_compare_with_one_run_asks_for_another(store, finished):
    at = page(COMPARE)
    no_exceptions(at)
    assert "Choose a second run" in texts(at)


# Sweeps -------------------------------------------------------------------------------------
SWEEP_GRID = {"strategy": ["fedavg", "median"], "lr": [0.05, 0.2], "seeds": [0, 1]}


def test_compare_draws_a_sweep_as_mean_curves_with_bands_and_a_mean_std_table(store):
    lone = record_run(store)
    sweep_id, run_ids = record_sweep(store, SWEEP_GRID)
    assert len(run_ids) == 8 and len(store.list_runs()) == 9
    at = page(COMPARE)
    no_exceptions(at)
    assert at.get("button_group")[0].value == "Runs"  # comparing runs stays the default
    at.get("button_group")[0].set_value("A sweep").run()
    no_exceptions(at)
    assert at.selectbox(key="compare_sweep_pick").value == sweep_id
    assert "2 strategy x 2 lr x 2 seeds = 8 runs: 8 done" in texts(at)
    accuracy = figure_titled(at, "Test accuracy by round: mean over seeds")
    bands = [t for t in accuracy["data"] if t.get("fill") == "toself"]
    lines = [t for t in accuracy["data"] if t.get("mode") == "lines" and not t.get("fill")]
    assert len(bands) == len(lines) == 4  # one band and one mean curve per setting
    assert {t["name"] for t in lines} == {f"strategy={s}, lr={lr}" for s in ("fedavg", "median") for lr in (0.05, 0.2)}
    assert figure_titled(at, "Test loss by round: mean over seeds")
    (table,) = [d.value for d in at.dataframe]
    assert len(table) == 4 and table["runs"].tolist() == ["2 / 2"] * 4
    runs = {r.run_id: r for r in store.list_runs()}
    fedavg = [runs[r].final_accuracy for r in run_ids[:2]]  # strategy=fedavg, lr=0.05, seeds 0 and 1
    row = table.iloc[0]
    assert row["setting"] == "strategy=fedavg, lr=0.05"
    assert row["mean final accuracy"] == pytest.approx(sum(fedavg) / 2)
    assert row["std over seeds"] == pytest.approx(abs(fedavg[0] - fedavg[1]) / 2**0.5)
    assert "±" in row["final accuracy"]
    assert lone not in run_ids


def test_runs_shows_sweeps_and_opens_compare_on_a_runs_sweep(store):
    lone = record_run(store, name="on its own")
    sweep_id, run_ids = record_sweep(store, {"lr": [0.05, 0.2]}, name="lr sweep")
    at = page(RUNS)
    no_exceptions(at)
    sweeps, table = at.dataframe[0].value, at.dataframe[1].value
    assert sweeps[["sweep", "id", "grid", "done", "status"]].values.tolist() == [["lr sweep", sweep_id, "2 lr = 2 runs", "2 / 2", "2 done"]]
    assert dict(zip(table["id"], table["sweep"])) == {lone: "", run_ids[0]: "lr sweep", run_ids[1]: "lr sweep"}
    at.selectbox(key="runs_sweep_filter").set_value(sweep_id).run()
    assert sorted(at.dataframe[1].value["id"]) == sorted(run_ids)
    at.selectbox(key="runs_pick").set_value(run_ids[0]).run()
    at.button(key="compare_sweep_button").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Compare runs"
    assert at.selectbox(key="compare_sweep_pick").value == sweep_id
    assert figure_titled(at, "Test accuracy by round: mean over seeds")


def test_a_sweep_still_training_shows_its_progress_and_the_runs_without_rounds(store):
    sweep_id, run_ids = record_sweep(store, {"lr": [0.05, 0.2], "seeds": [0, 1]}, stop_after={1: 1, 3: 0})
    at = page(COMPARE)
    at.get("button_group")[0].set_value("A sweep").run()
    no_exceptions(at)
    assert "2 done, 2 queued or training" in texts(at)
    (table,) = [d.value for d in at.dataframe]
    assert table["runs"].tolist() == ["2 / 2", "1 / 2"] and table["still training"].tolist() == [1, 1]


def test_a_sweep_rerun_reads_only_the_rounds_of_runs_that_changed(store, monkeypatch):
    from flcore.store import RunStore

    sweep_id, run_ids = record_sweep(store, {"lr": [0.05, 0.2], "seeds": [0, 1]}, stop_after={1: 1, 3: 0})
    read = []
    rounds_frame = RunStore.rounds_frame
    monkeypatch.setattr(
        RunStore, "rounds_frame", lambda self, run_id, *a, **kw: read.append(run_id) or rounds_frame(self, run_id, *a, **kw)
    )
    at = page(COMPARE)
    read.clear()  # (the Runs view it opens on reads its own way)
    at.get("button_group")[0].set_value("A sweep").run()
    no_exceptions(at)
    assert sorted(read) == sorted(run_ids)  # the first draw reads every run's rounds
    read.clear()
    at.run()
    assert read == [] and figure_titled(at, "Test accuracy by round: mean over seeds")  # nothing new: nothing read
    store.finish(run_ids[1], "cancelled")
    at.run()
    no_exceptions(at)
    assert read == [run_ids[1]]  # only the run that changed
