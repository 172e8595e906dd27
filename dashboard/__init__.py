"""The Streamlit dashboard: a thin client of `flcore` (run with `streamlit run dashboard/serve.py`).

Pages live in `app_pages/`, figures in `charts/` (one module per Run page tab, plus Compare) (pure functions, no Streamlit), tables and
wording in `tables.py`, the engine-built form in `form.py`, and what the pages share (the run
store, the one background runner, page paths) in `state.py`.
"""
