"""The vision loader on tiny files written in the real MNIST, Fashion-MNIST and CIFAR-10 formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from flcore import settings
from flcore.config import ExperimentConfig
from flcore.data import vision
from flcore.data.datasets import DATASETS, DatasetUnavailable, availability
from flcore.settings import Settings

MNIST_STATS = {"mnist": ("MNIST", 0.1307, 0.3081), "fashion_mnist": ("FashionMNIST", 0.2860, 0.3530)}
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616])
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def _write(name, root, write_mnist, write_cifar10):
    if name == "cifar10":
        return write_cifar10(root)
    return write_mnist(root, folder=MNIST_STATS[name][0])


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_are_read_and_normalized(name, tmp_path, write_mnist):
    folder, mean, std = MNIST_STATS[name]
    written = write_mnist(tmp_path, n_train=20, n_test=10, folder=folder)
    raw_dir = tmp_path / folder / "raw"  # the writer follows the spec: 2051, 20 x 28 x 28
    assert (raw_dir / "train-images-idx3-ubyte").read_bytes()[:16] == bytes.fromhex("00000803 00000014 0000001c 0000001c")
    assert (raw_dir / "t10k-labels-idx1-ubyte").read_bytes()[:8] == bytes.fromhex("00000801 0000000a")  # 2049, 10

    x_train, y_train, x_test, y_test = vision.load(name, str(tmp_path), download=False)

    assert x_train.shape == (20, 1, 28, 28) and x_test.shape == (10, 1, 28, 28)
    assert x_train.dtype == x_test.dtype == torch.float32
    assert y_train.dtype == y_test.dtype == torch.int64
    assert y_train.tolist() == written.y_train.tolist()
    assert y_test.tolist() == written.y_test.tolist()
    _, row, col = written.mark
    for x, raw in ((x_train, written.x_train), (x_test, written.x_test)):
        # Sample 0 is all white, sample 1 black but one white pixel at (row, col).
        assert torch.allclose(x[0], torch.full((1, 28, 28), (1 - mean) / std))
        assert torch.allclose(x[1, 0, row, col], torch.tensor((1 - mean) / std))
        assert (x[1] == x[1].min()).sum() == 28 * 28 - 1
        assert torch.allclose(x[1].min(), torch.tensor(-mean / std))
        expected = (raw.astype(np.float64) / 255 - mean) / std
        np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-5)


def test_cifar10_batches_are_read_in_order_with_channels_first(tmp_path, write_cifar10):
    written = write_cifar10(tmp_path, per_batch=3, n_test=4)

    x_train, y_train, x_test, y_test = vision.load("cifar10", tmp_path, download=False)

    assert x_train.shape == (15, 3, 32, 32) and x_test.shape == (4, 3, 32, 32)
    assert x_train.dtype == x_test.dtype == torch.float32
    assert y_train.dtype == y_test.dtype == torch.int64
    assert y_train.tolist() == written.y_train.tolist()  # data_batch_1 first, data_batch_5 last
    assert y_test.tolist() == written.y_test.tolist()
    _, row, col = written.mark
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        rows = pickle.load(f, encoding="latin1")["data"]
    assert rows[0].nonzero()[0].tolist() == list(range(1024))  # the red plane comes first
    assert rows[1].nonzero()[0].tolist() == [2048 + 32 * row + col]  # blue plane, row-major
    lo, hi = -CIFAR_MEAN / CIFAR_STD, (1 - CIFAR_MEAN) / CIFAR_STD
    for x, raw, n_batches in ((x_train, written.x_train, 5), (x_test, written.x_test, 1)):
        per = len(x) // n_batches
        for first in range(0, len(x), per):  # every batch starts with the two fixed samples
            # Sample 0: the first 1024 bytes of its row (red) are 255, the rest 0.
            for c in range(3):
                value = hi[c] if c == 0 else lo[c]
                assert torch.allclose(x[first, c], torch.full((32, 32), value, dtype=torch.float32))
            # Sample 1: the one 255 byte (blue, row, col) lands at [2, row, col].
            bright = (x[first + 1] == x[first + 1].max()).nonzero().tolist()
            assert bright == [[2, row, col]]
            assert np.isclose(x[first + 1, 2, row, col].item(), hi[2], atol=1e-5)
        expected = (raw.astype(np.float64) / 255 - CIFAR_MEAN[:, None, None]) / CIFAR_STD[:, None, None]
        np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_files_without_download_say_what_to_do(name, tmp_path, offline):
    with pytest.raises(DatasetUnavailable) as info:
        vision.load(name, str(tmp_path), download=False)

    message = str(info.value)
    assert TITLES[name] in message and str(tmp_path) in message
    assert "download is off" in message
    assert offline == []  # nothing was fetched


def test_missing_file_is_named(tmp_path, write_mnist):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()

    with pytest.raises(DatasetUnavailable, match="t10k-labels-idx1-ubyte") as info:
        vision.load("mnist", str(tmp_path), download=False)
    assert "train-images-idx3-ubyte" not in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_download_without_a_connection_is_explained(name, tmp_path, offline):
    # torchvision's real download code runs; only urllib's urlopen is replaced.
    with pytest.raises(DatasetUnavailable) as info:
        vision.load(name, str(tmp_path), download=True)

    message = str(info.value)
    assert message.startswith(f"could not download {TITLES[name]} to {tmp_path}")
    assert "no internet connection?" in message
    assert offline, "a download should have been attempted"


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_present_files_are_not_downloaded_again(name, tmp_path, offline, write_mnist, write_cifar10):
    _write(name, tmp_path, write_mnist, write_cifar10)

    vision.load(name, str(tmp_path), download=True)

    assert offline == []


@pytest.mark.parametrize(
    "name, damaged, content",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte", b"not an idx file"),
        ("mnist", "MNIST/raw/t10k-images-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c\x07"),
        ("cifar10", "cifar-10-batches-py/test_batch", b"not a pickle"),
        ("cifar10", "cifar-10-batches-py/data_batch_3", None),  # valid pickle, wrong content
    ],
)
def test_damaged_files_are_explained(name, damaged, content, tmp_path, write_mnist, write_cifar10):
    _write(name, tmp_path, write_mnist, write_cifar10)
    path = tmp_path / damaged
    if content is None:
        path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    else:
        path.write_bytes(content)

    with pytest.raises(DatasetUnavailable) as info:
        vision.load(name, str(tmp_path), download=False)

    message = str(info.value)
    assert message.startswith(f"{TITLES[name]} in {tmp_path} could not be read")
    assert path.name in message
    assert "download it again" in message


def test_label_count_must_match_image_count(tmp_path, write_mnist, write_idx):
    write_mnist(tmp_path, n_train=20)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(19, np.uint8))

    with pytest.raises(DatasetUnavailable, match="20 images but 19 labels"):
        vision.load("mnist", str(tmp_path), download=False)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_registry_loads_from_the_servers_data_folder(name, tmp_path, write_mnist, write_cifar10, monkeypatch):
    written = _write(name, tmp_path, write_mnist, write_cifar10)
    settings.use(Settings(data_dir=tmp_path, download=False))  # the operator's folder, not a config field
    assert availability(name) == "present"

    dataset = DATASETS.get(name).load(ExperimentConfig.create(dataset=name, model="mlp"))

    assert dataset.name == name
    assert tuple(dataset.x_train.shape[1:]) == dataset.info.input_shape
    assert tuple(dataset.x_test.shape[1:]) == dataset.info.input_shape
    assert dataset.y_train.tolist() == written.y_train.tolist()
    assert dataset.y_test.tolist() == written.y_test.tolist()
    assert int(dataset.y_train.max()) < dataset.info.num_classes


def test_availability_follows_the_folder_and_the_download_setting(tmp_path):
    settings.use(Settings(data_dir=tmp_path, download=False))
    assert availability("mnist") == "missing" and availability("digits") == "present"
    settings.use(Settings(data_dir=tmp_path, download=True))
    assert availability("mnist") == "download"


def test_unknown_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown vision dataset 'svhn'"):
        vision.load("svhn", str(tmp_path), download=False)
