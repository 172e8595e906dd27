"""The pages: `streamlit run dashboard/serve.py` (or, on a laptop, `streamlit run dashboard/app.py`).

Finds who is signing in (`access.current_user`: the sign-in screen until someone is), declares
the four pages with `st.navigation` (New run, Runs, Run, Compare), makes sure the one background
runner of this server process is started (`serve.py` starts it with the server already), and
runs the chosen page, timed where the operator asked (`state.page_timer`). A run store that
cannot be used is said in one sentence on every page instead (its file, what is wrong, what to do); one that SQLite finds damaged is said above it. The Run page's URL carries the run id (`/run?run=<id>`), so a reload or
another browser opens the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))


def main() -> None:
    from dashboard import state

    with state.page_timer() as timer:
        _draw(timer)


def _draw(timer) -> None:
    import streamlit as st

    from dashboard import access, state

    st.set_page_config(page_title="Federated learning simulator", page_icon=":material/hub:", layout="wide")
    user = access.current_user()
    pages = [
        st.Page(state.NEW_RUN_PAGE, title="New run", icon=":material/add_circle:", url_path="new", default=True),
        st.Page(state.RUNS_PAGE, title="Runs", icon=":material/list:", url_path="runs"),
        st.Page(state.RUN_PAGE, title="Run", icon=":material/monitoring:", url_path="run"),
        st.Page(state.COMPARE_PAGE, title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    ]
    page = st.navigation(pages)
    timer.page = page.title
    with st.sidebar:
        st.caption("Federated learning simulator: runs train in the background; close the tab and come back any time.")
        access.sign_out_control(user)
    from flcore.store import StoreError

    problem = state.store_problem()  # a file that cannot be used: every page says why, in one sentence
    if problem:
        st.error(access.plain(problem[0].upper() + problem[1:] + "."), icon=":material/database:")
        st.stop()
    damage = state.store_damage()
    if damage:
        st.warning(access.plain(damage[0].upper() + damage[1:] + "."), icon=":material/database:")
    try:
        state.get_runner()
    except Exception as err:  # the pages still show stored runs; submitting says what is wrong
        st.sidebar.error(f"The background runner could not start: {err}")
    try:
        page.run()
    except StoreError as err:  # the file became full, read-only or damaged under a page: a sentence, not a traceback
        st.error(access.plain(str(err)[0].upper() + str(err)[1:] + "."), icon=":material/database:")


# Streamlit runs this file as __main__. A worker process started with the spawn method imports
# it again as __mp_main__ (Streamlit registers the script as the main module); the guard, and
# the imports inside main(), keep that import from drawing pages, starting a second runner
# inside the worker, or even importing Streamlit there.
if __name__ == "__main__":
    main()
