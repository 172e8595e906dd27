"""`digits`: scikit-learn's 1,797 bundled 8x8 handwritten digits, offline, the default dataset;
a fixed stratified 80/20 split, standardised with the training pixels' mean and std."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore.data.datasets import DATASETS, DIGIT_NAMES, Dataset, DatasetInfo, DatasetSpec

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings

DIGITS_INFO = DatasetInfo((1, 8, 8), 10, DIGIT_NAMES, offline=True)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 20170217  # fixed: the split is part of the dataset, not of the experiment


def _load_digits(config: "ExperimentConfig", settings: "Settings") -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    # A fixed, stratified split: every class keeps the same share in train and test.
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test_idx = []
    for label in range(10):
        members = np.flatnonzero(bunch.target == label)
        test_idx.extend(rng.choice(members, round(len(members) * DIGITS_TEST_FRACTION), replace=False))
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    train, test = torch.from_numpy(~is_test), torch.from_numpy(is_test)
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return Dataset("digits", DIGITS_INFO, x[train], y[train], x[test], y[test])


DATASETS.register(
    "digits",
    label="Digits (8x8, offline)",
    description="scikit-learn's 1,797 handwritten digits, 8x8 grey; ships with scikit-learn, no download.",
)(DatasetSpec(DIGITS_INFO, _load_digits, size="1,797 images"))
