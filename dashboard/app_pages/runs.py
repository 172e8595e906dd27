"""Runs: every stored run in one table, and what can be done with one (open, cancel, resume,
run again with changes, delete) or several (compare). Runs queued by a sweep carry its name in
the sweep column, and the table can show one sweep's runs only; Compare draws a whole sweep.

While any run is queued or running, the page checks the runs' statuses and progress every two
seconds and redraws only when one changed, so statuses and progress move without a reload.
Selecting a row picks that run for the buttons below.
"""

from __future__ import annotations

import streamlit as st

from dashboard import access, live, state
from dashboard.access import plain
from dashboard.tables import runs_table, sweeps_table
from flcore.store import actions

PICK = "runs_pick"  # the selectbox of the run the buttons act on
SWEEP_FILTER = "runs_sweep_filter"  # "" for every run, else a sweep id
APPLIED = "runs_table_applied"  # the table selection last copied into PICK
CONFIRM = "runs_confirm_delete"  # the run id awaiting a delete confirmation


def _sync_pick_with_table(table_ids: list[str]) -> None:
    """A newly selected table row becomes the picked run (before the selectbox is drawn)."""
    rows = st.session_state.get("runs_table", {}).get("selection", {}).get("rows", [])
    selected = table_ids[rows[0]] if rows and rows[0] < len(table_ids) else None
    if selected and selected != st.session_state.get(APPLIED):
        st.session_state[PICK] = selected
    st.session_state[APPLIED] = selected


def _actions(store, runs) -> None:
    names = {r.run_id: r.name for r in runs}
    statuses = {r.run_id: r.status for r in runs}
    ids = [r.run_id for r in runs]
    if st.session_state.get(PICK) not in ids:
        st.session_state.pop(PICK, None)
    picked = st.selectbox(
        "Selected run",
        ids,
        key=PICK,
        format_func=lambda rid: f"{names[rid]} ({rid}, {statuses[rid]})",
        help="Click a row in the table, or choose the run here.",
    )
    info = next((r for r in runs if r.run_id == picked), None)
    if info is None:
        return
    row = st.container(horizontal=True)
    if row.button("Open", icon=":material/open_in_new:", type="primary", key="open_button"):
        state.open_run(info.run_id)
    if row.button(
        "Run again with changes", icon=":material/edit:", key="again_button", help="Open New run with this run's settings filled in."
    ):
        state.run_again(info.config.model_dump())
    user = access.user()
    allowed, not_yours = actions(info, user), state.not_yours(info, user)  # for Delete, below
    state.cancel_or_resume_button(row, info, user)
    if row.button(
        "Compare…", icon=":material/compare_arrows:", key="compare_button", help="Open Compare with this run and the runs just before it."
    ):
        start = ids.index(info.run_id)
        st.session_state[state.COMPARE_IDS] = ids[start : start + 3]
        st.switch_page(state.COMPARE_PAGE)
    if info.sweep_id and row.button(
        "Compare its sweep",
        icon=":material/stacked_line_chart:",
        key="compare_sweep_button",
        help="Open Compare on the sweep this run belongs to.",
    ):
        st.session_state[state.COMPARE_SWEEP] = info.sweep_id
        st.switch_page(state.COMPARE_PAGE)
    if row.button(
        "Delete",
        icon=":material/delete:",
        key="delete_button",
        disabled="delete" not in allowed,
        help=not_yours or ("Delete the run and all its results." if "delete" in allowed else "Cancel the run first."),
    ):
        st.session_state[CONFIRM] = info.run_id

    if st.session_state.get(CONFIRM) == info.run_id:
        st.warning(f"Delete **{plain(info.name)}** ({info.run_id}) and all its results? This cannot be undone.")
        confirm = st.container(horizontal=True)
        if confirm.button("Yes, delete it", type="primary", key="confirm_delete"):
            try:
                state.get_runner().delete(info.run_id, user)
            except PermissionError as err:
                st.error(plain(err))
                return
            st.session_state.pop(CONFIRM, None)
            st.session_state.pop(PICK, None)
            st.toast(f"Deleted {plain(info.name)} ({info.run_id}).")
            st.rerun()
        if confirm.button("Keep it", key="keep_run"):
            st.session_state.pop(CONFIRM, None)
            st.rerun()


RUNS_POLL_S = 2.0


def fingerprint(runs) -> tuple:
    """What the table shows that changes while runs train."""
    return tuple((r.run_id, r.status, r.rounds_done, r.cancel_requested) for r in runs)


st.title("Runs")
st.caption("Every run on this server, newest first. Select a row to open, repeat, compare or delete it.")
store = state.get_store()
runs = store.list_runs()
if not runs:
    st.info("No runs yet: start one on the New run page.")
    st.page_link(state.NEW_RUN_PAGE, label="New run", icon=":material/add_circle:")
else:
    sweeps, shown = {s.sweep_id: s for s in store.list_sweeps()}, ""
    if sweeps:
        with st.expander(f"Sweeps ({len(sweeps)})", expanded=False):
            st.dataframe(
                sweeps_table(list(sweeps.values())),
                hide_index=True,
                key="sweeps_table",
                column_config={"created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss")},
            )
            st.caption("A sweep's runs are listed below with its name; Compare draws each setting's mean and spread over seeds.")
        if st.session_state.get(SWEEP_FILTER) not in ("", *sweeps):
            st.session_state[SWEEP_FILTER] = ""
        shown = st.selectbox(
            "Show",
            ["", *sweeps],
            key=SWEEP_FILTER,
            format_func=lambda sid: f"sweep {sweeps[sid].name} ({sid}, {sweeps[sid].total} runs)" if sid else "every run",
        )
    listed = [r for r in runs if r.sweep_id == shown] if shown else runs
    table = runs_table(listed, {sid: s.name for sid, s in sweeps.items()})
    _sync_pick_with_table(table["id"].tolist())
    st.dataframe(
        table,
        hide_index=True,
        key="runs_table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "id": None,  # the selected run's id shows below the table
            "sweep": "sweep" if sweeps else None,  # no column of blanks before the first sweep
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent", width="small"),
            "rounds": None,  # the progress column says it
            "final accuracy": st.column_config.NumberColumn("final accuracy", format="percent"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
        },
    )
    _actions(store, listed)
live.rerun_when_changed(lambda: fingerprint(store.list_runs()), fingerprint(runs), RUNS_POLL_S if any(r.active for r in runs) else None)
