"""Uploaded data files: stored in the server's data folder under their content hash, limited in
kind and size, and the only files a run submitted to a server may read."""

from __future__ import annotations

import pytest

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
    stored = uploads.save(CSV, "mine.csv", server_settings)
    assert submission_problems(store, config.replace(data_file=str(stored.path)), "alice", server_settings) == []


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("ragged.csv", b"a,b,label\n1,2,x\n3,4,5,6\n", "'ragged.csv' line 3 has 4 values, but the header names 3 columns"),
        ("header.tsv", b"a\tb\tlabel\n", "'header.tsv' has a header line but no samples"),
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
