"""A real `serve.py` server on a run store made unusable: it starts, says on stderr in one
sentence what is wrong with which file, and serves its pages (which say the same sentence, see
tests/dashboard/test_store_fault_pages.py) instead of exiting with a traceback."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from harness import ROOT, DashboardServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for store_faults
from store_faults import filled_store, read_only, truncate

pytestmark = pytest.mark.e2e


def _make(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    if kind == "folder":
        return tmp_path
    if kind == "not a database":
        path.write_bytes(b"not SQLite at all " * 1000)
    else:
        filled_store(path, runs=4)
        truncate(path)
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [("folder", "is a folder"), ("not a database", "is not a flcore run store"), ("truncated", "is damaged or truncated")],
)
def test_the_server_starts_on_an_unusable_store_and_says_why(kind, words, tmp_path):
    path = _make(kind, tmp_path)
    log = ROOT / "test-output" / f"store-fault-{kind.replace(' ', '-')}.log"
    with DashboardServer(path, log, {"FLCORE_MAX_WORKERS": "1"}) as server, urllib.request.urlopen(server.url + "/", timeout=10) as page:
        assert page.status == 200
    text = log.read_text()
    assert "Traceback" not in text, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith("flcore: ")]
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], text[-2000:]


def test_the_server_starts_on_a_store_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    filled_store(folder / "runs.db", runs=2)
    log = ROOT / "test-output" / "store-fault-read-only-folder.log"
    with read_only(folder), DashboardServer(folder / "runs.db", log, {"FLCORE_MAX_WORKERS": "1"}):
        pass
    text = log.read_text()
    assert "Traceback" not in text and "cannot write the run store" in text, text[-2000:]
