"""The round loop end to end on digits: accuracy, non-IID gap, determinism, resume, attacks."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from flcore.config import ExperimentConfig
from flcore.federation.simulation import DivergedError, Simulation, sample_clients

BASE = dict(dataset="digits", partition="iid", num_clients=10, model="mlp", strategy="fedavg", seed=0)


def run(**kw):
    return list(Simulation(ExperimentConfig.create(**{**BASE, **kw})).run())


def seeded(result):
    """A RoundResult without its wall-clock time."""
    return dataclasses.replace(result, wall_time_s=0.0)


@pytest.fixture(scope="module")
def clean_iid():
    return run(rounds=20)


def test_fedavg_on_iid_digits_reaches_93_percent(clean_iid):
    assert len(clean_iid) == 20 and [r.round for r in clean_iid] == list(range(1, 21))
    assert clean_iid[-1].test_accuracy >= 0.93


def test_label_skew_slows_learning(clean_iid):
    skewed = run(partition="dirichlet", alpha=0.1, rounds=5)
    assert skewed[-1].test_accuracy < clean_iid[4].test_accuracy


def test_same_config_and_seed_give_identical_results():
    a, b = run(rounds=3, partition="dirichlet"), run(rounds=3, partition="dirichlet")
    assert [seeded(r) for r in a] == [seeded(r) for r in b]
    c = run(rounds=3, partition="dirichlet", seed=1)
    assert [r.test_loss for r in a] != [r.test_loss for r in c]


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run():
    config = ExperimentConfig.create(**BASE, rounds=4, client_fraction=0.5, momentum=0.5)
    whole = list(Simulation(config).run())
    first = Simulation(config)
    head = list(itertools.islice(first.run(), 2))
    tail = list(Simulation(config).run(head[-1].state))  # a fresh process would load this state
    assert [seeded(r) for r in head + tail] == [seeded(r) for r in whole]


def test_clients_train_from_the_global_model_without_touching_it():
    sim = Simulation(ExperimentConfig.create(**BASE, rounds=1))
    state = sim.initial_state()
    before = state.params.clone()
    new_state, result = sim.step(state)
    assert torch.equal(state.params, before)
    norms = [c.update_norm for c in result.clients]
    assert min(norms) > 0 and len(set(norms)) == len(norms)  # each client sent its own update
    assert not torch.equal(new_state.params, before)


def test_client_sampling_is_a_function_of_seed_and_round():
    c = ExperimentConfig.create(**{**BASE, "num_clients": 50, "clients_per_round": 5})
    picks = [tuple(sample_clients(c, r)) for r in (1, 2, 1)]
    assert picks[0] == picks[2] != picks[1] and len(set(picks[0])) == 5
    result = run(num_clients=50, clients_per_round=5, rounds=2)[1]
    assert result.sampled_clients == tuple(sample_clients(c, 2)) == tuple(cr.client_id for cr in result.clients)


def test_round_result_accounting():
    sim = Simulation(ExperimentConfig.create(**BASE, rounds=1, clients_per_round=4))
    result = next(sim.run())
    assert result.bytes_sent == result.bytes_received == 4 * sim.num_params * 4  # float32 model each way
    assert sum(c.num_samples for c in result.clients) == sum(len(sim.train_parts[c]) for c in result.sampled_clients)  # what each trains on
    assert all(0 <= c.train_accuracy <= 1 and c.num_steps > 0 for c in result.clients)
    assert result.row()["num_sampled"] == 4 and len(result.client_rows()) == 4


def test_fedprox_with_mu_zero_is_fedavg_and_mu_pulls_updates_towards_the_global_model():
    fedavg = run(rounds=2)
    assert [seeded(r) for r in run(rounds=2, prox_mu=0.0)] == [seeded(r) for r in fedavg]
    prox = run(rounds=2, prox_mu=1.0)
    mean_norm = lambda rs: np.mean([c.update_norm for c in rs[0].clients])
    assert mean_norm(prox) < mean_norm(fedavg)


def test_robust_aggregation_survives_sign_flipping_where_fedavg_fails(clean_iid):
    attacked = dict(rounds=20, attack="sign_flip", attack_fraction=0.3)
    clean = clean_iid[-1].test_accuracy
    fedavg = []
    try:  # the attackers drag plain averaging to chance accuracy, and here on to infinite weights
        for result in Simulation(ExperimentConfig.create(**BASE, **attacked)).run():
            fedavg.append(result)
    except DivergedError:
        pass
    median = run(strategy="median", **attacked)
    assert sum(c.malicious for c in fedavg[0].clients) == 3
    assert max(r.test_accuracy for r in fedavg[-3:]) < clean - 0.3  # it had collapsed before diverging
    assert median[-1].test_accuracy >= clean - 0.05


def test_label_flipping_hurts_and_is_marked():
    flipped = run(rounds=5, attack="label_flip", attack_fraction=0.4)
    clean = run(rounds=5)
    assert flipped[-1].test_accuracy < clean[-1].test_accuracy
    assert sum(c.malicious for c in flipped[-1].clients) == 4


def test_a_diverging_run_stops_with_a_sentence():
    with pytest.raises(DivergedError, match="diverged in round"):
        run(rounds=5, lr=10.0, attack="scale", attack_fraction=0.3, attack_scale=1e4)
