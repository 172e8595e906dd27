"""The run store: every run's config, status, progress and per-round results, in SQLite.

One file (``$FLCORE_STORE``, else ``~/.local/share/flcore/runs.db``) is shared by the dashboard,
its worker processes and the CLI, so a run started anywhere shows up everywhere. Tables: ``runs``
(config as JSON, status, progress, error, pid/host/heartbeat of the worker), ``rounds`` (one row
per round: the global numbers plus the strategy's metrics as JSON), ``client_rounds`` (one row
per sampled client per round), ``partitions`` (the clients x labels count matrix) and
``checkpoints`` (the latest `ServerState` of a run, as bytes). The database runs in WAL mode so
readers never block the writer; each thread and process opens its own connection. A round's
global row, client rows, progress and checkpoint are written in one transaction, so the store
never holds half a round and the checkpoint always matches the last stored round.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd

from flcore.config import ConfigError, ExperimentConfig

if TYPE_CHECKING:
    from flcore.simulation import RoundResult

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
RESUMABLE = ("interrupted", "cancelled", "failed")

STALE_AFTER_S = 120.0  # a running run whose heartbeat is older than this has lost its worker
BUSY_TIMEOUT_MS = 30_000

ROUND_COLUMNS = (
    "round", "test_loss", "test_accuracy", "num_sampled", "mean_train_loss",
    "wall_time_s", "bytes_sent", "bytes_received",
)  # fmt: skip
CLIENT_COLUMNS = (
    "round", "client_id", "num_samples", "num_steps", "train_loss", "train_accuracy", "update_norm", "malicious",
)  # fmt: skip
PARTITION_COLUMNS = ("client_id", "label", "count")

# The schema, as the migrations that build it: MIGRATIONS[k] takes a store from version k to k + 1
# (PRAGMA user_version holds a store's version). A shipped migration is never edited; a change to
# the schema is a new migration at the end, and tests/test_store_upgrade.py opens a store made by
# the first release with today's code.
_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    config_json      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    rounds_done      INTEGER NOT NULL DEFAULT 0,
    total_rounds     INTEGER NOT NULL,
    error            TEXT,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    heartbeat_at     REAL,
    final_accuracy   REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    source           TEXT NOT NULL,
    pid              INTEGER,
    host             TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS rounds (
    run_id          TEXT NOT NULL,
    round           INTEGER NOT NULL,
    test_loss       REAL,
    test_accuracy   REAL,
    num_sampled     INTEGER NOT NULL,
    mean_train_loss REAL,
    wall_time_s     REAL NOT NULL,
    bytes_sent      INTEGER NOT NULL,
    bytes_received  INTEGER NOT NULL,
    metrics_json    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, round)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_rounds (
    run_id         TEXT NOT NULL,
    round          INTEGER NOT NULL,
    client_id      INTEGER NOT NULL,
    num_samples    INTEGER NOT NULL,
    num_steps      INTEGER NOT NULL,
    train_loss     REAL,
    train_accuracy REAL,
    update_norm    REAL,
    malicious      INTEGER NOT NULL,
    PRIMARY KEY (run_id, round, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partitions (
    run_id      TEXT PRIMARY KEY,
    counts_json TEXT NOT NULL  -- clients x labels, a JSON list of lists
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT PRIMARY KEY,
    round  INTEGER NOT NULL,
    state  BLOB NOT NULL      -- torch.save of the ServerState after `round`
);
"""
MIGRATIONS: tuple[str, ...] = (
    _V1,
    # 2: what the worker process was given (start method, threads, niceness), as JSON
    "ALTER TABLE runs ADD COLUMN worker_json TEXT;",
)
_RUN_FIELDS = (
    "run_id, name, config_json, status, rounds_done, total_rounds, error, created_at, started_at, "
    "finished_at, final_accuracy, cancel_requested, source, worker_json"
)


class StoreError(RuntimeError):
    """The store file cannot be used; the message says why and what to do."""


class RunNotRunning(RuntimeError):
    """A worker tried to write to a run that is no longer `running` (cancelled, interrupted or deleted)."""


def default_store_path() -> Path:
    """$FLCORE_STORE if set, else ~/.local/share/flcore/runs.db"""
    env = os.environ.get("FLCORE_STORE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "flcore" / "runs.db"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    config: ExperimentConfig
    status: str
    rounds_done: int
    total_rounds: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    final_accuracy: float | None
    cancel_requested: bool
    source: str
    worker: dict | None = None  # what its worker process was given: start method, threads, niceness

    @property
    def progress(self) -> float:
        return self.rounds_done / self.total_rounds if self.total_rounds else 0.0


def run_name(config: ExperimentConfig) -> str:
    """The config's own name, or one generated from its main settings."""
    if config.name:
        return config.name
    split = {
        "dirichlet": f"dirichlet({config.alpha:g})",
        "shards": f"shards({config.shards_per_client})",
        "quantity_skew": f"quantity_skew({config.quantity_distribution})",
    }.get(config.partition, config.partition)
    return f"{config.dataset} · {split} · {config.strategy} · {config.num_clients} clients"


@functools.lru_cache(maxsize=4096)
def _parse_config(text: str) -> ExperimentConfig:
    """A stored config; one that no longer validates (e.g. a renamed strategy) is still shown."""
    try:
        return ExperimentConfig.from_json(text)
    except ConfigError:
        return ExperimentConfig.model_construct(**json.loads(text))


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host."""
    if os.name == "nt":  # os.kill would terminate it; rely on heartbeats there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of `script`, one at a time."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")


def _float(value) -> float | None:
    return None if value is None else float(value)


class RunStore:
    """A handle on one store file; cheap to create, safe to share between threads (not processes)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        if self.version() != len(MIGRATIONS):
            self._migrate()

    def version(self) -> int:
        """The schema version of the store file."""
        return self._conn().execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        """Bring the file to the latest schema, one migration after another, in one transaction
        (taken up front, so two processes opening an old store at once migrate it once)."""
        with self._write() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the run store {self.path} was written by a newer flcore (schema {version}, this one reads up to "
                    f"{len(MIGRATIONS)}); upgrade flcore, or point FLCORE_STORE at another file"
                )
            for script in MIGRATIONS[version:]:
                for statement in _statements(script):
                    c.execute(statement)
            c.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def __getstate__(self) -> dict:  # connections never cross a process boundary
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._local = threading.local()

    # Connections ----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (reopened after a fork)."""
        conn, pid = getattr(self._local, "conn", None), getattr(self._local, "pid", None)
        if conn is None or pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # In WAL mode, NORMAL syncs at checkpoints instead of at every commit: a killed process
            # (worker, server) still loses nothing; a power cut may lose the last rounds, never half
            # of one, and never a checkpoint without its rounds. It keeps a run from waiting on the disk.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent writers queue instead of deadlocking."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. on a full disk)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._conn().execute(sql, params).fetchall()

    # Runs -----------------------------------------------------------------------------
    def create_run(self, config: ExperimentConfig, source: str = "dashboard") -> str:
        """Store `config` as a queued run; return its id."""
        with self._write() as c:
            while True:
                run_id = secrets.token_hex(4)
                if not c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                    break
            c.execute(
                "INSERT INTO runs (run_id, name, config_json, status, total_rounds, created_at, source) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                (run_id, run_name(config), config.to_json(), config.rounds, time.time(), source),
            )
        return run_id

    def get_run(self, run_id: str) -> RunInfo | None:
        rows = self._query(f"SELECT {_RUN_FIELDS} FROM runs WHERE run_id = ?", (run_id,))
        return self._info(rows[0]) if rows else None

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        return [self._info(r) for r in self._query(f"SELECT {_RUN_FIELDS} FROM runs ORDER BY created_at DESC, rowid DESC")]

    @staticmethod
    def _info(row: tuple) -> RunInfo:
        (run_id, name, config_json, status, rounds_done, total, error, created, started, finished, acc, cancel, source, worker) = row
        return RunInfo(
            run_id, name, _parse_config(config_json), status, rounds_done, total, error,
            created, started, finished, acc, bool(cancel), source, json.loads(worker) if worker else None,
        )  # fmt: skip

    def delete_run(self, run_id: str) -> None:
        """Remove the run with all its rows; a worker still running it stops at its next round."""
        with self._write() as c:
            for table in ("client_rounds", "rounds", "partitions", "checkpoints", "runs"):
                c.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def queued(self) -> list[str]:
        """Ids of the queued runs, oldest first."""
        return [r[0] for r in self._query("SELECT run_id FROM runs WHERE status = 'queued' ORDER BY created_at, rowid")]

    # Status changes ------------------------------------------------------------------
    def claim(self, run_id: str) -> bool:
        """Atomically move a queued run to running; False if it is not queued (someone else took it)."""
        now = time.time()
        with self._write() as c:
            cur = c.execute(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), finished_at = NULL, "
                "heartbeat_at = ?, pid = ?, host = ? WHERE run_id = ? AND status = 'queued'",
                (now, now, os.getpid(), socket.gethostname(), run_id),
            )
            return cur.rowcount == 1

    def mark_running(self, run_id: str, pid: int, worker: dict | None = None) -> None:
        """Record the process working on a claimed run (and, from a worker, what it was given);
        raise RunNotRunning if the run is not running."""
        with self._write() as c:
            cur = c.execute(
                "UPDATE runs SET pid = ?, host = ?, heartbeat_at = ?, worker_json = COALESCE(?, worker_json) "
                "WHERE run_id = ? AND status = 'running'",
                (pid, socket.gethostname(), time.time(), None if worker is None else json.dumps(worker), run_id),
            )
            if cur.rowcount != 1:
                raise RunNotRunning(f"run {run_id} is not running")

    def heartbeat(self, run_id: str) -> None:
        with self._write() as c:
            c.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'", (time.time(), run_id))

    def request_cancel(self, run_id: str) -> None:
        """A queued run becomes cancelled at once; a running one is flagged for its worker to stop."""
        with self._write() as c:
            c.execute(
                "UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished_at = ? "
                "WHERE run_id = ? AND status = 'queued'",
                (time.time(), run_id),
            )
            c.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ? AND status = 'running'", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        rows = self._query("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows and rows[0][0])

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run with one of FINISHED and, when it failed or stopped, a sentence saying why."""
        if status not in FINISHED:
            raise ValueError(f"status={status!r} does not end a run; choose one of: {', '.join(FINISHED)}")
        with self._write() as c:
            c.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ?, pid = NULL WHERE run_id = ?",
                (status, error, time.time(), run_id),
            )

    def mark_interrupted(self, run_id: str, error: str, pids: tuple[int, ...] | None = None) -> bool:
        """Running -> interrupted, only if its worker is one of `pids` (when given); True if it changed."""
        sql = "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ?, pid = NULL WHERE run_id = ? AND status = 'running'"
        params: tuple = (error, time.time(), run_id)
        if pids is not None:
            sql += f" AND pid IN ({', '.join('?' * len(pids))})"
            params += tuple(pids)
        with self._write() as c:
            return c.execute(sql, params).rowcount == 1

    def mark_stale_interrupted(self) -> list[str]:
        """Running runs whose worker is gone -> interrupted; returns their ids.

        A worker is gone when its process no longer exists on this host, or when its heartbeat
        is older than STALE_AFTER_S (workers beat every few seconds, so this also covers another
        host or a reused pid). Live workers of another server on the same store are left alone.
        """
        host, now = socket.gethostname(), time.time()
        stale = []
        for run_id, pid, run_host, beat in self._query("SELECT run_id, pid, host, heartbeat_at FROM runs WHERE status = 'running'"):
            gone = run_host == host and pid is not None and not pid_alive(pid)
            if gone or beat is None or now - beat > STALE_AFTER_S:
                reason = "its worker process is gone" if gone else f"its worker sent no heartbeat for {STALE_AFTER_S:.0f} s"
                error = f"The run stopped unexpectedly ({reason}); resume it to continue from round {self._checkpoint_round(run_id) + 1}."
                if self.mark_interrupted(run_id, error, None if pid is None else (pid,)):
                    stale.append(run_id)
        return stale

    def resume(self, run_id: str) -> None:
        """An interrupted, cancelled or failed run goes back in the queue, keeping its rounds.

        Its worker continues from the last checkpoint. Any other status is left as it is.
        """
        with self._write() as c:
            c.execute(
                "UPDATE runs SET status = 'queued', error = NULL, finished_at = NULL, cancel_requested = 0, pid = NULL "
                f"WHERE run_id = ? AND status IN ({', '.join(repr(s) for s in RESUMABLE)})",
                (run_id,),
            )

    # Results --------------------------------------------------------------------------
    def save_partition(self, run_id: str, counts: np.ndarray) -> None:
        """The clients x classes label-count matrix of the run's split."""
        matrix = np.asarray(counts, dtype=np.int64)
        if matrix.ndim != 2:
            raise ValueError(f"label counts must be a clients x classes matrix, got shape {matrix.shape}")
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO partitions (run_id, counts_json) VALUES (?, ?)", (run_id, json.dumps(matrix.tolist())))

    def label_counts(self, run_id: str) -> np.ndarray | None:
        rows = self._query("SELECT counts_json FROM partitions WHERE run_id = ?", (run_id,))
        return np.array(json.loads(rows[0][0]), dtype=np.int64) if rows else None

    def partition_frame(self, run_id: str) -> pd.DataFrame:
        """client_id, label, count (empty, with those columns, before the worker saved the split)."""
        from flcore.data.partition import counts_frame

        counts = self.label_counts(run_id)
        if counts is None or counts.size == 0:
            return pd.DataFrame({c: pd.Series(dtype="int64") for c in PARTITION_COLUMNS})
        return counts_frame(counts)

    def append_round(self, run_id: str, result: "RoundResult", checkpoint: bytes | None = None) -> None:
        """Store one round, its clients, the progress and the checkpoint, in one transaction.

        Raises RunNotRunning (and writes nothing) if the run is no longer running.
        """
        row = result.row()
        metrics = {k: v for k, v in row.items() if k not in ROUND_COLUMNS}
        now = time.time()
        with self._write() as c:
            cur = c.execute(
                "UPDATE runs SET rounds_done = ?, final_accuracy = ?, heartbeat_at = ? WHERE run_id = ? AND status = 'running'",
                (result.round, _float(result.test_accuracy), now, run_id),
            )
            if cur.rowcount != 1:
                raise RunNotRunning(f"run {run_id} is no longer running; round {result.round} was not stored")
            c.execute(
                f"INSERT INTO rounds ({', '.join(ROUND_COLUMNS)}, run_id, metrics_json) VALUES ({', '.join('?' * (len(ROUND_COLUMNS) + 2))})",
                (*(row[k] for k in ROUND_COLUMNS), run_id, json.dumps(metrics, default=float)),
            )
            c.executemany(
                f"INSERT INTO client_rounds (run_id, {', '.join(CLIENT_COLUMNS)}) VALUES ({', '.join('?' * (len(CLIENT_COLUMNS) + 1))})",
                [(run_id, *(r[k] for k in CLIENT_COLUMNS)) for r in result.client_rows()],
            )
            if checkpoint is not None:
                c.execute(
                    "INSERT OR REPLACE INTO checkpoints (run_id, round, state) VALUES (?, ?, ?)",
                    (run_id, result.round, sqlite3.Binary(checkpoint)),
                )

    def load_checkpoint(self, run_id: str) -> bytes | None:
        rows = self._query("SELECT state FROM checkpoints WHERE run_id = ?", (run_id,))
        return bytes(rows[0][0]) if rows else None

    def _checkpoint_round(self, run_id: str) -> int:
        rows = self._query("SELECT round FROM checkpoints WHERE run_id = ?", (run_id,))
        return rows[0][0] if rows else 0

    def discard_rounds_after(self, run_id: str, round_: int) -> None:
        """Drop stored rounds past `round_` (those a resumed run will compute again)."""
        with self._write() as c:
            c.execute("DELETE FROM rounds WHERE run_id = ? AND round > ?", (run_id, round_))
            c.execute("DELETE FROM client_rounds WHERE run_id = ? AND round > ?", (run_id, round_))
            c.execute(
                "UPDATE runs SET rounds_done = ?, final_accuracy = "
                "(SELECT test_accuracy FROM rounds WHERE run_id = ? AND round = ?) WHERE run_id = ?",
                (round_, run_id, round_, run_id),
            )

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the file (a round's rows arrive together or not at all)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def results(self, run_id: str, after: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """`rounds_frame` and `clients_frame` of the rounds past `after`, from one snapshot."""
        with self._snapshot():
            return self.rounds_frame(run_id, after), self.clients_frame(run_id, after)

    def round_wall_time(self, run_id: str, round_: int) -> float | None:
        """The stored wall time of one round (None if it is not stored): a cheap fingerprint that
        changes when a resumed run stores that round again."""
        rows = self._query("SELECT wall_time_s FROM rounds WHERE run_id = ? AND round = ?", (run_id, round_))
        return rows[0][0] if rows else None

    def rounds_frame(self, run_id: str, after: int = 0) -> pd.DataFrame:
        """One row per round (those past round `after`): the global numbers, then the strategy's
        metrics as extra columns."""
        rows = self._query(
            f"SELECT {', '.join(ROUND_COLUMNS)}, metrics_json FROM rounds WHERE run_id = ? AND round > ? ORDER BY round",
            (run_id, after),
        )
        frame = pd.DataFrame([r[:-1] for r in rows], columns=list(ROUND_COLUMNS))
        frame = frame.astype({
            "round": "int64", "test_loss": "float64", "test_accuracy": "float64", "num_sampled": "int64",
            "mean_train_loss": "float64", "wall_time_s": "float64", "bytes_sent": "int64", "bytes_received": "int64",
        })  # fmt: skip
        metrics = pd.DataFrame([json.loads(r[-1]) for r in rows], index=frame.index)
        return pd.concat([frame, metrics], axis=1) if len(metrics.columns) else frame

    def clients_frame(self, run_id: str, after: int = 0) -> pd.DataFrame:
        """One row per sampled client per round (of the rounds past `after`)."""
        rows = self._query(
            f"SELECT {', '.join(CLIENT_COLUMNS)} FROM client_rounds WHERE run_id = ? AND round > ? ORDER BY round, client_id",
            (run_id, after),
        )
        frame = pd.DataFrame(rows, columns=list(CLIENT_COLUMNS))
        return frame.astype({
            "round": "int64", "client_id": "int64", "num_samples": "int64", "num_steps": "int64",
            "train_loss": "float64", "train_accuracy": "float64", "update_norm": "float64", "malicious": "bool",
        })  # fmt: skip
