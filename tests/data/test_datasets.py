"""The offline datasets: digits (fixed split) and Synthetic(alpha, beta) (seeded)."""

import numpy as np
import pytest
import torch

from flcore.config import ConfigError, ExperimentConfig
from flcore.data.datasets import DATASETS, load_dataset
from flcore.data.synthetic import make_synthetic, synthetic_devices, synthetic_sizes
from flcore.federation.simulation import Simulation


def test_digits_has_a_fixed_stratified_split():
    a = load_dataset(ExperimentConfig.create(dataset="digits", seed=1))
    b = load_dataset(ExperimentConfig.create(dataset="digits", seed=2))
    assert a.x_train.shape[1:] == (1, 8, 8) and len(a.y_train) + len(a.y_test) == 1797
    assert torch.equal(a.x_test, b.x_test)  # the split is part of the dataset, not the experiment
    test_share = np.bincount(a.y_test.numpy(), minlength=10) / np.bincount(
        np.concatenate([a.y_train.numpy(), a.y_test.numpy()]), minlength=10
    )
    assert np.allclose(test_share, 0.2, atol=0.01)
    assert abs(float(a.x_train.mean())) < 1e-4  # standardised on the training split


def test_synthetic_follows_the_data_seed():
    c = ExperimentConfig.create(dataset="synthetic", model="logistic")
    a, b = load_dataset(c), load_dataset(c)
    other = load_dataset(c.replace(data_seed=5))
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, other.x_train)
    assert a.x_train.shape[1:] == (60,) and set(a.y_train.unique().tolist()) <= set(range(10))


def test_synthetic_alpha_beta_control_heterogeneity():
    """With alpha = beta = 0 devices share one feature mean; larger beta spreads them apart."""

    def spread(beta):
        x, _, device = make_synthetic(0.0, beta, seed=0)
        means = np.stack([x[device == k].mean(0) for k in range(30)])
        return means.std(0).mean()

    assert spread(0.0) < spread(5.0)


def test_synthetic_draws_alpha_and_beta_as_standard_deviations_as_the_fedprox_code_does():
    """litian96/FedProx's generator: u_k ~ N(0, alpha) and B_k ~ N(0, beta) with numpy's scale (a
    standard deviation), one B_k per device, v_k ~ N(B_k, 1), W_k and b_k ~ N(u_k, 1)."""
    draws = [synthetic_devices(2.0, 0.5, np.random.default_rng(seed)) for seed in range(40)]  # 1,200 devices
    u, B = np.concatenate([d.u for d in draws]), np.concatenate([d.B for d in draws])
    assert u.std() == pytest.approx(2.0, rel=0.08) and B.std() == pytest.approx(0.5, rel=0.08)  # not sqrt(2), sqrt(0.5)
    assert all(d.B.shape == (30,) and d.v.shape == (30, 60) and d.W.shape == (30, 60, 10) for d in draws)
    residual = np.concatenate([(d.v - d.B[:, None]).ravel() for d in draws])
    assert residual.mean() == pytest.approx(0, abs=0.02) and residual.std() == pytest.approx(1, rel=0.02)
    w = np.concatenate([(d.W - d.u[:, None, None]).ravel() for d in draws] + [(d.b - d.u[:, None]).ravel() for d in draws])
    assert w.std() == pytest.approx(1, rel=0.02)
    # through the samples: a device's mean feature is B_k plus a little, so its spread over devices is beta
    means = np.concatenate(
        [[x[device == k].mean() for k in range(30)] for x, _, device in (make_synthetic(0.0, 3.0, s, "equal") for s in range(10))]
    )
    assert means.std() == pytest.approx(3.0, rel=0.12)  # the earlier generator's per-feature B gave about 0.2


def test_synthetic_sizes_are_the_papers_power_law_without_a_cap():
    sizes = np.concatenate([synthetic_sizes("powerlaw", seed) for seed in range(200)])  # int(lognormal(4, 2)) + 50
    assert sizes.min() >= 50 and np.median(sizes) == pytest.approx(np.exp(4) + 50, rel=0.1)
    assert sizes.max() > 20_000  # no cap: the paper's heavy tail


def test_every_dataset_declares_its_shape_size_and_whether_it_works_offline():
    for entry in DATASETS.entries():
        info = entry.obj.info
        assert entry.description and entry.obj.size, entry.name
        assert isinstance(info.offline, bool)
        if entry.name == "file":  # its shape and classes come from the file
            assert entry.obj.read_info is not None and info.num_classes == 0
            continue
        assert info.num_classes == len(info.class_names) >= 10, entry.name
        assert len(set(info.class_names)) == info.num_classes, entry.name
        assert all(n > 0 for n in info.input_shape), entry.name
    offline = {e.name for e in DATASETS.entries() if e.obj.info.offline}
    assert offline == {"digits", "synthetic", "femnist", "shakespeare", "file"}  # the others are downloaded


def test_datasets_without_their_own_clients_have_no_natural_split():
    data = load_dataset(ExperimentConfig.create(dataset="digits", model="mlp"))
    assert data.train_clients is None and data.info.natural_clients is None


def test_synthetic_is_split_by_its_30_devices_by_default_with_power_law_sizes():
    config = ExperimentConfig.create(dataset="synthetic", model="logistic")
    assert (config.partition, config.num_clients, config.synthetic_sizes) == ("natural", 30, "powerlaw")
    data = load_dataset(config)
    x, y, device = make_synthetic(config.synthetic_alpha, config.synthetic_beta, config.data_seed_resolved, "powerlaw")
    sizes = np.bincount(device)
    assert len(sizes) == 30 and sizes.min() >= 50
    assert sizes.max() > 5 * np.median(sizes)  # a heavy tail: a few large devices, many small ones
    assert data.info.natural_clients == 30 and len(data.train_clients) == len(data.y_train)
    assert len(data.y_train) + len(data.y_test) == sizes.sum()
    # each device keeps its first 90% (after a shuffle) for training and the rest for testing, as
    # the authors' code does, and the features are the generated ones, not standardised
    assert np.bincount(data.train_clients, minlength=30).tolist() == [int(0.9 * n) for n in sizes]
    together = np.concatenate([data.x_train.numpy(), data.x_test.numpy()])
    assert np.allclose(np.sort(together[:, 0]), np.sort(x[:, 0].astype(np.float32)))
    # the split is the devices: client k holds exactly device k's training samples
    sim = Simulation(config.replace(rounds=1))
    assert all(np.array_equal(p, np.flatnonzero(data.train_clients == k)) for k, p in enumerate(sim.parts))
    # each device's labels come from its own model, so clients differ in their label mix
    mixes = np.stack([np.bincount(data.y_train[p].numpy(), minlength=10) / len(p) for p in sim.parts])
    assert 0.5 * np.abs(mixes - mixes.mean(0)).sum(1).mean() > 0.3


def test_the_earlier_synthetic_generator_stays_available_for_runs_stored_before():
    earlier = ExperimentConfig.from_json('{"dataset": "synthetic", "model": "logistic"}', stored=True)
    assert earlier.synthetic_generator == "flcore-v1" and earlier.synthetic_sizes == "equal"
    data = load_dataset(earlier)
    assert len(data.y_train) == 10_000  # 30 x 400, a pooled sixth held out
    assert data.x_train.mean(0).abs().max() < 1e-4  # standardised, as it was
    assert ExperimentConfig.create(dataset="synthetic").synthetic_generator == "fedprox"


def test_synthetic_keeps_a_partition_or_size_that_is_asked_for():
    config = ExperimentConfig.create(dataset="synthetic", partition="dirichlet", synthetic_sizes="equal")
    assert (config.partition, config.num_clients) == ("dirichlet", 10)
    assert len(load_dataset(config).y_train) == 10_800  # 30 x 400, a tenth of each device held out
    _, _, device = make_synthetic(1.0, 1.0, 0, "equal")
    assert np.bincount(device).tolist() == [400] * 30
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(dataset="synthetic", num_clients=100)
    assert err.value.problems[0].field == "num_clients"
    assert "dataset='synthetic' has 30 natural clients (it is split by its own clients unless another partition is chosen)" in str(
        err.value
    )
