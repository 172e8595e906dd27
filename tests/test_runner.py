"""The runner with real spawned worker processes: completion, queueing, cancel, failure, death, resume.

Workers take a few seconds to start (they import torch), so every test polls the store with a
timeout instead of sleeping, and configs are tiny (digits, 4 clients, logistic regression).
"""

from __future__ import annotations

import itertools
import os
import signal

import pandas as pd
import pytest
import torch
from run_helpers import tiny, wait_for, wait_status

from flcore.federation.simulation import Simulation
from flcore.service.checkpoint import numerics_from_bytes, state_from_bytes
from flcore.service.execute import execute_run
from flcore.service.quotas import QuotaError
from flcore.service.scheduler import Runner
from flcore.settings import Settings
from flcore.store import RunStore

pytestmark = pytest.mark.timeout(180)


def without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["wall_time_s"])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process training in the tests uses one thread, as the runner's workers are told to here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.db")


@pytest.fixture
def make_runner(store):
    runners = []

    def make(max_workers: int = 1, **kwargs) -> Runner:
        runner = Runner(store.path, max_workers=max_workers, threads_per_worker=1, **kwargs)
        runner.start()
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.shutdown(wait=False)


def test_a_small_run_completes_with_every_round_stored(store, make_runner):
    config = tiny(rounds=3)
    run_id = make_runner().submit(config)
    run = wait_status(store, run_id, "done", "failed")
    assert run.status == "done", run.error
    assert (run.rounds_done, run.progress, run.error) == (3, 1.0, None)
    assert run.finished_at >= run.started_at >= run.created_at

    rounds, clients = store.rounds_frame(run_id), store.clients_frame(run_id)
    assert rounds["round"].tolist() == [1, 2, 3]
    assert run.final_accuracy == rounds["test_accuracy"].iloc[-1]
    assert clients.groupby("round")["client_id"].apply(list).tolist() == [[0, 1, 2, 3]] * 3
    partition = store.partition_frame(run_id)
    assert sorted(partition["client_id"].unique()) == [0, 1, 2, 3]
    evaluations = store.evaluations_frame(run_id)  # every client on its own test data, every round
    assert evaluations[["round", "client_id"]].values.tolist() == [[r, c] for r in (1, 2, 3) for c in range(4)]
    first = evaluations["round"] == 1
    # a client's samples: those it trains on and those it keeps as its own test data
    assert partition["count"].sum() == clients[clients["round"] == 1]["num_samples"].sum() + evaluations[first]["test_samples"].sum()
    assert state_from_bytes(store.load_checkpoint(run_id)).round == 3


def test_two_runs_with_one_slot_run_one_after_the_other(store, make_runner):
    runner = make_runner(max_workers=1)
    first, second = runner.submit(tiny(rounds=2)), runner.submit(tiny(rounds=2, seed=1))
    seen = set()

    def both_finished():
        statuses = (store.get_run(first).status, store.get_run(second).status)
        seen.add(statuses)
        return all(s in ("done", "failed") for s in statuses)

    wait_for(both_finished, "both runs to finish")
    a, b = store.get_run(first), store.get_run(second)
    assert (a.status, b.status) == ("done", "done"), (a.error, b.error)
    assert ("running", "running") not in seen
    assert ("running", "queued") in seen  # the second waited in the queue
    assert b.started_at >= a.finished_at


def test_cancel_stops_a_run_between_rounds_and_keeps_its_rounds(store, make_runner):
    runner = make_runner(max_workers=1)
    long_run, waiting = runner.submit(tiny(rounds=2000)), runner.submit(tiny(rounds=2))
    runner.cancel(waiting)  # a queued run is cancelled at once and never starts
    assert store.get_run(waiting).status == "cancelled"

    wait_for(lambda: store.get_run(long_run).rounds_done >= 1, "a first round")
    runner.cancel(long_run)
    run = wait_status(store, long_run, "cancelled", "done", "failed", "interrupted")
    assert run.status == "cancelled"
    assert 1 <= run.rounds_done < 2000
    assert store.rounds_frame(long_run)["round"].tolist() == list(range(1, run.rounds_done + 1))
    assert store.clients_frame(long_run)["round"].max() == run.rounds_done
    assert state_from_bytes(store.load_checkpoint(long_run)).round == run.rounds_done
    wait_for(lambda: runner.active() == {}, "the worker to exit")
    assert store.get_run(waiting).status == "cancelled" and store.get_run(waiting).started_at is None


def test_a_run_whose_worker_raises_ends_failed_with_the_message(store, make_runner, tmp_path):
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    config = tiny(dataset="mnist")
    runner = make_runner(settings=Settings(data_dir=empty, download=False))  # the worker gets the server's settings
    with pytest.raises(QuotaError, match="MNIST is not on this server"):  # submit refuses it, as the New run page does
        runner.submit(config)
    run_id = store.create_run(config)  # queued without the check (the files were there then): the worker says why it fails
    run = wait_status(store, run_id, "failed", "done")
    assert run.status == "failed"
    assert "MNIST" in run.error and "download is off" in run.error
    assert "Traceback" not in run.error
    assert store.rounds_frame(run_id).empty


def test_resume_reproduces_an_uninterrupted_run(store, make_runner):
    config = tiny(rounds=6, strategy="scaffold", client_fraction=0.5, partition="dirichlet")
    reference = store.create_run(config, source="cli")
    assert execute_run(store, reference) == "done"

    stopped = store.create_run(config, source="cli")

    def stop_after_third(result):
        if result.round == 3:
            store.request_cancel(stopped)

    assert execute_run(store, stopped, on_round=stop_after_third) == "cancelled"
    assert store.rounds_frame(stopped)["round"].tolist() == [1, 2, 3]

    make_runner().resume(stopped)  # the worker process continues from the round-3 checkpoint
    run = wait_status(store, stopped, "done", "failed", "interrupted")
    assert run.status == "done", run.error
    assert run.rounds_done == 6
    pd.testing.assert_frame_equal(without_timings(store.rounds_frame(stopped)), without_timings(store.rounds_frame(reference)))
    pd.testing.assert_frame_equal(store.clients_frame(stopped), store.clients_frame(reference))
    assert execute_run(store, stopped) == "done"  # a finished run is not trained again


def test_a_resumed_run_trains_with_the_thread_count_it_began_with(store):
    """Thread counts split reductions differently, so a run records its threads with every
    checkpoint and a resume in a process with another count (a worker's budget, another machine)
    trains with the recorded one."""
    config = tiny(rounds=4, dp="central", dp_noise_multiplier=0.3, compression="topk", error_feedback=True)
    reference = store.create_run(config, source="cli")
    assert execute_run(store, reference) == "done"  # one thread (the fixture)
    stopped = store.create_run(config, source="cli")
    assert execute_run(store, stopped, on_round=lambda r: r.round == 2 and store.request_cancel(stopped)) == "cancelled"
    assert numerics_from_bytes(store.load_checkpoint(stopped))["threads"] == 1
    store.resume(stopped)
    torch.set_num_threads(2)  # the process that resumes it has another budget
    threads = []
    assert execute_run(store, stopped, on_round=lambda r: threads.append(torch.get_num_threads())) == "done"
    assert threads == [1, 1]  # rounds 3 and 4 trained with the run's own count
    pd.testing.assert_frame_equal(without_timings(store.rounds_frame(stopped)), without_timings(store.rounds_frame(reference)))
    pd.testing.assert_frame_equal(store.clients_frame(stopped), store.clients_frame(reference))


def test_a_killed_worker_leaves_its_run_interrupted_and_resumable(store, make_runner):
    config = tiny(rounds=2000, strategy="fedadam", client_fraction=0.5)
    runner = make_runner()
    run_id = runner.submit(config)
    wait_for(lambda: store.get_run(run_id).rounds_done >= 2, "two rounds")
    os.kill(runner.active()[run_id], signal.SIGKILL)

    run = wait_status(store, run_id, "interrupted", "done", "failed")
    assert run.status == "interrupted" and "SIGKILL" in run.error
    killed_at = run.rounds_done
    assert store.rounds_frame(run_id)["round"].tolist() == list(range(1, killed_at + 1))
    assert state_from_bytes(store.load_checkpoint(run_id)).round == killed_at

    runner.resume(run_id)
    wait_for(lambda: store.get_run(run_id).rounds_done >= killed_at + 2, "two more rounds")
    runner.shutdown(wait=False)  # the server goes away: the run is interrupted again, nothing is lost
    run = store.get_run(run_id)
    assert run.status == "interrupted" and "shut down" in run.error
    n = run.rounds_done

    sim = Simulation(config)  # the same rounds computed in one go, in this process
    expected = list(itertools.islice(sim.run(), n))
    got = without_timings(store.rounds_frame(run_id))
    want = without_timings(pd.DataFrame([r.row() for r in expected]))
    pd.testing.assert_frame_equal(got, want[got.columns], check_dtype=False)
    want_clients = pd.DataFrame([row for r in expected for row in r.client_rows()])
    pd.testing.assert_frame_equal(store.clients_frame(run_id), want_clients[store.clients_frame(run_id).columns], check_dtype=False)


def test_checkpoints_round_trip_strategy_state():
    from flcore.service.checkpoint import state_to_bytes
    from flcore.strategies import ServerState

    state = ServerState(torch.arange(4.0), round=7, extra={"control": torch.ones(4), "client_controls": {3: torch.zeros(4)}}, clock_s=12.5)
    back = state_from_bytes(state_to_bytes(state))
    assert back.round == 7 and torch.equal(back.params, state.params) and back.clock_s == 12.5
    assert torch.equal(back.extra["control"], state.extra["control"])
    assert list(back.extra["client_controls"]) == [3]


def test_max_workers_default_and_setting(monkeypatch):
    from flcore.service.scheduler import default_max_workers

    monkeypatch.delenv("FLCORE_MAX_WORKERS", raising=False)
    assert default_max_workers() >= 1
    monkeypatch.setenv("FLCORE_MAX_WORKERS", "3")
    assert default_max_workers() == 3
    monkeypatch.setenv("FLCORE_MAX_WORKERS", "zero")
    with pytest.raises(ValueError, match="FLCORE_MAX_WORKERS"):
        default_max_workers()


def test_execute_run_leaves_a_run_that_is_not_queued_alone(store):
    run_id = store.create_run(tiny(), source="cli")
    assert store.claim(run_id)  # e.g. a dashboard's runner took it first
    assert execute_run(store, run_id) == "running"
    assert store.rounds_frame(run_id).empty
    with pytest.raises(LookupError, match="no run"):
        execute_run(store, "missing")


def test_a_worker_stores_how_many_of_the_rounds_clients_trained(store, monkeypatch):
    from flcore.service import execute
    from flcore.training import base

    monkeypatch.setattr(base, "PROGRESS_EVERY_S", 0.0)  # every client reports ...
    monkeypatch.setattr(execute, "PROGRESS_S", 0.0)  # ... and every report but a round's last is stored
    run_id = store.create_run(tiny(executor="sequential", num_clients=5, clients_per_round=4, rounds=2), source="cli")
    stored, heard = [], []
    write = store.set_round_progress

    def set_round_progress(*args):
        write(*args)
        stored.append(store.get_run(run_id).training)

    monkeypatch.setattr(store, "set_round_progress", set_round_progress)
    assert execute_run(store, run_id, on_clients=lambda done, total: heard.append((done, total))) == "done"
    assert [(p.round, p.done, p.total) for p in stored] == [(r, d, 4) for r in (1, 2) for d in (1, 2, 3)]
    assert heard == [(d, 4) for d in (1, 2, 3, 4)] * 2  # the caller hears every report, the last too
    assert store.get_run(run_id).training is None  # done: nothing is training


# Warm workers and the CPU budget ----------------------------------------------------------------
def test_a_run_starts_in_a_warm_worker_that_inherited_nothing_it_should_not(store, make_runner):
    """The worker is forked from the forkserver, which imported flcore and torch once: it needs
    no new interpreter, and it starts with one thread (none of the server's), no CUDA state,
    the budget's torch threads and a lower priority."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no forkserver; workers are spawned there (tested below)")
    runner = make_runner()
    assert runner.start_method == "forkserver"
    run_id = runner.submit(tiny(rounds=2))
    run = wait_status(store, run_id, "done", "failed")
    assert run.status == "done", run.error
    worker = run.worker
    assert worker["start_method"] == "forkserver"
    assert worker["warm"] is True  # flcore.service.warm was imported by another process: the forkserver
    assert worker["pid"] != os.getpid()
    assert worker["parent_pid"] != os.getpid()  # forked from the forkserver, a fresh interpreter, not from us
    assert worker["python_threads"] == 1  # the server's (here: the test's) threads did not come along
    assert worker["cuda_initialized"] is False
    assert (worker["threads"], worker["interop_threads"]) == (runner.budget.threads, 1)
    assert worker["nice"] >= runner.budget.nice


def test_a_spawned_worker_works_where_there_is_no_forkserver(store):
    runner = Runner(store.path, max_workers=1, threads_per_worker=1, start_method="spawn")
    with runner:
        run_id = runner.submit(tiny(rounds=1))
        run = wait_status(store, run_id, "done", "failed")
    assert run.status == "done", run.error
    assert run.worker["start_method"] == "spawn" and run.worker["warm"] is False
    with pytest.raises(ValueError, match="start_method='fork'"):
        Runner(store.path, start_method="fork")


def test_the_cpu_budget_keeps_a_core_for_the_server_and_splits_the_rest(monkeypatch):
    from flcore.service.budget import CpuBudget

    for name in ("FLCORE_MAX_WORKERS", "FLCORE_WORKER_THREADS", "FLCORE_WORKER_NICE"):
        monkeypatch.delenv(name, raising=False)
    plans = {cores: CpuBudget.plan(cores=cores) for cores in (1, 2, 4, 8, 16)}
    assert [(b.max_workers, b.threads) for b in plans.values()] == [(1, 1), (1, 1), (1, 3), (3, 2), (7, 2)]
    for cores, budget in plans.items():
        assert budget.max_workers * budget.threads <= max(1, cores - 1)  # never more threads than the spare cores
        assert budget.nice == 10
    assert plans[2].describe() == "2 cores: 1 run at a time, 1 torch thread each, at nice 10"

    monkeypatch.setenv("FLCORE_WORKER_THREADS", "4")
    monkeypatch.setenv("FLCORE_WORKER_NICE", "0")
    assert (CpuBudget.plan(cores=2).threads, CpuBudget.plan(cores=2).nice) == (4, 0)
    assert CpuBudget.plan(cores=2, threads=2).threads == 2  # an argument wins over the environment
    monkeypatch.setenv("FLCORE_WORKER_NICE", "25")
    with pytest.raises(ValueError, match=r"FLCORE_WORKER_NICE='25' must be a whole number from 0 to 19"):
        CpuBudget.plan()
    with pytest.raises(ValueError, match="max_workers=0 must be at least 1"):
        CpuBudget.plan(max_workers=0, nice=0)


def test_the_budget_sets_torch_threads_and_priority_in_the_process_that_applies_it():
    """`apply` runs in a fresh process here, as in a worker (it lowers that process's priority)."""
    import subprocess
    import sys

    code = (
        "from flcore.service.budget import CpuBudget; import torch, json, os;"
        "print(json.dumps(CpuBudget(cores=2, max_workers=1, threads=2, nice=5).apply()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    applied = __import__("json").loads(out)
    assert applied["threads"] == 2 and applied["interop_threads"] == 1
    assert applied["nice"] >= 5
