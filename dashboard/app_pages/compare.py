"""Compare: several runs side by side: their accuracy and loss curves overlaid, accuracy against
the bytes their clients sent and the privacy they spent, the final accuracy of every client of
each run on its own test data, a table of final metrics (with how evenly each run served its
clients), and the settings in which they differ. Or a sweep: for each of its settings the mean
curve over its seeds with a band of one standard deviation, and a table of final accuracy mean ±
std.

While a chosen run (or a run of the chosen sweep) is still going, the page checks progress every
two seconds and redraws when it changed, so a comparison can be watched as it forms.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, live, state
from dashboard.access import plain
from dashboard.frames import rounds_frames, run_frames
from dashboard.layout import chart, chart_pair
from dashboard.tables import FAIRNESS_COLUMNS, config_differences, final_metrics, run_labels, sweep_curves, sweep_summary
from flcore.federation.privacy import EPSILON_KINDS
from flcore.service.sweep import describe_size

PICK = "compare_pick"
MODE = "compare_mode"  # "Runs" or "A sweep"
SWEEP_PICK = "compare_sweep_pick"
COMPARE_POLL_S = 2.0

st.title("Compare runs")
st.caption("Pick runs to overlay their learning curves and see which settings differ between them.")
store = state.get_store()
runs = store.list_runs()
if not runs:
    st.info("No runs yet: start one on the New run page.")
    st.page_link(state.NEW_RUN_PAGE, label="New run", icon=":material/add_circle:")
    st.stop()

sweeps = store.list_sweeps()
if sweeps:
    st.caption("Or pick a sweep to see, for each of its settings, the mean and the spread over its seeds.")
if state.COMPARE_SWEEP in st.session_state:  # sent here from the Runs page
    st.session_state[SWEEP_PICK] = st.session_state.pop(state.COMPARE_SWEEP)
    st.session_state[MODE] = "A sweep"
elif state.COMPARE_IDS in st.session_state:
    st.session_state[MODE] = "Runs"
if sweeps:
    st.session_state.setdefault(MODE, "Runs")
    st.segmented_control("Compare", ["Runs", "A sweep"], key=MODE, help="A sweep: each setting's mean and spread over its seeds.")


def sweep_view() -> None:
    """One sweep: each setting's mean curve over seeds with a band, and final accuracy mean ± std."""
    by_id = {s.sweep_id: s for s in sweeps}
    if st.session_state.get(SWEEP_PICK) not in by_id:
        st.session_state[SWEEP_PICK] = sweeps[0].sweep_id
    picked = st.selectbox(
        "Sweep", list(by_id), key=SWEEP_PICK, format_func=lambda sid: f"{by_id[sid].name} ({sid}, {by_id[sid].total} runs)"
    )
    info = by_id[picked]
    by_run = {r.run_id: r for r in runs}
    members = [by_run[rid] for rid in info.run_ids if rid in by_run]  # in grid order
    going = sum(r.active for r in members)
    st.caption(
        f"{plain(describe_size(info.grid))}: {info.done} done" + (f", {going} queued or training" if going else "")
        + "; the runs of a setting differ only in their seed."
    )  # fmt: skip
    curves = sweep_curves(members, rounds_frames(store, members), info.grid)  # only runs with new rounds are read
    chart_pair(
        (charts.sweep_chart(curves, "test_accuracy"), "sweep_accuracy", "sweep_accuracy"),
        (charts.sweep_chart(curves, "test_loss"), "sweep_loss", "sweep_loss"),
    )
    st.subheader("Final accuracy over seeds")
    st.dataframe(
        sweep_summary(members, info.grid),
        hide_index=True,
        width="stretch",
        column_config={
            "mean final accuracy": st.column_config.NumberColumn(format="percent"),
            "std over seeds": st.column_config.NumberColumn(format="percent"),
        },
    )
    live.rerun_when_changed(
        lambda: tuple(live.run_fingerprint(store.get_run(r.run_id)) for r in members),
        tuple(live.run_fingerprint(r) for r in members),
        COMPARE_POLL_S if going else None,
    )


if sweeps and st.session_state.get(MODE) == "A sweep":
    sweep_view()
    st.stop()

choices = {r.run_id: f"{r.name} ({r.run_id})" for r in runs}
ids = [r.run_id for r in runs]
if state.COMPARE_IDS in st.session_state:  # sent here from the Runs page
    st.session_state[PICK] = [i for i in st.session_state.pop(state.COMPARE_IDS) if i in ids]
if PICK not in st.session_state:
    finished = [r.run_id for r in runs if r.rounds_done > 0]
    st.session_state[PICK] = finished[:2] or ids[:2]
st.session_state[PICK] = [i for i in st.session_state[PICK] if i in ids]
picked = st.multiselect(
    "Runs to compare",
    ids,
    key=PICK,
    format_func=choices.get,
    placeholder="Choose two or more runs",
)
if not picked:
    st.info("Choose at least one run above.")
    st.stop()


def fingerprint(run_ids: list[str]) -> tuple:
    return tuple(live.run_fingerprint(store.get_run(rid)) for rid in run_ids)


def comparison(run_ids: list[str]) -> None:
    chosen = [r for r in runs if r.run_id in run_ids]
    names = run_labels(chosen)
    stored = {r.run_id: run_frames(store, r.run_id) for r in chosen}
    rounds = {rid: frames.rounds for rid, frames in stored.items()}
    curves = pd.concat(
        [frame.assign(run=names[rid]) for rid, frame in rounds.items() if not frame.empty]
        or [pd.DataFrame(columns=["run", "round", "test_accuracy", "test_loss"])],
        ignore_index=True,
    )
    chart_pair(
        (charts.compare_chart(curves, "test_accuracy"), "compare_accuracy", "compare_accuracy"),
        (charts.compare_chart(curves, "test_loss"), "compare_loss", "compare_loss"),
    )
    # What the accuracy cost: communication, and privacy when a chosen run spent any.
    costs = ("bytes", "epsilon") if any(r.config.dp != "none" for r in chosen) else ("bytes",)
    kinds = {names[r.run_id]: (EPSILON_KINDS[r.config.dp], r.config.dp_delta) for r in chosen if r.config.dp in EPSILON_KINDS}
    chart_pair(*[(charts.compare_tradeoff_chart(curves, x, kinds), f"compare_{x}", f"compare_{x}") for x in costs])
    # How evenly each run served its clients, where some run evaluated every client on its own test data.
    finals = charts.final_client_accuracies({names[rid]: frames.evaluations for rid, frames in stored.items()})
    if not finals.empty:
        thresholds = {r.config.fairness_threshold for r in chosen}
        threshold = next(iter(thresholds)) if len(thresholds) == 1 else None  # one line only when the runs share it
        chart(charts.compare_client_accuracy_chart(finals, threshold), "compare_client_accuracy", "compare_client_accuracy")

    st.subheader("Final metrics")
    st.dataframe(
        final_metrics(chosen, rounds),
        hide_index=True,
        width="stretch",
        column_config={
            "final accuracy": st.column_config.NumberColumn(format="percent"),
            "best accuracy": st.column_config.NumberColumn(format="percent"),
            "final loss": st.column_config.NumberColumn(format="%.3f"),
            "seconds per round": st.column_config.NumberColumn(format="%.2f"),
            "final epsilon": st.column_config.NumberColumn(format="%.3g"),
            "MB sent by clients": st.column_config.NumberColumn(format="%.3g"),
            **{column: st.column_config.NumberColumn(format="percent") for column in FAIRNESS_COLUMNS.values()},
        },
    )

    st.subheader("Settings that differ")
    if len(chosen) < 2:
        st.info("Choose a second run to see how their settings differ.")
        return
    diff = config_differences({names[r.run_id]: r.config for r in chosen})
    if diff.empty:
        st.success("These runs have the same settings (apart from their names), so they give the same numbers.")
    else:
        st.caption(f"{len(diff)} of the settings differ; every other setting is the same in all {len(chosen)} runs.")
        st.dataframe(diff, width="stretch")


comparison(picked)
live.rerun_when_changed(
    lambda: fingerprint(picked),
    fingerprint(picked),
    COMPARE_POLL_S if any(r.active for r in runs if r.run_id in picked) else None,
)
