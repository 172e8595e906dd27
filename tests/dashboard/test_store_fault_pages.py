"""The pages on a run store made unusable in each common way: every page says, in one sentence,
what is wrong with which file and what to do; none shows a traceback or Streamlit's error box.
(The server's start-up on such a store is tested against a real server in tests/e2e/test_store_fault_server.py.)"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import streamlit as st
from dashboard_helpers import app, errors, texts

from dashboard import state

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for store_faults
from store_faults import corrupt_middle, filled_store, read_only, truncate

PAGES = (state.NEW_RUN_PAGE, state.RUNS_PAGE, state.COMPARE_PAGE, state.RUN_PAGE)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    path = tmp_path_factory.mktemp("whole") / "runs.db"
    return path, filled_store(path)


@pytest.fixture
def use_store(monkeypatch):
    """Point the app at a store file; forget every cached store and runner before and after."""

    def use(path: Path) -> Path:
        monkeypatch.setenv("FLCORE_STORE", str(path))
        monkeypatch.setenv("FLCORE_MAX_WORKERS", "1")
        st.cache_resource.clear()
        return path

    yield use
    st.cache_resource.clear()


def every_page(path: Path) -> list:
    """Each page opened on the store at `path`, checked for no exception; the pages."""
    opened = []
    for name in PAGES:
        at = app()
        at.run()
        at.switch_page(name)
        at.run()
        assert not at.exception, (name, [e.message for e in at.exception])
        opened.append(at)
    return opened


def says_on_every_page(path: Path, words: str) -> None:
    for at in every_page(path):
        sentences = [e for e in errors(at) if str(path) in e]
        assert len(sentences) == 1 and words.lower() in sentences[0].lower(), errors(at)
        assert sentences[0].endswith(".") and sentences[0][0].isupper()


def test_a_truncated_store_is_said_on_every_page(whole, tmp_path, use_store):
    path = use_store(tmp_path / "runs.db")
    shutil.copy(whole[0], path)
    truncate(path)
    says_on_every_page(path, "is damaged or truncated")


def test_a_file_that_is_not_a_store_is_said_on_every_page(tmp_path, use_store):
    path = use_store(tmp_path / "runs.db")
    path.write_bytes(b"\x00garbage, not SQLite" * 500)
    says_on_every_page(path, "is not a flcore run store: it is not an SQLite file")


def test_a_folder_as_the_store_is_said_on_every_page(tmp_path, use_store):
    path = use_store(tmp_path)
    says_on_every_page(path, "is a folder")


def test_a_store_in_a_read_only_folder_is_said_on_every_page(whole, tmp_path, use_store):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = use_store(folder / "runs.db")
    shutil.copy(whole[0], path)
    with read_only(folder):
        says_on_every_page(path, "cannot write the run store")


def test_a_damaged_store_is_said_and_its_readable_runs_still_listed(whole, tmp_path, use_store):
    path = use_store(tmp_path / "runs.db")
    shutil.copy(whole[0], path)
    corrupt_middle(path)
    for at in every_page(path):
        assert any(f"The run store {path} is damaged: SQLite's integrity check found" in w for w in texts(at).splitlines())
    runs = every_page(path)[1]
    shown = texts(runs) + str([df.value for df in runs.dataframe])
    assert sum(f"run {i}" in shown for i in range(12)) >= 1  # what can be read is still listed


def test_pressing_run_on_a_read_only_store_file_says_why_in_a_sentence(whole, tmp_path, use_store):
    path = use_store(tmp_path / "runs.db")
    shutil.copy(whole[0], path)
    with read_only(path):
        at = app()
        at.run()
        at.button(key="run_button").click().run()
        assert not at.exception, [e.message for e in at.exception]
        sentences = [e for e in errors(at) if str(path) in e]
        assert sentences and "Nothing was queued: cannot write the run store" in sentences[0] and "permissions" in sentences[0]
