"""A store written by an earlier release opens with today's code and loses nothing.

`tests/fixtures/store_v1.db` was written by the first release (schema 1, commit 35c72e9): a
finished CLI run, a dashboard run cancelled after round 2 with its checkpoint, and a queued run.
Opening a copy migrates it to the latest schema in place; every run is still listed and shown,
and the cancelled run resumes to exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from flcore.cli import main
from flcore.service.checkpoint import state_from_bytes
from flcore.service.execute import execute_run
from flcore.store import MIGRATIONS, RunStore, StoreError

V1 = Path(__file__).parent / "fixtures" / "store_v1.db"


@pytest.fixture
def old_store(tmp_path) -> Path:
    path = tmp_path / "runs.db"
    shutil.copy(V1, path)
    return path


def test_the_fixture_is_a_schema_1_store():
    assert sqlite3.connect(V1).execute("PRAGMA user_version").fetchone()[0] == 1


def test_an_old_store_is_migrated_and_lists_every_run(old_store):
    store = RunStore(old_store)
    assert store.version() == len(MIGRATIONS)
    runs = {r.name: r for r in store.list_runs()}
    assert {name: (r.status, r.rounds_done, r.total_rounds) for name, r in runs.items()} == {
        "v1 finished": ("done", 4, 4),
        "v1 cancelled after round 2": ("cancelled", 2, 4),
        "v1 queued": ("queued", 0, 4),
    }
    assert all(r.worker is None for r in runs.values())  # written before workers recorded themselves
    assert all(r.sweep_id is None for r in runs.values()) and store.list_sweeps() == []  # before sweeps existed
    done = runs["v1 finished"]
    assert store.rounds_frame(done.run_id)["round"].tolist() == [1, 2, 3, 4]
    assert len(store.clients_frame(done.run_id)) == 4 * 5
    assert store.partition_frame(done.run_id)["count"].sum() > 0
    RunStore(old_store)  # opening it again migrates nothing


def test_the_cli_shows_runs_of_an_old_store(old_store, capsys):
    assert main(["runs", "--store", str(old_store)]) == 0
    listing = capsys.readouterr().out
    assert "v1 finished" in listing and "v1 cancelled after round 2" in listing
    run_id = next(r.run_id for r in RunStore(old_store).list_runs() if r.name == "v1 finished")
    assert main(["show", run_id, "--store", str(old_store)]) == 0
    assert "status: done (4/4 rounds)" in capsys.readouterr().out


def test_a_run_cancelled_under_the_old_release_resumes_to_the_uninterrupted_numbers(old_store):
    store = RunStore(old_store)
    cancelled = next(r for r in store.list_runs() if r.name == "v1 cancelled after round 2")
    assert state_from_bytes(store.load_checkpoint(cancelled.run_id)).round == 2
    store.resume(cancelled.run_id)
    assert execute_run(store, cancelled.run_id) == "done"

    reference = store.create_run(cancelled.config, source="cli")  # the same config, never interrupted
    assert execute_run(store, reference) == "done"
    timing = ["wall_time_s"]
    resumed = store.rounds_frame(cancelled.run_id).drop(columns=timing)
    # Rounds 1-2 were stored by the old release, without the simulated clock; rounds 3-4 are
    # today's, and the clock carries on from the replayed first two rounds (_same_numbers checks it).
    assert resumed.loc[resumed["round"] <= 2, "sim_clock_s"].isna().all()
    _same_numbers(resumed, store.rounds_frame(reference).drop(columns=timing))
    _same_numbers(store.clients_frame(cancelled.run_id), store.clients_frame(reference))


def _same_numbers(resumed: pd.DataFrame, whole: pd.DataFrame) -> None:
    """Equal frames, except that numbers added since the old release (e.g. client drift) are
    missing from the two rounds it stored: those columns must be equal from round 3 on."""
    old = resumed["round"] <= 2
    since = [c for c in resumed.columns if resumed.loc[old, c].isna().all()]
    assert not set(since) & {"round", "test_loss", "test_accuracy", "train_loss", "update_norm"}
    pd.testing.assert_frame_equal(resumed.drop(columns=since), whole.drop(columns=since))
    pd.testing.assert_frame_equal(resumed.loc[~old, since], whole.loc[~old, since])


def test_a_store_from_a_newer_release_is_refused_with_a_sentence(tmp_path):
    path = tmp_path / "future.db"
    RunStore(path)
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="written by a newer flcore"):
        RunStore(path)


def test_a_stored_synthetic_config_of_an_earlier_release_keeps_the_sizes_it_ran_with(old_store):
    """Synthetic's devices became power-law sized later; a stored config from before has no
    synthetic_sizes and was run with 400 samples per device."""
    import json

    with sqlite3.connect(old_store) as c:
        (run_id, text) = c.execute("SELECT run_id, config_json FROM runs WHERE name = 'v1 queued'").fetchone()
        old = {**json.loads(text), "dataset": "synthetic"}  # as the first release stored it: every field it had
        c.execute("UPDATE runs SET config_json = ? WHERE run_id = ?", (json.dumps(old), run_id))
    store = RunStore(old_store)
    config = store.get_run(run_id).config
    assert (config.dataset, config.synthetic_sizes, config.partition) == ("synthetic", "equal", old["partition"])
    fresh = store.create_run(config.replace(synthetic_sizes="powerlaw"), source="cli")
    assert store.get_run(fresh).config.synthetic_sizes == "powerlaw"  # a config stored now says what it ran with
