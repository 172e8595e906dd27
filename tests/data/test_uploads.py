"""Uploaded data files: stored in the server's data folder under their content hash, limited in
kind and size, and the only files a run submitted to a server may read."""

from __future__ import annotations

import pytest

from flcore.config import ExperimentConfig
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
    [("notes.txt", b"x", "not a CSV, NPZ or ZIP file"), ("empty.csv", b"", "is empty"), ("big.csv", b"x" * (2 * 2**20), "at most 1 MB")],
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
