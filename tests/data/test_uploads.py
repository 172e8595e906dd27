"""Uploaded data files: stored in the server's data folder under their content hash, limited in
kind and size, and the only files a run submitted to a server may read."""

from __future__ import annotations

import json

import pytest

from flcore.auth import User
from flcore.cli import main
from flcore.config import ConfigError, ExperimentConfig
from flcore.data import uploads
from flcore.service.quotas import submission_problems
from flcore.store import RunStore

CSV = b"f1,f2,label\n" + b"".join(f"{i % 7},{i % 5},{i % 3}\n".encode() for i in range(60))


def test_an_upload_is_stored_once_under_its_content_hash_and_listed(server_settings):
    first = uploads.save(CSV, "mine.csv", server_settings, "alice")
    again = uploads.save(CSV, "same-again.csv", server_settings, "bob")
    assert first.path == again.path and first.path.parent == server_settings.data_dir / "uploads"
    assert first.path.read_bytes() == CSV and len(first.path.stem) == 64  # sha256
    (listed,) = uploads.listing(server_settings)
    assert listed.path == first.path and listed.name == "same-again.csv" and listed.uploaded_by == "bob"
    assert listed.label.startswith("same-again.csv (")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", b"x", "not a CSV, TSV, NPZ or ZIP file"),
        ("empty.csv", b"", "is empty"),
        ("big.csv", b"x" * (2 * 2**20), "at most 1 MB"),
    ],
)
def test_an_upload_of_the_wrong_kind_or_size_is_refused_with_a_sentence(server_settings, name, data, message):
    with pytest.raises(uploads.UploadError, match=message):
        uploads.save(data, name, server_settings.with_changes(max_upload_mb=1))
    assert not (server_settings.data_dir / "uploads").exists() or not any((server_settings.data_dir / "uploads").glob("*.csv"))


def test_a_run_on_the_server_may_read_only_uploaded_files(server_settings, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_bytes(CSV)
    store = RunStore(tmp_path / "runs.db")
    config = ExperimentConfig.create(dataset="file", data_file=str(outside), model="logistic", num_clients=3)
    (problem,) = submission_problems(store, config, "alice", server_settings)
    assert problem.field == "data_file" and "uploaded to this server" in problem.message
    stored = uploads.save(CSV, "mine.csv", server_settings, "alice")
    assert submission_problems(store, config.replace(data_file=str(stored.path)), "alice", server_settings) == []


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("ragged.csv", b"a,b,label\n1,2,x\n3,4,5,6\n", "'ragged.csv' line 3 has 4 values, but the header names 3 columns"),
        ("header.tsv", b"a\tb\tlabel\n", "'header.tsv' has a header line but no samples"),
        ("labels.csv", b"label\na\nb\na\n", "'labels.csv' has one column ('label'): a table needs a label column and at least one"),
        ("spaces.csv", b"x y label\n1 2 a\n3 4 b\n", "'spaces.csv' has one column ('x y label')"),
        ("arrays.npz", b"PK\x03\x04 not really a zip", "'arrays.npz' is not a valid NPZ file"),
        ("images.zip", b"plain text, not a zip", "'images.zip' is not a valid ZIP file"),
    ],
)
def test_an_upload_the_reader_cannot_read_is_refused_by_its_own_name_and_not_kept(server_settings, name, data, message):
    with pytest.raises(uploads.UploadError) as err:
        uploads.save(data, name, server_settings)
    assert str(err.value).startswith(message)
    kept = [p.name for p in (server_settings.data_dir / "uploads").iterdir()] if (server_settings.data_dir / "uploads").exists() else []
    assert kept == [] and uploads.listing(server_settings) == []


def test_a_tsv_upload_trains_and_sentences_name_an_upload_as_it_was_sent(server_settings, tmp_path):
    stored = uploads.save(CSV.replace(b",", b"\t"), "mine.tsv", server_settings, "alice")
    assert (
        stored.path.suffix == ".tsv"
        and stored.path.stem != "mine"
        and uploads.original_name(str(stored.path), server_settings) == "mine.tsv"
    )
    args = ["run", "--dataset", "file", "--data-file", str(stored.path), "--model", "logistic", "--num-clients", "3"]
    assert main([*args, "--rounds", "1", "--no-store", "--quiet", "--out", str(tmp_path / "out")]) == 0

    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(dataset="file", data_file=str(stored.path), model="logistic", label_column="species")
    (problem,) = err.value.problems
    assert problem.message == "label_column='species' is not a column of 'mine.tsv'; its columns are: f1, f2, label"
    assert stored.path.stem not in str(err.value)
    assert uploads.original_name(str(tmp_path / "elsewhere.csv"), server_settings) is None


def test_an_upload_belongs_to_whoever_sent_it_and_an_admin_sees_them_all(server_settings):
    alice = uploads.save(CSV, "alice.csv", server_settings, "alice")
    bob = uploads.save(CSV.replace(b"f1", b"g1"), "bob.csv", server_settings, "bob")
    assert [u.name for u in uploads.listing(server_settings, User("alice"))] == ["alice.csv"]
    assert [u.name for u in uploads.listing(server_settings, User("bob"))] == ["bob.csv"]
    assert {u.path for u in uploads.listing(server_settings, User("root", admin=True))} == {alice.path, bob.path}
    assert uploads.listing(server_settings, User("carol")) == []
    assert len(uploads.listing(server_settings)) == 2  # the server itself (the CLI) sees all


def test_someone_elses_upload_is_not_deleted_and_the_sentence_names_it_as_sent(server_settings):
    stored = uploads.save(CSV, "cars.csv", server_settings, "alice")
    with pytest.raises(uploads.UploadError, match="'cars.csv' was uploaded by someone else"):
        uploads.delete(str(stored.path), server_settings, User("bob"))
    assert stored.path.is_file()
    uploads.delete(str(stored.path), server_settings, User("alice"))
    assert not stored.path.exists() and stored.path.name not in json.loads((uploads.folder(server_settings) / "index.json").read_text())
    with pytest.raises(uploads.UploadError, match="not a file uploaded to this server"):
        uploads.delete(str(stored.path), server_settings, User("alice"))


def test_the_same_bytes_sent_by_two_people_stay_until_both_delete_them_or_an_admin_does(server_settings):
    stored = uploads.save(CSV, "a.csv", server_settings, "alice")
    uploads.save(CSV, "b.csv", server_settings, "bob")
    uploads.delete(str(stored.path), server_settings, User("alice"))
    assert stored.path.is_file() and uploads.listing(server_settings, User("alice")) == []
    assert [u.path for u in uploads.listing(server_settings, User("bob"))] == [stored.path]
    uploads.save(CSV, "a.csv", server_settings, "alice")
    uploads.delete(str(stored.path), server_settings, User("root", admin=True))
    assert not stored.path.exists() and uploads.listing(server_settings) == []


def test_a_run_on_someone_elses_upload_is_refused_unless_an_admin_submits_it(server_settings, tmp_path):
    stored = uploads.save(CSV, "cars.csv", server_settings, "alice")
    store = RunStore(tmp_path / "runs.db")
    config = ExperimentConfig.create(dataset="file", data_file=str(stored.path), model="logistic", num_clients=3)
    (problem,) = submission_problems(store, config, User("bob"), server_settings)
    assert problem.field == "data_file" and problem.message.startswith("'cars.csv' was uploaded by someone else")
    assert stored.path.stem not in problem.message
    assert submission_problems(store, config, "bob", server_settings) == [problem]
    assert submission_problems(store, config, User("alice"), server_settings) == []
    assert submission_problems(store, config, User("root", admin=True), server_settings) == []
    assert submission_problems(store, config, "root", server_settings.with_changes(admins=frozenset({"root"}))) == []
