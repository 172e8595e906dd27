"""Writers of tiny datasets in the real published on-disk formats, so that the real loaders run.

Fixtures `write_mnist`, `write_cifar10` and `write_idx` return functions that write into a directory and
return the uint8 images and int64 labels they wrote (a `Written`), for tests to compare with
what a loader reads back. Fixture `offline` makes every network access fail as it does without
a connection. Layouts are those of torchvision and of the dataset authors:

- IDX (MNIST, Fashion-MNIST): `<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
  uncompressed; header is a big-endian magic (2051 images, 2049 labels) then big-endian
  int32 sizes, then uint8 values row-major.
- CIFAR-10: `<root>/cifar-10-batches-py/data_batch_1..5` and `test_batch`, python pickles of a
  dict with `data` (uint8 [N, 3072]: 1024 red, 1024 green, 1024 blue bytes, each row-major)
  and `labels` (list of int).

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


@pytest.fixture(name="write_mnist")
def write_mnist_fixture():
    return write_mnist


@pytest.fixture(name="write_idx")
def write_idx_fixture():
    return write_idx


@pytest.fixture(name="write_cifar10")
def write_cifar10_fixture():
    return write_cifar10


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
