"""Runs dispatched to Ray by the runner (FLCORE_RAY_ADDRESS=local: a Ray in this process, 2 CPUs).

A run lands in the store with the same rounds as a local one, written by this process while its
actor holds no handle on the store file; cancel stops it between rounds and ends its actor; a
lost actor (a node that died) leaves it interrupted with a sentence, and resume finishes it with
the numbers of an uninterrupted run; an error inside the actor fails the run with flcore's own
sentence; shutting the runner down stops its actors; and without Ray the runner says how to get it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import run_helpers
import torch
from run_helpers import tiny

from flcore import ray_support
from flcore.cli import main
from flcore.service.checkpoint import state_from_bytes
from flcore.service.execute import execute_run
from flcore.service.scheduler import Runner
from flcore.store import RunStore

pytestmark = pytest.mark.timeout(300)
WAIT_S = 120.0  # a Ray starts its first actors slower than a warm worker starts a run

wait_for = functools.partial(run_helpers.wait_for, timeout=WAIT_S)
wait_status = functools.partial(run_helpers.wait_status, timeout=WAIT_S)


def run_actors(ray, run_id: str) -> list[str]:
    """Names of the live actors of run `run_id` (they are named flcore-run-<id>-<suffix>)."""
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(f"flcore-run-{run_id}-")]


def seeded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["wall_time_s"])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The reference runs train in this process with one thread, as Ray's actors do (on a shared
    2-core machine two OpenMP threads mostly wait on each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.db")


@pytest.fixture
def ray_runner(local_ray, store, monkeypatch):
    monkeypatch.setenv(ray_support.ADDRESS_ENV, "local")
    runner = Runner(store.path)
    runner.start()
    yield runner
    runner.shutdown(wait=False)


def test_a_run_on_ray_stores_the_rounds_of_a_local_run_and_its_actor_never_opens_the_store(store, ray_runner, local_ray):
    config = tiny(rounds=40, num_clients=6)
    run_id = ray_runner.submit(config)
    wait_for(lambda: run_actors(local_ray, run_id) and store.get_run(run_id).rounds_done >= 1, "the run's actor and a first round")
    (name,) = run_actors(local_ray, run_id)
    actor_pid = local_ray.get(local_ray.get_actor(name, namespace=ray_support.NAMESPACE).where.remote())["pid"]
    assert actor_pid != os.getpid()
    open_files = {os.path.realpath(os.path.join(f"/proc/{actor_pid}/fd", fd)) for fd in os.listdir(f"/proc/{actor_pid}/fd")}
    assert not any(Path(f).name.startswith("runs.db") for f in open_files), open_files  # no handle on the store, its WAL or shm

    run = wait_status(store, run_id, "done", "failed", "interrupted")
    assert run.status == "done", run.error
    assert run.worker["start_method"] == "ray" and run.worker["runner_pid"] == os.getpid()
    reference = store.create_run(config, source="cli")
    assert execute_run(store, reference) == "done"  # the same config, in this process
    pd.testing.assert_frame_equal(seeded(store.rounds_frame(run_id)), seeded(store.rounds_frame(reference)))
    pd.testing.assert_frame_equal(store.clients_frame(run_id), store.clients_frame(reference))
    pd.testing.assert_frame_equal(store.partition_frame(run_id), store.partition_frame(reference))
    assert state_from_bytes(store.load_checkpoint(run_id)).round == 40
    wait_for(lambda: not run_actors(local_ray, run_id) and ray_runner.active() == {}, "the actor and the thread to end")


def test_a_run_on_ray_that_spends_its_privacy_budget_stops_and_says_why(store, ray_runner):
    config = tiny(rounds=30, num_clients=10, clients_per_round=5, dp="central", dp_noise_multiplier=1.0, dp_target_epsilon=4.0)
    run_id = ray_runner.submit(config)
    run = wait_status(store, run_id, "done", "failed", "interrupted")
    reference = store.create_run(config, source="cli")
    assert execute_run(store, reference) == "done"  # the same config, in this process
    assert run.status == "done" and run.error == store.get_run(reference).error
    assert "dp_target_epsilon=4 allows" in run.error and 0 < run.rounds_done < 30
    assert run.rounds_done == store.get_run(reference).rounds_done


def test_cancel_stops_a_run_on_ray_between_rounds_and_ends_its_actor(store, ray_runner, local_ray):
    run_id = ray_runner.submit(tiny(rounds=3000))
    wait_for(lambda: store.get_run(run_id).rounds_done >= 2, "two rounds")
    ray_runner.cancel(run_id)
    run = wait_status(store, run_id, "cancelled", "done", "failed", "interrupted")
    assert run.status == "cancelled", run.error
    assert 2 <= run.rounds_done < 3000
    assert store.rounds_frame(run_id)["round"].tolist() == list(range(1, run.rounds_done + 1))
    assert state_from_bytes(store.load_checkpoint(run_id)).round == run.rounds_done
    wait_for(lambda: not run_actors(local_ray, run_id) and ray_runner.active() == {}, "the actor and the thread to end")


def test_a_lost_actor_leaves_the_run_interrupted_and_resume_reproduces_an_uninterrupted_run(store, ray_runner, local_ray):
    config = tiny(rounds=80, strategy="fedadam")  # server state beyond the parameters travels in the checkpoint
    run_id = ray_runner.submit(config)
    wait_for(lambda: store.get_run(run_id).rounds_done >= 3, "three rounds")
    (name,) = run_actors(local_ray, run_id)
    local_ray.kill(local_ray.get_actor(name, namespace=ray_support.NAMESPACE))  # as if its node died
    run = wait_status(store, run_id, "interrupted", "failed", "done")
    assert run.status == "interrupted", run.error
    assert run.error.startswith("The run stopped: its Ray actor was lost") and "resume it to continue" in run.error
    stopped_at = run.rounds_done
    assert 3 <= stopped_at < 80 and state_from_bytes(store.load_checkpoint(run_id)).round == stopped_at

    ray_runner.resume(run_id)
    run = wait_status(store, run_id, "done", "failed", "interrupted")
    assert run.status == "done", run.error
    reference = store.create_run(config, source="cli")
    assert execute_run(store, reference) == "done"
    pd.testing.assert_frame_equal(seeded(store.rounds_frame(run_id)), seeded(store.rounds_frame(reference)))
    pd.testing.assert_frame_equal(store.clients_frame(run_id), store.clients_frame(reference))


def test_an_error_inside_the_actor_fails_the_run_with_flcores_sentence(store, ray_runner):
    # The server's settings (conftest: an empty data folder, download off) travel to the actor:
    # with the actor's own (download on) it would try the network instead.
    # Submitting is refused now (the data is missing); queued behind the check's back, as a run
    # whose files were removed after it was queued, the actor must say why it fails.
    run_id = store.create_run(tiny(dataset="mnist"))
    run = wait_status(store, run_id, "failed", "done", "interrupted")
    assert run.status == "failed"
    assert "MNIST" in run.error and "download is off" in run.error and "Traceback" not in run.error


def test_shutting_the_runner_down_stops_its_actors_and_leaves_the_runs_resumable(store, local_ray, monkeypatch):
    monkeypatch.setenv(ray_support.ADDRESS_ENV, "local")
    runner = Runner(store.path)
    runner.start()
    run_id = runner.submit(tiny(rounds=3000))
    wait_for(lambda: store.get_run(run_id).rounds_done >= 1, "a first round")
    runner.shutdown(wait=False)
    run = store.get_run(run_id)
    assert run.status == "interrupted" and run.error.startswith("The server shut down during the run")
    wait_for(lambda: not run_actors(local_ray, run_id), "the actor to end")


def test_a_sweep_runs_on_ray(store, local_ray, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(ray_support.ADDRESS_ENV, "local")
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"lr": [0.05, 0.1]}))
    small = ["--num-clients", "4", "--rounds", "2", "--model", "logistic", "--partition", "iid", "--quiet"]
    assert main(["sweep", "--grid", str(grid), "--store", str(store.path), *small]) == 0
    assert "training them on Ray (FLCORE_RAY_ADDRESS=local)" in capsys.readouterr().out
    (sweep,) = store.list_sweeps()
    runs = [store.get_run(r) for r in sweep.run_ids]
    assert sweep.statuses == {"done": 2} and {r.worker["start_method"] for r in runs} == {"ray"}


def test_without_ray_the_runner_says_how_to_install_it(store, monkeypatch):
    monkeypatch.setenv(ray_support.ADDRESS_ENV, "auto")
    monkeypatch.setattr(ray_support, "available", lambda: False)
    with pytest.raises(RuntimeError, match=r"FLCORE_RAY_ADDRESS=auto asks for runs on Ray, which is not installed; install it with"):
        Runner(store.path)
    monkeypatch.delenv(ray_support.ADDRESS_ENV)
    Runner(store.path)  # without the variable nobody needs Ray
