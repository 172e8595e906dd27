"""The `ray` executor on a local Ray gives the vectorized executor's numbers.

Two simulated rounds of every registered strategy (SCAFFOLD's corrections are non-zero in the
second), attacks (label flipping, which changes what the actors train, and update poisoning),
stragglers' partial work (FedAvg and FedNova), and FedProx with momentum and weight decay, each against the same config on the vectorized
executor; a model the vectorized executor cannot batch (trained sequentially inside the
actors) on tensors shipped through the object store; actors that live across rounds and end
with the run; a lost actor; and the sentence that refuses `executor='ray'` without Ray.

Starting actors costs about two seconds, so the strategy and attack cases share one executor
(their local training settings are the same: a strategy and an attack do not change what a
client trains); FedProx, which changes the local objective, builds its own through the registry.
The local Ray has 2 CPUs and each actor takes one, so a test stops its actors before it ends.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from flcore import ray_support
from flcore.config import ConfigError, ExperimentConfig
from flcore.federation.simulation import Simulation
from flcore.strategies import STRATEGIES
from flcore.training import SequentialExecutor, TrainingData, supports
from flcore.training.local import ClientTask, flat_params
from flcore.training.objective import LocalSettings
from flcore.training.ray_executor import RayExecutor, split_tasks

ATOL = 1e-5
BASE = dict(dataset="digits", partition="dirichlet", alpha=0.5, num_clients=12, clients_per_round=7, model="mlp", batch_size=32, rounds=2)


def config(**changes) -> ExperimentConfig:
    return ExperimentConfig.create(**{**BASE, **changes})


def assert_same_rounds(ray_rounds, vec_rounds):
    assert len(ray_rounds) == len(vec_rounds) == 2
    for r, v in zip(ray_rounds, vec_rounds):
        assert r.sampled_clients == v.sampled_clients
        assert r.test_loss == pytest.approx(v.test_loss, abs=ATOL) and r.test_accuracy == pytest.approx(v.test_accuracy, abs=ATOL)
        assert torch.allclose(r.state.params, v.state.params, atol=ATOL), (r.state.params - v.state.params).abs().max()
        for a, b in zip(r.clients, v.clients):
            assert (a.client_id, a.num_samples, a.num_steps, a.malicious, a.status) == (
                b.client_id,
                b.num_samples,
                b.num_steps,
                b.malicious,
                b.status,
            )
            # NaN for a client that did not train (dropped out, late)
            assert a.train_loss == pytest.approx(b.train_loss, abs=ATOL, nan_ok=True)
            assert a.update_norm == pytest.approx(b.update_norm, abs=1e-4, nan_ok=True)
        for key, value in v.metrics.items():
            assert r.metrics[key] == pytest.approx(value, abs=1e-4, nan_ok=True), key


def two_rounds(sim: Simulation) -> list:
    """Two rounds through `step` (not `run`, whose end would close a shared executor)."""
    state, out = sim.initial_state(), []
    for _ in range(2):
        state, result = sim.step(state)
        out.append(result)
    return out


# Splitting a round -----------------------------------------------------------------------------
def test_split_tasks_is_a_balanced_disjoint_cover():
    sizes = [50, 10, 10, 10, 10, 10, 3]
    shares = split_tasks(sizes, 2)
    assert sorted(i for s in shares for i in s) == list(range(len(sizes)))
    assert [sum(sizes[i] for i in s) for s in shares] == [53, 50]
    assert all(s == sorted(s) for s in shares)
    assert split_tasks(sizes, 2) == shares  # a function of the sizes alone
    assert split_tasks([5, 5], 4) == [[0], [1]]  # never an empty share
    with pytest.raises(ValueError, match="parts=0"):
        split_tasks([1], 0)


# The numbers -----------------------------------------------------------------------------------
CASES = [dict(strategy=s) for s in STRATEGIES.names()] + [
    dict(strategy="fedavg", attack="label_flip", attack_fraction=0.3),
    dict(strategy="krum", attack="sign_flip", attack_fraction=0.3),
    dict(strategy="median", attack="gaussian_noise", attack_fraction=0.3),
    # clients that come and go: stragglers send partial work (a step limit on their task)
    dict(strategy="fedavg", stragglers=0.6, straggler_policy="partial", dropout=0.2, availability=0.8),
    dict(strategy="fednova", stragglers=0.6, straggler_policy="partial"),
]


def test_every_strategy_and_attack_matches_the_vectorized_executor(local_ray):
    assert {"scaffold", "krum", "median", "fedadam"} <= set(STRATEGIES.names())
    shared = Simulation(config(executor="ray", ray_actors=2)).executor
    shared_settings = LocalSettings.from_config(shared.config)
    actors = []
    try:
        for case in CASES:
            sim = Simulation(config(executor="ray", ray_actors=2, **case))
            assert LocalSettings.from_config(sim.config) == shared_settings  # what the shared actors train with
            sim.executor = shared
            expected = two_rounds(Simulation(config(executor="vectorized", **case)))
            got = two_rounds(sim)
            try:
                assert_same_rounds(got, expected)
            except AssertionError as err:
                raise AssertionError(f"{case}: {err}") from None
            if case.get("attack") == "label_flip":
                assert any(c.malicious for r in got for c in r.clients)
            if case.get("straggler_policy") == "partial":
                assert any(c.status == "partial" and c.num_steps for r in got for c in r.clients)
            actors = actors or list(shared._actors)
            assert shared._actors == actors  # the same actors, round after round
        assert len(shared.placement) == 2 and len({p["pid"] for p in shared.placement}) == 2

        # Rows come back in task order, though shares are dealt largest first.
        sim = Simulation(config(executor="vectorized"))
        tasks = [ClientTask(c, sim._part_tensors[c]) for c in (5, 0, 3, 9, 1)]
        start = flat_params(sim.model)
        got, expected = shared.train(start, tasks, sim.data, 1), sim.executor.train(start, tasks, sim.data, 1)
        assert torch.allclose(got.deltas, expected.deltas, atol=ATOL)
        assert got.num_samples.tolist() == [len(t.indices) for t in tasks]
        assert [f.name for f in dataclasses.fields(got)] == [f.name for f in dataclasses.fields(expected)]
    finally:
        shared.close()


def test_fedprox_with_momentum_and_weight_decay_matches_through_the_registry(local_ray):
    """Also: stragglers send partial work; the run's actors live across its rounds and are stopped when it ends."""
    changes = dict(
        prox_mu=0.1,
        momentum=0.9,
        weight_decay=1e-3,
        local_epochs=2,
        strategy="scaffold",
        rounds=3,
        stragglers=0.5,
        straggler_policy="partial",
    )
    sim = Simulation(config(executor="ray", ray_actors=2, **changes))
    assert isinstance(sim.executor, RayExecutor)
    got, seen, pids = [], [], set()
    for result in sim.run():
        got.append(result)
        seen.append(tuple(sim.executor._actors))
        pids.update(p["pid"] for p in sim.executor.placement)
    expected = list(Simulation(config(executor="vectorized", **changes)).run())
    assert_same_rounds(got[:2], expected[:2])
    assert_same_rounds(got[1:], expected[1:])
    assert len(set(seen)) == 1 and len(seen[0]) == 2 and len(pids) == 2  # two actors, the same in every round
    assert sim.executor._actors == []  # the run ended: its actors were stopped, not merely forgotten
    with pytest.raises(local_ray.exceptions.RayActorError):
        local_ray.get(seen[0][0].train.remote(None, [], 1, None), timeout=30)


@pytest.mark.parametrize(
    "changes",
    [
        dict(dp="central", dp_clip=0.5, dp_noise_multiplier=0.8, compression="topk", compression_ratio=0.2, error_feedback=True),
        dict(dp="local", dp_clip=0.5, dp_noise_multiplier=0.3, compression="quantize", compression_bits=4),
    ],
    ids=["central-dp-topk", "local-dp-quantize"],
)
def test_privacy_and_compression_match_the_vectorized_executor(local_ray, changes):
    """Clipping happens in the actors' executors; noise, compression and error feedback on the
    driver; all of it gives the vectorized executor's numbers, epsilon and bytes included."""
    sim = Simulation(config(executor="ray", ray_actors=2, **changes))
    got = list(sim.run())
    expected = list(Simulation(config(executor="vectorized", **changes)).run())
    assert_same_rounds(got, expected)
    assert [r.bytes_received for r in got] == [r.bytes_received for r in expected]
    assert got[-1].metrics["epsilon"] == expected[-1].metrics["epsilon"] > 0


def test_a_model_the_vectorized_executor_cannot_batch_on_tensors_from_the_object_store_and_a_lost_actor(local_ray):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 6, generator=g), torch.randint(0, 3, (60,), generator=g)
    tasks = [ClientTask(c, torch.arange(c * 10, c * 10 + 10 - c)) for c in range(6)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))  # no batched Tanh: actors train it sequentially
    assert not supports(model)
    cfg = ExperimentConfig.create(executor="ray", ray_actors=2, batch_size=4, lr=0.05, momentum=0.5, seed=3)
    data = TrainingData.holding(None, "cpu", x, y)  # made here: it reaches the actors through the object store
    ray_exec = RayExecutor(model, cfg, 3)
    try:
        got = ray_exec.train(flat_params(model), tasks, data, 1)
        expected = SequentialExecutor(model, LocalSettings.from_config(cfg), 3, cfg.seed).train(flat_params(model), tasks, data, 1)
        assert torch.allclose(got.deltas, expected.deltas, atol=ATOL)
        for f in ("num_samples", "num_steps", "train_loss", "train_accuracy"):
            assert torch.allclose(getattr(got, f), getattr(expected, f), atol=ATOL), f

        local_ray.kill(ray_exec._actors[1])  # as if its node died
        with pytest.raises(ray_support.RayWorkerLost, match="was lost .*resume the run to continue from its last finished round"):
            ray_exec.train(flat_params(model), tasks, data, 2)
        assert ray_exec._actors == []  # the other actor was stopped too
    finally:
        ray_exec.close()


def test_a_round_on_ray_reports_each_actors_share_as_it_finishes(local_ray, monkeypatch):
    from flcore.training import base

    monkeypatch.setattr(base, "PROGRESS_EVERY_S", 0.0)  # every share reports
    sim = Simulation(config(executor="ray", ray_actors=2, clients_per_round=9, num_clients=12))
    heard, start = [], sim.initial_state()
    try:
        state, result = sim.step(start, on_clients=lambda done, total: heard.append((done, total)))
    finally:
        sim.close()
    assert len(heard) == 2 and [t for _, t in heard] == [9, 9], heard  # two actors, two shares
    assert [d for d, _ in heard] == sorted(d for d, _ in heard) and heard[-1] == (9, 9)
    assert heard[0][0] < 9  # the first share came back before the others
    expected, _ = Simulation(config(executor="vectorized", clients_per_round=9, num_clients=12)).step(start)
    assert torch.allclose(state.params, expected.params, atol=1e-5)  # reporting changes no number


def test_without_ray_the_executor_is_refused_with_a_sentence(monkeypatch):
    monkeypatch.setattr(ray_support, "available", lambda: False)
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.create(executor="ray")
    (problem,) = info.value.problems
    assert problem.field == "executor"
    assert "needs Ray, which is not installed" in problem.message and "pip install -r requirements-ray.txt" in problem.message
    ExperimentConfig.create(executor="auto")  # every other executor is unaffected
