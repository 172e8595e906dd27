"""`synthetic`: Synthetic(alpha, beta) of Li et al. 2020 (FedProx), as the authors' code
generates it (litian96/FedProx, generate_synthetic.py): 30 devices, each with its own model and
feature means, power-law sizes, 60 features and 10 classes, generated from the data seed and
split by its devices unless another partition is asked for (`flcore.config.natural_defaults`).
`synthetic_generator="flcore-v1"` gives earlier releases' variant, so their runs resume exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore.data.datasets import DATASETS, DIGIT_NAMES, Dataset, DatasetInfo, DatasetSpec

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings

SYNTHETIC_DEVICES = 30
SYNTHETIC_INFO = DatasetInfo((60,), 10, DIGIT_NAMES, offline=True, natural_clients=SYNTHETIC_DEVICES)
SYNTHETIC_PER_DEVICE = 400  # sizes="equal": every device's samples (flcore's first release)
SYNTHETIC_TRAIN_FRACTION = 0.9  # of each device's samples, as the FedProx authors' generator splits them
V1_MAX_PER_DEVICE = 4000  # generator="flcore-v1" capped power-law sizes at this
V1_TEST_FRACTION = 1 / 6  # generator="flcore-v1" held out this share of the pooled samples


def synthetic_sizes(sizes: str, seed: int, generator: str = "fedprox") -> np.ndarray:
    """Samples per device: 'equal' (400 each), or 'powerlaw' as the FedProx authors' generator
    draws them (int(lognormal(4, 2)) + 50: a heavy tail of a few large devices and many small
    ones; flcore-v1 capped them at V1_MAX_PER_DEVICE)."""
    if sizes == "equal":
        return np.full(SYNTHETIC_DEVICES, SYNTHETIC_PER_DEVICE)
    drawn = np.random.default_rng([seed, 0x5153]).lognormal(4, 2, SYNTHETIC_DEVICES).astype(np.int64) + 50
    return np.minimum(drawn, V1_MAX_PER_DEVICE) if generator == "flcore-v1" else drawn


@dataclass(frozen=True)
class SyntheticDevices:
    """The per-device draws of Synthetic(alpha, beta) (one row per device)."""

    u: np.ndarray  # [devices] the mean of W_k and b_k
    B: np.ndarray  # [devices] the mean of v_k
    v: np.ndarray  # [devices, dim] the feature mean
    W: np.ndarray  # [devices, dim, classes]
    b: np.ndarray  # [devices, classes]


def synthetic_devices(alpha: float, beta: float, rng: np.random.Generator) -> SyntheticDevices:
    """Every device's parameters, as litian96/FedProx's generate_synthetic.py draws them:
    u_k ~ N(0, alpha^2) and B_k ~ N(0, beta^2) (numpy's scale: alpha and beta are standard
    deviations), one B_k per device, v_k ~ N(B_k, 1) per feature, W_k, b_k ~ N(u_k, 1)."""
    n, dim, classes = SYNTHETIC_DEVICES, SYNTHETIC_INFO.input_shape[0], SYNTHETIC_INFO.num_classes
    u, B = rng.normal(0, alpha, n), rng.normal(0, beta, n)
    v = np.stack([rng.normal(B[k], 1, dim) for k in range(n)])
    W = np.stack([rng.normal(u[k], 1, (dim, classes)) for k in range(n)])
    b = np.stack([rng.normal(u[k], 1, classes) for k in range(n)])
    return SyntheticDevices(u, B, v, W, b)


def make_synthetic(
    alpha: float, beta: float, seed: int, sizes: str = "equal", generator: str = "fedprox"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic(alpha, beta) of Li et al. 2020: per-device models and feature means
    (`synthetic_devices`); device k's samples are x ~ N(v_k, Sigma) with Sigma_jj = j^-1.2 and
    y = argmax(W_k x + b_k). `sizes` says how many samples each device has (`synthetic_sizes`).
    Returns features, labels and each sample's device. generator='flcore-v1' draws as flcore's
    earlier releases did: u_k ~ N(0, alpha) and B_k ~ N(0, beta) as variances, B_k per feature."""
    rng = np.random.default_rng([seed, 0x5717])
    dim, classes = SYNTHETIC_INFO.input_shape[0], SYNTHETIC_INFO.num_classes
    sigma = np.arange(1, dim + 1, dtype=np.float64) ** -1.2
    counts = synthetic_sizes(sizes, seed, generator)
    if generator == "flcore-v1":
        xs, ys = [], []
        for size in counts:
            u = rng.normal(0, np.sqrt(alpha))
            w = rng.normal(u, 1, (dim, classes))
            b = rng.normal(u, 1, classes)
            v = rng.normal(rng.normal(0, np.sqrt(beta), dim), 1)
            xs.append(rng.normal(v, np.sqrt(sigma), (size, dim)))
            ys.append(np.argmax(xs[-1] @ w + b, axis=1))
    else:
        d = synthetic_devices(alpha, beta, rng)
        xs = [rng.normal(d.v[k], np.sqrt(sigma), (size, dim)) for k, size in enumerate(counts)]
        ys = [np.argmax(x @ d.W[k] + d.b[k], axis=1) for k, x in enumerate(xs)]
    return np.concatenate(xs), np.concatenate(ys), np.repeat(np.arange(SYNTHETIC_DEVICES), counts)


def _load_synthetic(config: "ExperimentConfig", settings: "Settings") -> Dataset:
    seed, generator = config.data_seed_resolved, config.synthetic_generator
    x, y, device = make_synthetic(config.synthetic_alpha, config.synthetic_beta, seed, config.synthetic_sizes, generator)
    rng = np.random.default_rng([seed, 0x7E57])
    if generator == "flcore-v1":  # a pooled 1/6 test set and standardised features
        order = rng.permutation(len(y))
        n_test = round(len(y) * V1_TEST_FRACTION)
        test, train = order[:n_test], order[n_test:]
        xt = torch.tensor(x, dtype=torch.float32)
        mean, std = xt[train].mean(0), xt[train].std(0) + 1e-6
        xt = (xt - mean) / std
    else:  # each device's samples shuffled, its first 90% train and the rest test, as the authors' code
        train, test = [], []
        for k in range(SYNTHETIC_DEVICES):
            mine = rng.permutation(np.flatnonzero(device == k))
            cut = int(SYNTHETIC_TRAIN_FRACTION * len(mine))
            train.append(mine[:cut])
            test.append(mine[cut:])
        train, test = np.concatenate(train), np.concatenate(test)
        xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.int64)
    per_device = generator != "flcore-v1"  # the authors' split keeps each device's test samples: its own test data
    return Dataset(
        "synthetic", SYNTHETIC_INFO, xt[train], yt[train], xt[test], yt[test], train_clients=device[train],
        test_clients=device[test] if per_device else None,
    )  # fmt: skip


DATASETS.register(
    "synthetic",
    label="Synthetic(alpha, beta)",
    description="Li et al. 2020: 60 features, 10 classes, 30 devices with their own models and power-law sizes, "
    "split by device by default; generated from the data seed.",
    params=("synthetic_alpha", "synthetic_beta", "synthetic_sizes", "synthetic_generator"),
)(
    DatasetSpec(
        SYNTHETIC_INFO,
        _load_synthetic,
        seeded=True,
        size="usually 5,000-25,000 samples, a tenth of each device held out (12,000 with equal sizes)",
        natural_by_default=True,
    )
)
