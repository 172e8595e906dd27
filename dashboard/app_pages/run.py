"""Run: one run, named by the URL (`?run=<id>`), drawn from the store and redrawn every round.

The page draws the run once from the store. While it is queued or running, a fragment checks
the run's status and rounds done a few times a second (`live.rerun_when_changed`) and reruns
the page only when they changed, so the charts grow round by round without a reload, and a
check that finds nothing new costs the browser and the server next to nothing. A finished run's
page registers no timer. While a round trains, the progress line alone (a fragment) reads the
run's row about once a second and says how many of the round's clients are done, so a long
round shows it moving without redrawing a chart. The run's frames are read incrementally (`frames.run_frames`), and the
charts send the browser a bounded amount whatever the run's size. Everything drawn comes from
the store, so a reload or another browser shows the same run.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import access, charts, data_notes, live, state
from dashboard.access import plain
from dashboard.frames import run_frames
from dashboard.layout import chart, chart_pair
from dashboard.tables import client_evaluations_table, describe_config, format_duration, planned_rounds, results_json, time_left
from flcore.data.datasets import DATASETS, DatasetUnavailable, dataset_info
from flcore.federation.availability import uneven
from flcore.federation.metrics import CLIENT_METRICS
from flcore.federation.privacy import EPSILON_KINDS, label_epsilon_columns
from flcore.records import reported

STATUS_TEXT = {
    "queued": "Queued: it starts as soon as a worker is free.",
    "running": "Running.",
    "done": "Finished.",
    "failed": "Failed.",
    "cancelled": "Cancelled.",
    "interrupted": "Interrupted: the server stopped while it was running. Resume continues from the last finished round.",
}


def _pick_run(store) -> str | None:
    """With no (or an unknown) run in the URL, let the user choose one."""
    runs = store.list_runs()
    asked = st.query_params.get("run")
    if asked:
        st.warning(f"There is no run with id {plain(repr(asked))}: it may have been deleted. Choose another run below.")
    if not runs:
        st.info("No runs yet: start one on the New run page.")
        st.page_link(state.NEW_RUN_PAGE, label="New run", icon=":material/add_circle:")
        return None
    names = {r.run_id: f"{r.name} ({r.run_id}, {r.status})" for r in runs}
    chosen = st.selectbox(
        "Run",
        [r.run_id for r in runs],
        index=None,
        placeholder="Choose a run to open",
        format_func=names.get,
        key="run_pick",
    )
    if chosen:
        st.query_params["run"] = chosen
        st.rerun()
    return None


def _progress(info) -> tuple[float, str]:
    """The progress bar's fraction and its sentence ("Round 3 of 20 · training round 4: 37 of 131
    clients done · about 2 min left")."""
    done, total = info.rounds_done, info.total_rounds
    text = f"Round {done} of {total}"
    training = info.training
    if training is not None and training.total:
        text += f" · training round {training.round}: {training.done} of {training.total} clients done"
    if (allowed := planned_rounds(info)) < total:
        text += f" · its privacy budget allows {allowed}"
    left = time_left(info)
    if info.status == "running" and left is not None:
        text += f" · about {format_duration(left)} left"
    elif info.status == "running" and training is None:
        text += " · starting…"
    elif info.finished_at and info.started_at:
        text += f" · took {format_duration(info.finished_at - info.started_at)}"
    fraction = (done + training.done / training.total) / total if training is not None and training.total and total else info.progress
    return min(max(fraction, 0.0), 1.0), text


def _progress_bar(store, info) -> None:
    """The progress bar; while the run trains it rereads the run's row every TRAINING_POLL_S
    and redraws only itself (the clients done inside a round change faster than rounds)."""
    drawn = [info]  # the first draw uses the row the page was drawn with

    @st.fragment(run_every=TRAINING_POLL_S if info.status == "running" else None)
    def bar() -> None:
        current = drawn.pop() if drawn else (store.get_run(info.run_id) or info)
        st.progress(*_progress(current))

    bar()


def _controls(store, info) -> None:
    """Status line, progress bar, and the Cancel / Resume / Run again buttons."""
    _progress_bar(store, info)

    status = STATUS_TEXT.get(info.status, info.status)
    if info.active and info.cancel_requested:
        status = "Cancelling: the run stops after the current round."
    if info.status == "failed":
        st.error(plain(info.error) if info.error else "The run failed without saying why.")
    elif info.status in ("cancelled", "interrupted"):
        st.warning(status)
    elif info.status == "done":
        st.success(status + (f" Final test accuracy: {info.final_accuracy:.1%}." if info.final_accuracy is not None else ""))
        if info.error:  # why it ended before its last round: a privacy budget
            st.info(plain(info.error), icon=":material/lock:")
    else:
        st.info(status)

    row = st.container(horizontal=True)
    state.cancel_or_resume_button(row, info, access.user())
    if row.button(
        "Run again with changes", icon=":material/edit:", key="again_button", help="Open New run with this run's settings filled in."
    ):
        state.run_again(info.config.model_dump())


def _round_span(info) -> int | None:
    """How many rounds the round axes span: the whole run while it is going (so the curves grow
    into a fixed frame), unless that would squeeze the first rounds into a sliver; else None
    (fit the rounds stored)."""
    return info.total_rounds if info.active and info.total_rounds <= 100 else None


TAB_KEY = "run_tab"
TRAINING_POLL_S = 1.0  # how often the progress line rereads a running run (its worker writes about once a second)


def _class_names(config) -> tuple[str, ...] | None:
    """The class names of the run's dataset, or None when they cannot be known any more (a
    dataset no longer registered, a file of one's own that is gone or changed)."""
    if config.dataset not in DATASETS:
        return None
    try:
        return dataset_info(config).class_names or None
    except DatasetUnavailable:
        return DATASETS.get(config.dataset).info.class_names or None


def _charts(store, info) -> None:
    """The run's charts, in tabs; only the open tab is drawn (and redrawn as rounds arrive)."""
    total = _round_span(info)
    frames = run_frames(store, info.run_id)
    rounds, clients, split = frames.rounds, frames.clients, frames.partition
    arrived = reported(clients)  # the clients whose update reached the server
    class_names = _class_names(info.config)
    if rounds.empty and info.active:
        # Nothing to plot yet: a light page while the worker starts, so the browser and the
        # server spend no CPU drawing empty charts that the worker could use instead.
        st.info("Waiting for the first round: the charts appear as soon as it is stored.", icon=":material/hourglass_top:")
        with st.expander("Settings and downloads"):
            _downloads(store, info)
        return

    def global_model() -> None:
        accuracy = (charts.accuracy_chart(rounds, total), "accuracy", "accuracy_chart")
        loss = (charts.loss_chart(rounds, total), "loss", "loss_chart")
        config = info.config
        if config.dp != "none":  # epsilon next to the accuracy it costs
            kind = EPSILON_KINDS.get(config.dp)
            epsilon = charts.epsilon_chart(rounds, total, config.dp_delta, config.dp_target_epsilon, kind)
            chart_pair(accuracy, (epsilon, "epsilon", "epsilon_chart"))
            chart_pair(loss)
        else:
            chart_pair(accuracy, loss)

    def time_and_communication() -> None:
        chart_pair(
            (charts.time_accuracy_chart(rounds), "time_accuracy", "time_accuracy_chart"),
            (charts.round_time_chart(rounds, total, info.config.round_deadline_s), "round_time", "round_time_chart"),
        )
        chart_pair((charts.accuracy_bytes_chart(rounds), "accuracy_bytes", "accuracy_bytes_chart"))

    def metric_charts(tab: str) -> None:
        # One chart per registered client metric of this tab that the run stored, two side by side.
        shown = [e for e in CLIENT_METRICS.entries() if e.obj.tab == tab and e.name in clients.columns]
        for pair in (shown[i : i + 2] for i in range(0, len(shown), 2)):
            for column, entry in zip(st.columns(2), pair):
                with column:
                    st.plotly_chart(charts.registered_client_chart(arrived, entry, total), width="stretch", key=f"{entry.name}_chart")
                    st.caption(entry.obj.caption)

    def per_client() -> None:
        metric_charts("Clients")
        chart(charts.participation_chart(clients, info.config.num_clients, total), "participation", "participation_chart")
        if uneven(info.config) or len(arrived) < len(clients) or len(frames.offline):
            timeline = charts.client_timeline_chart(clients, frames.offline, info.config.num_clients, total)
            chart(timeline, "client_timeline", "client_timeline_chart")

    def every_client() -> None:
        evaluations, threshold = frames.evaluations, info.config.fairness_threshold
        chart_pair(
            (
                charts.client_accuracy_distribution_chart(evaluations, total, threshold),
                "client_accuracy_distribution",
                "client_accuracy_distribution_chart",
            ),
            (charts.fairness_lines_chart(rounds, total, threshold), "fairness_lines", "fairness_lines_chart"),
        )
        table = client_evaluations_table(evaluations)
        if table["own model accuracy"].isna().all():  # no personalized method: the global model is all they have
            table = table.drop(columns=["own model accuracy", "gain"])
        st.subheader(f"Every client after round {int(evaluations['round'].max())}")
        st.caption(
            "Each client's accuracy on its own held-out test data, with the global model and with its own model; "
            "gain is what its own model adds. Click a column to sort: the clients at the bottom are the ones left behind."
        )
        shares = [c for c in ("global model accuracy", "own model accuracy", "gain") if c in table]
        table[shares] = table[shares] * 100  # shown as "93.1%": one decimal, sorted by the number
        percent = st.column_config.NumberColumn(format="%.1f%%")
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key="every_client_table",
            column_config={"global model accuracy": percent, "own model accuracy": percent, "gain": percent},
        )

    def drift() -> None:
        chart_pair(
            (charts.drift_chart(arrived), "drift", "drift_chart"),
            (charts.drift_spread_chart(rounds, total), "drift_spread", "drift_spread_chart"),
        )
        metric_charts("Drift")

    def data() -> None:
        chart_pair(
            (charts.partition_heatmap(split, class_names), "partition_heatmap", "partition_heatmap"),
            (charts.partition_bars(split, class_names), "partition_bars", "partition_bars"),
        )
        chart(charts.sampled_labels_chart(arrived, split, class_names, total), "sampled_labels", "sampled_labels_chart")

    # Each tab is drawn only while it is open, so a watched run redraws a few charts per round.
    sections = {
        "Global model": global_model,
        "Time and communication": time_and_communication,
        "Clients": per_client,
        "Every client": every_client,
        "Drift": drift,
        "Data": data,
        "Settings and downloads": lambda: _downloads(store, info),
    }
    if "drift_cosine" not in clients.columns:  # runs stored before drift was measured have none
        del sections["Drift"]
    if frames.evaluations.empty:  # no round yet evaluated every client on its own test data (or the run keeps none)
        del sections["Every client"]
    for tab, draw in zip(st.tabs(list(sections), key=TAB_KEY, on_change="rerun"), sections.values()):
        if tab.open:
            with tab:
                draw()


def _downloads(store, info) -> None:
    rid = info.run_id
    st.caption("Everything this run stored, to keep or to analyse elsewhere, and the exact settings that produced it.")

    def everything() -> str:
        latest = store.get_run(rid) or info
        frames = (store.rounds_frame(rid), store.clients_frame(rid), store.partition_frame(rid), store.evaluations_frame(rid))
        return results_json(latest, *frames)

    files = (  # label, contents (read when clicked), file name, type, widget key
        (
            "Rounds (CSV)",
            lambda: label_epsilon_columns(info.config, store.rounds_frame(rid)).to_csv(index=False),
            "rounds.csv",
            "text/csv",
            "dl_rounds",
        ),
        ("Clients (CSV)", lambda: store.clients_frame(rid).to_csv(index=False), "clients.csv", "text/csv", "dl_clients"),
        (
            "Evaluations (CSV)",
            lambda: store.evaluations_frame(rid).to_csv(index=False),
            "evaluations.csv",
            "text/csv",
            "dl_evaluations",
        ),
        ("Partition (CSV)", lambda: store.partition_frame(rid).to_csv(index=False), "partition.csv", "text/csv", "dl_partition"),
        ("Config (JSON)", info.config.to_json(), "config.json", "application/json", "dl_config"),
        ("Everything (JSON)", everything, "results.json", "application/json", "dl_all"),
    )
    if info.config.client_test_fraction <= 0:  # the run kept no client test data: nothing was evaluated per client
        files = tuple(f for f in files if f[4] != "dl_evaluations")
    row = st.container(horizontal=True)
    for label, data, name, mime, key in files:
        row.download_button(label, data, f"{rid}-{name}", mime, on_click="ignore", icon=":material/download:", key=key)
    st.markdown("**Full configuration**")
    st.json(info.config.model_dump(mode="json"), expanded=1)


store = state.get_store()
run_id = st.query_params.get("run")
info = store.get_run(run_id) if run_id else None

if info is None:
    st.title("Run")
    _pick_run(store)
    st.stop()

st.title(plain(info.name))
started_by = f" by {plain(info.owner)}" if info.owner else ""
st.caption(
    f"{plain(describe_config(info.config))}  \nRun {info.run_id} · started{started_by} from the {info.source} · created "
    f"{pd.Timestamp.fromtimestamp(info.created_at).strftime('%Y-%m-%d %H:%M:%S')}"
)
data_notes.show(info.config, gone="This run's data file is no longer on this server: the run keeps its results, but cannot be resumed.")
_controls(store, info)
live.rerun_when_changed(
    lambda: live.run_fingerprint(store.get_run(info.run_id)),
    live.run_fingerprint(info),
    live.poll_seconds(info) if info.active else None,
    at_once=live.run_changed_at_once,
    pace_s=live.redraw_seconds(info),
)
_charts(store, info)
