"""A dataset of one's own (`dataset='file'`): CSV, NPZ and zipped image folders, read by the real
loader from small files the tests write, and every kind of bad file refused with a sentence."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from flcore.cli import main
from flcore.config import ConfigError, ExperimentConfig
from flcore.data import files
from flcore.data.datasets import DataFileError, dataset_info, load_dataset
from flcore.federation.simulation import Simulation


def write_csv(path: Path, n_users: int = 4, per_user: int = 15, seed: int = 0, users: bool = True) -> pd.DataFrame:
    """A user column (u00, u01, ...), feature a (100 x the user's number, plus noise), feature b
    (which decides the word label), a true/false feature, and the label `species`."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    user = np.repeat(np.arange(n_users), per_user)
    a, b = 100 * user + rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "user": [f"u{i:02d}" for i in user],
            "a": a.round(3),
            "b": b.round(3),
            "flag": rng.random(n) > 0.5,
            "species": np.where(b > 0.3, "setosa", np.where(b > -0.3, "versicolor", "virginica")),
        }
    )
    (frame if users else frame.drop(columns="user")).to_csv(path, index=False)
    return frame


def file_config(path, **kw) -> ExperimentConfig:
    return ExperimentConfig.create(dataset="file", data_file=str(path), model="logistic", **kw)


# CSV ------------------------------------------------------------------------------------
def test_a_csv_is_split_by_class_with_a_seed_from_its_content_and_standardised(tmp_path):
    frame = write_csv(tmp_path / "data.csv", users=False)
    data = load_dataset(file_config(tmp_path / "data.csv", label_column="species"))

    assert data.info.class_names == ("setosa", "versicolor", "virginica") and data.info.num_classes == 3
    assert data.info.input_shape == (3,)  # a, b, flag
    assert data.train_clients is None and data.info.natural_clients is None
    counts = frame["species"].value_counts()
    test_counts = np.bincount(data.y_test.numpy(), minlength=3)
    assert test_counts.tolist() == [round(counts[c] * 0.2) for c in ("setosa", "versicolor", "virginica")]
    assert len(data.y_train) + len(data.y_test) == len(frame)
    assert torch.allclose(data.x_train.mean(0), torch.zeros(3), atol=1e-5)  # standardised on the training split
    assert torch.allclose(data.x_train.std(0, unbiased=False), torch.ones(3), atol=1e-4)

    # The split belongs to the file: the same bytes elsewhere split the same way, other bytes differently.
    (tmp_path / "copy.csv").write_bytes((tmp_path / "data.csv").read_bytes())
    again = load_dataset(file_config(tmp_path / "copy.csv", label_column="species"))
    assert torch.equal(again.y_test, data.y_test) and torch.equal(again.x_test, data.x_test)
    write_csv(tmp_path / "other.csv", seed=1, users=False)
    other = load_dataset(file_config(tmp_path / "other.csv", label_column="species"))
    assert not torch.equal(other.x_test[:5], data.x_test[:5])


@pytest.fixture
def users_csv(tmp_path):
    path = tmp_path / "users.csv"
    write_csv(path)
    return path


def test_a_client_column_gives_the_natural_split(users_csv):
    config = file_config(users_csv, label_column="species", client_column="user", partition="natural", num_clients=4)

    data = load_dataset(config)

    assert data.info.input_shape == (3,)  # a, b, flag: user and species are not features
    assert data.info.natural_clients == 4 == dataset_info(config).natural_clients
    # Each training sample's client is its row's user (u00 -> 0, u01 -> 1, ...). Feature a is
    # 100 x the user's number plus noise, so client k's samples lie above client k - 1's.
    a = data.x_train[:, 0]
    bands = [(a[data.train_clients == k].min(), a[data.train_clients == k].max()) for k in range(4)]
    assert all(hi < next_lo for (_, hi), (next_lo, _) in zip(bands, bands[1:]))
    assert np.bincount(data.train_clients).sum() == len(data.y_train) == 48
    sim = Simulation(config.replace(rounds=1))
    assert [len(p) for p in sim.parts] == np.bincount(data.train_clients).tolist()
    assert all(np.array_equal(p, np.flatnonzero(data.train_clients == k)) for k, p in enumerate(sim.parts))


def test_the_natural_split_of_a_file_is_checked_by_the_config(users_csv):
    with pytest.raises(ConfigError) as err:
        file_config(users_csv, label_column="species", client_column="user", partition="natural", num_clients=10)
    assert err.value.problems[0].field == "num_clients"
    assert "dataset='file' has 4 natural clients; set num_clients=4" in str(err.value)

    # left out, the number of clients is taken from the file
    assert file_config(users_csv, label_column="species", client_column="user", partition="natural").num_clients == 4

    without_users = users_csv.with_name("no_users.csv")
    write_csv(without_users, users=False)
    with pytest.raises(ConfigError) as err:
        file_config(without_users, label_column="species", partition="natural", num_clients=4)  # no client column
    assert err.value.problems[0].field == "partition"
    assert str(err.value).startswith("partition='natural' needs data that says which client each sample comes from, and dataset='file'")


@pytest.mark.parametrize(
    "text, settings, field, expected",
    [
        ("", {}, "data_file", "data_file 'bad.csv' is empty: a CSV needs a header line"),
        ("a,b,label\n", {}, "data_file", "'bad.csv' has a header line but no samples"),
        ("a,b,label\n1,2,x\n3,4,y\n5,6,7,8\n", {}, "data_file", "'bad.csv' line 4 has 4 values, but the header names 3 columns"),
        (
            "a,b,label\n1,2,x\n3,,y\n",
            {"missing_values": "refuse"},
            "missing_values",
            "'bad.csv' line 3: column 'b' is empty; set missing_values='impute' (a column's mean, or its most frequent word) or 'drop_rows'",
        ),
        (
            "a,age,label\n1,2,x\n1,3,y\n1,4,x\n1,5 years,y\n",
            {},
            "drop_columns",
            "column 'age' of 'bad.csv' holds numbers, but line 5 holds '5 years': write it as a number (digits, '.' before decimals",
        ),
        (
            "a,b,label\n1,2,x\n3,4,y\n",
            {"label_column": "y"},
            "label_column",
            "label_column='y' is not a column of 'bad.csv'; its columns are: a, b, label",
        ),
        ("a,b,label\n1,2,x\n3,4,y\n", {"client_column": "who"}, "client_column", "client_column='who' is not a column of 'bad.csv'"),
        ("a,b,label\n1,2,x\n3,4,\n", {"missing_values": "refuse"}, "label_column", "'bad.csv' line 3: label_column='label' is empty"),
        (
            "a,b,label\n1,2,x\n3,4,x\n",
            {},
            "label_column",
            "label_column of 'bad.csv' hold a single class ('x'); a classifier needs at least two",
        ),
        ("label\nx\ny\n", {}, "data_file", "'bad.csv' has no feature columns besides label_column='label'"),
        ("a,b,label\n1,inf,x\n3,4,y\n", {}, "data_file", "'bad.csv' line 2: column 'b' holds inf, which is not a finite number"),
        (
            "a,b,label\n1,2,x\n\n3,,y\n",
            {"missing_values": "refuse"},
            "missing_values",
            "'bad.csv' line 4: column 'b' is empty",
        ),  # counting the blank line
    ],
)
def test_a_bad_csv_is_refused_naming_the_line_or_column(tmp_path, text, settings, field, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)

    with pytest.raises(ConfigError) as err:
        file_config(path, **settings)

    (problem,) = err.value.problems
    assert problem.field == field
    assert problem.message.startswith(expected), problem.message


def test_blank_lines_are_skipped(tmp_path):
    (tmp_path / "gaps.csv").write_text("a,b,label\n1,2,x\n\n3,4,y\n4,5,x\n\n\n")
    data = load_dataset(file_config(tmp_path / "gaps.csv"))
    assert len(data.y_train) + len(data.y_test) == 3


def test_missing_and_unknown_files_name_data_file(tmp_path):
    for path, expected in [
        ("", "dataset='file' needs data_file: the path of a CSV (.csv, .tsv), an NPZ (.npz) or a zipped image folder (.zip)"),
        (str(tmp_path / "nope.csv"), f"data_file={str(tmp_path / 'nope.csv')!r} does not exist"),
        (str(tmp_path), f"data_file={str(tmp_path)!r} does not exist (it is a folder)"),
    ]:
        with pytest.raises(ConfigError) as err:
            ExperimentConfig.create(dataset="file", data_file=path)
        assert err.value.problems == [("data_file", expected)]
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(DataFileError, match="data_file 'data.xlsx' is not a kind flcore reads: give a CSV"):
        files.read(str(tmp_path / "data.xlsx"))


def test_a_model_that_cannot_read_the_file_is_refused(users_csv):
    with pytest.raises(ConfigError) as err:
        file_config(users_csv, label_column="species", client_column="user").replace(model="cnn")
    assert err.value.problems[0].field == "model"
    assert "model='cnn' cannot read dataset='file': it needs images of at least 4x4 pixels, this dataset has inputs of 3" in str(err.value)


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / "data.csv"
    write_csv(path, per_user=10, users=False)
    before = load_dataset(file_config(path, label_column="species"))
    write_csv(path, per_user=12, users=False)
    after = load_dataset(file_config(path, label_column="species"))
    assert len(after.y_train) + len(after.y_test) == 48 != len(before.y_train) + len(before.y_test)


def test_the_cli_runs_a_csv_with_a_client_column_on_its_natural_split(users_csv, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--dataset", "file", "--data-file", str(users_csv), "--label-column", "species", "--client-column", "user"]
    args += ["--partition", "natural", "--num-clients", "4", "--model", "mlp", "--rounds", "3", "--lr", "0.05"]

    assert main(["partition", *args]) == 0
    assert "file: 48 training samples, natural split over 4 clients" in capsys.readouterr().out
    assert main(["run", *args, "--out", str(out), "--no-store", "--quiet"]) == 0

    partition = pd.read_csv(out / "partition.csv")
    assert sorted(partition["client_id"].unique()) == [0, 1, 2, 3] and partition["count"].sum() == 48
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["round"].tolist() == [1, 2, 3]
    assert rounds["test_accuracy"].iloc[-1] > 0.5  # three classes cut from feature b: learnable
    config = ExperimentConfig.load(out / "config.json")
    assert (config.data_file, config.label_column, config.client_column) == (str(users_csv), "species", "user")

    assert main(["run", "--dataset", "file", "--data-file", str(tmp_path / "gone.csv"), "--no-store", "--quiet"]) == 2
    assert f"error: data_file={str(tmp_path / 'gone.csv')!r} does not exist" in capsys.readouterr().err


# NPZ ------------------------------------------------------------------------------------
def test_an_npz_with_clients_and_its_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), np.repeat([3, 7, 9], 10)
    client = np.array(["alice", "bob", "carol"] * 10)
    x_test, y_test = rng.normal(size=(6, 5)), np.array([3, 7, 9, 9, 7, 3])
    np.savez(tmp_path / "d.npz", x=x, y=y, client=client, x_test=x_test, y_test=y_test)

    data = load_dataset(ExperimentConfig.create(dataset="file", data_file=str(tmp_path / "d.npz"), partition="natural", num_clients=3))

    assert data.info.class_names == ("3", "7", "9") and data.info.input_shape == (5,)
    assert data.y_train.tolist() == np.repeat([0, 1, 2], 10).tolist() and data.y_test.tolist() == [0, 1, 2, 2, 1, 0]
    assert data.train_clients.tolist() == [0, 1, 2] * 10  # alice, bob, carol
    mean, std = x.mean(0), x.std(0)
    np.testing.assert_allclose(data.x_train.numpy(), (x - mean) / std, atol=1e-5)
    np.testing.assert_allclose(data.x_test.numpy(), (x_test - mean) / std, atol=1e-5)  # the training split's statistics


def test_npz_images_keep_their_shape_and_are_standardised_per_channel(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "grey.npz", x=rng.integers(0, 255, (20, 12, 10)).astype(np.uint8), y=np.arange(20) % 2)
    np.savez(tmp_path / "rgb.npz", x=rng.random((20, 3, 9, 9)) * [[[1.0]], [[10.0]], [[100.0]]], y=np.arange(20) % 4)

    grey = load_dataset(ExperimentConfig.create(dataset="file", data_file=str(tmp_path / "grey.npz"), model="cnn"))
    rgb = load_dataset(ExperimentConfig.create(dataset="file", data_file=str(tmp_path / "rgb.npz"), model="cnn"))

    assert grey.info.input_shape == (1, 12, 10) and rgb.info.input_shape == (3, 9, 9)
    per_channel = rgb.x_train.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-4)


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"x": np.zeros((4, 2))}, "'d.npz' has no array 'y' (it has: x); an NPZ needs x and y, optionally client, x_test and y_test"),
        (
            {"x": np.zeros((4, 2)), "y": np.arange(3)},
            "array 'y' of 'd.npz' has shape [3], but there are 4 samples: it needs one value per sample",
        ),
        (
            {"x": np.zeros((4, 2)), "y": np.arange(4), "client": np.arange(5)},
            "array 'client' of 'd.npz' has shape [5], but there are 4 samples",
        ),
        (
            {"x": np.zeros((4, 1, 2, 2, 2)), "y": np.arange(4)},
            "array 'x' of 'd.npz' has shape [4, 1, 2, 2, 2]; expected [samples, features]",
        ),
        ({"x": np.array(["a", "b"]), "y": np.arange(2)}, "array 'x' of 'd.npz' must hold numbers, found <U1"),
        ({"x": np.array([[1.0], [np.nan]]), "y": np.arange(2)}, "array 'x' of 'd.npz': sample 1 holds NaN or an infinite value"),
        ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_test": np.zeros((2, 2))}, "'d.npz' has only one of x_test and y_test"),
        (
            {"x": np.zeros((4, 2)), "y": np.arange(4), "x_test": np.zeros((2, 3)), "y_test": np.arange(2)},
            "'d.npz': 'x_test' has samples of shape [3] but 'x' of [2]",
        ),
        ({"x": np.zeros((2, 2)), "y": np.array([{"a": 1}, None], dtype=object)}, "array 'y' of 'd.npz' holds Python objects"),
    ],
)
def test_a_bad_npz_is_refused_naming_the_array_and_shape(tmp_path, arrays, expected):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(dataset="file", data_file=str(tmp_path / "d.npz"))
    assert err.value.problems[0].field == "data_file"
    assert str(err.value).startswith(expected), str(err.value)


def test_an_npz_object_array_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([Boom(), Boom()], dtype=object))
    with pytest.raises(DataFileError, match="holds Python objects"):
        files.read(str(tmp_path / "d.npz"))
    assert not (tmp_path / "pwned").exists()


# ZIP of an image folder -----------------------------------------------------------------
def png(size: tuple[int, int], mode: str = "L", value: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 255 - value, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_a_zipped_image_folder_is_read_in_memory_as_one_class_per_folder(tmp_path):
    members = {
        f"pets/{cls}/{i}.png": png((16, 12), value=40 * i + (100 if cls == "dog" else 0)) for cls in ("cat", "dog") for i in range(5)
    }
    members["pets/dog/odd_size.png"] = png((32, 24), value=250)  # resized to the common 16x12 (width x height)
    members["pets/cat/notes.txt"] = b"not an image: skipped"
    members["__MACOSX/pets/cat/._0.png"] = b"resource fork: skipped"
    path = write_zip(tmp_path / "pets.zip", members)
    before = sorted(p.name for p in tmp_path.iterdir())

    data = load_dataset(ExperimentConfig.create(dataset="file", data_file=str(path), model="cnn"))

    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was extracted
    assert data.info.class_names == ("cat", "dog") and data.info.input_shape == (1, 12, 16)
    assert len(data.y_train) + len(data.y_test) == 11 and np.bincount(data.y_test.numpy()).tolist() == [1, 1]
    every = torch.cat([data.x_train, data.x_test]).reshape(11, -1)
    assert torch.all(every.std(1) < 1e-5)  # each image is one flat colour, resized or not
    assert torch.allclose(data.x_train.mean(), torch.tensor(0.0), atol=1e-5)


def test_colour_images_make_rgb_and_large_images_are_scaled_to_64_pixels(tmp_path):
    members = {f"{cls}/{i}.png": png((200, 100), mode="RGB", value=30 * i) for cls in ("a", "b") for i in range(3)}
    members["a/grey.png"] = png((200, 100), value=9)
    data = load_dataset(ExperimentConfig.create(dataset="file", data_file=str(write_zip(tmp_path / "c.zip", members)), model="cnn"))
    assert data.info.input_shape == (3, 32, 64)  # RGB because one image is; 200x100 scaled to fit 64, keeping 2:1


def test_train_and_test_folders_in_the_zip_give_the_split(tmp_path):
    members = {f"train/{c}/{i}.png": png((8, 8), value=i) for c in ("x", "y", "z") for i in range(4)}
    members |= {f"test/{c}/{i}.png": png((8, 8), value=i) for c in ("x", "z") for i in range(2)}
    data = load_dataset(ExperimentConfig.create(dataset="file", data_file=str(write_zip(tmp_path / "s.zip", members)), model="cnn"))
    assert data.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and data.y_test.tolist() == [0, 0, 2, 2]


@pytest.mark.parametrize(
    "members, expected",
    [
        ({"loose.png": png((4, 4)), "a/1.png": png((4, 4))}, "image 'loose.png' in 'z.zip' is not inside a class folder"),
        ({"a/1.png": png((4, 4)), "b/2.png": b"\x89PNG but broken"}, "image 'b/2.png' in 'z.zip' could not be read as an image"),
        ({"a/readme.txt": b"hello"}, "'z.zip' holds no images (.png, .jpg"),
        ({"a/deep/1.png": png((4, 4)), "b/2.png": png((4, 4))}, "image 'a/deep/1.png' in 'z.zip' is nested too deep"),
        ({"a/1.png": png((4, 4)), "a/2.png": png((4, 4))}, "the labels of 'z.zip' hold a single class ('a')"),
    ],
)
def test_a_bad_zip_is_refused_naming_the_image(tmp_path, members, expected):
    path = write_zip(tmp_path / "z.zip", members)
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(dataset="file", data_file=str(path), model="cnn")
    assert err.value.problems[0].field == "data_file"
    assert str(err.value).startswith(expected), str(err.value)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "z.zip").write_text("plain text")
    with pytest.raises(DataFileError, match="'z.zip' is not a valid ZIP file"):
        files.read(str(tmp_path / "z.zip"))


# Tables as they come: separators, words, dates, empty cells, thousands, a continuous label ------------
def write_cars(path: Path, sep: str = ";", rows: int = 40) -> None:
    """A table as a spreadsheet exports it: semicolons, a car's name (all different), a colour
    (words, one empty), a price with '.' between thousands and ',' before decimals, a date, and
    the label `sold` (yes/no, decided by the colour)."""
    colours = ["red", "blue", "green"]
    lines = [sep.join(["name", "colour", "price", "bought", "sold"])]
    for i in range(rows):
        colour = "" if i == 7 else colours[i % 3]
        price = f"{12 + i}.{i % 10}00,5" if sep == ";" else f'"{12 + i},{i % 10}00.5"'
        lines.append(sep.join([f"car {i}", colour, price, f"2024-01-{1 + i % 28:02d}", "yes" if i % 3 == 0 else "no"]))
    path.write_text("\n".join(lines) + "\n")


def test_a_semicolon_table_with_words_dates_and_thousands_is_read_and_trains(tmp_path, caplog):
    path = tmp_path / "cars.csv"
    write_cars(path)
    table = files.read(str(path), "sold", options=files.Options(("name",)))

    assert table.x_train.shape[1] == 5  # colour=blue, colour=green, colour=red, price, bought
    assert table.class_names == ("no", "yes")
    notes = " | ".join(table.notes)
    assert "'cars.csv' is read as separated by semicolons" in notes
    assert "column 'colour' of 'cars.csv' holds words: one-hot encoded as 3 columns" in notes
    assert "column 'price' of 'cars.csv' is read as numbers with '.' between thousands and ',' before decimals" in notes
    assert "column 'bought' of 'cars.csv' holds dates: read as days since 1970-01-01" in notes
    assert "'cars.csv': 1 of 40 rows have an empty cell, filled with" in notes
    assert "'cars.csv' is read as separated by semicolons" in caplog.text  # logged, so the CLI shows it

    out = tmp_path / "out"
    args = ["run", "--dataset", "file", "--data-file", str(path), "--label-column", "sold", "--drop-columns", "name"]
    assert main([*args, "--model", "logistic", "--num-clients", "2", "--rounds", "1", "--no-store", "--quiet", "--out", str(out)]) == 0
    assert ExperimentConfig.load(out / "config.json").drop_columns == "name"


def test_one_hot_columns_hold_the_words_of_each_row(tmp_path):
    path = tmp_path / "colours.csv"
    path.write_text("size,colour,label\n" + "".join(f"{i},{['red', 'blue'][i % 2]},{i % 2}\n" for i in range(10)))
    table = files.read(str(path), options=files.Options(missing_values="refuse"))
    x = np.concatenate([table.x_train, table.x_test])
    y = np.concatenate([table.y_train, table.y_test])
    size, blue, red = x[:, 0], x[:, 1], x[:, 2]
    assert np.all((blue > red) == (y == 1)) and np.unique(size).size == 10


def test_a_comma_table_reads_quoted_thousands_and_a_tsv_reads_tabs(tmp_path):
    write_cars(tmp_path / "cars.csv", sep=",")
    table = files.read(str(tmp_path / "cars.csv"), "sold", options=files.Options(("name",)))
    assert any("read as numbers with ',' between thousands and '.' before decimals" in n for n in table.notes)
    assert not any("separated by" in n for n in table.notes)

    pd.read_csv(tmp_path / "cars.csv", dtype=str).to_csv(tmp_path / "cars.tsv", sep="\t", index=False)  # 12,000.5 unquoted
    table = files.read(str(tmp_path / "cars.tsv"), "sold", options=files.Options(("name",)))
    assert table.x_train.shape[1] == 5 and not any("separated by" in n for n in table.notes)
    assert any("column 'price' of 'cars.tsv' is read as numbers" in n for n in table.notes)


def test_empty_cells_are_imputed_dropped_or_refused_as_missing_values_says(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("a,colour,label\n1,red,x\n,red,y\n3,blue,x\n5,,y\n7,red,\n9,blue,x\n11,blue,y\n")
    imputed = files.read(str(path), options=files.Options(missing_values="impute"))
    x = np.concatenate([imputed.x_train, imputed.x_test])
    assert len(x) == 6  # the row without a label is left out whatever missing_values says
    assert imputed.notes[0] == "'gaps.csv': 1 row with an empty label_column ('label') is left out"
    assert "'gaps.csv': 2 of 6 rows have an empty cell, filled with" in imputed.notes[-1]

    dropped = files.read(str(path), options=files.Options(missing_values="drop_rows"))
    assert len(dropped.y_train) + len(dropped.y_test) == 4
    assert "'gaps.csv': 2 of 6 rows have an empty cell and are left out (missing_values='drop_rows')" in dropped.notes[-1]

    # the mean fills a number: (1 + 3 + 5 + 9 + 1) / 5 = 3.8, before standardising
    (tmp_path / "mean.csv").write_text("a,label\n1,x\n,y\n3,x\n5,y\n9,x\n1,y\n")
    table = files.read(str(tmp_path / "mean.csv"))
    raw = files._read_csv(str(tmp_path / "mean.csv"), "mean.csv", "label", "", ",", files.Options(), [])
    assert raw.x[:, 0].tolist() == [1, 3.8, 3, 5, 9, 1] and len(table.notes) == 1

    with pytest.raises(ConfigError) as err:
        file_config(path, missing_values="refuse")
    assert err.value.problems[0].field == "label_column" and "line 6: label_column='label' is empty" in str(err.value)
    with pytest.raises(ConfigError) as err:
        file_config(tmp_path / "mean.csv", missing_values="refuse")
    assert err.value.problems[0].field == "missing_values" and "'mean.csv' line 3: column 'a' is empty" in str(err.value)
    with pytest.raises(ConfigError) as err:
        file_config(path, missing_values="guess")
    assert "missing_values='guess' is invalid" in str(err.value) and "'impute', 'drop_rows' or 'refuse'" in str(err.value)


def test_drop_columns_takes_text_or_a_list_and_names_a_column_it_does_not_find(tmp_path):
    path = tmp_path / "cars.csv"
    write_cars(path)
    as_text = file_config(path, label_column="sold", drop_columns=" name , bought", num_clients=2)
    as_list = file_config(path, label_column="sold", drop_columns=["name", "bought"], num_clients=2)
    assert as_text.drop_columns == as_list.drop_columns == "name, bought"
    assert dataset_info(as_list).input_shape == (4,)

    with pytest.raises(ConfigError) as err:
        file_config(path, label_column="sold", drop_columns="nmae")
    (problem,) = err.value.problems
    assert problem.field == "drop_columns"
    assert (
        problem.message
        == "drop_columns names 'nmae', which is not a column of 'cars.csv'; its columns are: name, colour, price, bought, sold"
    )
    with pytest.raises(ConfigError, match="drop_columns names 'sold', which is label_column; it cannot be left out"):
        file_config(path, label_column="sold", drop_columns="sold")


def test_a_text_column_with_too_many_words_is_refused_naming_it(tmp_path):
    path = tmp_path / "cars.csv"
    write_cars(path, rows=60)
    with pytest.raises(ConfigError) as err:
        file_config(path, label_column="sold")
    (problem,) = err.value.problems
    assert problem.field == "drop_columns"
    assert problem.message.startswith(
        "column 'name' of 'cars.csv' holds 60 different words ('car 0', 'car 1', 'car 2', ...), more than the 50 categories "
        "a text column may have: leave it out with drop_columns='name'"
    )


def test_a_continuous_label_is_refused_unless_many_classes_are_allowed(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "prices.csv"
    pd.DataFrame({"a": rng.normal(size=300), "price": np.arange(300) % 94 * 1.5 + 0.25}).to_csv(path, index=False)
    with pytest.raises(ConfigError) as err:
        file_config(path, label_column="price")
    (problem,) = err.value.problems
    assert problem.field == "label_column"
    assert problem.message.startswith("label_column of 'prices.csv' hold 94 different values over 300 samples (3.2 per class)")
    assert "set allow_many_classes=true" in problem.message
    assert dataset_info(file_config(path, label_column="price", allow_many_classes=True)).num_classes == 94


def test_the_cli_prints_what_reading_changed(tmp_path):
    """The notes are logged; `python -m flcore run` shows them on stderr (a separate process, as a user runs it)."""
    path = tmp_path / "cars.csv"
    write_cars(path)
    flags = ["--dataset", "file", "--data-file", str(path), "--label-column", "sold", "--drop-columns", "name", "--model", "logistic"]
    flags += ["--num-clients", "2", "--rounds", "1", "--no-store", "--quiet", "--out", str(tmp_path / "out")]
    env = {**os.environ, "FLCORE_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "flcore", "run", *flags], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "'cars.csv' is read as separated by semicolons (found in its first lines)" in done.stderr
    assert done.stderr.count("'cars.csv': 1 of 40 rows have an empty cell, filled with its column's mean") == 1  # once per file


def test_true_and_false_with_an_empty_cell_stay_one_and_zero(tmp_path):
    path = tmp_path / "flags.csv"
    path.write_text("flag,label\ntrue,x\nFalse,y\n,x\nTRUE,y\n")
    raw = files._read_csv(str(path), "flags.csv", "label", "", ",", files.Options(missing_values="drop_rows"), [])
    assert raw.x[:, 0].tolist() == [1, 0, 1]
