"""Differential privacy: clipping bounds every update, DP-FedAvg's noised mean by hand, a private
run with nothing to hide equals the plain run, epsilon is what Opacus's accountant says, the
noise is seeded by (seed, round), and a privacy budget ends the run as done with a sentence."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from flcore.config import ConfigError, ExperimentConfig
from flcore.federation.availability import Availability, dropped_out, sample_clients
from flcore.federation.privacy import (
    affordable_rounds,
    config_epsilon,
    dp_fedavg_mean,
    epsilon,
    expected_updates,
    inclusion_probabilities,
    label_epsilon_columns,
    sample_rate,
)
from flcore.federation.simulation import Simulation
from flcore.models import build_model
from flcore.service.checkpoint import state_from_bytes, state_to_bytes
from flcore.service.execute import execute_run
from flcore.store import RunStore
from flcore.training import SequentialExecutor, TrainingData, VectorizedExecutor
from flcore.training.local import ClientTask, LocalSettings, flat_params
from flcore.training.objective import clip_rows_

TINY = dict(dataset="digits", partition="iid", model="logistic", batch_size=32, local_epochs=1, seed=0)


def run(**kw):
    return list(Simulation(ExperimentConfig.create(**{**TINY, **kw})).run())


def seeded(result):
    return dataclasses.replace(result, wall_time_s=0.0)


# Clipping --------------------------------------------------------------------------------------
def test_clipping_bounds_every_norm_and_leaves_short_updates_alone():
    g = torch.Generator().manual_seed(0)
    updates = torch.randn(50, 30, generator=g) * torch.linspace(0.01, 3, 50)[:, None]  # norms from ~0.05 to ~16
    before = updates.clone()
    clip_rows_(updates, 1.0)
    norms, old = updates.norm(dim=1), before.norm(dim=1)
    assert (old > 1).any() and (old < 1).any()
    assert (norms <= 1 + 1e-6).all()
    assert torch.equal(updates[old <= 1], before[old <= 1])  # short ones untouched
    long = old > 1
    assert torch.allclose(norms[long], torch.ones(int(long.sum())), atol=1e-6)  # long ones end exactly at the clip
    assert torch.allclose(updates[long] * old[long, None], before[long], atol=1e-5)  # in the same direction


@pytest.mark.parametrize("clip", [None, 0.05])
def test_both_executors_clip_every_update_in_their_shared_update_path(clip):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(60, 1, 8, 8, generator=g), torch.randint(0, 10, (60,), generator=g)
    tasks = [ClientTask(i, torch.arange(i * 15, (i + 1) * 15)) for i in range(4)]
    model = build_model("mlp", (1, 8, 8), 10)
    settings = LocalSettings(epochs=2, batch_size=5, lr=0.1, momentum=0.5, weight_decay=0.0, prox_mu=0.0, clip=clip)
    data, start = TrainingData.holding(None, "cpu", x, y), flat_params(model)
    seq = SequentialExecutor(model, settings, 10, seed=1).train(start, tasks, data, 1)
    vec = VectorizedExecutor(model, settings, 10, seed=1).train(start, tasks, data, 1)
    assert torch.allclose(seq.deltas, vec.deltas, atol=1e-5)
    norms = torch.cat([seq.deltas.norm(dim=1), vec.deltas.norm(dim=1)])
    if clip is None:
        assert (norms > 0.05).all()  # so the clipped case below has something to clip
    else:
        assert torch.allclose(norms, torch.full_like(norms, clip), atol=1e-6)


def test_every_update_a_private_run_sends_is_within_the_clip():
    result = run(num_clients=6, rounds=2, dp="local", dp_clip=0.1, dp_noise_multiplier=0.0, lr=0.5)
    norms = [c.update_norm for r in result for c in r.clients]
    assert max(norms) <= 0.1 + 1e-6 and min(norms) > 0.09  # every update was longer and was clipped
    plain = run(num_clients=6, rounds=1, lr=0.5)
    assert min(c.update_norm for c in plain[0].clients) > 0.1


# DP-FedAvg's mean -------------------------------------------------------------------------------
def test_dp_fedavg_mean_by_hand_divides_by_the_fixed_denominator():
    updates = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    no_noise = dp_fedavg_mean(updates, 1.0, 0.0, torch.Generator().manual_seed(0), 4.0)
    assert torch.allclose(no_noise, torch.tensor([0.15, 0.45]))  # ([0.6, 0.8] + [0, 1]) / 4, not / 2
    noisy = dp_fedavg_mean(updates, 1.0, 2.0, torch.Generator().manual_seed(7), 4.0)
    z = 2.0 * torch.randn(2, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(noisy, (torch.tensor([0.6, 1.8]) + z) / 4)
    assert torch.equal(updates, torch.tensor([[3.0, 4.0], [0.0, 1.0]]))  # the input is left alone
    nobody = dp_fedavg_mean(torch.zeros(0, 2), 1.0, 2.0, torch.Generator().manual_seed(7), 4.0)
    assert torch.allclose(nobody, z / 4)  # a round with no update still releases the noise


def test_the_denominator_is_the_expected_number_of_updates():
    plain = ExperimentConfig.create(num_clients=100, clients_per_round=10, dp="central")
    assert expected_updates(plain) == 10.0
    uneven = plain.replace(availability=0.5, dropout=0.2)
    assert expected_updates(uneven) == pytest.approx(10 * 0.5 * 0.8)


def test_the_central_noise_has_the_configured_standard_deviation():
    mean = dp_fedavg_mean(torch.zeros(4, 200_000), 1.0, 1.5, torch.Generator().manual_seed(0), 4.0)
    assert (mean * 4).std().item() == pytest.approx(1.5, rel=0.01)


@pytest.mark.parametrize(
    ("private", "plain"),
    [
        # DP-FedAvg weighs every client the same: with 2 IID clients of 719 samples each, so does FedAvg.
        (dict(dp="central", num_clients=2), dict(num_clients=2)),
        # Local DP changes nothing but the updates, so any strategy, any split.
        (
            dict(dp="local", partition="dirichlet", strategy="median", num_clients=5),
            dict(partition="dirichlet", strategy="median", num_clients=5),
        ),
    ],
    ids=["central", "local"],
)
def test_a_huge_clip_and_no_noise_give_the_non_private_run(private, plain):
    a = run(rounds=3, dp_clip=1e6, dp_noise_multiplier=0.0, **private)
    b = run(rounds=3, **plain)
    for r, s in zip(a, b):
        assert r.test_accuracy == pytest.approx(s.test_accuracy, abs=1e-6)
        assert r.test_loss == pytest.approx(s.test_loss, rel=1e-5)
        assert torch.allclose(r.state.params, s.state.params, atol=1e-5)
    noisy = run(rounds=1, dp_clip=1e6, dp_noise_multiplier=1e-4, **private)  # the comparison can tell noise apart
    assert not torch.allclose(noisy[0].state.params, b[0].state.params, atol=1e-5)


# The accountant -----------------------------------------------------------------------------
def opacus_epsilon(noise_multiplier: float, rate: float, steps: int, delta: float) -> float:
    """The library called directly: RDPAccountant stepped `steps` times."""
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=noise_multiplier, sample_rate=rate)
    return accountant.get_epsilon(delta=delta) if steps else 0.0


@pytest.mark.parametrize(
    ("setting", "rate"),
    [
        # the setting: 100 clients, 10 per round, noise 1, 20 rounds (4.22 with RDP)
        (dict(num_clients=100, clients_per_round=10, rounds=20, dp_noise_multiplier=1.0, dp_delta=1e-5), 0.1),
        (dict(num_clients=1000, clients_per_round=50, rounds=200, dp_noise_multiplier=0.8, dp_delta=1e-6), 0.05),
        (dict(num_clients=50, clients_per_round=25, rounds=7, dp_noise_multiplier=2.5, dp_delta=1e-3), 0.5),
        # clients online half the time and dropping out a fifth: each is in a sum with q * 0.5 * 0.8
        (dict(num_clients=40, clients_per_round=10, rounds=12, dp_noise_multiplier=1.2, availability=0.5, dropout=0.2), 0.25 * 0.4),
    ],
)
def test_central_epsilon_is_opacus_called_directly_on_the_rate_each_client_is_sampled_at(setting, rate):
    config = ExperimentConfig.create(dp="central", **setting)
    assert sample_rate(config) == pytest.approx(rate, rel=1e-12)
    for r in (1, config.rounds):
        assert config_epsilon(config, r) == pytest.approx(opacus_epsilon(config.dp_noise_multiplier, rate, r, config.dp_delta), rel=1e-12)
    if setting["num_clients"] == 100:
        assert config_epsilon(config, 20) == pytest.approx(4.224, abs=1e-3)


def test_each_round_of_a_central_run_reports_what_opacus_gives():
    results = run(num_clients=20, clients_per_round=5, rounds=3, dp="central", dp_noise_multiplier=1.1, dp_delta=1e-5)
    for r in results:
        assert r.metrics["epsilon"] == pytest.approx(opacus_epsilon(1.1, 5 / 20, r.round, 1e-5), rel=1e-12)
    assert 0 < results[0].metrics["epsilon"] < results[1].metrics["epsilon"] < results[2].metrics["epsilon"]


def test_epsilon_of_a_known_setting():
    # The sampled Gaussian mechanism with q = 0.01, sigma = 1.1 over 1,000 steps, at delta = 1e-5
    # (the setting of Abadi et al. 2016's MNIST example), straight from the library.
    assert epsilon(noise_multiplier=1.1, sample_rate=0.01, rounds=1000, delta=1e-5) == pytest.approx(
        opacus_epsilon(1.1, 0.01, 1000, 1e-5), rel=1e-12
    )
    assert epsilon(noise_multiplier=0.0, sample_rate=0.01, rounds=3, delta=1e-5) == float("inf")
    assert epsilon(noise_multiplier=1.1, sample_rate=0.01, rounds=0, delta=1e-5) == 0.0


def in_the_sum(config: ExperimentConfig, rounds: int) -> np.ndarray:
    """Each client's share of rounds in which its update entered the sum, by the simulator's own
    sampler, availability and dropout."""
    avail = Availability(config, [10] * config.num_clients, LocalSettings.from_config(config), 4)
    counts = np.zeros(config.num_clients)
    for r in range(1, rounds + 1):
        sampled = sample_clients(config, r, avail.online(r))
        counts[sampled[~dropped_out(config, r, sampled)]] += 1
    return counts / rounds


def test_central_dp_samples_each_client_independently_at_the_rate_its_epsilon_is_counted_at():
    config = ExperimentConfig.create(num_clients=20, clients_per_round=5, dp="central")
    sizes = [len(sample_clients(config, r)) for r in range(1, 401)]
    assert min(sizes) < 5 < max(sizes) and np.mean(sizes) == pytest.approx(5, abs=0.3)  # Poisson: 5 on average
    assert in_the_sum(config, 4000) == pytest.approx(np.full(20, 0.25), abs=0.025)
    skewed = config.replace(availability=0.5, availability_model="heterogeneous", dropout=0.1)
    exact = inclusion_probabilities(skewed)
    assert exact.max() > 1.4 * exact.mean()  # the most available clients are in more sums than the mean
    assert in_the_sum(skewed, 4000) == pytest.approx(exact, abs=0.02)  # the exact rate, client by client
    assert sample_rate(skewed) == exact.max()
    results = run(
        num_clients=20, clients_per_round=5, availability=0.5, availability_model="heterogeneous", dropout=0.1, dp="central", rounds=2
    )
    assert results[-1].metrics["epsilon"] == pytest.approx(
        opacus_epsilon(skewed.dp_noise_multiplier, exact.max(), 2, skewed.dp_delta), rel=1e-12
    )


def test_without_dp_the_sampler_still_draws_exactly_clients_per_round():
    config = ExperimentConfig.create(num_clients=20, clients_per_round=5)
    assert {len(sample_clients(config, r)) for r in range(1, 50)} == {5}


def test_a_central_round_with_nobody_in_it_still_releases_the_noise():
    config = ExperimentConfig.create(**TINY, num_clients=40, clients_per_round=1, rounds=12, dp="central", dp_noise_multiplier=1.0)
    results = list(Simulation(config).run())
    empty = [i for i, r in enumerate(results) if not r.sampled_clients]
    assert empty, "with one client per round on average, some round of twelve has nobody"
    i = empty[0]
    before = results[i - 1].state.params if i else Simulation(config).initial_state().params
    assert not torch.equal(results[i].state.params, before)


def test_local_epsilon_counts_each_clients_own_rounds_at_sensitivity_two_clips():
    config = dict(num_clients=10, clients_per_round=4, rounds=6, dp="local", dp_noise_multiplier=2.0, dp_delta=1e-5, dropout=0.2)
    results = run(**config)
    sent = np.zeros(10, dtype=int)
    for r in results:
        for c in r.clients:
            if c.status == "dropped":
                assert "epsilon" not in c.metrics
                continue
            sent[c.client_id] += 1
            # any two inputs of one client: updates up to 2 * dp_clip apart, so noise 2.0 is 1.0 in units of the sensitivity
            assert c.metrics["epsilon"] == pytest.approx(opacus_epsilon(1.0, 1.0, int(sent[c.client_id]), 1e-5), rel=1e-12)
        assert r.metrics["epsilon"] == pytest.approx(opacus_epsilon(1.0, 1.0, int(sent.max()), 1e-5), rel=1e-12)
    assert sent.max() < 6  # nobody sent in every round, so the worst client's epsilon is below 6 rounds' worth
    config_ = ExperimentConfig.create(**TINY, **config)
    assert config_epsilon(config_, 6) == results[-1].metrics["epsilon"]
    one = ExperimentConfig.create(num_clients=100, clients_per_round=10, rounds=20, dp="local", dp_noise_multiplier=1.0)
    assert epsilon(noise_multiplier=0.5, sample_rate=1.0, rounds=1, delta=1e-5) == pytest.approx(10.73, abs=0.01)  # the 10.7
    assert config_epsilon(one, 1) == pytest.approx(10.73, abs=0.01)


def test_csv_tables_say_what_kind_of_epsilon_they_hold_and_at_which_delta():
    import pandas as pd

    frame = pd.DataFrame({"round": [1, 2], "epsilon": [1.0, 2.0], "test_accuracy": [0.5, 0.6]})
    central = label_epsilon_columns(ExperimentConfig.create(dp="central", dp_delta=1e-6), frame)
    assert list(central.columns) == ["round", "epsilon", "epsilon_kind", "epsilon_delta", "test_accuracy"]
    assert set(central["epsilon_kind"]) == {"central (user-level)"} and set(central["epsilon_delta"]) == {1e-6}
    local = label_epsilon_columns(ExperimentConfig.create(dp="local"), frame)
    assert set(local["epsilon_kind"]) == {"local (worst client)"}


def test_a_run_without_dp_reports_no_epsilon():
    assert "epsilon" not in run(num_clients=4, rounds=1)[0].metrics


# Determinism and resuming -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["central", "local"])
def test_private_runs_are_deterministic_and_resume_to_the_same_numbers(mode):
    config = ExperimentConfig.create(**TINY, num_clients=8, clients_per_round=4, rounds=4, dp=mode, dp_noise_multiplier=0.3, dp_clip=0.5)
    whole = list(Simulation(config).run())
    assert [seeded(r) for r in whole] == [seeded(r) for r in Simulation(config).run()]
    head = list(itertools.islice(Simulation(config).run(), 2))
    state = state_from_bytes(state_to_bytes(head[-1].state))  # through a real checkpoint
    tail = list(Simulation(config).run(state))
    assert [seeded(r) for r in head + tail] == [seeded(r) for r in whole]
    other = list(Simulation(config.replace(seed=1)).run())
    assert other[0].test_loss != whole[0].test_loss


def test_a_private_run_gives_the_same_numbers_with_either_executor():
    kw = dict(num_clients=6, clients_per_round=3, rounds=3, dp="central", dp_noise_multiplier=0.2, dp_clip=0.5)
    seq, vec = run(executor="sequential", **kw), run(executor="vectorized", **kw)
    for a, b in zip(seq, vec):
        assert a.test_loss == pytest.approx(b.test_loss, rel=1e-5)
        assert a.metrics["epsilon"] == b.metrics["epsilon"]
        assert torch.allclose(a.state.params, b.state.params, atol=1e-5)


# The budget -------------------------------------------------------------------------------------
def test_a_privacy_budget_ends_the_run_as_done_with_a_sentence(tmp_path):
    config = ExperimentConfig.create(
        **TINY, num_clients=10, clients_per_round=5, rounds=30, dp="central", dp_noise_multiplier=1.0, dp_target_epsilon=4.0
    )
    last = affordable_rounds(config)
    assert 1 <= last < 30
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(config)
    assert execute_run(store, run_id) == "done"
    info = store.get_run(run_id)
    assert info.rounds_done == last
    assert f"dp_target_epsilon=4 allows {last} of the 30 rounds" in info.error and "stopped after round" in info.error
    eps = store.rounds_frame(run_id)["epsilon"]
    assert len(eps) == last and eps.max() <= 4.0
    assert epsilon(noise_multiplier=1.0, sample_rate=0.5, rounds=last + 1, delta=1e-5) > 4.0  # one round more would have overspent


def test_a_run_within_its_budget_runs_every_round():
    config = ExperimentConfig.create(**TINY, num_clients=10, rounds=2, dp="central", dp_noise_multiplier=5.0, dp_target_epsilon=50)
    sim = Simulation(config)
    assert sim.privacy.last_round == 2 and sim.privacy.stop_message is None
    assert len(list(sim.run())) == 2


# Validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["median", "trimmed_mean", "krum", "multikrum", "scaffold"])
def test_central_dp_is_refused_for_strategies_that_do_not_average(strategy):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(num_clients=10, strategy=strategy, dp="central")
    (problem,) = err.value.problems
    assert problem.field == "dp"
    assert f"strategy={strategy!r} does not take" in problem.message and "fedavg, fedavgm, fedadam" in problem.message
    assert ExperimentConfig.create(num_clients=10, strategy=strategy, dp="local").dp == "local"


@pytest.mark.parametrize("strategy", ["fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad"])
def test_central_dp_works_with_every_averaging_strategy(strategy):
    assert ExperimentConfig.create(strategy=strategy, dp="central").strategy == strategy


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        (
            {"dp_noise_multiplier": -0.5},
            "dp_noise_multiplier",
            "dp_noise_multiplier=-0.5 is invalid: input should be greater than or equal to 0",
        ),
        ({"dp_clip": 0}, "dp_clip", "dp_clip=0 is invalid: input should be greater than 0"),
        ({"dp_delta": 1}, "dp_delta", "dp_delta=1 is invalid: input should be less than 1"),
        ({"dp_delta": 0}, "dp_delta", "dp_delta=0 is invalid: input should be greater than 0"),
        ({"dp_target_epsilon": 0}, "dp_target_epsilon", "dp_target_epsilon=0 is invalid: input should be greater than 0"),
        ({"dp": "central", "dp_noise_multiplier": 0, "dp_target_epsilon": 3}, "dp_target_epsilon", "without noise epsilon is infinite"),
        ({"dp": "central", "dp_target_epsilon": 0.01}, "dp_target_epsilon", "dp_target_epsilon=0.01 is spent by the first round already"),
        ({"dp": "secret"}, "dp", "dp='secret' is not a known privacy mechanism; choose one of: none, central, local"),
    ],
)
def test_bad_privacy_settings_are_refused_with_a_sentence_naming_the_field(values, field, expected):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(**values)
    assert [p.field for p in err.value.problems] == [field]
    assert expected in str(err.value)


def test_privacy_settings_are_ignored_while_dp_is_none():
    values = dict(dp_noise_multiplier=0, dp_target_epsilon=0.01, rounds=3)
    with pytest.raises(ConfigError):
        ExperimentConfig.create(dp="central", **values)
    config = ExperimentConfig.create(dp="none", **values)  # kept, as a form keeps a hidden field, and not read
    assert affordable_rounds(config) == 3


def test_the_cli_says_why_a_budget_ended_the_run(tmp_path, capsys):
    from flcore.cli import main

    db = tmp_path / "runs.db"
    args = ["run", "--num-clients", "10", "--clients-per-round", "5", "--rounds", "30", "--model", "logistic", "--quiet"]
    assert main([*args, "--dp", "central", "--dp-target-epsilon", "4", "--store", str(db), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "dp_target_epsilon=4 allows" in printed and "privacy: central (user-level) epsilon" in printed
    (info,) = RunStore(db).list_runs()
    assert info.status == "done" and info.rounds_done < 30
    assert main(["show", info.run_id, "--store", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "note: The privacy budget dp_target_epsilon=4" in shown and "epsilon" in shown.splitlines()[3]


def test_list_names_the_privacy_and_compression_choices(capsys):
    from flcore.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    privacy = out.split("differential privacy (--dp):\n")[1].split("\n\n")[0].splitlines()
    assert [row.split()[0] for row in privacy] == ["none", "central", "local"]
    assert "[settings: dp_clip, dp_noise_multiplier, dp_delta, dp_target_epsilon]" in privacy[1]
    compression = out.split("update compression (--compression):\n")[1].split("\n\n")[0].splitlines()
    assert [row.split()[0] for row in compression] == ["none", "topk", "quantize"]
