"""Fixtures for the dashboard tests: a real run store in a temporary directory.

`store` points $FLCORE_STORE at a fresh SQLite file for the test and tears down whatever the app
started against it (the runner cached by `st.cache_resource`, and any run still going).
Helpers that write runs and read pages are in `dashboard_helpers.py`.
"""

from __future__ import annotations

import pytest
import streamlit as st

from flcore.store import RunStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    path = tmp_path / "runs.db"
    monkeypatch.setenv("FLCORE_STORE", str(path))
    monkeypatch.setenv("FLCORE_MAX_WORKERS", "1")
    st.cache_resource.clear()
    run_store = RunStore(path)
    yield run_store
    for info in run_store.list_runs():
        if info.status in ("queued", "running"):
            run_store.request_cancel(info.run_id)
    st.cache_resource.clear()  # releases (shuts down) the runner the app started on this store
