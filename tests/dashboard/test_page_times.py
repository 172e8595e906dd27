"""What each page costs the server, recorded where the operator asks ($FLCORE_PAGE_TIMES,
read by benchmarks/load.py), and the start-up warm-up that keeps the first New run quick."""

from __future__ import annotations

import json

from dashboard_helpers import no_exceptions, page, record_run

from dashboard import state
from flcore.service import quotas


def test_each_page_drawn_is_recorded_with_its_seconds_and_cpu_seconds(store, tmp_path, monkeypatch):
    times = tmp_path / "page-times.jsonl"
    monkeypatch.setenv("FLCORE_PAGE_TIMES", str(times))
    run_id = record_run(store)
    for path, query in (("app_pages/runs.py", {}), ("app_pages/run.py", {"run": run_id}), ("app_pages/compare.py", {})):
        no_exceptions(page(path, **query))
    entries = state.read_page_times(times)
    assert entries == [json.loads(line) for line in times.read_text().splitlines()]  # every line, in order
    assert {e["page"] for e in entries} == {"New run", "Runs", "Run", "Compare"}  # page() opens the default page first
    for entry in entries:
        assert set(entry) == {"page", "at", "seconds", "cpu_seconds"}
        assert entry["seconds"] > 0 and entry["cpu_seconds"] >= 0


def test_a_page_times_file_that_cannot_be_written_is_said_once_and_pages_still_draw(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLCORE_PAGE_TIMES", str(tmp_path))  # a folder: opening it to append fails
    monkeypatch.setattr(state, "_page_times_problem", None)
    at = page("app_pages/runs.py")
    no_exceptions(at)
    at.run()
    said = [line for line in capsys.readouterr().err.splitlines() if "FLCORE_PAGE_TIMES" in line]
    assert len(said) == 1 and str(tmp_path) in said[0]


def test_nothing_is_recorded_unless_the_operator_asks(store, tmp_path, monkeypatch):
    monkeypatch.delenv("FLCORE_PAGE_TIMES", raising=False)
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    no_exceptions(page("app_pages/runs.py"))
    assert list(folder.iterdir()) == []


def test_the_warm_up_estimates_the_default_runs_cost_before_anyone_asks(store):
    quotas._forward_flop.cache_clear()
    state.warm_up_pages()
    assert quotas._forward_flop.cache_info().currsize == 1
