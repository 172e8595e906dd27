"""Every client's own model: per-client test data, evaluation, fairness, personalized methods, q-FFL.

Checked against independent references where there is one: the fairness summaries against a
hand computation, q-FFL's step against the authors' formula written out over numpy, the
executors' personal training (own starting point, frozen coordinates) against plain PyTorch SGD,
and every method's numbers against the other executor's.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from flcore.config import ConfigError, ExperimentConfig
from flcore.federation.personalization import PERSONALIZATION, client_test_count, client_test_parts, fairness, head_mask
from flcore.federation.simulation import Simulation
from flcore.models import build_model
from flcore.strategies import ClientUpdates, ServerState, build_strategy
from flcore.training import SequentialExecutor, TrainingData, VectorizedExecutor
from flcore.training.local import ClientTask, LocalSettings, flat_params, load_flat

SHARDS = dict(dataset="digits", partition="shards", shards_per_client=2, num_clients=8, clients_per_round=4, model="mlp", seed=2)
METHODS = [m for m in PERSONALIZATION.names() if m != "none"]


def run(**overrides):
    return list(Simulation(ExperimentConfig.create(**{**SHARDS, **overrides})).run())


def seeded(result):
    """A round's results without its wall time."""
    return (result.round, result.test_loss, result.clients, result.evaluations, {k: v for k, v in result.metrics.items()})


# The held-out part of each client's data --------------------------------------------------------
def test_each_client_keeps_a_seeded_disjoint_part_of_its_own_samples_as_test_data():
    parts = [np.arange(0, 10), np.arange(10, 13), np.arange(13, 14), np.arange(14, 114)]
    train, test = client_test_parts(parts, 0.2, seed=7)
    for part, tr, te in zip(parts, train, test):
        assert sorted(np.concatenate([tr, te]).tolist()) == part.tolist()
        assert not set(tr) & set(te)
        assert len(te) == client_test_count(len(part), 0.2)
    assert [len(t) for t in test] == [2, 1, 0, 20]  # one client of one sample keeps it to train on
    again, other = client_test_parts(parts, 0.2, seed=7), client_test_parts(parts, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(test, again[1]))
    assert not np.array_equal(test[3], other[1][3])
    train0, test0 = client_test_parts(parts, 0.0, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(train0, parts)) and all(len(t) == 0 for t in test0)


def test_a_run_stored_before_clients_kept_test_data_reads_as_it_ran():
    stored = ExperimentConfig().model_dump()
    del stored["client_test_fraction"]
    import json

    assert ExperimentConfig.from_json(json.dumps(stored), stored=True).client_test_fraction == 0
    assert ExperimentConfig.create().client_test_fraction == 0.2


# Fairness summaries -------------------------------------------------------------------------------
def test_fairness_summaries_match_a_hand_computation():
    acc = np.array([0.9, 0.1, 0.5, np.nan, 0.7, 0.3, 0.8, 0.6, 0.2, 0.4, 1.0, 0.95])  # 11 clients with test data
    got = fairness(acc, threshold=0.5, prefix="client_accuracy")
    known = [0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.6, 0.2, 0.4, 1.0, 0.95]
    mean = sum(known) / 11
    assert got["client_accuracy_mean"] == pytest.approx(mean)
    assert got["client_accuracy_std"] == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in known) / 11))
    assert got["client_accuracy_worst10"] == pytest.approx((0.1 + 0.2) / 2)  # ceil(10% of 11) = 2 clients
    assert got["client_accuracy_best10"] == pytest.approx((1.0 + 0.95) / 2)
    assert got["client_accuracy_below"] == pytest.approx(4 / 11)  # 0.1, 0.2, 0.3, 0.4
    assert fairness(np.array([np.nan]), 0.5, "x") == {}


# The executors' personal training -----------------------------------------------------------------
def _problem(model_name="mlp", sizes=(7, 12, 5)):
    g = torch.Generator().manual_seed(0)
    n = sum(sizes)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    cuts = np.cumsum([0, *sizes])
    tasks = [ClientTask(4 + i, torch.arange(a, b)) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(model_name, (1, 8, 8), 10)
    return model, x, y, tasks


SETTINGS = LocalSettings(epochs=2, batch_size=4, lr=0.05, momentum=0.9, weight_decay=1e-3, prox_mu=0.3)


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_own_starting_points_and_frozen_coordinates_train_alike_in_both_executors(model_name):
    model, x, y, tasks = _problem(model_name)
    start = flat_params(model)
    g = torch.Generator().manual_seed(1)
    starts = start + 0.05 * torch.randn(len(tasks), start.numel(), generator=g)
    frozen = head_mask(model, 1)  # train the head only, then the body only
    data = TrainingData.holding(None, "cpu", x, y)
    for trainable in (None, frozen, 1 - frozen):
        seq = SequentialExecutor(model, SETTINGS, 10, seed=5).train(start, tasks, data, 3, starts=starts, trainable=trainable)
        vec = VectorizedExecutor(model, SETTINGS, 10, seed=5).train(start, tasks, data, 3, starts=starts, trainable=trainable)
        assert torch.allclose(vec.deltas, seq.deltas, atol=1e-5), (vec.deltas - seq.deltas).abs().max()
        assert torch.allclose(vec.train_loss, seq.train_loss, atol=1e-5)
        if trainable is not None:
            assert torch.all(seq.deltas[:, trainable == 0] == 0) and torch.all(vec.deltas[:, trainable == 0] == 0)
            assert torch.all(seq.deltas[:, trainable == 1].abs().sum(1) > 0)


def test_personal_training_is_plain_sgd_from_the_clients_own_start_pulled_toward_the_global_model():
    model, x, y, tasks = _problem("logistic", sizes=(6,))
    settings = LocalSettings(epochs=1, batch_size=3, lr=0.1, momentum=0.0, weight_decay=0.0, prox_mu=0.5)
    w_global = flat_params(model)
    own = w_global + 0.1
    got = SequentialExecutor(model, settings, 10, seed=5).train(
        w_global, tasks, TrainingData.holding(None, "cpu", x, y), 1, starts=own[None]
    )
    # by hand: w -= lr * (grad + mu (w - w_global)), on the same batches
    from flcore.training.local import batch_order

    w = own.clone()
    for b in batch_order(6, settings, 5, 1, tasks[0].client_id):
        load_flat(model, w)
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[tasks[0].indices][b]), y[tasks[0].indices][b]).backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        w = w - 0.1 * (grad + 0.5 * (w - w_global))
    assert torch.allclose(own + got.deltas[0], w, atol=1e-6)


def test_the_head_is_the_last_layers_with_weights_and_some_body_must_stay_shared():
    model = build_model("mlp", (1, 8, 8), 10)
    last = list(model.parameters())[-2:]  # the last Linear's weight and bias
    mask = head_mask(model, 1)
    assert int(mask.sum()) == sum(p.numel() for p in last) and torch.all(mask[-sum(p.numel() for p in last) :] == 1)
    layers = sum(1 for m in model.modules() if any(True for _ in m.parameters(recurse=False)))
    with pytest.raises(ValueError, match=f"head_layers={layers} leaves no shared body.*at most {layers - 1}"):
        head_mask(model, layers)


# q-FFL ----------------------------------------------------------------------------------------------
def _qffl_reference(w, w_locals, losses, q, lr):
    """The authors' step (litian96/fair_flearn, flearn/trainers/qffedavg.py), over numpy."""
    deltas, hs = [], []
    for w_k, loss in zip(w_locals, losses):
        grads = (w - w_k) * 1.0 / lr
        deltas.append(np.float_power(loss + 1e-10, q) * grads)
        hs.append(q * np.float_power(loss + 1e-10, q - 1) * np.sum(grads**2) + (1.0 / lr) * np.float_power(loss + 1e-10, q))
    return w - np.sum(deltas, 0) / np.sum(hs)


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0, 5.0])
def test_qffl_takes_the_step_of_the_authors_code(q):
    config = ExperimentConfig.create(strategy="qffl", qffl_q=q, lr=0.05)
    strategy = build_strategy(config)
    g = torch.Generator().manual_seed(3)
    w = torch.randn(20, generator=g, dtype=torch.float64).float()
    deltas = 0.1 * torch.randn(4, 20, generator=g)
    losses = torch.tensor([0.3, 2.0, 0.9, 1.4])
    updates = ClientUpdates([0, 1, 2, 3], deltas, torch.tensor([5.0, 50, 7, 9]), torch.ones(4), start_loss=losses)
    new, _ = strategy.aggregate(ServerState(w), updates)
    expected = _qffl_reference(w.double().numpy(), (w + deltas).double().numpy(), losses.double().numpy(), q, 0.05)
    assert np.allclose(new.params.numpy(), expected, atol=1e-5)
    if q == 0:  # q = 0: every client counts alike, whatever its samples
        assert torch.allclose(new.params, w + deltas.mean(0), atol=1e-6)


def test_qffl_lifts_the_worst_clients_training_loss_weight():
    """In a run, q-FFL's clients report their loss with the global model before training."""
    results = run(strategy="qffl", rounds=2, qffl_q=0.5)
    assert all(r.metrics["qffl_mean_start_loss"] > 0 for r in results)


# Evaluation and the methods in a run ----------------------------------------------------------------
def test_every_client_is_evaluated_every_eval_every_rounds_and_in_the_last():
    results = run(rounds=5, eval_every=2)
    evaluated = [r.round for r in results if r.evaluations]
    assert evaluated == [2, 4, 5]
    last = results[-1]
    assert [e.client_id for e in last.evaluations] == list(range(8))
    assert all(math.isnan(e.personal_accuracy) for e in last.evaluations)  # no personalized method: no own model
    assert "client_accuracy_mean" in last.metrics and "personal_accuracy_mean" not in last.metrics
    assert "client_accuracy_mean" not in results[0].metrics
    assert not any(r.evaluations for r in run(rounds=2, client_test_fraction=0))


def test_evaluating_with_the_global_model_is_the_test_accuracy_on_each_clients_samples():
    sim = Simulation(ExperimentConfig.create(**SHARDS, rounds=1))
    result = next(sim.run())
    x, y = sim.data.tensors()
    load_flat(sim.model, result.state.params)
    for e in result.evaluations:
        rows = torch.from_numpy(sim.test_parts[e.client_id])
        with torch.no_grad():
            predicted = sim.model(x[rows]).argmax(1)
        assert e.test_samples == len(rows)
        assert e.test_accuracy == pytest.approx((predicted == y[rows]).float().mean().item())


@pytest.mark.parametrize("method", METHODS)
def test_on_two_classes_per_client_every_clients_own_model_beats_the_global_model(method):
    last = run(personalization=method, rounds=4)[-1]
    assert last.metrics["personal_accuracy_mean"] > last.metrics["client_accuracy_mean"] + 0.05, last.metrics


@pytest.mark.parametrize("method", METHODS)
def test_each_method_gives_the_same_numbers_with_either_executor(method):
    got = {ex: run(personalization=method, rounds=2, executor=ex, momentum=0.5)[-1] for ex in ("sequential", "vectorized")}
    seq, vec = got["sequential"], got["vectorized"]
    assert torch.allclose(vec.state.params, seq.state.params, atol=1e-4)
    assert [e.personal_loss for e in vec.evaluations] == pytest.approx([e.personal_loss for e in seq.evaluations], abs=1e-4)


@pytest.mark.parametrize("method", ["fedper", "fedrep", "ditto"])
def test_resuming_keeps_every_clients_own_model_exactly(method):
    from flcore.service.checkpoint import state_from_bytes, state_to_bytes

    config = ExperimentConfig.create(**SHARDS, rounds=4, personalization=method)
    whole = list(Simulation(config).run())
    head = list(itertools.islice(Simulation(config).run(), 2))
    restored = state_from_bytes(state_to_bytes(head[-1].state))  # what a resumed worker reads from the store
    assert set(restored.extra["personal"]) == set(head[-1].state.extra["personal"])
    tail = list(Simulation(config).run(restored))
    assert [seeded(r) for r in head + tail] == [seeded(r) for r in whole]


def test_fedper_never_sends_the_head_and_ditto_sends_what_fedavg_sends():
    fedavg = run(rounds=2)
    ditto = run(rounds=2, personalization="ditto")
    assert torch.equal(ditto[-1].state.params, fedavg[-1].state.params)  # Ditto's global model is FedAvg's
    sim = Simulation(ExperimentConfig.create(**SHARDS, rounds=2, personalization="fedper"))
    head = sim.personal.head.bool()
    first = flat_params(sim.model)
    last = list(sim.run())[-1]
    assert torch.equal(last.state.params[head], first[head])  # the global head never moves
    assert not torch.equal(last.state.params[~head], first[~head])


# Refused with sentences ------------------------------------------------------------------------------
def test_bad_personalization_settings_are_refused_naming_the_field_and_the_choices():
    with pytest.raises(ConfigError, match="personalization='pfedme' is not a known personalization; choose one of: none, finetune"):
        ExperimentConfig.create(personalization="pfedme")
    with pytest.raises(ConfigError, match="client_test_fraction=0 keeps no test data.*personalization='ditto'"):
        ExperimentConfig.create(personalization="ditto", client_test_fraction=0)
    with pytest.raises(ConfigError, match=r"client_test_fraction=0.95 is invalid.*at most 0.9"):
        ExperimentConfig.create(client_test_fraction=0.95)
    with pytest.raises(ValueError, match="head_layers=3 leaves no shared body"):
        Simulation(ExperimentConfig.create(**SHARDS, personalization="fedper", head_layers=3))


def test_a_run_whose_personal_state_would_not_fit_is_refused_with_what_it_costs(monkeypatch):
    from flcore.federation import personalization

    monkeypatch.setattr(personalization, "PERSONAL_STATE_LIMIT", 1_000_000)
    with pytest.raises(ValueError, match=r"personalization='ditto' keeps [\d,]+ bytes per client.*use fewer clients"):
        Simulation(ExperimentConfig.create(**SHARDS, personalization="ditto"))
    Simulation(ExperimentConfig.create(**SHARDS, personalization="fedper"))  # a head is small enough


def test_data_that_ships_each_clients_test_samples_evaluates_each_client_on_its_own():
    """Synthetic (the FedProx authors' split) keeps each device's last 10% as test samples: under
    the natural split those are the device's test data, and it trains on all its training samples."""
    from flcore.data.datasets import load_dataset

    config = ExperimentConfig.create(dataset="synthetic", rounds=1, model="logistic")
    data = load_dataset(config)
    sim = Simulation(config)
    assert sim.natural_tests and [len(p) for p in sim.train_parts] == [len(p) for p in sim.parts]
    assert [len(p) for p in sim.test_parts] == np.bincount(data.test_clients, minlength=config.num_clients).tolist()
    assert all((data.test_clients[p] == c).all() for c, p in enumerate(sim.test_parts))
    other = Simulation(config.replace(partition="iid"))  # another split: clients keep a part of their samples
    assert not other.natural_tests and sum(map(len, other.train_parts)) < len(data.y_train)


def test_the_command_line_says_what_each_client_keeps_and_how_every_client_fared(tmp_path, capsys):
    import pandas as pd

    from flcore.cli import main

    args = ["run", "--no-store", "--quiet", "--dataset", "digits", "--partition", "shards", "--num-clients", "6", "--rounds", "2"]
    assert main([*args, "--out", str(tmp_path / "fedper"), "--personalization", "fedper"]) == 0
    printed = capsys.readouterr().out
    head = (200 * 10 + 10) * 4  # the MLP's last layer, float32
    assert f"personal state: each client keeps its head, {head:,} bytes" in printed
    evaluations = pd.read_csv(tmp_path / "fedper" / "evaluations.csv")
    last = evaluations[evaluations["round"] == 2]
    assert f"each client's own model (round 2, own test data): mean {last['personal_accuracy'].mean():.4f}" in printed
    assert main([*args, "--out", str(tmp_path / "ditto"), "--personalization", "ditto"]) == 0
    model = sum(p.numel() for p in build_model("mlp", (1, 8, 8), 10).parameters()) * 4
    assert f"each client keeps its model, {model:,} bytes" in capsys.readouterr().out
