"""LEAF's federated benchmarks (Caldas et al. 2018, "LEAF: A Benchmark for Federated Settings"),
read from the JSON files LEAF's own scripts produce.

LEAF (https://github.com/TalwalkarLab/leaf) builds each benchmark with `preprocess.sh` in
`leaf/data/<name>/`, which downloads the raw data itself and writes `data/train/*.json` and
`data/test/*.json`. Each file is one JSON object: `users` (the user ids), `num_samples` (each
user's sample count) and `user_data`, mapping each user to `{"x": [...], "y": [...]}`:

- FEMNIST: `x` are 784 floats in [0, 1] (a 28x28 image, row by row), `y` an int in 0..61
  (digits, then upper-case, then lower-case letters); users are writers.
- Shakespeare: `x` are 80-character strings, `y` the character that follows; users are roles in
  the plays. Characters become ids by their position in LEAF's `ALL_LETTERS` (80 characters,
  `models/utils/language_utils.py`); a character of `x` outside it gets the extra id 80, and a
  `y` outside it counts as the last class ('}'), as LEAF's `letter_to_vec` makes it
  (`ALL_LETTERS.find` gives -1, and its one-hot vector sets the last entry).

LEAF's own files are taken as they are: `split_data.py` may record a user's `num_samples` larger
than the samples it writes (Shakespeare's test files, by 79), so the samples present are used.
What reading changed (counts that differ, next characters outside the alphabet) is logged once
per version of the files, in a sentence.

flcore reads `<data_dir>/<name>/train/*.json` and `<data_dir>/<name>/test/*.json` and never
downloads them; when they are missing, the message says how to make them. The training samples
keep their user as a natural client id (0..K-1, in the order users first appear in the sorted
training files); the test files together are the server's test set. A parsed benchmark is kept
for the files' current versions (path, size, modification time), so checking a config and
loading the data read the files once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from glob import escape, glob
from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore.data.datasets import DATASETS, Dataset, DatasetInfo, DatasetSpec
from flcore.data.errors import DatasetUnavailable

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings

ALL_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"  # LEAF's language_utils
OTHER_CHARACTER = len(ALL_LETTERS)  # the id of any other character in an input line
SEQUENCE_LENGTH = 80
FEMNIST_PIXELS = 28 * 28
LAST_CLASS = len(ALL_LETTERS) - 1  # where LEAF's letter_to_vec puts a character outside ALL_LETTERS
LEAF_URL = "https://github.com/TalwalkarLab/leaf"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeafData:
    x_train: np.ndarray  # float32 [n, 1, 28, 28] (FEMNIST) or int64 [n, 80] character ids (Shakespeare)
    y_train: np.ndarray  # int64 [n]
    train_clients: np.ndarray  # int64 [n]: the user of each training sample, 0..K-1
    train_users: tuple[str, ...]  # LEAF's user id of each natural client
    x_test: np.ndarray
    y_test: np.ndarray
    test_clients: np.ndarray  # int64 [n_test]: the natural client of each test sample's user (-1: a user with no training samples)


@dataclass(frozen=True)
class Benchmark:
    title: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    vocab_size: int  # 0: images
    size: str  # the full set, in a few words
    preprocess: str  # LEAF's command that makes the files, run in leaf/data/<name>
    parse: Callable[[list, list, str, list], tuple[np.ndarray, np.ndarray]]  # (x, y, where, notes) -> arrays


def present(name: str, data_dir: str | os.PathLike) -> bool:
    """Whether LEAF's train and test JSON files of `name` are in `data_dir` (without reading them)."""
    folder = os.path.join(os.path.abspath(os.path.expanduser(os.fspath(data_dir))), name)
    return all(glob(os.path.join(escape(folder), part, "*.json")) for part in ("train", "test"))


def read(name: str, data_dir: str | os.PathLike) -> LeafData:
    """The LEAF benchmark `name` from `<data_dir>/<name>/{train,test}/*.json`."""
    bench = BENCHMARKS[name]
    folder = os.path.join(os.path.abspath(os.path.expanduser(os.fspath(data_dir))), name)
    found = {part: sorted(glob(os.path.join(escape(folder), part, "*.json"))) for part in ("train", "test")}
    if not all(found.values()):
        missing = " and ".join(os.path.join(folder, p, "*.json") for p, files in found.items() if not files)
        raise DatasetUnavailable(
            f"{bench.title} is not in {folder} (no {missing}). flcore does not download it: make it with LEAF ({LEAF_URL}), "
            f"`cd leaf/data/{name} && {bench.preprocess}` (LEAF downloads the raw data itself), then copy "
            f"leaf/data/{name}/data/train and leaf/data/{name}/data/test to {os.path.join(folder, 'train')} and {os.path.join(folder, 'test')}."
        )
    stamps = tuple((path, *_stamp(path)) for part in ("train", "test") for path in found[part])
    return _read(name, tuple(found["train"]), tuple(found["test"]), stamps)


def _stamp(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=2)
def _read(name: str, train_files: tuple[str, ...], test_files: tuple[str, ...], stamps: tuple) -> LeafData:
    bench = BENCHMARKS[name]
    users: dict[str, int] = {}
    xs, ys, clients = [], [], []
    notes: dict[str, list[str]] = {"num_samples": [], "labels": []}
    for path in train_files:
        for user, x, y in _users(path, bench, notes):
            if len(y):
                xs.append(x)
                ys.append(y)
                clients.append(np.full(len(y), users.setdefault(user, len(users)), dtype=np.int64))
    if not users:
        raise DatasetUnavailable(f"the training files of {bench.title} ({', '.join(train_files)}) hold no samples")
    tests = [(user, x, y) for path in test_files for user, x, y in _users(path, bench, notes)]
    x_test = np.concatenate([x for _, x, _ in tests]) if tests else np.zeros((0, *bench.input_shape), xs[0].dtype)
    y_test = np.concatenate([y for _, _, y in tests]) if tests else np.zeros(0, np.int64)
    test_clients = np.concatenate([np.full(len(y), users.get(user, -1), dtype=np.int64) for user, _, y in tests] or [np.zeros(0, np.int64)])
    if not len(y_test):
        raise DatasetUnavailable(f"the test files of {bench.title} ({', '.join(test_files)}) hold no samples")
    if notes["num_samples"]:
        gaps = notes["num_samples"]
        log.warning(
            f"'num_samples' differs from the samples in 'user_data' for {len(gaps):,} of {bench.title}'s users (first: "
            f"{gaps[0]}), as LEAF's split_data.py may write it; the samples present are used"
        )
    if notes["labels"]:
        found = notes["labels"]
        log.warning(
            f"next characters ('y') not among LEAF's {len(ALL_LETTERS)} characters: {len(found):,} in {bench.title}'s files "
            f"(first: {found[0]}); each counts as its last class, {ALL_LETTERS[LAST_CLASS]!r}, as LEAF's letter_to_vec makes it"
        )
    return LeafData(np.concatenate(xs), np.concatenate(ys), np.concatenate(clients), tuple(users), x_test, y_test, test_clients)


def _users(path: str, bench: Benchmark, notes: dict[str, list[str]]):
    """(user, x, y) of each user of one LEAF JSON file, in the order of its `users` list; what
    is taken as it is (counts that differ, labels outside the alphabet) is added to `notes`."""
    try:
        with open(path, encoding="utf-8") as f:
            blob = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetUnavailable(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); make it again with LEAF") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetUnavailable(f"{path} could not be read ({e})") from e
    if not isinstance(blob, dict) or not isinstance(blob.get("users"), list) or not isinstance(blob.get("user_data"), dict):
        keys = ", ".join(map(repr, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise DatasetUnavailable(
            f"{path} is not a LEAF file: it needs a list 'users' and an object 'user_data' (with 'num_samples'), found {keys}"
        )
    counts = blob.get("num_samples")
    if counts is not None and (not isinstance(counts, list) or len(counts) != len(blob["users"])):
        raise DatasetUnavailable(f"{path}: 'num_samples' should give one count per user of 'users' ({len(blob['users'])})")
    for i, user in enumerate(blob["users"]):
        where = f"{path}, user {user!r}"
        data = blob["user_data"].get(user)
        if not isinstance(data, dict) or not isinstance(data.get("x"), list) or not isinstance(data.get("y"), list):
            raise DatasetUnavailable(f"{where}: 'user_data' has no entry with lists 'x' and 'y' for this user")
        x, y = data["x"], data["y"]
        if len(x) != len(y):
            raise DatasetUnavailable(f"{where}: {len(x)} samples in 'x' but {len(y)} labels in 'y'")
        if counts is not None and counts[i] != len(y):
            notes["num_samples"].append(f"{where}: 'num_samples' says {counts[i]}, 'user_data' holds {len(y)}")
        yield (user, *bench.parse(x, y, where, notes["labels"]))


def _parse_femnist(x: list, y: list, where: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    for i, row in enumerate(x):
        if not isinstance(row, list) or len(row) != FEMNIST_PIXELS:
            size = len(row) if isinstance(row, list) else type(row).__name__
            raise DatasetUnavailable(f"{where}, sample {i}: 'x' should be {FEMNIST_PIXELS} pixel values (28x28), found {size}")
    try:
        pixels = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
        labels = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DatasetUnavailable(f"{where}: 'x' must hold numbers and 'y' whole numbers ({e})") from e
    if len(labels) and (labels.min() < 0 or labels.max() >= 62):
        raise DatasetUnavailable(f"{where}: 'y' must lie in 0..61 (FEMNIST's 62 classes), found {labels.min()}..{labels.max()}")
    return pixels, labels


_CHAR_IDS = np.full(128, OTHER_CHARACTER, dtype=np.int64)
_CHAR_IDS[[ord(c) for c in ALL_LETTERS]] = np.arange(len(ALL_LETTERS))


def char_ids(text: str) -> np.ndarray:
    """Each character's position in ALL_LETTERS, OTHER_CHARACTER for any other character."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.where(codes < 128, _CHAR_IDS[np.minimum(codes, 127)], OTHER_CHARACTER)


def _parse_shakespeare(x: list, y: list, where: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    for name, values, length in (("x", x, SEQUENCE_LENGTH), ("y", y, 1)):
        for i, value in enumerate(values):
            if not isinstance(value, str) or len(value) != length:
                found = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
                raise DatasetUnavailable(f"{where}, sample {i}: {name!r} should be a string of {length} character(s), found {found}")
    ids = char_ids("".join(x)).reshape(-1, SEQUENCE_LENGTH)
    labels = char_ids("".join(y))
    unknown = np.flatnonzero(labels == OTHER_CHARACTER)
    notes.extend(f"{y[i]!r} in {where}, sample {i}" for i in unknown)
    return ids, np.where(labels == OTHER_CHARACTER, LAST_CLASS, labels)


_SHOWN = {"\n": "newline", " ": "space"}
BENCHMARKS: dict[str, Benchmark] = {
    "femnist": Benchmark(
        "FEMNIST",
        (1, 28, 28),
        62,
        tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
        0,
        "805,263 images, 3,550 writers",
        "./preprocess.sh -s niid --sf 0.05 -k 0 -t sample",
        _parse_femnist,
    ),
    "shakespeare": Benchmark(
        "Shakespeare",
        (SEQUENCE_LENGTH,),
        len(ALL_LETTERS),
        tuple(_SHOWN.get(c, c) for c in ALL_LETTERS),
        len(ALL_LETTERS) + 1,
        "4,226,158 lines, 1,129 roles",
        "./preprocess.sh -s niid --sf 0.2 -k 0 -t sample",  # its split is 90/10 whatever -tf says
        _parse_shakespeare,
    ),
}


# Registrations ----------------------------------------------------------------------------
def _leaf(name: str) -> DatasetSpec:
    bench = BENCHMARKS[name]
    info = DatasetInfo(bench.input_shape, bench.num_classes, bench.class_names, offline=True, vocab_size=bench.vocab_size)

    def read_info(config: "ExperimentConfig", settings: "Settings") -> DatasetInfo:
        return replace(info, natural_clients=len(read(name, settings.data_dir).train_users))

    def load(config: "ExperimentConfig", settings: "Settings") -> Dataset:
        data = read(name, settings.data_dir)
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
            test_clients=data.test_clients,
        )

    def availability(settings: "Settings") -> str:
        return "present" if present(name, settings.data_dir) else "missing"

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
