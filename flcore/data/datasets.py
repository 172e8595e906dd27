"""Dataset registry: each dataset is a fixed train/test split held as tensors.

`digits` (scikit-learn's bundled 8x8 handwritten digits) works offline and is the default.
`synthetic` is Synthetic(alpha, beta) from Li et al. 2020 (FedProx), generated from the data
seed; its samples come from 30 devices with their own models, and it is split by device unless
another partition is asked for (`flcore.config.natural_defaults`). `mnist`, `fashion_mnist`, `emnist`, `cifar10`, `cifar100` and `svhn` are read from the
server's data folder in their published on-disk formats and downloaded there when missing and
allowed (see `vision.py`); the folder and the permission to download are server settings
(`flcore.settings`), not experiment settings, and `availability` says whether a dataset can be
used on this server now. `femnist` and `shakespeare` are LEAF's federated benchmarks (Caldas et al. 2018),
read from the JSON files LEAF's scripts produce (see `leaf.py`), and `file` is a CSV, NPZ or
zipped image folder of one's own (see `files.py`). The test split is the server's held-out
evaluation set; training samples are what the partitioners split. A dataset may also say which
natural client (writer, speaker, a client column) each training sample comes from
(`Dataset.train_clients`); the `natural` partitioner gives each of them one client.

A dataset whose shape, classes or natural clients depend on its settings or its files (`file`,
`emnist`, the LEAF sets) reads them through `dataset_info(config)`; `DatasetSpec.info` holds
only what is known before any file is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore.data.errors import DataFileError, DatasetUnavailable
from flcore.registry import Registry

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

    def __post_init__(self) -> None:
        c = self.train_clients
        if (c is None) != (self.info.natural_clients is None):
            raise ValueError("a dataset has train_clients exactly when its info counts natural_clients")
        if c is not None and (len(c) != len(self.y_train) or not np.array_equal(np.unique(c), np.arange(self.info.natural_clients))):
            raise ValueError("train_clients must give every training sample a client id, the ids 0..natural_clients-1 each used")


@dataclass(frozen=True)
class DatasetSpec:
    info: DatasetInfo  # what is known before any file is read (the shape and classes of a `file` come from the file)
    load: Callable[["ExperimentConfig"], Dataset]
    seeded: bool = False  # its samples depend on the data seed (generated data)
    # "present" (its files are here, or it needs none), "download" (fetched when a run starts)
    # or "missing" (not on this server, and downloads are off), for the server's settings
    availability: Callable[[], str] = lambda: "present"
    read_info: Callable[["ExperimentConfig"], DatasetInfo] | None = None  # the info, when settings or files decide it
    size: str = ""  # in a few words for `list` and the README, e.g. "1,797 samples"
    natural_by_default: bool = False  # its own clients are the split unless another is asked for (`flcore.config.natural_defaults`)

    def info_for(self, config: "ExperimentConfig") -> DatasetInfo:
        """The dataset's info under `config`: read from its files where they decide it. Raises
        DataFileError for a bad `file`, DatasetUnavailable when the files are not there yet."""
        return self.read_info(config) if self.read_info is not None else self.info


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


def dataset_info(config: "ExperimentConfig") -> DatasetInfo:
    """Shape, classes, input kind and natural clients of the dataset `config` names (see `DatasetSpec.info_for`)."""
    return DATASETS.get(config.dataset).info_for(config)


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
)(DatasetSpec(DIGITS_INFO, _load_digits, size="1,797 images"))


# synthetic ----------------------------------------------------------------------------
SYNTHETIC_DEVICES = 30
SYNTHETIC_INFO = DatasetInfo((60,), 10, _DIGIT_NAMES, offline=True, natural_clients=SYNTHETIC_DEVICES)
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


def _load_synthetic(config: "ExperimentConfig") -> Dataset:
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
    return Dataset("synthetic", SYNTHETIC_INFO, xt[train], yt[train], xt[test], yt[test], train_clients=device[train])


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


# torchvision datasets -----------------------------------------------------------------
def _vision(name: str, source: Callable[["ExperimentConfig"], str] | None = None) -> Callable[["ExperimentConfig"], Dataset]:
    """The loader of a torchvision-format dataset; `source` names its reader in `vision.py` when
    that depends on a setting (EMNIST's split)."""

    def load(config: "ExperimentConfig") -> Dataset:
        from flcore import settings
        from flcore.data import vision

        s = settings.current()
        x_train, y_train, x_test, y_test = vision.load(source(config) if source else name, s.data_dir, s.download)
        return Dataset(name, DATASETS.get(name).info_for(config), x_train, y_train, x_test, y_test)

    return load


def _vision_availability(name: str) -> Callable[[], str]:
    """Whether `name`'s files are in the server's data folder (for EMNIST: its default split's)."""

    def availability() -> str:
        from flcore import settings
        from flcore.data import vision

        s = settings.current()
        return vision.availability(name, s.data_dir, s.download)

    return availability


_FASHION = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")
_CIFAR = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100_WORDS = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle "
    "caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish "
    "forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle "
    "mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine "
    "possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar "
    "sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale "
    "willow_tree wolf woman worm"
)
_CIFAR100 = tuple(_CIFAR100_WORDS.split())  # CIFAR-100's fine labels, in label order (its `meta` file's fine_label_names)
_BYCLASS = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")  # EMNIST byclass and FEMNIST, in label order
EMNIST_INFO = {
    "balanced": DatasetInfo((1, 28, 28), 47, tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"), False),
    "byclass": DatasetInfo((1, 28, 28), 62, _BYCLASS, False),
}
for _name, _label, _info, _desc, _size in (
    ("mnist", "MNIST", DatasetInfo((1, 28, 28), 10, _DIGIT_NAMES, False), "70,000 handwritten digits, 28x28 grey (downloaded).", "70,000 images"),
    ("fashion_mnist", "Fashion-MNIST", DatasetInfo((1, 28, 28), 10, _FASHION, False), "70,000 clothing images, 28x28 grey (downloaded).", "70,000 images"),
    ("cifar10", "CIFAR-10", DatasetInfo((3, 32, 32), 10, _CIFAR, False), "60,000 colour images, 32x32 (downloaded).", "60,000 images"),
    ("cifar100", "CIFAR-100", DatasetInfo((3, 32, 32), 100, _CIFAR100, False), "60,000 colour images of 100 classes, 32x32 (downloaded, 169 MB).", "60,000 images"),
    ("svhn", "SVHN", DatasetInfo((3, 32, 32), 10, _DIGIT_NAMES, False), "99,289 house-number digits from Street View, 32x32 colour (Netzer et al. 2011; downloaded, 246 MB; the extra set is not used).", "99,289 images"),
):  # fmt: skip
    DATASETS.register(_name, label=_label, description=_desc)(
        DatasetSpec(_info, _vision(_name), size=_size, availability=_vision_availability(_name))
    )

DATASETS.register(
    "emnist",
    label="EMNIST",
    description="Handwritten digits and letters, 28x28 grey (Cohen et al. 2017): 'balanced' 131,600 images of 47 classes, "
    "'byclass' 814,255 of 62 (downloaded, 562 MB for both).",
    params=("emnist_split",),
)(
    DatasetSpec(
        EMNIST_INFO["balanced"],
        _vision("emnist", lambda c: f"emnist_{c.emnist_split}"),
        read_info=lambda c: EMNIST_INFO[c.emnist_split],
        size="131,600 or 814,255 images",
        availability=_vision_availability("emnist_balanced"),
    )
)


# LEAF's federated benchmarks ------------------------------------------------------------
def _leaf(name: str) -> DatasetSpec:
    from flcore import settings
    from flcore.data import leaf

    bench = leaf.BENCHMARKS[name]
    info = DatasetInfo(bench.input_shape, bench.num_classes, bench.class_names, offline=True, vocab_size=bench.vocab_size)

    def read_info(config: "ExperimentConfig") -> DatasetInfo:
        return replace(info, natural_clients=len(leaf.read(name, settings.current().data_dir).train_users))

    def load(config: "ExperimentConfig") -> Dataset:
        data = leaf.read(name, settings.current().data_dir)
        x_train, x_test = torch.from_numpy(data.x_train), torch.from_numpy(data.x_test)
        if not info.vocab_size:  # images: standardised with the training pixels' mean and std
            mean, std = x_train.mean(), x_train.std().clamp_min(1e-6)
            x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        return Dataset(
            name,
            replace(info, natural_clients=len(data.train_users)),
            x_train,
            torch.from_numpy(data.y_train),
            x_test,
            torch.from_numpy(data.y_test),
            train_clients=data.train_clients,
        )

    def availability() -> str:
        return "present" if leaf.present(name, settings.current().data_dir) else "missing"

    return DatasetSpec(info, load, read_info=read_info, size=bench.size, availability=availability)


DATASETS.register(
    "femnist",
    label="FEMNIST (LEAF)",
    description="LEAF's federated EMNIST (Caldas et al. 2018): 28x28 handwritten digits and letters, 62 classes, split by writer; "
    "read from LEAF's JSON files in the server's data folder, under femnist/ (made with LEAF's scripts, no download).",
)(_leaf("femnist"))

DATASETS.register(
    "shakespeare",
    label="Shakespeare (LEAF)",
    description="LEAF's next-character prediction (Caldas et al. 2018): 80-character lines of each speaking role in Shakespeare's plays, "
    "split by role; read from LEAF's JSON files in the server's data folder, under shakespeare/ (made with LEAF's scripts, no download).",
)(_leaf("shakespeare"))


# a file of one's own --------------------------------------------------------------------
def _file_info(config: "ExperimentConfig") -> DatasetInfo:
    return _load_file(config).info


def _load_file(config: "ExperimentConfig") -> Dataset:
    from flcore.data import files

    table = files.read(config.data_file, config.label_column, config.client_column)
    info = DatasetInfo(
        tuple(table.x_train.shape[1:]),
        len(table.class_names),
        table.class_names,
        offline=True,
        natural_clients=None if table.train_clients is None else int(table.train_clients.max()) + 1,
    )
    return Dataset(
        "file",
        info,
        torch.from_numpy(table.x_train),
        torch.from_numpy(table.y_train),
        torch.from_numpy(table.x_test),
        torch.from_numpy(table.y_test),
        train_clients=table.train_clients,
    )


DATASETS.register(
    "file",
    label="A file of your own",
    description="A CSV (numeric feature columns, a label column, optionally a client column), an NPZ (x, y, optionally client) "
    "or a zipped image folder (one sub-folder per class); split 80/20 with a seed taken from the file's content.",
    params=("data_file", "label_column", "client_column"),
)(DatasetSpec(DatasetInfo((), 0, (), offline=True), _load_file, read_info=_file_info, size="as large as your file"))
