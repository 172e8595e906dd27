"""LEAF's FEMNIST and Shakespeare, read from tiny files in LEAF's real JSON format.

LEAF's scripts write `data/train/*.json` and `data/test/*.json`, each one object with `users`,
`num_samples` and `user_data` ({user: {"x": [...], "y": [...]}}), several files per split; the
writers below do the same (with LEAF's file names), and the tests run the real loaders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flcore import settings
from flcore.cli import main
from flcore.config import ConfigError, ExperimentConfig
from flcore.data.datasets import DatasetUnavailable, dataset_info, load_dataset
from flcore.data.leaf import ALL_LETTERS, LAST_CLASS, OTHER_CHARACTER
from flcore.federation.simulation import Simulation
from flcore.settings import Settings
from flcore.training import SequentialExecutor
from flcore.training.local import load_flat

FILES = {"femnist": "all_data_{i}_niid_05_keep_0_{part}_9.json", "shakespeare": "all_data_{i}_niid_2_keep_0_{part}_8.json"}  # LEAF's names
FEMNIST_FILES = FILES["femnist"]


@pytest.fixture(autouse=True)
def data_folder(tmp_path):
    """LEAF's files are read from the server's data folder: here, the test's own directory."""
    settings.use(Settings(data_dir=tmp_path, download=False))


def write_leaf(root: Path, name: str, files: dict[str, list[dict[str, dict]]]) -> None:
    """`files[part]` is a list of files, each {user: {"x": [...], "y": [...]}}, written as LEAF writes them."""
    for part, blobs in files.items():
        folder = root / name / part
        folder.mkdir(parents=True, exist_ok=True)
        for i, users in enumerate(blobs):
            blob = {"users": list(users), "num_samples": [len(d["y"]) for d in users.values()], "user_data": users}
            (folder / FILES[name].format(i=i, part=part)).write_text(json.dumps(blob))


def femnist_user(rng: np.random.Generator, n: int, first_label: int) -> dict:
    pixels = rng.random((n, 784)).round(4)
    return {"x": pixels.tolist(), "y": [(first_label + i) % 62 for i in range(n)]}


def write_femnist(root: Path, seed: int = 0) -> dict:
    """Three writers over two training files (f0003 has 5 samples, f0001 4, f0002 6); test files for two of them."""
    rng = np.random.default_rng(seed)
    train = [{"f0003_12": femnist_user(rng, 5, 60), "f0001_40": femnist_user(rng, 4, 0)}, {"f0002_33": femnist_user(rng, 6, 30)}]
    test = [{"f0003_12": femnist_user(rng, 2, 1), "f0001_40": femnist_user(rng, 1, 2)}, {"f0002_33": femnist_user(rng, 2, 3)}]
    write_leaf(root, "femnist", {"train": train, "test": test})
    return {"train": train, "test": test}


def line(rng: np.random.Generator, length: int = 80) -> str:
    return "".join(rng.choice(list(ALL_LETTERS), length))


def write_shakespeare(root: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    roles = {"THE_TEMPEST_PROSPERO": 5, "HAMLET_OPHELIA": 3, "MACBETH_MACBETH": 4}
    train = [{role: {"x": [line(rng) for _ in range(n)], "y": [line(rng, 1) for _ in range(n)]} for role, n in roles.items()}]
    test = [{role: {"x": [line(rng) for _ in range(2)], "y": [line(rng, 1) for _ in range(2)]} for role in roles}]
    write_leaf(root, "shakespeare", {"train": train, "test": test})
    return {"train": train, "test": test}


def test_femnist_is_read_by_writer_with_each_sample_kept_by_its_writer(tmp_path):
    written = write_femnist(tmp_path)
    config = ExperimentConfig.create(dataset="femnist", model="femnist_cnn", partition="natural", num_clients=3)

    data = load_dataset(config)

    # Training files in sorted order (file 0, then file 1), users in each file's order.
    users = [u for blob in written["train"] for u in blob]
    assert users == ["f0003_12", "f0001_40", "f0002_33"]
    assert data.train_clients.tolist() == [0] * 5 + [1] * 4 + [2] * 6
    assert data.info.natural_clients == 3 and dataset_info(config).natural_clients == 3
    assert data.x_train.shape == (15, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert data.info.num_classes == 62 and data.info.class_names[10] == "A" and data.info.class_names[61] == "z"
    expected_y = [y for blob in written["train"] for d in blob.values() for y in d["y"]]
    assert data.y_train.tolist() == expected_y and data.y_train.dtype == torch.int64
    # Pixels row by row, standardised with the training pixels' mean and std.
    raw = np.array([x for blob in written["train"] for d in blob.values() for x in d["x"]], dtype=np.float32)
    standardised = (raw - raw.mean()) / raw.std(ddof=1)
    np.testing.assert_allclose(data.x_train.reshape(15, 784).numpy(), standardised, atol=1e-5)
    assert data.x_train[0, 0, 1, 0] == data.x_train.reshape(15, 784)[0, 28]


def test_shakespeare_lines_become_character_ids_of_leafs_alphabet(tmp_path):
    written = write_shakespeare(tmp_path)
    role = written["train"][0]["HAMLET_OPHELIA"]
    role["x"][0] = "To be, or not to be: that is the question~" + "\n" * 38  # '~' is not one of LEAF's characters
    role["y"][0] = "}"
    write_leaf(tmp_path, "shakespeare", written)

    data = load_dataset(ExperimentConfig.create(dataset="shakespeare", model="char_lstm"))

    assert data.info.vocab_size == 81 and data.info.num_classes == 80 and data.info.input_shape == (80,)
    assert data.x_train.dtype == torch.int64 and data.x_train.shape == (12, 80) and data.x_test.shape == (6, 80)
    assert data.train_clients.tolist() == [0] * 5 + [1] * 3 + [2] * 4
    first = data.x_train[5].tolist()
    assert first[:3] == [ALL_LETTERS.index("T"), ALL_LETTERS.index("o"), ALL_LETTERS.index(" ")]
    assert first[41] == OTHER_CHARACTER == 80 and first[42:] == [0] * 38  # '~', then newlines (id 0)
    assert data.y_train[5] == 79 == ALL_LETTERS.index("}")
    prospero = written["train"][0]["THE_TEMPEST_PROSPERO"]
    assert data.y_train[:5].tolist() == [ALL_LETTERS.index(c) for c in prospero["y"]]
    assert "".join(ALL_LETTERS[i] for i in data.x_train[0].tolist()) == prospero["x"][0]


@pytest.mark.parametrize(
    "name, command",
    [
        ("femnist", "./preprocess.sh -s niid --sf 0.05 -k 0 -t sample"),
        ("shakespeare", "./preprocess.sh -s niid --sf 0.2 -k 0 -t sample"),
    ],
)
def test_missing_files_say_how_to_make_them_with_leaf(name, command, tmp_path, offline):
    (tmp_path / name / "train").mkdir(parents=True)  # a folder without files is still missing them
    config = ExperimentConfig.create(dataset=name, model="char_lstm" if name == "shakespeare" else "cnn")

    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(config)

    message = str(info.value)
    folder = tmp_path / name
    assert message.startswith(f"{'FEMNIST' if name == 'femnist' else 'Shakespeare'} is not in {folder}")
    assert f"cd leaf/data/{name} && {command}" in message and "does not download it" in message
    assert f"leaf/data/{name}/data/train and leaf/data/{name}/data/test to {folder / 'train'} and {folder / 'test'}" in message
    assert offline == []  # nothing was fetched


def test_a_natural_split_with_another_number_of_clients_is_refused_by_the_config(tmp_path):
    write_femnist(tmp_path)
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(dataset="femnist", model="cnn", partition="natural", num_clients=10)
    (problem,) = err.value.problems
    assert problem.field == "num_clients"
    assert problem.message == (
        "num_clients=10 does not match the data: dataset='femnist' has 3 natural clients; set num_clients=3 or choose another partition"
    )
    # other partitions of the same data take any number of clients
    assert ExperimentConfig.create(dataset="femnist", model="cnn", partition="iid", num_clients=4)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (
            lambda b: b["user_data"]["f0001_40"]["x"][2].pop(),
            "user 'f0001_40', sample 2: 'x' should be 784 pixel values (28x28), found 783",
        ),
        (lambda b: b["user_data"]["f0001_40"]["y"].pop(), "user 'f0001_40': 4 samples in 'x' but 3 labels in 'y'"),
        (lambda b: b["user_data"]["f0003_12"]["y"].__setitem__(0, 62), "user 'f0003_12': 'y' must lie in 0..61"),
        (lambda b: b.pop("user_data"), "is not a LEAF file: it needs a list 'users' and an object 'user_data'"),
        (lambda b: b["users"].append("f9999_00"), "'num_samples' should give one count per user"),
    ],
)
def test_damaged_femnist_files_name_the_file_user_and_sample(damage, expected, tmp_path):
    write_femnist(tmp_path)
    path = tmp_path / "femnist" / "train" / FEMNIST_FILES.format(i=0, part="train")
    blob = json.loads(path.read_text())
    damage(blob)
    path.write_text(json.dumps(blob))

    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(ExperimentConfig.create(dataset="femnist", model="cnn"))
    assert str(info.value).startswith(str(path)) and expected in str(info.value)


def test_a_next_character_outside_leafs_alphabet_is_its_last_class_as_leaf_makes_it(tmp_path, caplog):
    written = write_shakespeare(tmp_path)
    written["train"][0]["MACBETH_MACBETH"]["y"][3] = "~"
    written["test"][0]["HAMLET_OPHELIA"]["y"][1] = "é"
    write_leaf(tmp_path, "shakespeare", written)
    config = ExperimentConfig.create(dataset="shakespeare", model="char_lstm")
    data = load_dataset(config)

    assert data.y_train[5 + 3 + 3] == LAST_CLASS == 79 == ALL_LETTERS.index("}")  # LEAF: vec[ALL_LETTERS.find('~')] = vec[-1]
    assert data.y_test[2 + 1] == 79 and int(data.y_train.max()) < data.info.num_classes
    (record,) = [r for r in caplog.records if "not among LEAF's 80 characters" in r.getMessage()]  # once, for config and load
    assert record.getMessage().startswith("next characters ('y') not among LEAF's 80 characters: 2 in Shakespeare's files (first: '~' in ")
    assert "user 'MACBETH_MACBETH', sample 3); each counts as its last class, '}', as LEAF's letter_to_vec makes it" in record.getMessage()


def test_test_files_whose_num_samples_exceed_their_samples_are_read_as_leafs_split_data_writes_them(tmp_path, caplog):
    """LEAF's split_data.py records a test user's num_samples before it moves samples to training:
    Shakespeare's test files then claim 79 more samples than they hold."""
    written = write_shakespeare(tmp_path)
    write_leaf(tmp_path, "shakespeare", written)
    path = next((tmp_path / "shakespeare" / "test").glob("*.json"))
    blob = json.loads(path.read_text())
    blob["num_samples"][0] += 79
    path.write_text(json.dumps(blob))

    out = tmp_path / "out"
    args = ["run", "--dataset", "shakespeare", "--model", "char_lstm", "--partition", "natural", "--rounds", "1", "--local-epochs", "1"]
    assert main([*args, "--data-dir", str(tmp_path), "--no-store", "--quiet", "--out", str(out)]) == 0
    assert load_dataset(ExperimentConfig.create(dataset="shakespeare", model="char_lstm")).x_test.shape == (6, 80)
    (record,) = [r for r in caplog.records if "num_samples" in r.getMessage()]
    assert record.getMessage() == (
        "'num_samples' differs from the samples in 'user_data' for 1 of Shakespeare's users (first: "
        f"{path}, user 'THE_TEMPEST_PROSPERO': 'num_samples' says 81, 'user_data' holds 2), as LEAF's split_data.py may write it; "
        "the samples present are used"
    )


def test_invalid_json_is_explained(tmp_path):
    write_shakespeare(tmp_path)
    config = ExperimentConfig.create(dataset="shakespeare", model="char_lstm")

    path = next((tmp_path / "shakespeare" / "test").glob("*.json"))
    path.write_text('{"users": ["a"],\n "user_data": {')
    with pytest.raises(DatasetUnavailable, match=r"is not valid JSON \(line 2, column 16"):
        load_dataset(config)


def test_a_changed_file_is_read_again(tmp_path):
    write_femnist(tmp_path, seed=0)
    config = ExperimentConfig.create(dataset="femnist", model="cnn")
    before = load_dataset(config)
    written = write_femnist(tmp_path, seed=1)
    written["train"][1]["f0002_33"]["y"].append(7)  # a different size, so the change shows even within one clock tick
    written["train"][1]["f0002_33"]["x"].append([0.5] * 784)
    write_leaf(tmp_path, "femnist", written)
    after = load_dataset(config)
    assert len(after.y_train) == len(before.y_train) + 1


def test_a_short_femnist_run_with_leafs_cnn_on_the_natural_split(tmp_path):
    write_femnist(tmp_path)
    config = ExperimentConfig.create(
        dataset="femnist", model="femnist_cnn", partition="natural", num_clients=3,
        clients_per_round=2, rounds=2, local_epochs=1, batch_size=4, lr=0.01,
    )  # fmt: skip
    sim = Simulation(config)
    assert [len(p) for p in sim.parts] == [5, 4, 6]
    assert sim.label_counts.shape == (3, 62) and sim.label_counts[0, 60] == 1
    results = list(sim.run())
    assert [r.round for r in results] == [1, 2]
    assert all(np.isfinite(r.test_loss) and 0 <= r.test_accuracy <= 1 for r in results)
    assert {c.num_samples for r in results for c in r.clients} <= {5, 4, 6}  # each trains on all its samples
    # each writer is evaluated on its own test file samples (2, 1 and 2), not on a part of its training samples
    assert [e.test_samples for e in results[-1].evaluations] == [2, 1, 2]
    load_flat(sim.model, results[-1].state.params)
    with torch.no_grad():
        right = (sim.model(sim.x_test).argmax(1) == sim.y_test).tolist()  # the test files' samples in order: f0003, f0001, f0002
    assert [e.test_accuracy for e in results[-1].evaluations] == [np.mean(right[0:2]), np.mean(right[2:3]), np.mean(right[3:5])]


def test_a_test_user_without_training_samples_is_nobodys_client(tmp_path):
    rng = np.random.default_rng(0)
    train = [{"f0003_12": femnist_user(rng, 5, 60), "f0001_40": femnist_user(rng, 4, 0)}]
    test = [{"f0009_99": femnist_user(rng, 3, 1), "f0001_40": femnist_user(rng, 2, 2)}]
    write_leaf(tmp_path, "femnist", {"train": train, "test": test})
    config = ExperimentConfig.create(dataset="femnist", model="femnist_cnn", partition="natural", num_clients=2)
    assert load_dataset(config).test_clients.tolist() == [-1, -1, -1, 1, 1]
    assert [len(p) for p in Simulation(config).test_parts] == [0, 2]


def test_a_short_shakespeare_run_trains_the_lstm_one_client_at_a_time(tmp_path):
    write_shakespeare(tmp_path)
    config = ExperimentConfig.create(
        dataset="shakespeare", model="char_lstm", partition="natural", num_clients=3,
        clients_per_round=2, rounds=2, local_epochs=1, batch_size=8, lr=0.5,
    )  # fmt: skip
    assert config.executor == "auto"
    sim = Simulation(config)
    assert isinstance(sim.executor, SequentialExecutor)
    results = list(sim.run())
    assert len(results) == 2 and all(np.isfinite(r.test_loss) for r in results)
    sizes = {0: 5, 1: 3, 2: 4}
    assert all(c.num_samples == sizes[c.client_id] and c.num_steps == 1 for r in results for c in r.clients)
    assert results[0].test_loss != results[1].test_loss  # training moved the model
