"""Writers of tiny datasets in the real published on-disk formats, so that the real loaders run.

Fixtures `write_mnist`, `write_cifar10`, `write_cifar100`, `write_emnist`, `write_svhn` and
`write_idx` return functions that write into a directory and
return the uint8 images and int64 labels they wrote (a `Written`), for tests to compare with
what a loader reads back. Fixture `offline` makes every network access fail as it does without
a connection. Layouts are those of torchvision and of the dataset authors:

- IDX (MNIST, Fashion-MNIST): `<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
  uncompressed; header is a big-endian magic (2051 images, 2049 labels) then big-endian
  int32 sizes, then uint8 values row-major.
- CIFAR-10: `<root>/cifar-10-batches-py/data_batch_1..5` and `test_batch`, python pickles of a
  dict with `data` (uint8 [N, 3072]: 1024 red, 1024 green, 1024 blue bytes, each row-major)
  and `labels` (list of int).
- CIFAR-100: `<root>/cifar-100-python/train`, `test` (dicts with `data` as above,
  `fine_labels` 0..99 and `coarse_labels` 0..19) and `meta` (`fine_label_names`,
  `coarse_label_names`), written as protocol-2 pickles like the published (Python 2) files.
- EMNIST: `<root>/EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte`, IDX
  as MNIST, but each image is stored transposed (column by column), as in the published files.
- SVHN: `<root>/SVHN/{train,test}_32x32.mat`, MATLAB (v5) files with `X` uint8 [32, 32, 3, N]
  (row, column, channel, sample) and `y` uint8 [N, 1] in 1..10, where 10 is the digit 0.

In every split written, sample 0 and sample 1 are fixed so that a test can check the layout
without reusing the writer's own reshape: sample 0 is all 255 in channel 0 and 0 elsewhere
(for MNIST: all 255), sample 1 is 0 except one 255 at (last channel, row 2, column 5).
The other samples are random from a fixed seed.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

MARK_ROW, MARK_COL = 2, 5  # where sample 1 has its single bright pixel


@dataclass(frozen=True)
class Written:
    x_train: np.ndarray  # uint8 [N, C, H, W]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    mark: tuple[int, int, int] = (-1, MARK_ROW, MARK_COL)  # (channel, row, column) lit in sample 1


def _images(rng: np.random.Generator, n: int, channels: int, side: int) -> np.ndarray:
    x = rng.integers(0, 256, (n, channels, side, side), dtype=np.uint8)
    if n > 0:
        x[0] = 0
        x[0, 0] = 255
    if n > 1:
        x[1] = 0
        x[1, -1, MARK_ROW, MARK_COL] = 255
    return x


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """One IDX file of uint8 values: magic 0x0000 08 <ndim>, sizes as big-endian int32, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).write_bytes(header + array.tobytes())


def write_mnist(root: str | os.PathLike, n_train: int = 20, n_test: int = 10, folder: str = "MNIST", seed: int = 0) -> Written:
    """Write an MNIST-format dataset (28x28 grey) under `root/folder/raw`; `folder="FashionMNIST"` for Fashion-MNIST."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    splits = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = _images(rng, n, 1, 28)
        y = rng.integers(0, 10, n).astype(np.int64)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0])  # magic 2051: 3 dims
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)  # magic 2049: 1 dim
        splits += [x, y]
    return Written(*splits)


def write_cifar10(root: str | os.PathLike, per_batch: int = 3, n_test: int = 4, seed: int = 0) -> Written:
    """Write CIFAR-10's python pickles: five training batches of `per_batch` images, one test batch."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = [], []
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        x = _images(rng, n, 3, 32)
        y = rng.integers(0, 10, n).astype(np.int64)
        batch = {
            "batch_label": name,
            "data": x.reshape(n, 3 * 32 * 32),
            "labels": [int(v) for v in y],
            "filenames": [f"{name}_{i}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        if name == "test_batch":
            x_test, y_test = x, y
        else:
            x_train.append(x)
            y_train.append(y)
    return Written(np.concatenate(x_train), np.concatenate(y_train), x_test, y_test)


def write_cifar100(root: str | os.PathLike, n_train: int = 6, n_test: int = 4, seed: int = 0) -> Written:
    """Write CIFAR-100's `train`, `test` and `meta` pickles (protocol 2, as the Python 2 originals)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    splits = []
    for name, n in (("train", n_train), ("test", n_test)):
        x = _images(rng, n, 3, 32)
        y = rng.integers(0, 100, n).astype(np.int64)
        batch = {
            "filenames": [f"{name}_{i}.png" for i in range(n)],
            "batch_label": f"{name} batch",
            "fine_labels": [int(v) for v in y],
            "coarse_labels": [int(v) // 5 for v in y],
            "data": x.reshape(n, 3 * 32 * 32),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        splits += [x, y]
    meta = {"fine_label_names": [f"class_{i}" for i in range(100)], "coarse_label_names": [f"super_{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return Written(*splits)


def write_emnist(root: str | os.PathLike, split: str = "balanced", n_train: int = 12, n_test: int = 6, seed: int = 0) -> Written:
    """Write EMNIST's IDX files for `split`; the images returned are upright, the files hold them transposed."""
    classes = {"balanced": 47, "byclass": 62}[split]
    rng = np.random.default_rng(seed)
    raw = Path(root) / "EMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    splits = []
    for part, n in (("train", n_train), ("test", n_test)):
        x = _images(rng, n, 1, 28)
        y = rng.integers(0, classes, n).astype(np.int64)
        y[:2] = classes - 1  # the highest class appears
        write_idx(raw / f"emnist-{split}-{part}-images-idx3-ubyte", x[:, 0].transpose(0, 2, 1))
        write_idx(raw / f"emnist-{split}-{part}-labels-idx1-ubyte", y)
        splits += [x, y]
    return Written(*splits)


def write_svhn(root: str | os.PathLike, n_train: int = 7, n_test: int = 5, seed: int = 0) -> Written:
    """Write SVHN's `train_32x32.mat` and `test_32x32.mat`; the labels returned are 0..9 (the files say 10 for 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder = Path(root) / "SVHN"
    folder.mkdir(parents=True, exist_ok=True)
    splits = []
    for part, n in (("train", n_train), ("test", n_test)):
        x = _images(rng, n, 3, 32)
        y = rng.integers(0, 10, n).astype(np.int64)
        y[0] = 0  # the digit 0, written as 10
        stored = np.where(y == 0, 10, y).astype(np.uint8).reshape(n, 1)
        savemat(folder / f"{part}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": stored})
        splits += [x, y]
    return Written(*splits)


@pytest.fixture(name="write_mnist")
def write_mnist_fixture():
    return write_mnist


@pytest.fixture(name="write_idx")
def write_idx_fixture():
    return write_idx


@pytest.fixture(name="write_cifar10")
def write_cifar10_fixture():
    return write_cifar10


@pytest.fixture(name="write_cifar100")
def write_cifar100_fixture():
    return write_cifar100


@pytest.fixture(name="write_emnist")
def write_emnist_fixture():
    return write_emnist


@pytest.fixture(name="write_svhn")
def write_svhn_fixture():
    return write_svhn


@pytest.fixture
def offline(monkeypatch):
    """Every URL open fails as it does without a connection; sockets cannot connect either.

    Returns the list of URLs that were attempted, so a test can check a download was tried.
    """
    attempted: list[str] = []

    def urlopen(request, *args, **kwargs):
        attempted.append(getattr(request, "full_url", request))
        raise URLError("[Errno -3] Temporary failure in name resolution (test is offline)")

    def connect(self, *args, **kwargs):
        raise OSError("tests must not use the network")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempted
