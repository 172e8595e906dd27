"""Progress inside a round: executors report (clients done, clients training) as clients
finish, throttled by time, always ending at the total, and without changing a number."""

import pytest
import torch

from flcore.config import ExperimentConfig
from flcore.federation.simulation import Simulation
from flcore.models import build_model
from flcore.training import SequentialExecutor, TrainingData, VectorizedExecutor, base
from flcore.training.local import ClientTask, LocalSettings, flat_params

SETTINGS = LocalSettings(epochs=1, batch_size=5, lr=0.05, momentum=0.9, weight_decay=0.0, prox_mu=0.0)


def problem(sizes=(7, 12, 3, 9, 5)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(sizes), 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (sum(sizes),), generator=g)
    cuts = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    tasks = [ClientTask(i, torch.arange(a, b)) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", (1, 8, 8), 10)
    return model, TrainingData.holding(None, "cpu", x, y), tasks


EXECUTORS = {
    "sequential": lambda model: SequentialExecutor(model, SETTINGS, 10, seed=5),
    "vectorized": lambda model: VectorizedExecutor(model, SETTINGS, 10, seed=5, chunk_size=2),
}


@pytest.mark.parametrize("name", EXECUTORS)
def test_every_client_or_chunk_is_reported_in_order_up_to_the_total(name, monkeypatch):
    monkeypatch.setattr(base, "PROGRESS_EVERY_S", 0.0)  # no throttle: see every report
    model, data, tasks = problem()
    heard = []
    EXECUTORS[name](model).train(flat_params(model), tasks, data, 1, on_clients=lambda done, total: heard.append((done, total)))
    expected = [1, 2, 3, 4, 5] if name == "sequential" else [2, 4, 5]  # the vectorized one: chunk by chunk
    assert heard == [(d, 5) for d in expected]


@pytest.mark.parametrize("name", EXECUTORS)
def test_reports_are_throttled_but_the_total_is_always_heard(name):
    model, data, tasks = problem()
    heard = []
    EXECUTORS[name](model).train(flat_params(model), tasks, data, 1, on_clients=lambda done, total: heard.append((done, total)))
    assert heard[-1] == (5, 5) and len(heard) <= 5
    assert [d for d, _ in heard] == sorted(d for d, _ in heard)


def test_the_throttle_passes_a_call_per_interval_and_the_last(monkeypatch):
    clock = iter([0.0, 0.1, 0.3, 0.4, 0.45, 0.9, 0.95])  # the first reading starts the interval
    monkeypatch.setattr(base.time, "monotonic", lambda: next(clock))
    heard = []
    report = base.throttled(lambda done, total: heard.append(done), every_s=0.25)
    for done in range(1, 7):
        report(done, 6)
    assert heard == [2, 5, 6]  # 0.3 s and 0.9 s pass the interval; the 6th is the total
    base.throttled(None)(1, 2)  # no callback: nothing to call


@pytest.mark.parametrize("name", EXECUTORS)
def test_reporting_progress_changes_no_number(name):
    model, data, tasks = problem()
    start = flat_params(model)
    quiet = EXECUTORS[name](model).train(start, tasks, data, 1)
    told = EXECUTORS[name](model).train(start, tasks, data, 1, on_clients=lambda done, total: None)
    assert torch.equal(quiet.deltas, told.deltas) and torch.equal(quiet.train_loss, told.train_loss)


def test_a_simulation_passes_progress_to_its_executor_and_keeps_its_numbers(monkeypatch):
    monkeypatch.setattr(base, "PROGRESS_EVERY_S", 0.0)
    config = ExperimentConfig(
        dataset="digits", num_clients=6, clients_per_round=4, rounds=2, local_epochs=1, batch_size=8, executor="sequential"
    )
    heard = []
    told = [r.test_accuracy for r in Simulation(config).run(on_clients=lambda done, total: heard.append((done, total)))]
    assert heard == [(d, 4) for d in (1, 2, 3, 4)] * 2
    assert told == [r.test_accuracy for r in Simulation(config).run()]
