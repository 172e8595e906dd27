"""A run store made unusable in each common way: what the CLI says, and what stays usable.

Each test damages a real store file (tests/store_faults.py) and reads what a user reads: one
sentence naming the file, what is wrong and what to do, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_faults import corrupt_middle, filled_store, full_disk, read_only, tiny_config, truncate

from flcore.cli import main
from flcore.service.execute import execute_run
from flcore.store import RunStore, StoreError, StoreFault, actions

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--num-clients", "3", "--rounds", "2", "--partition", "iid", "--model", "logistic", "--quiet"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flcore", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def one_sentence(stderr: str, path: Path) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and str(path) in lines[0], stderr
    return lines[0]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("whole") / "runs.db"
    return path, filled_store(path)


def copy_of(whole, tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    shutil.copy(whole[0], path)
    return path


def test_a_whole_store_passes_the_check(whole, tmp_path):
    path = copy_of(whole, tmp_path)
    done = cli("check", "--store", str(path))
    assert done.returncode == 0 and f"the run store {path} is whole" in done.stdout and "all 12 runs can be read" in done.stdout


def test_garbage_in_the_middle_is_found_and_the_other_runs_stay_usable(whole, tmp_path):
    path = copy_of(whole, tmp_path)
    corrupt_middle(path)
    check = cli("check", "--store", str(path))
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"the run store {path} is damaged: SQLite's integrity check found" in check.stdout
    assert "restore the file from a backup" in check.stdout
    damaged = [line.split(":")[0].strip() for line in check.stdout.splitlines() if line.startswith("  ") and "cannot be read" in line]
    assert damaged and set(damaged) < set(whole[1])
    listing = cli("runs", "--store", str(path))  # the rest is listed, and the user told the store is damaged
    assert listing.returncode == 0 and "cannot be read; `python -m flcore check` names them" in listing.stderr
    listed = {line.split()[0] for line in listing.stdout.splitlines()[1:]}
    readable = set(whole[1]) - set(damaged)
    assert listed and listed <= set(whole[1]) and listed >= readable - set(damaged)
    kept = sorted(readable)[0]
    assert cli("show", kept, "--store", str(path)).returncode == 0
    broken = cli("show", damaged[0], "--store", str(path))  # a run whose record or rows are gone: one sentence
    if broken.returncode != 0:
        assert "is damaged or truncated" in one_sentence(broken.stderr, path)


@pytest.mark.parametrize("keep", [None, 50])
def test_a_truncated_store_is_called_damaged_or_truncated_with_what_to_do(whole, tmp_path, keep):
    path = copy_of(whole, tmp_path)
    truncate(path, keep)
    for command in (["runs"], ["show", whole[1][0]], ["run", *SMALL, "--out", str(tmp_path / "o")]):
        done = cli(*command, "--store", str(path))
        sentence = one_sentence(done.stderr, path)
        assert done.returncode == 2 and "is damaged or truncated" in sentence and "restore it from a backup" in sentence
        assert "not an SQLite database" not in sentence
    assert cli("check", "--store", str(path)).returncode == 1


def test_a_file_that_is_not_a_store_is_named_as_such(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 200)
    sentence = one_sentence(cli("runs", "--store", str(path)).stderr, path)
    assert "is not a flcore run store: it is not an SQLite file" in sentence and "point FLCORE_STORE" in sentence


def test_a_folder_as_the_store_is_named_as_such(tmp_path):
    sentence = one_sentence(cli("runs", "--store", str(tmp_path)).stderr, tmp_path)
    assert "is a folder" in sentence and str(tmp_path / "runs.db") in sentence


def test_runs_and_show_work_in_a_read_only_folder_and_run_says_why_it_cannot(whole, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "runs.db"
    shutil.copy(whole[0], path)
    with read_only(folder):
        listing = cli("runs", "--store", str(path))
        assert listing.returncode == 0, listing.stderr
        assert len(listing.stdout.splitlines()) == 13
        shown = cli("show", whole[1][0], "--store", str(path))
        assert shown.returncode == 0 and "status: done (3/3 rounds)" in shown.stdout
        assert cli("check", "--store", str(path)).returncode == 0
        run = cli("run", *SMALL, "--out", str(tmp_path / "o"), "--store", str(path))
        sentence = one_sentence(run.stderr, path)
        assert run.returncode == 2 and "cannot write the run store" in sentence and "permissions of the file and its folder" in sentence
        assert sorted(p.name for p in folder.iterdir()) == ["runs.db"]  # reading left nothing beside it


def test_a_read_only_store_file_is_read_and_a_run_is_refused_with_a_sentence(whole, tmp_path):
    path = copy_of(whole, tmp_path)
    with read_only(path):
        assert cli("runs", "--store", str(path)).returncode == 0
        run = cli("run", *SMALL, "--out", str(tmp_path / "o"), "--store", str(path))
        assert run.returncode == 2 and "cannot write the run store" in one_sentence(run.stderr, path)


def test_a_full_disk_stops_the_run_resumable_and_says_which_file(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    store = RunStore(path)
    run_id = store.create_run(tiny_config(rounds=3))
    with full_disk(monkeypatch):
        limited = RunStore(path)  # its connections cannot grow the file
        with pytest.raises(StoreFault) as raised:  # a write that needs new pages
            limited.save_partition(run_id, np.ones((3000, 10), dtype=np.int64))
        assert raised.value.kind == "full" and isinstance(raised.value, StoreError)
        assert execute_run(limited, run_id) == "interrupted"
    info = RunStore(path).get_run(run_id)
    assert info.status == "interrupted" and str(path) in info.error and "disk is full" in info.error
    assert "resumed from its last finished round" in info.error and "resume" in actions(info)
    store = RunStore(path)
    store.resume(run_id)  # once there is space again, it continues
    assert execute_run(store, run_id) == "done" and store.get_run(run_id).rounds_done == 3


def test_the_cli_says_a_full_disk_in_a_sentence(tmp_path, monkeypatch, capsys):
    path = tmp_path / "runs.db"
    RunStore(path)
    with full_disk(monkeypatch):
        code = main(["run", *SMALL, "--out", str(tmp_path / "o"), "--store", str(path)])
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err and str(path) in err and "disk is full" in err
    assert "OperationalError" not in err


def test_a_run_left_running_by_a_dead_process_becomes_interrupted(tmp_path, capsys):
    path = tmp_path / "runs.db"
    store = RunStore(path)
    run_id = store.create_run(tiny_config())
    assert store.claim(run_id)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.mark_running(run_id, dead.pid)
    assert main(["runs", "--store", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"run {run_id} was left running by a process that is gone; it is now interrupted" in err
    assert "interrupted" in out
    info = store.get_run(run_id)
    assert info.status == "interrupted" and "resume" in actions(info)


def test_a_killed_cli_run_is_marked_interrupted_by_the_next_command(tmp_path):
    path = tmp_path / "runs.db"
    args = ["--num-clients", "3", "--rounds", "10000", "--partition", "iid", "--model", "logistic", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flcore", "run", *args, "--out", str(tmp_path / "o"), "--store", str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:  # the CLI may still be building the store's tables: "empty", as a missing file is
                runs = RunStore(path, readonly=True).list_runs()
            except StoreError:
                runs = []
            if runs and runs[0].rounds_done >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the CLI run stored no round within 90 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert RunStore(path).list_runs()[0].status == "running"  # what it was left as
    shown = cli("show", runs[0].run_id, "--store", str(path))
    assert shown.returncode == 0 and "status: interrupted" in shown.stdout
    assert "was left running by a process that is gone" in shown.stderr
    info = RunStore(path).get_run(runs[0].run_id)
    assert "resume" in actions(info) and "resume it to continue from round" in info.error
