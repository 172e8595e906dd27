"""MNIST, Fashion-MNIST, EMNIST, CIFAR-10, CIFAR-100 and SVHN read from their published
on-disk formats into tensors.

`load` returns (x_train, y_train, x_test, y_test): images as float32 [N, C, H, W], scaled to
[0, 1] and normalised with the dataset's usual per-channel mean and std (EMNIST: its training
images' own), labels as int64 [N]. The layouts are torchvision's, so a folder torchvision
downloaded into is read as it is:

- MNIST and Fashion-MNIST: the uncompressed IDX files under `<data_dir>/MNIST/raw/` and
  `<data_dir>/FashionMNIST/raw/`, read by torchvision (which checks only that the four files
  exist, not their checksums) through `.data` and `.targets`, with no per-image transforms.
- EMNIST (Cohen et al. 2017), splits `balanced` (47 classes) and `byclass` (62): the IDX files
  `<data_dir>/EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte`, read by
  torchvision's IDX reader. EMNIST stores each image transposed; it is turned upright here.
- CIFAR-10 and CIFAR-100: the python pickles under `<data_dir>/cifar-10-batches-py/` and
  `<data_dir>/cifar-100-python/` (`train`, `test`, fine labels), read here directly because
  torchvision's reader insists on each file's published checksum, and read with
  `unpickle.RestrictedUnpickler`, so a crafted file cannot run code.
- SVHN (Netzer et al. 2011): MATLAB files `<data_dir>/SVHN/{train,test}_32x32.mat` read with
  scipy (`X` is [32, 32, 3, N], `y` is 1..10 with 10 for the digit 0); the `extra` set is not used.

Missing files are downloaded when `download` is on. Every failure (files absent with download
off, no network, a corrupt file) is raised as `DatasetUnavailable` with a message that says
which dataset, which directory, and what to do.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.error import URLError

import numpy as np
import torch

from flcore.data.datasets import DATASETS, DIGIT_NAMES, Dataset, DatasetInfo, DatasetSpec
from flcore.data.errors import DatasetUnavailable
from flcore.data.unpickle import restricted_load

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # x_train, y_train, x_test, y_test

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FOLDER = "cifar-10-batches-py"  # torchvision's CIFAR10.base_folder
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR100_FOLDER = "cifar-100-python"  # torchvision's CIFAR100.base_folder
_SVHN_FOLDER = "SVHN"

# What a reader of a damaged file can raise: torchvision's IDX parser asserts on bad headers,
# `torch.view` raises RuntimeError on a truncated file, pickle raises its own error or EOFError.
_READ_ERRORS = (OSError, EOFError, pickle.UnpicklingError, AssertionError, RuntimeError, ValueError, TypeError, KeyError, IndexError)


def _tv():
    """torchvision's datasets, imported when a dataset is read or fetched (importing it costs
    more than a second, and registering these datasets must not)."""
    from torchvision import datasets

    return datasets


@dataclass(frozen=True)
class _Source:
    title: str  # how messages name the dataset
    folder: str  # under data_dir; deleting it and downloading again repairs a damaged copy
    files: tuple[str, ...]  # what must exist, relative to data_dir
    mean: tuple[float, ...] | None  # per channel, of the [0, 1]-scaled training images (None: computed from them)
    std: tuple[float, ...] | None
    fetch: Callable[[str], None]  # downloads into data_dir
    read: Callable[[str], Split]  # reads from data_dir; images still uint8 [N, C, H, W]


def availability(name: str, data_dir: str | os.PathLike, download: bool) -> str:
    """ "present" when dataset `name`'s files are in `data_dir`, "download" when they are not but
    may be fetched, "missing" otherwise. Checks only that the files exist, without reading them."""
    src = _SOURCES[name]
    data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if all(os.path.isfile(os.path.join(data_dir, f)) for f in src.files):
        return "present"
    return "download" if download else "missing"


def load(name: str, data_dir: str | os.PathLike, download: bool) -> Split:
    """Read dataset `name` from `data_dir`, downloading it there first if missing and allowed."""
    if name not in _SOURCES:
        raise ValueError(f"unknown vision dataset {name!r}; choose one of: {', '.join(_SOURCES)}")
    src = _SOURCES[name]
    data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))

    missing = [f for f in src.files if not os.path.isfile(os.path.join(data_dir, f))]
    if missing:
        if not download:
            raise DatasetUnavailable(
                f"{src.title} is not in {data_dir} and download is off: turn download on, or put the files there ({', '.join(missing)})."
            )
        try:
            src.fetch(data_dir)
        except (URLError, OSError, RuntimeError) as e:  # URLError is an OSError; torchvision wraps some in RuntimeError
            raise DatasetUnavailable(f"could not download {src.title} to {data_dir} (no internet connection?): {e}") from e

    try:
        x_train, y_train, x_test, y_test = src.read(data_dir)
    except _READ_ERRORS as e:
        raise DatasetUnavailable(
            f"{src.title} in {data_dir} could not be read (a file is damaged or incomplete): {_reason(e)}. "
            f"Delete {os.path.join(data_dir, src.folder)} and download it again."
        ) from e
    x_train, x_test = x_train.to(torch.float32).div_(255.0), x_test.to(torch.float32).div_(255.0)
    mean, std = (src.mean, src.std) if src.mean is not None else _channel_stats(x_train)
    return _normalize(x_train, mean, std), y_train, _normalize(x_test, mean, std), y_test


def _reason(e: BaseException) -> str:
    return str(e) or "unexpected header or size"  # torchvision's IDX parser fails bare `assert`s


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    flat = images.transpose(0, 1).reshape(images.shape[1], -1).to(torch.float64)
    return tuple(flat.mean(1).tolist()), tuple(flat.std(1).clamp_min(1e-6).tolist())


def _normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return images.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))


def _checked(
    images: torch.Tensor, labels: torch.Tensor, shape: tuple[int, ...], where: str, num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape:
        raise ValueError(f"{where}: expected uint8 images of shape {shape}, found {images.dtype} {tuple(images.shape[1:])}")
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1}")
    return images, labels.to(torch.int64)


# MNIST, Fashion-MNIST ------------------------------------------------------------------
def _idx_source(title: str, class_name: str, mean: float, std: float) -> _Source:
    folder = class_name  # torchvision's layout: <root>/<class name>/raw/<file>

    def fetch(data_dir: str) -> None:
        # torchvision's own download: tries each mirror, checks each archive's md5, unpacks it.
        getattr(_tv(), class_name)(data_dir, train=True, download=True)

    def read(data_dir: str) -> Split:
        out = []
        for train in (True, False):
            raw, prefix = os.path.join(data_dir, folder, "raw"), "train" if train else "t10k"
            where = f"{prefix}-images-idx3-ubyte or {prefix}-labels-idx1-ubyte in {raw}"
            try:
                ds = getattr(_tv(), class_name)(data_dir, train=train, download=False)
            except _READ_ERRORS as e:
                raise ValueError(f"{where} is not a valid IDX file ({_reason(e)})") from e
            x, y = _checked(ds.data.unsqueeze(1), ds.targets, (1, 28, 28), where)
            out += [x, y]
        return tuple(out)

    files = tuple(os.path.join(folder, "raw", f) for f in _IDX_FILES)
    return _Source(title, folder, files, (mean,), (std,), fetch, read)


# CIFAR-10 -------------------------------------------------------------------------------
def _fetch_cifar10(data_dir: str) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    c = _tv().CIFAR10
    download_and_extract_archive(c.url, data_dir, filename=c.filename, md5=c.tgz_md5)


def _read_cifar_batches(
    folder: str, names: tuple[str, ...], title: str = "CIFAR-10", key: str = "labels", num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                batch = restricted_load(f, encoding="latin1")  # the published format, with no code run
            data, labels = np.asarray(batch["data"]), np.asarray(batch[key], dtype=np.int64)
        except _READ_ERRORS as e:
            raise ValueError(f"{path} is not a valid {title} batch ({_reason(e)})") from e
        # Each row is one image: 1024 red, then 1024 green, then 1024 blue bytes, each row-major.
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: 'data' should be uint8 rows of 3072 bytes, found {data.dtype} {data.shape}")
        x, y = _checked(
            torch.from_numpy(data.reshape(-1, 3, 32, 32)),
            torch.from_numpy(labels),
            (3, 32, 32),
            path,
            num_classes,
        )
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _read_cifar10(data_dir: str) -> Split:
    folder = os.path.join(data_dir, _CIFAR_FOLDER)
    return (*_read_cifar_batches(folder, _CIFAR_TRAIN), *_read_cifar_batches(folder, (_CIFAR_TEST,)))


# CIFAR-100 -------------------------------------------------------------------------------
def _fetch_cifar100(data_dir: str) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    c = _tv().CIFAR100
    download_and_extract_archive(c.url, data_dir, filename=c.filename, md5=c.tgz_md5)


def _read_cifar100(data_dir: str) -> Split:
    folder = os.path.join(data_dir, _CIFAR100_FOLDER)
    read = lambda name: _read_cifar_batches(folder, (name,), "CIFAR-100", "fine_labels", 100)
    return (*read("train"), *read("test"))


# EMNIST ----------------------------------------------------------------------------------
def _emnist_source(split: str, num_classes: int) -> _Source:
    raw = os.path.join("EMNIST", "raw")
    names = [f"emnist-{split}-{part}-{kind}-ubyte" for part in ("train", "test") for kind in ("images-idx3", "labels-idx1")]

    def fetch(data_dir: str) -> None:
        _tv().EMNIST(data_dir, split=split, train=True, download=True)  # torchvision's download: the zip, checked, unpacked

    def read(data_dir: str) -> Split:
        from torchvision.datasets.mnist import read_image_file, read_label_file

        out = []
        for part in ("train", "test"):
            images, labels = (os.path.join(data_dir, raw, f"emnist-{split}-{part}-{kind}-ubyte") for kind in ("images-idx3", "labels-idx1"))
            where = f"{os.path.basename(images)} or {os.path.basename(labels)} in {os.path.dirname(images)}"
            try:
                x, y = read_image_file(images), read_label_file(labels)
            except _READ_ERRORS as e:
                raise ValueError(f"{where} is not a valid IDX file ({_reason(e)})") from e
            # EMNIST's images are stored transposed (column by column); turn them upright.
            x, y = _checked(x.transpose(1, 2).unsqueeze(1).contiguous(), y, (1, 28, 28), where, num_classes)
            out += [x, y]
        return tuple(out)

    return _Source(f"EMNIST ({split})", "EMNIST", tuple(os.path.join(raw, n) for n in names), None, None, fetch, read)


# SVHN ------------------------------------------------------------------------------------
def _fetch_svhn(data_dir: str) -> None:
    for split in ("train", "test"):
        _tv().SVHN(os.path.join(data_dir, _SVHN_FOLDER), split=split, download=True)  # checks each file's md5


def _read_svhn(data_dir: str) -> Split:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    out = []
    for split in ("train", "test"):
        path = os.path.join(data_dir, _SVHN_FOLDER, f"{split}_32x32.mat")
        try:
            mat = loadmat(path)
            images, labels = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
        except (*_READ_ERRORS, MatReadError, NotImplementedError) as e:  # NotImplementedError: a MATLAB v7.3 file
            raise ValueError(f"{path} is not a valid SVHN file ({_reason(e)})") from e
        if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
            raise ValueError(f"{path}: 'X' should be uint8 [32, 32, 3, N], found {images.dtype} {list(images.shape)}")
        labels[labels == 10] = 0  # SVHN writes the digit 0 as label 10
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1)))  # [H, W, C, N] -> [N, C, H, W]
        out += _checked(x, torch.from_numpy(labels), (3, 32, 32), path)
    return tuple(out)


_SOURCES: dict[str, _Source] = {
    "mnist": _idx_source("MNIST", "MNIST", 0.1307, 0.3081),
    "fashion_mnist": _idx_source("Fashion-MNIST", "FashionMNIST", 0.2860, 0.3530),
    "cifar10": _Source(
        "CIFAR-10",
        _CIFAR_FOLDER,
        tuple(os.path.join(_CIFAR_FOLDER, f) for f in (*_CIFAR_TRAIN, _CIFAR_TEST)),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        _fetch_cifar10,
        _read_cifar10,
    ),
    "cifar100": _Source(
        "CIFAR-100",
        _CIFAR100_FOLDER,
        tuple(os.path.join(_CIFAR100_FOLDER, f) for f in ("train", "test")),
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        _fetch_cifar100,
        _read_cifar100,
    ),
    "emnist_balanced": _emnist_source("balanced", 47),
    "emnist_byclass": _emnist_source("byclass", 62),
    "svhn": _Source(
        "SVHN",
        _SVHN_FOLDER,
        tuple(os.path.join(_SVHN_FOLDER, f"{s}_32x32.mat") for s in ("train", "test")),
        (0.4377, 0.4438, 0.4728),
        (0.1980, 0.2010, 0.1970),
        _fetch_svhn,
        _read_svhn,
    ),
}


# Registrations ----------------------------------------------------------------------------
def _vision(name: str, source: Callable[["ExperimentConfig"], str] | None = None) -> Callable[["ExperimentConfig", "Settings"], Dataset]:
    """The loader of a torchvision-format dataset; `source` names its reader when that depends on
    a setting (EMNIST's split)."""

    def read(config: "ExperimentConfig", settings: "Settings") -> Dataset:
        x_train, y_train, x_test, y_test = load(source(config) if source else name, settings.data_dir, settings.download)
        return Dataset(name, DATASETS.get(name).info_for(config, settings), x_train, y_train, x_test, y_test)

    return read


def _vision_availability(name: str) -> Callable[["Settings"], str]:
    """Whether `name`'s files are in the server's data folder (for EMNIST: its default split's)."""
    return lambda settings: availability(name, settings.data_dir, settings.download)


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
    ("mnist", "MNIST", DatasetInfo((1, 28, 28), 10, DIGIT_NAMES, False), "70,000 handwritten digits, 28x28 grey (downloaded).", "70,000 images"),
    ("fashion_mnist", "Fashion-MNIST", DatasetInfo((1, 28, 28), 10, _FASHION, False), "70,000 clothing images, 28x28 grey (downloaded).", "70,000 images"),
    ("cifar10", "CIFAR-10", DatasetInfo((3, 32, 32), 10, _CIFAR, False), "60,000 colour images, 32x32 (downloaded).", "60,000 images"),
    ("cifar100", "CIFAR-100", DatasetInfo((3, 32, 32), 100, _CIFAR100, False), "60,000 colour images of 100 classes, 32x32 (downloaded, 169 MB).", "60,000 images"),
    ("svhn", "SVHN", DatasetInfo((3, 32, 32), 10, DIGIT_NAMES, False), "99,289 house-number digits from Street View, 32x32 colour (Netzer et al. 2011; downloaded, 246 MB; the extra set is not used).", "99,289 images"),
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
        read_info=lambda c, settings: EMNIST_INFO[c.emnist_split],
        size="131,600 or 814,255 images",
        availability=_vision_availability("emnist_balanced"),
    )
)
