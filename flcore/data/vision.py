"""MNIST, Fashion-MNIST and CIFAR-10 read from their published on-disk formats into tensors.

`load` returns (x_train, y_train, x_test, y_test): images as float32 [N, C, H, W], scaled to
[0, 1] and normalised with the dataset's usual per-channel mean and std, labels as int64 [N].
MNIST and Fashion-MNIST are the uncompressed IDX files under `<data_dir>/MNIST/raw/` and
`<data_dir>/FashionMNIST/raw/`, read by torchvision (which checks only that the four files
exist, not their checksums) through `.data` and `.targets`, with no per-image transforms.
CIFAR-10 is the python pickles under `<data_dir>/cifar-10-batches-py/`, read here directly,
because torchvision's reader insists on the checksum of each published batch file. Missing
files are downloaded when `download` is on. Every failure (files absent with download off, no
network, a corrupt file) is raised as `DatasetUnavailable` with a message that says which
dataset, which directory, and what to do.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from urllib.error import URLError

import numpy as np
import torch
from torchvision import datasets as tv
from torchvision.datasets.utils import download_and_extract_archive

from flcore.data.errors import DatasetUnavailable

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # x_train, y_train, x_test, y_test

NUM_CLASSES = 10
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FOLDER = tv.CIFAR10.base_folder  # "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"

# What a reader of a damaged file can raise: torchvision's IDX parser asserts on bad headers,
# `torch.view` raises RuntimeError on a truncated file, pickle raises its own error or EOFError.
_READ_ERRORS = (OSError, EOFError, pickle.UnpicklingError, AssertionError, RuntimeError, ValueError, TypeError, KeyError, IndexError)


@dataclass(frozen=True)
class _Source:
    title: str  # how messages name the dataset
    folder: str  # under data_dir; deleting it and downloading again repairs a damaged copy
    files: tuple[str, ...]  # what must exist, relative to data_dir
    mean: tuple[float, ...]  # per channel, of the [0, 1]-scaled training images
    std: tuple[float, ...]
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
    return _normalize(x_train, src), y_train, _normalize(x_test, src), y_test


def _reason(e: BaseException) -> str:
    return str(e) or "unexpected header or size"  # torchvision's IDX parser fails bare `assert`s


def _normalize(images: torch.Tensor, src: _Source) -> torch.Tensor:
    mean = torch.tensor(src.mean).view(1, -1, 1, 1)
    std = torch.tensor(src.std).view(1, -1, 1, 1)
    return images.to(torch.float32).div_(255.0).sub_(mean).div_(std)


def _checked(images: torch.Tensor, labels: torch.Tensor, shape: tuple[int, ...], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape:
        raise ValueError(f"{where}: expected uint8 images of shape {shape}, found {images.dtype} {tuple(images.shape[1:])}")
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{where}: labels must lie in 0..{NUM_CLASSES - 1}")
    return images, labels.to(torch.int64)


# MNIST, Fashion-MNIST ------------------------------------------------------------------
def _idx_source(title: str, cls: type[tv.MNIST], mean: float, std: float) -> _Source:
    folder = cls.__name__  # torchvision's layout: <root>/<class name>/raw/<file>

    def fetch(data_dir: str) -> None:
        # torchvision's own download: tries each mirror, checks each archive's md5, unpacks it.
        cls(data_dir, train=True, download=True)

    def read(data_dir: str) -> Split:
        out = []
        for train in (True, False):
            raw, prefix = os.path.join(data_dir, folder, "raw"), "train" if train else "t10k"
            where = f"{prefix}-images-idx3-ubyte or {prefix}-labels-idx1-ubyte in {raw}"
            try:
                ds = cls(data_dir, train=train, download=False)
            except _READ_ERRORS as e:
                raise ValueError(f"{where} is not a valid IDX file ({_reason(e)})") from e
            x, y = _checked(ds.data.unsqueeze(1), ds.targets, (1, 28, 28), where)
            out += [x, y]
        return tuple(out)

    files = tuple(os.path.join(folder, "raw", f) for f in _IDX_FILES)
    return _Source(title, folder, files, (mean,), (std,), fetch, read)


# CIFAR-10 -------------------------------------------------------------------------------
def _fetch_cifar10(data_dir: str) -> None:
    c = tv.CIFAR10
    download_and_extract_archive(c.url, data_dir, filename=c.filename, md5=c.tgz_md5)


def _read_cifar10_batches(folder: str, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")  # the published format; as torchvision reads it
            data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
        except _READ_ERRORS as e:
            raise ValueError(f"{path} is not a valid CIFAR-10 batch ({_reason(e)})") from e
        # Each row is one image: 1024 red, then 1024 green, then 1024 blue bytes, each row-major.
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: 'data' should be uint8 rows of 3072 bytes, found {data.dtype} {data.shape}")
        x, y = _checked(
            torch.from_numpy(data.reshape(-1, 3, 32, 32)),
            torch.from_numpy(labels),
            (3, 32, 32),
            path,
        )
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _read_cifar10(data_dir: str) -> Split:
    folder = os.path.join(data_dir, _CIFAR_FOLDER)
    return (*_read_cifar10_batches(folder, _CIFAR_TRAIN), *_read_cifar10_batches(folder, (_CIFAR_TEST,)))


_SOURCES: dict[str, _Source] = {
    "mnist": _idx_source("MNIST", tv.MNIST, 0.1307, 0.3081),
    "fashion_mnist": _idx_source("Fashion-MNIST", tv.FashionMNIST, 0.2860, 0.3530),
    "cifar10": _Source(
        "CIFAR-10",
        _CIFAR_FOLDER,
        tuple(os.path.join(_CIFAR_FOLDER, f) for f in (*_CIFAR_TRAIN, _CIFAR_TEST)),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        _fetch_cifar10,
        _read_cifar10,
    ),
}
