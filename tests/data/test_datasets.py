"""The offline datasets: digits (fixed split) and Synthetic(alpha, beta) (seeded)."""

import numpy as np
import torch

from flcore.config import ExperimentConfig
from flcore.data.datasets import DATASETS, load_dataset, make_synthetic


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
    for name in ("digits", "synthetic"):
        data = load_dataset(ExperimentConfig.create(dataset=name, model="mlp"))
        assert data.train_clients is None and data.info.natural_clients is None
