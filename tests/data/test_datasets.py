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


def test_every_dataset_declares_its_shape():
    for entry in DATASETS.entries():
        assert entry.obj.info.num_classes == len(entry.obj.info.class_names) == 10
