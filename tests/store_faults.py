"""Store files made unusable in each common way, for the tests of what users then read.

Each helper damages a real SQLite run store as it happens in use: garbage written over the middle
of the file, a file cut short, a file or a folder that may not be written (also for root, who
ignores permission bits: the file or folder is then made immutable with `chattr +i`), a file
whose writes fail as on a full disk (`PRAGMA max_page_count` pinned to its current size).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from flcore.config import ExperimentConfig
from flcore.federation.simulation import ClientResult, RoundResult
from flcore.store import RunStore

GARBAGE = 64 * 1024


def tiny_config(**changes) -> ExperimentConfig:
    values = {"dataset": "digits", "num_clients": 3, "rounds": 4, "model": "logistic", "partition": "iid", **changes}
    return ExperimentConfig.create(**values)


def _round(round_: int) -> RoundResult:
    clients = tuple(ClientResult(c, 10 + c, 3, 0.5 / round_ + c, 0.25 * c, 1.5 + c, malicious=False) for c in range(3))
    return RoundResult(
        round=round_,
        sampled_clients=(0, 1, 2),
        clients=clients,
        test_loss=1.0 / round_,
        test_accuracy=0.1 * round_,
        wall_time_s=0.01,
        bytes_sent=100,
        bytes_received=200,
    )


def filled_store(path: Path, runs: int = 12, rounds: int = 3) -> list[str]:
    """A store of `runs` runs, each with `rounds` rounds and a 20 KB checkpoint, all in the main
    file (the WAL merged into it), as a store looks after some use; returns the run ids."""
    store = RunStore(path)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(runs):
        run_id = store.create_run(tiny_config(name=f"run {i}", rounds=rounds))
        store.claim(run_id)
        store.save_partition(run_id, np.ones((3, 10), dtype=np.int64))
        for r in range(1, rounds + 1):
            store.append_round(run_id, _round(r), rng.bytes(20_000))
        store.finish(run_id, "done")
        ids.append(run_id)
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._conn().close()
    return ids


def corrupt_middle(path: Path) -> None:
    """64 KiB of garbage over the middle of the file (a bad sector, a half-written copy)."""
    size = path.stat().st_size
    assert size > 3 * GARBAGE, "the store is too small to damage only its middle"
    with open(path, "r+b") as f:
        f.seek(size // 2 - GARBAGE // 2)
        f.write(np.random.default_rng(1).bytes(GARBAGE))


def truncate(path: Path, keep: int | None = None) -> None:
    """Cut the file short (a copy that stopped, a disk that filled while copying): by default to
    a third of its size."""
    os.truncate(path, path.stat().st_size // 3 if keep is None else keep)


def _chattr(flag: str, path: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("running as root, and without chattr nothing can be made read-only for root")
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"running as root, and chattr cannot make {path} read-only here: {done.stderr.strip()}")


@contextmanager
def read_only(path: Path):
    """`path` (a file or a folder) may not be written while inside, by anyone."""
    mode = path.stat().st_mode
    os.chmod(path, stat.S_IMODE(mode) & ~0o222)
    root = os.geteuid() == 0
    if root:
        _chattr("+i", path)
    try:
        yield path
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        os.chmod(path, stat.S_IMODE(mode))


@contextmanager
def full_disk(monkeypatch):
    """Every connection opened inside cannot make its file larger than it is (SQLITE_FULL, as
    on a full disk): `PRAGMA max_page_count` is never set below the current size, so 1 pins it."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real(*args, **kwargs)
        conn.execute("PRAGMA max_page_count = 1")
        return conn

    with monkeypatch.context() as m:
        m.setattr(sqlite3, "connect", connect)
        yield
