"""Dataset registry: each dataset is a fixed train/test split held as tensors.

`digits` (scikit-learn's bundled 8x8 handwritten digits) works offline and is the default.
`synthetic` is Synthetic(alpha, beta) from Li et al. 2020 (FedProx), generated from the data
seed. `mnist`, `fashion_mnist` and `cifar10` are read from the server's data folder in their
published on-disk formats and downloaded there when missing and allowed (see `vision.py`);
the folder and the permission to download are server settings (`flcore.settings`), not
experiment settings. `availability` says whether a dataset can be used on this server now.
The test split is the server's held-out evaluation set; training samples are what the
partitioners split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore.data.errors import DatasetUnavailable
from flcore.registry import Registry

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "DatasetSpec", "DatasetUnavailable", "dataset_fields", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]  # one sample, e.g. (1, 28, 28) or (60,)
    num_classes: int
    class_names: tuple[str, ...]
    offline: bool  # True when it needs no download


@dataclass(frozen=True)
class Dataset:
    name: str
    info: DatasetInfo
    x_train: torch.Tensor  # float32 [n, *input_shape]
    y_train: torch.Tensor  # int64 [n]
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class DatasetSpec:
    info: DatasetInfo
    load: Callable[["ExperimentConfig"], Dataset]
    seeded: bool = False  # its samples depend on the data seed (generated data)
    # "present" (its files are here, or it needs none), "download" (fetched when a run starts)
    # or "missing" (not on this server, and downloads are off), for the server's settings
    availability: Callable[[], str] = lambda: "present"


DATASETS: Registry[DatasetSpec] = Registry("dataset")

_DIGIT_NAMES = tuple(str(d) for d in range(10))


def load_dataset(config: "ExperimentConfig") -> Dataset:
    return DATASETS.get(config.dataset).load(config)


AVAILABILITY = {
    "present": "on this server",
    "download": "downloaded when a run starts (needs internet)",
    "missing": "not on this server: its files are not in the server's data folder and downloads are off",
}


def availability(name: str) -> str:
    """Whether dataset `name` can be used on this server now: "present", "download" or "missing"."""
    return DATASETS.get(name).availability()


def dataset_fields(config: "ExperimentConfig") -> tuple[str, ...]:
    """The config fields the dataset's samples depend on: its name, the settings its entry
    reads, and the seeds when it generates its data."""
    entry = DATASETS.entry(config.dataset)
    return ("dataset", *entry.params, *(("seed", "data_seed") if entry.obj.seeded else ()))


# digits -------------------------------------------------------------------------------
DIGITS_INFO = DatasetInfo((1, 8, 8), 10, _DIGIT_NAMES, offline=True)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 20170217  # fixed: the split is part of the dataset, not of the experiment


def _load_digits(config: "ExperimentConfig") -> Dataset:
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
)(DatasetSpec(DIGITS_INFO, _load_digits))


# synthetic ----------------------------------------------------------------------------
SYNTHETIC_INFO = DatasetInfo((60,), 10, _DIGIT_NAMES, offline=True)
SYNTHETIC_DEVICES = 30
SYNTHETIC_PER_DEVICE = 400
SYNTHETIC_TEST_FRACTION = 1 / 6


def make_synthetic(alpha: float, beta: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic(alpha, beta) of Li et al. 2020: per-device models and feature means.

    Device k draws u_k ~ N(0, alpha), W_k, b_k ~ N(u_k, 1), B_k ~ N(0, beta), v_k ~ N(B_k, 1);
    its samples are x ~ N(v_k, Sigma) with Sigma_jj = j^-1.2 and y = argmax(W_k x + b_k).
    Returns features, labels and each sample's device.
    """
    rng = np.random.default_rng([seed, 0x5717])
    dim, classes = SYNTHETIC_INFO.input_shape[0], SYNTHETIC_INFO.num_classes
    sigma = np.arange(1, dim + 1, dtype=np.float64) ** -1.2
    xs, ys, devices = [], [], []
    for k in range(SYNTHETIC_DEVICES):
        u = rng.normal(0, np.sqrt(alpha))
        w = rng.normal(u, 1, (dim, classes))
        b = rng.normal(u, 1, classes)
        v = rng.normal(rng.normal(0, np.sqrt(beta), dim), 1)
        x = rng.normal(v, np.sqrt(sigma), (SYNTHETIC_PER_DEVICE, dim))
        xs.append(x)
        ys.append(np.argmax(x @ w + b, axis=1))
        devices.append(np.full(SYNTHETIC_PER_DEVICE, k))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(devices)


def _load_synthetic(config: "ExperimentConfig") -> Dataset:
    x, y, _ = make_synthetic(config.synthetic_alpha, config.synthetic_beta, config.data_seed_resolved)
    rng = np.random.default_rng([config.data_seed_resolved, 0x7E57])
    order = rng.permutation(len(y))
    n_test = round(len(y) * SYNTHETIC_TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.int64)
    mean, std = xt[train].mean(0), xt[train].std(0) + 1e-6
    xt = (xt - mean) / std
    return Dataset("synthetic", SYNTHETIC_INFO, xt[train], yt[train], xt[test], yt[test])


DATASETS.register(
    "synthetic",
    label="Synthetic(alpha, beta)",
    description="Li et al. 2020: 60 features, 10 classes, 30 devices with their own models; generated from the data seed.",
    params=("synthetic_alpha", "synthetic_beta"),
)(DatasetSpec(SYNTHETIC_INFO, _load_synthetic, seeded=True))


# torchvision datasets -----------------------------------------------------------------
def _vision(name: str) -> Callable[["ExperimentConfig"], Dataset]:
    def load(config: "ExperimentConfig") -> Dataset:
        from flcore import settings
        from flcore.data import vision

        s = settings.current()
        x_train, y_train, x_test, y_test = vision.load(name, s.data_dir, s.download)
        return Dataset(name, DATASETS.get(name).info, x_train, y_train, x_test, y_test)

    return load


def _vision_availability(name: str) -> Callable[[], str]:
    def availability() -> str:
        from flcore import settings
        from flcore.data import vision

        s = settings.current()
        return vision.availability(name, s.data_dir, s.download)

    return availability


_FASHION = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")
_CIFAR = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
for _name, _label, _info, _desc in (
    ("mnist", "MNIST", DatasetInfo((1, 28, 28), 10, _DIGIT_NAMES, False), "70,000 handwritten digits, 28x28 grey (downloaded)."),
    ("fashion_mnist", "Fashion-MNIST", DatasetInfo((1, 28, 28), 10, _FASHION, False), "70,000 clothing images, 28x28 grey (downloaded)."),
    ("cifar10", "CIFAR-10", DatasetInfo((3, 32, 32), 10, _CIFAR, False), "60,000 colour images, 32x32 (downloaded)."),
):
    DATASETS.register(_name, label=_label, description=_desc)(DatasetSpec(_info, _vision(_name), availability=_vision_availability(_name)))
