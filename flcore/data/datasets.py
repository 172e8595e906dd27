"""Dataset registry: each dataset is a fixed train/test split held as tensors.

A dataset is one module of this package with its reader and its registration, discovered like
strategies (`flcore/data/__init__.py` imports every module that registers one): `digits.py`
(scikit-learn's bundled 8x8 handwritten digits, offline, the default), `synthetic.py`
(Synthetic(alpha, beta) of Li et al. 2020, generated from the data seed and split by its 30
devices unless another partition is asked for), `vision.py` (`mnist`, `fashion_mnist`, `emnist`,
`cifar10`, `cifar100`, `svhn`, read from the server's data folder in their published on-disk
formats and downloaded there when missing and allowed), `leaf.py` (LEAF's `femnist` and
`shakespeare`, Caldas et al. 2018, read from the JSON files LEAF's scripts produce) and
`files.py` (`file`: a CSV, NPZ or zipped image folder of one's own). The data folder, the
permission to download and the size limits are server settings (`flcore.settings.Settings`),
not experiment settings: every loader is given them as an argument, and `availability` says
whether a dataset can be used on this server now. The test split is the server's held-out
evaluation set; training samples are what the partitioners split. A dataset may also say which
natural client (writer, speaker, a client column) each training sample comes from
(`Dataset.train_clients`); the `natural` partitioner gives each of them one client.

A dataset whose shape, classes or natural clients depend on its settings or its files (`file`,
`emnist`, the LEAF sets) reads them through `dataset_info(config)`; `DatasetSpec.info` holds
only what is known before any file is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore import settings as server_settings
from flcore.data.errors import DataFileError, DatasetUnavailable
from flcore.registry import Registry
from flcore.settings import Settings

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig

__all__ = [
    "DATASETS", "DataFileError", "Dataset", "DatasetInfo", "DatasetSpec", "DatasetUnavailable", "dataset_fields",
    "dataset_info", "load_dataset",
]  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]  # one sample, e.g. (1, 28, 28) or (60,)
    num_classes: int
    class_names: tuple[str, ...]
    offline: bool  # True when it needs no download
    vocab_size: int = 0  # 0: real-valued inputs; else int64 token ids in 0..vocab_size-1 (a sequence of input_shape[0])
    natural_clients: int | None = None  # how many natural clients the training samples come from; None: no natural split


@dataclass(frozen=True)
class Dataset:
    name: str
    info: DatasetInfo
    x_train: torch.Tensor  # float32 [n, *input_shape] (int64 [n, length] when info.vocab_size)
    y_train: torch.Tensor  # int64 [n]
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_clients: np.ndarray | None = None  # int64 [n]: each training sample's natural client, 0..K-1 (K = info.natural_clients)
    # int64 [n_test]: each test sample's natural client (-1: a user with no training samples), where the data ships
    # per-client test samples (LEAF's test files, Synthetic's devices); the natural split's clients are evaluated on them
    test_clients: np.ndarray | None = None

    def __post_init__(self) -> None:
        c = self.train_clients
        if (c is None) != (self.info.natural_clients is None):
            raise ValueError("a dataset has train_clients exactly when its info counts natural_clients")
        if c is not None and (len(c) != len(self.y_train) or not np.array_equal(np.unique(c), np.arange(self.info.natural_clients))):
            raise ValueError("train_clients must give every training sample a client id, the ids 0..natural_clients-1 each used")
        t = self.test_clients
        if t is not None and (
            c is None or len(t) != len(self.y_test) or (len(t) and (t.min() < -1 or t.max() >= self.info.natural_clients))
        ):
            raise ValueError("test_clients must give every test sample a natural client id (or -1), and only with train_clients")


@dataclass(frozen=True)
class DatasetSpec:
    info: DatasetInfo  # what is known before any file is read (the shape and classes of a `file` come from the file)
    load: Callable[["ExperimentConfig", Settings], Dataset]  # (config, the server's settings) -> the samples
    seeded: bool = False  # its samples depend on the data seed (generated data)
    # "present" (its files are here, or it needs none), "download" (fetched when a run starts)
    # or "missing" (not on this server, and downloads are off), for the server's settings
    availability: Callable[[Settings], str] = lambda settings: "present"
    read_info: Callable[["ExperimentConfig", Settings], DatasetInfo] | None = None  # the info, when settings or files decide it
    size: str = ""  # in a few words for `list` and the README, e.g. "1,797 samples"
    natural_by_default: bool = False  # its own clients are the split unless another is asked for (`flcore.config.natural_defaults`)

    def info_for(self, config: "ExperimentConfig", settings: Settings) -> DatasetInfo:
        """The dataset's info under `config`: read from its files where they decide it. Raises
        DataFileError for a bad `file`, DatasetUnavailable when the files are not there yet."""
        return self.read_info(config, settings) if self.read_info is not None else self.info


DATASETS: Registry[DatasetSpec] = Registry("dataset")

DIGIT_NAMES = tuple(str(d) for d in range(10))


def load_dataset(config: "ExperimentConfig", settings: Settings | None = None) -> Dataset:
    """The samples of the dataset `config` names, read with the server's `settings` (this
    process's, `flcore.settings.current()`, when not given)."""
    return DATASETS.get(config.dataset).load(config, settings or server_settings.current())


AVAILABILITY = {
    "present": "on this server",
    "download": "downloaded when a run starts (needs internet)",
    "missing": "not on this server: its files are not in the server's data folder and downloads are off",
}


def availability(name: str, settings: Settings | None = None) -> str:
    """Whether dataset `name` can be used on this server now: "present", "download" or "missing"."""
    return DATASETS.get(name).availability(settings or server_settings.current())


def dataset_info(config: "ExperimentConfig", settings: Settings | None = None) -> DatasetInfo:
    """Shape, classes, input kind and natural clients of the dataset `config` names (see `DatasetSpec.info_for`)."""
    return DATASETS.get(config.dataset).info_for(config, settings or server_settings.current())


def dataset_fields(config: "ExperimentConfig") -> tuple[str, ...]:
    """The config fields the dataset's samples depend on: its name, the settings its entry
    reads, and the seeds when it generates its data."""
    entry = DATASETS.entry(config.dataset)
    return ("dataset", *entry.params, *(("seed", "data_seed") if entry.obj.seeded else ()))
