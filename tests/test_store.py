"""The run store on its own: statuses, one-transaction rounds, frames, staleness (no workers)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from flcore.config import ExperimentConfig
from flcore.data.partition import counts_frame
from flcore.federation.simulation import ClientResult, RoundResult
from flcore.records import CLIENT_COLUMNS, ROUND_COLUMNS, Offline, names
from flcore.store import FINISHED, STATUSES, RunNotRunning, RunStore, default_store_path
from flcore.store import runs as store_module  # the lifecycle part holds STALE_AFTER_S


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.db")


@pytest.fixture
def config():
    return ExperimentConfig.create(dataset="digits", num_clients=3, rounds=4, model="logistic", partition="iid")


def make_round(round_: int, clients=(0, 2), metrics=None) -> RoundResult:
    return RoundResult(
        round=round_,
        sampled_clients=tuple(clients),
        clients=tuple(ClientResult(c, 10 + c, 3, 0.5 / round_ + c, 0.25 * c, 1.5 + c, malicious=c == 2) for c in clients),
        test_loss=1.0 / round_,
        test_accuracy=0.1 * round_,
        wall_time_s=0.01,
        bytes_sent=100,
        bytes_received=200,
        metrics={"krum_selected": 2.0} if metrics is None else metrics,
    )


def test_default_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FLCORE_STORE", str(tmp_path / "x.db"))
    assert default_store_path() == tmp_path / "x.db"
    monkeypatch.delenv("FLCORE_STORE")
    assert default_store_path().name == "runs.db"


def test_the_database_is_in_wal_mode(store):
    assert sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    RunStore(store.path)  # opening an existing store again is fine


def test_a_new_run_is_queued_with_its_config(store, config):
    run_id = store.create_run(config, source="cli")
    run = store.get_run(run_id)
    assert run.status == "queued" and run.config == config and run.source == "cli"
    assert (run.rounds_done, run.total_rounds, run.progress) == (0, 4, 0.0)
    assert run.name == "digits · iid · fedavg · 3 clients"
    assert run.error is None and run.started_at is None and run.final_accuracy is None
    assert store.get_run("nope") is None
    assert STATUSES[0] == "queued" and set(FINISHED) < set(STATUSES)


def test_runs_list_newest_first_and_queue_oldest_first(store, config):
    ids = [store.create_run(config.replace(name=f"r{i}")) for i in range(3)]
    assert [r.run_id for r in store.list_runs()] == ids[::-1]
    assert store.queued() == ids
    assert store.claim(ids[0]) and not store.claim(ids[0])  # only one claimant wins
    assert store.queued() == ids[1:]


def test_a_round_is_stored_with_its_clients_and_checkpoint(store, config):
    run_id = store.create_run(config)
    store.claim(run_id)
    store.append_round(run_id, make_round(1), checkpoint=b"state-1")
    store.append_round(run_id, make_round(2, metrics={}), checkpoint=b"state-2")

    rounds = store.rounds_frame(run_id)
    assert list(rounds.columns) == [*names(ROUND_COLUMNS), "krum_selected"]
    assert rounds["round"].tolist() == [1, 2]
    assert rounds["test_accuracy"].tolist() == [0.1, 0.2]
    assert rounds["mean_train_loss"].tolist() == [make_round(1).row()["mean_train_loss"], make_round(2).row()["mean_train_loss"]]
    assert rounds["krum_selected"].iloc[0] == 2.0 and np.isnan(rounds["krum_selected"].iloc[1])

    clients = store.clients_frame(run_id)
    assert list(clients.columns) == names(CLIENT_COLUMNS)
    expected = pd.DataFrame([row for r in (1, 2) for row in make_round(r, metrics={}).client_rows()])[names(CLIENT_COLUMNS)]
    pd.testing.assert_frame_equal(clients, expected, check_dtype=False)
    assert clients["malicious"].dtype == bool and clients["malicious"].tolist() == [False, True, False, True]

    run = store.get_run(run_id)
    assert (run.rounds_done, run.progress, run.final_accuracy) == (2, 0.5, 0.2)
    assert store.load_checkpoint(run_id) == b"state-2"


def test_client_statuses_and_offline_clients_are_stored_and_read_back(store, config):
    run_id = store.create_run(config)
    store.claim(run_id)
    nan = float("nan")
    clients = (
        ClientResult(0, 10, 3, 0.5, 0.25, 1.5, malicious=False, status="partial", metrics={"sim_compute_s": 2.0}),
        ClientResult(1, 11, 0, nan, nan, nan, malicious=False, status="dropped"),
    )
    first = dataclasses.replace(make_round(1, clients=(0, 1)), clients=clients, offline=Offline(1, (0, 0, 1)))
    store.append_round(run_id, first)
    store.append_round(run_id, make_round(2))  # everyone online: nothing stored
    store.append_round(run_id, dataclasses.replace(make_round(3), offline=Offline(1, (1, 0, 0))))

    frame = store.clients_frame(run_id)
    assert frame["status"].tolist() == ["partial", "dropped", "trained", "trained", "trained", "trained"]
    assert frame["num_steps"].tolist()[:2] == [3, 0] and np.isnan(frame["train_loss"].iloc[1])
    assert frame["sim_compute_s"].iloc[0] == 2.0 and np.isnan(frame["sim_compute_s"].iloc[1])
    assert store.rounds_frame(run_id)["mean_train_loss"].iloc[0] == 0.5  # over the clients whose update arrived
    offline = store.offline_frame(run_id)
    assert offline["round"].tolist() == [1, 3] and offline["group"].tolist() == [1, 1]
    assert offline["counts"].tolist() == [[0, 0, 1], [1, 0, 0]]
    assert store.offline_frame(run_id, after=1)["round"].tolist() == [3]
    store.discard_rounds_after(run_id, 2)
    assert store.offline_frame(run_id)["round"].tolist() == [1]


def test_a_round_is_one_transaction(store, config):
    run_id = store.create_run(config)
    store.claim(run_id)
    store.append_round(run_id, make_round(1), checkpoint=b"state-1")
    with pytest.raises(sqlite3.IntegrityError):  # the second client row collides: nothing of round 2 stays
        store.append_round(run_id, make_round(2, clients=(0, 0)), checkpoint=b"state-2")
    assert store.rounds_frame(run_id)["round"].tolist() == [1]
    assert store.clients_frame(run_id)["round"].unique().tolist() == [1]
    assert store.get_run(run_id).rounds_done == 1
    assert store.load_checkpoint(run_id) == b"state-1"


def test_rounds_are_refused_once_a_run_is_no_longer_running(store, config):
    run_id = store.create_run(config)
    with pytest.raises(RunNotRunning):  # still queued
        store.append_round(run_id, make_round(1))
    store.claim(run_id)
    store.finish(run_id, "interrupted", "gone")
    with pytest.raises(RunNotRunning):
        store.append_round(run_id, make_round(1))
    assert store.rounds_frame(run_id).empty and list(store.rounds_frame(run_id).columns) == names(ROUND_COLUMNS)


def test_cancel_a_queued_run_at_once_and_flag_a_running_one(store, config):
    queued, running = store.create_run(config), store.create_run(config)
    store.claim(running)
    store.request_cancel(queued)
    store.request_cancel(running)
    assert store.get_run(queued).status == "cancelled" and store.get_run(queued).finished_at is not None
    assert store.get_run(running).status == "running" and store.cancel_requested(running)
    store.finish(running, "cancelled")
    store.request_cancel(running)  # a finished run stays as it is
    assert store.get_run(running).status == "cancelled"


def test_finish_records_status_and_error(store, config):
    run_id = store.create_run(config)
    store.claim(run_id)
    store.finish(run_id, "failed", "MNIST is not in /x and download is off.")
    run = store.get_run(run_id)
    assert run.status == "failed" and run.error.startswith("MNIST") and run.finished_at >= run.started_at
    with pytest.raises(ValueError, match="does not end a run"):
        store.finish(run_id, "running")


def test_resume_requeues_and_keeps_rounds(store, config):
    run_id = store.create_run(config)
    store.claim(run_id)
    store.append_round(run_id, make_round(1), checkpoint=b"s1")
    store.request_cancel(run_id)
    store.finish(run_id, "cancelled")
    store.resume(run_id)
    run = store.get_run(run_id)
    assert run.status == "queued" and not run.cancel_requested and run.error is None and run.rounds_done == 1
    assert store.rounds_frame(run_id)["round"].tolist() == [1] and store.load_checkpoint(run_id) == b"s1"
    store.resume(run_id)  # resuming a queued run changes nothing
    assert store.queued() == [run_id]


def test_discarding_rounds_past_a_checkpoint(store, config):
    run_id = store.create_run(config)
    store.claim(run_id)
    for r in (1, 2, 3):
        store.append_round(run_id, make_round(r))
    store.discard_rounds_after(run_id, 1)
    assert store.rounds_frame(run_id)["round"].tolist() == [1]
    assert store.clients_frame(run_id)["round"].unique().tolist() == [1]
    assert (store.get_run(run_id).rounds_done, store.get_run(run_id).final_accuracy) == (1, 0.1)


def test_every_clients_evaluation_is_stored_with_its_round_and_rewound_with_it(store, config):
    from flcore.records import EVALUATION_COLUMNS, ClientEvaluation

    run_id = store.create_run(config)
    store.claim(run_id)
    nan = float("nan")
    for r in (1, 2, 3):
        evaluations = (ClientEvaluation(0, 4, 0.5, 0.25 * r, nan, nan), ClientEvaluation(1, 0, nan, nan, nan, nan))
        if r == 2:  # a round that did not evaluate the clients
            evaluations = ()
        store.append_round(run_id, dataclasses.replace(make_round(r), evaluations=evaluations))
    frame = store.evaluations_frame(run_id)
    assert list(frame.columns) == names(EVALUATION_COLUMNS) and frame["round"].tolist() == [1, 1, 3, 3]
    assert frame["test_accuracy"].tolist()[::2] == [0.25, 0.75] and frame["personal_accuracy"].isna().all()
    assert frame.dtypes["test_samples"] == "int64" and frame.dtypes["personal_loss"] == "float64"
    assert store.evaluations_frame(run_id, after=1)["round"].tolist() == [3, 3]
    store.discard_rounds_after(run_id, 1)
    assert store.evaluations_frame(run_id)["round"].tolist() == [1, 1]
    store.delete_run(run_id)
    assert store.evaluations_frame(run_id).empty


def test_partition_frame(store, config):
    run_id = store.create_run(config)
    empty = store.partition_frame(run_id)
    assert empty.empty and list(empty.columns) == ["client_id", "label", "count"]
    counts = np.array([[3, 0, 1], [0, 2, 5]])
    store.save_partition(run_id, counts)
    pd.testing.assert_frame_equal(store.partition_frame(run_id), counts_frame(counts))
    np.testing.assert_array_equal(store.label_counts(run_id), counts)


def test_delete_removes_every_row(store, config):
    run_id, other = store.create_run(config), store.create_run(config)
    store.claim(run_id)
    store.save_partition(run_id, np.ones((3, 2)))
    store.append_round(run_id, make_round(1), checkpoint=b"s")
    store.delete_run(run_id)
    assert store.get_run(run_id) is None and [r.run_id for r in store.list_runs()] == [other]
    assert store.rounds_frame(run_id).empty and store.clients_frame(run_id).empty
    assert store.partition_frame(run_id).empty and store.load_checkpoint(run_id) is None
    with pytest.raises(RunNotRunning):  # a worker still on it stops
        store.append_round(run_id, make_round(2))


def test_each_part_owns_its_tables_and_a_deletion_spans_them_in_one_transaction(store, config):
    import inspect
    import pickle
    import re

    from flcore.store import Results, Runs, Sweeps

    parts = {store.runs: Runs, store.sweeps: Sweeps, store.run_results: Results}
    tables = {r[0] for r in store._query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert sorted(t for cls in parts.values() for t in cls.TABLES) == sorted(tables)  # every table has one owner
    for part, cls in parts.items():
        assert part.db is store.db  # one file, one Database
        sql = inspect.getsource(inspect.getmodule(cls))
        named = set(re.findall(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([a-z_]+)", sql)) | set(re.findall(r"column\(\"([a-z_]+)\"", sql))
        assert named <= set(cls.TABLES), f"{cls.__name__} names another part's tables: {sorted(named - set(cls.TABLES))}"

    sweep_id, (run_id,) = store.create_sweep("one", {"lr": [0.1]}, [config])
    store.claim(run_id)
    store.save_partition(run_id, np.ones((3, 2)))
    store.append_round(run_id, make_round(1), checkpoint=b"s")

    def fail(c, run_id, sweep_id):  # a part that fails to delete its rows ...
        raise RuntimeError("disk on fire")

    store.runs.on_delete(fail)
    with pytest.raises(RuntimeError, match="on fire"):
        store.delete_run(run_id)
    assert store.get_run(run_id) is not None and store.get_sweep(sweep_id) is not None  # ... deletes nothing
    assert len(store.rounds_frame(run_id)) == 1 and store.load_checkpoint(run_id) == b"s"

    again = pickle.loads(pickle.dumps(store))  # rebuilt over the same file, with its parts
    again.delete_run(run_id)
    assert again.get_run(run_id) is None and again.get_sweep(sweep_id) is None and again.list_sweeps() == []
    assert again.rounds_frame(run_id).empty and again.partition_frame(run_id).empty and again.load_checkpoint(run_id) is None


def test_stale_runs_are_interrupted_but_live_ones_are_not(store, config, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone, alive = store.create_run(config), store.create_run(config)
    for run_id, pid in ((gone, dead.pid), (alive, os.getpid())):
        store.claim(run_id)
        store.mark_running(run_id, pid)

    assert store.mark_stale_interrupted() == [gone]
    assert store.get_run(gone).status == "interrupted" and "resume" in store.get_run(gone).error
    assert store.get_run(alive).status == "running"  # e.g. another server's live worker

    monkeypatch.setattr(store_module, "STALE_AFTER_S", -1.0)  # its heartbeat is now too old
    assert store.mark_stale_interrupted() == [alive]


def test_threads_write_concurrently(store, config):
    ids = [store.create_run(config) for _ in range(4)]
    for run_id in ids:
        store.claim(run_id)

    def write(run_id):
        for r in range(1, 21):
            store.append_round(run_id, make_round(r))

    threads = [threading.Thread(target=write, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [store.get_run(i).rounds_done for i in ids] == [20] * 4
    assert all(len(store.clients_frame(i)) == 40 for i in ids)


def test_a_rounds_progress_is_stored_and_shown_only_for_the_round_training(store, config):
    run_id = store.create_run(config)
    store.set_round_progress(run_id, 1, 2, 3)  # not running yet: nothing is written
    assert store.get_run(run_id).round_progress is None
    store.claim(run_id)
    store.set_round_progress(run_id, 1, 2, 3)
    info = store.get_run(run_id)
    assert info.round_progress == info.training and (info.training.round, info.training.done, info.training.total) == (1, 2, 3)
    store.append_round(run_id, make_round(1), b"state")
    assert store.get_run(run_id).training is None  # the report is about a round already stored
    store.set_round_progress(run_id, 2, 1, 3)
    assert store.get_run(run_id).training.round == 2
    store.finish(run_id, "interrupted", "stopped")
    assert store.get_run(run_id).training is None  # only a running run trains
    store.resume(run_id)
    store.claim(run_id)
    assert store.get_run(run_id).round_progress is None  # a new worker starts without its predecessor's word


def test_reading_a_store_whose_first_writer_has_not_built_its_tables_says_it_is_empty(tmp_path):
    from flcore.store import StoreError

    path = tmp_path / "runs.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchall()  # a file, no schema yet (version 0)
    assert path.stat().st_size > 0
    with pytest.raises(StoreError, match="is empty; runs are stored there once one is started"):
        RunStore(path, readonly=True)
    with pytest.raises(StoreError, match="there is no run store at"):
        RunStore(tmp_path / "none.db", readonly=True)
    assert RunStore(path).list_runs() == []  # the writer builds the tables; then readers read them
    assert RunStore(path, readonly=True).list_runs() == []
