"""The vision loader on tiny files written in the real MNIST, Fashion-MNIST, EMNIST, CIFAR-10,
CIFAR-100 and SVHN formats, and the restricted unpickler that reads the CIFAR pickles."""

from __future__ import annotations

import os
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from flcore import settings
from flcore.config import ExperimentConfig
from flcore.data import vision
from flcore.data.datasets import DATASETS, DatasetUnavailable, availability, load_dataset
from flcore.federation.simulation import Simulation
from flcore.settings import Settings
from flcore.training import TrainingData

MNIST_STATS = {"mnist": ("MNIST", 0.1307, 0.3081), "fashion_mnist": ("FashionMNIST", 0.2860, 0.3530)}
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616])
CIFAR100_MEAN = np.array([0.5071, 0.4865, 0.4409])
CIFAR100_STD = np.array([0.2673, 0.2564, 0.2762])
SVHN_MEAN = np.array([0.4377, 0.4438, 0.4728])
SVHN_STD = np.array([0.1980, 0.2010, 0.1970])
TITLES = {
    "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN",
    "emnist_balanced": "EMNIST (balanced)", "emnist_byclass": "EMNIST (byclass)",
}  # fmt: skip
ALL = list(TITLES)


@pytest.fixture
def write(write_mnist, write_cifar10, write_cifar100, write_emnist, write_svhn):
    """write(name, root): the files of vision source `name`, in its published format."""

    def write_one(name, root):
        if name == "cifar10":
            return write_cifar10(root)
        if name == "cifar100":
            return write_cifar100(root)
        if name == "svhn":
            return write_svhn(root)
        if name.startswith("emnist_"):
            return write_emnist(root, split=name.removeprefix("emnist_"))
        return write_mnist(root, folder=MNIST_STATS[name][0])

    return write_one


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


@pytest.mark.parametrize("name", ALL)
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


@pytest.mark.parametrize("name", ALL)
def test_download_without_a_connection_is_explained(name, tmp_path, offline):
    # torchvision's real download code runs; only urllib's urlopen is replaced.
    with pytest.raises(DatasetUnavailable) as info:
        vision.load(name, str(tmp_path), download=True)

    message = str(info.value)
    assert message.startswith(f"could not download {TITLES[name]} to {tmp_path}")
    assert "no internet connection?" in message
    assert offline, "a download should have been attempted"


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn", "emnist_byclass"])
def test_present_files_are_not_downloaded_again(name, tmp_path, offline, write):
    write(name, tmp_path)

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


@pytest.mark.parametrize("name", ALL)
def test_registry_loads_from_the_servers_data_folder(name, tmp_path, write):
    written = write(name, tmp_path)
    registered, _, split = name.partition("_")
    registered = name if name == "fashion_mnist" else registered
    server = Settings(data_dir=tmp_path, download=False)  # the operator's folder, not a config field
    settings.use(server)  # for the config's validation, which reads the files at the edge
    config = ExperimentConfig.create(dataset=registered, model="mlp", **({"emnist_split": split} if registered == "emnist" else {}))

    dataset = DATASETS.get(registered).load(config, server)  # the loader is given the settings

    assert dataset.name == registered
    assert dataset.info == DATASETS.get(registered).info_for(config, server)
    assert tuple(dataset.x_train.shape[1:]) == dataset.info.input_shape
    assert tuple(dataset.x_test.shape[1:]) == dataset.info.input_shape
    assert dataset.y_train.tolist() == written.y_train.tolist()
    assert dataset.y_test.tolist() == written.y_test.tolist()
    assert int(dataset.y_train.max()) < dataset.info.num_classes


def test_availability_follows_the_folder_and_the_download_setting(tmp_path):
    off, on = Settings(data_dir=tmp_path, download=False), Settings(data_dir=tmp_path, download=True)
    assert availability("mnist", off) == "missing" and availability("digits", off) == "present"
    assert availability("mnist", on) == "download"


def test_unknown_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown vision dataset 'imagenet'"):
        vision.load("imagenet", str(tmp_path), download=False)


# CIFAR-100, EMNIST, SVHN ------------------------------------------------------------------
def test_cifar100_pickles_are_read_with_their_fine_labels(tmp_path, write_cifar100):
    written = write_cifar100(tmp_path, n_train=6, n_test=4)

    x_train, y_train, x_test, y_test = vision.load("cifar100", tmp_path, download=False)

    assert x_train.shape == (6, 3, 32, 32) and x_test.shape == (4, 3, 32, 32)
    assert y_train.tolist() == written.y_train.tolist() and y_test.tolist() == written.y_test.tolist()
    for x, raw in ((x_train, written.x_train), (x_test, written.x_test)):
        assert (x[1] == x[1].max()).nonzero().tolist() == [[2, *written.mark[1:]]]  # blue plane, row-major
        expected = (raw.astype(np.float64) / 255 - CIFAR100_MEAN[:, None, None]) / CIFAR100_STD[:, None, None]
        np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("split, classes", [("balanced", 47), ("byclass", 62)])
def test_emnist_images_are_turned_upright_and_standardised_on_the_training_images(split, classes, tmp_path, write_emnist):
    written = write_emnist(tmp_path, split=split, n_train=12, n_test=6)
    stored = (tmp_path / "EMNIST" / "raw" / f"emnist-{split}-train-images-idx3-ubyte").read_bytes()
    _, row, col = written.mark
    assert stored[16 + 784 + 28 * col + row] == 255  # the file holds sample 1 transposed: its bright pixel at (col, row)

    x_train, y_train, x_test, y_test = vision.load(f"emnist_{split}", tmp_path, download=False)

    assert x_train.shape == (12, 1, 28, 28) and x_test.shape == (6, 1, 28, 28)
    assert y_train.tolist() == written.y_train.tolist() and int(y_train.max()) == classes - 1
    assert (x_train[1, 0] == x_train[1, 0].max()).nonzero().tolist() == [[row, col]]  # upright again
    pixels = written.x_train.astype(np.float64) / 255
    mean, std = pixels.mean(), pixels.std(ddof=1)
    np.testing.assert_allclose(x_train.numpy(), (pixels - mean) / std, rtol=0, atol=1e-5)
    np.testing.assert_allclose(x_test.numpy(), (written.x_test / 255 - mean) / std, rtol=0, atol=1e-5)


def test_svhn_mat_files_are_read_channels_first_with_ten_as_zero(tmp_path, write_svhn):
    written = write_svhn(tmp_path, n_train=7, n_test=5)

    x_train, y_train, x_test, y_test = vision.load("svhn", tmp_path, download=False)

    assert x_train.shape == (7, 3, 32, 32) and x_test.shape == (5, 3, 32, 32)
    assert y_train.tolist() == written.y_train.tolist() and y_train[0] == 0  # stored as 10
    assert y_test.tolist() == written.y_test.tolist()
    assert (x_train[1] == x_train[1].max()).nonzero().tolist() == [[2, *written.mark[1:]]]
    expected = (written.x_train / 255 - SVHN_MEAN[:, None, None]) / SVHN_STD[:, None, None]
    np.testing.assert_allclose(x_train.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "name, damaged, content",
    [
        ("cifar100", "cifar-100-python/train", b"not a pickle"),
        ("svhn", "SVHN/test_32x32.mat", b"not a MATLAB file"),
        ("emnist_balanced", "EMNIST/raw/emnist-balanced-test-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x63"),
    ],
)
def test_damaged_new_files_are_explained(name, damaged, content, tmp_path, write):
    write(name, tmp_path)
    (tmp_path / damaged).write_bytes(content)

    with pytest.raises(DatasetUnavailable) as info:
        vision.load(name, str(tmp_path), download=False)

    message = str(info.value)
    assert message.startswith(f"{TITLES[name]} in {tmp_path} could not be read") and os.path.basename(damaged) in message


def test_svhn_labels_out_of_range_are_refused(tmp_path, write_svhn):
    from scipy.io import savemat

    write_svhn(tmp_path)
    savemat(tmp_path / "SVHN" / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[3], [11]], np.uint8)})

    with pytest.raises(DatasetUnavailable, match="labels must lie in 0..9"):
        vision.load("svhn", str(tmp_path), download=False)


# Pickles that would run code ----------------------------------------------------------------
class _Payload:
    """A pickle that runs a shell command when loaded by an unrestricted unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("name, target", [("cifar10", "cifar-10-batches-py/data_batch_2"), ("cifar100", "cifar-100-python/test")])
def test_a_cifar_pickle_that_would_run_code_is_refused_without_running_it(name, target, tmp_path, write):
    write(name, tmp_path)
    marker = tmp_path / "pwned"
    crafted = pickle.dumps({"data": _Payload(f"touch {marker}"), "labels": [0], "fine_labels": [0]}, protocol=2)
    (tmp_path / target).write_bytes(crafted)
    # The payload is live: plain pickle runs it (on a copy, so the file under test is untouched).
    pickle.loads(crafted)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(DatasetUnavailable) as info:
        vision.load(name, str(tmp_path), download=False)

    assert not marker.exists()  # nothing ran
    message = str(info.value)
    assert os.path.basename(target) in message and "system, which a data file has no reason to contain; refused" in message


def test_the_restricted_unpickler_reads_arrays_of_every_protocol_and_refuses_other_globals():
    from flcore.data.unpickle import restricted_loads

    value = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2], "name": b"batch", "scalar": np.int64(7)}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = restricted_loads(pickle.dumps(value, protocol=protocol))
        assert np.array_equal(back["data"], value["data"]) and back["data"].dtype == np.uint8
        assert (back["labels"], back["name"], back["scalar"]) == ([1, 2], b"batch", 7)
    for harmless_but_not_data in (SimpleNamespace(a=1), {1, 2}.__class__, print):
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            restricted_loads(pickle.dumps(harmless_but_not_data))


def test_the_engine_reads_the_folder_it_is_given_not_this_processs(tmp_path, write):
    """A worker or a Ray actor hands the server's settings to the simulation; nothing installs
    them as a process-wide global, and the training data's cache key names the folder."""
    written = write("mnist", tmp_path / "a")
    server = Settings(data_dir=tmp_path / "a", download=False)  # this process's settings name an empty folder
    config = ExperimentConfig.create(dataset="mnist", model="logistic", num_clients=2, rounds=1)
    with pytest.raises(DatasetUnavailable):
        load_dataset(config)  # this process's folder has no MNIST
    sim = Simulation(config, server)
    assert sim.data.tensors()[1].tolist() == written.y_train.tolist()
    other = Settings(data_dir=tmp_path / "b", download=False)
    assert TrainingData(config, "cpu", settings=server).key != TrainingData(config, "cpu", settings=other).key
