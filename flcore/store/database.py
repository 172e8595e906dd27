"""The store's file: SQLite connections, transactions and the versioned schema.

One file (``$FLCORE_STORE``, else ``~/.local/share/flcore/runs.db``) is shared by the dashboard,
its worker processes and the CLI. It runs in WAL mode so readers never block the writer; each
thread and process opens its own connection. The schema is built by `MIGRATIONS`, applied in
order, in one transaction, the first time a file is opened by a newer flcore; PRAGMA
user_version records how far a file has come. A shipped migration is never edited: a change is a
new migration at the end (tests/test_store_upgrade.py opens a store made by the first release).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

BUSY_TIMEOUT_MS = 30_000

# MIGRATIONS[k] takes a store from version k to k + 1.
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
    # 3: a client's numbers beyond the typed columns (registered client metrics), as JSON
    "ALTER TABLE client_rounds ADD COLUMN metrics_json TEXT NOT NULL DEFAULT '{}';",
    # 4: who started each run (runs of earlier releases have none: only an admin may act on them)
    "ALTER TABLE runs ADD COLUMN owner TEXT;\nCREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner, status);",
    # 5: sweeps (one run per combination of a grid of settings and seeds) and the sweep of each run
    """
    CREATE TABLE IF NOT EXISTS sweeps (
        sweep_id   TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        grid_json  TEXT NOT NULL,  -- {field: [values]}, the seeds under "seeds"
        created_at REAL NOT NULL
    );
    ALTER TABLE runs ADD COLUMN sweep_id TEXT;
    CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep_id);
    """,
    # 6: clients that come and go: what became of each sampled client (every earlier one trained),
    # and which clients were offline in a round, as JSON {"group": g, "counts": [...]} (NULL: none)
    "ALTER TABLE client_rounds ADD COLUMN status TEXT NOT NULL DEFAULT 'trained';\nALTER TABLE rounds ADD COLUMN offline_json TEXT;",
    # 7: how far the round a worker is training has come, as JSON {"round", "done", "total"} (clients)
    "ALTER TABLE runs ADD COLUMN progress_json TEXT;",
    # 8: every client on its own test data, in the rounds that evaluated them (records.ClientEvaluation;
    # NULL: no number, e.g. no personal model)
    """
    CREATE TABLE IF NOT EXISTS client_evals (
        run_id            TEXT NOT NULL,
        round             INTEGER NOT NULL,
        client_id         INTEGER NOT NULL,
        test_samples      INTEGER NOT NULL,
        test_loss         REAL,
        test_accuracy     REAL,
        personal_loss     REAL,
        personal_accuracy REAL,
        PRIMARY KEY (run_id, round, client_id)
    ) WITHOUT ROWID;
    """,
)


class StoreError(RuntimeError):
    """The store file cannot be used; the message says why and what to do."""


class StoreFault(StoreError, sqlite3.OperationalError):
    """A read or a write the store file refused (a full disk, a file or folder that may not be
    written, a damaged file), as a sentence naming the file and what to do. It is still an
    `sqlite3.OperationalError`, so code that catches those keeps working. `kind` is one of
    "full", "readonly", "damaged" or "io"; `detail` what SQLite said."""

    def __init__(self, message: str, kind: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.detail = kind, detail


def default_store_path() -> Path:
    """$FLCORE_STORE if set, else ~/.local/share/flcore/runs.db (`flcore.settings.store_path`)."""
    from flcore import settings

    return settings.store_path()


class Database:
    """A handle on one store file; cheap to create, safe to share between threads (not processes).

    `readonly=True` opens an existing store for reading only (what listing and showing runs need):
    it works on a file the process may not write, and never changes it."""

    def __init__(self, path: str | Path | None = None, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.readonly = readonly
        self._local = threading.local()
        if self.path.is_dir():
            raise StoreError(
                f"the run store {self.path} is a folder; point FLCORE_STORE (or --store) at a file in it, such as {self.path / 'runs.db'}"
            )
        if readonly and not self.path.exists():
            raise StoreError(f"there is no run store at {self.path}; runs are stored there once one is started")
        if readonly and self.path.stat().st_size == 0:
            raise StoreError(f"the run store {self.path} is empty; runs are stored there once one is started")
        try:
            if not readonly:
                _create_private(self.path)
                self._conn().execute("PRAGMA journal_mode=WAL")
            version = self.version()
        except (OSError, sqlite3.Error) as err:
            raise StoreError(_open_problem(self.path, err)) from None
        if readonly and version == 0:  # a file whose first writer has not yet built the schema (no tables to read)
            raise StoreError(f"the run store {self.path} is empty; runs are stored there once one is started")
        if version > len(MIGRATIONS) or (version < len(MIGRATIONS) and not readonly):
            try:
                self._migrate()
            except sqlite3.Error as err:
                raise StoreError(_open_problem(self.path, err)) from None
        # A store opened to read keeps its schema; readers ask `column` for columns it may lack.

    def version(self) -> int:
        """The schema version of the store file."""
        return self._conn().execute("PRAGMA user_version").fetchone()[0]

    def column(self, table: str, name: str, default: str = "NULL") -> str:
        """`name` for a SELECT on `table`, or `default` where the file predates that column (a
        store of an earlier release opened read-only, which is never migrated)."""
        if not hasattr(self._local, "columns"):
            self._local.columns = {}
        if table not in self._local.columns:
            self._local.columns[table] = {row[1] for row in self._conn().execute(f"PRAGMA table_info({table})")}
        return name if name in self._local.columns[table] else f"{default} AS {name}"

    def _migrate(self) -> None:
        """Bring the file to the latest schema, one migration after another, in one transaction
        (taken up front, so two processes opening an old store at once migrate it once)."""
        if self.readonly:  # only ever called to refuse a newer store
            version = self.version()
            raise StoreError(
                f"the run store {self.path} was written by a newer flcore (schema {version}, this one reads up to "
                f"{len(MIGRATIONS)}); upgrade flcore, or point FLCORE_STORE at another file"
            )
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
        return f"{type(self).__name__}({str(self.path)!r})"

    def __getstate__(self) -> dict:  # connections never cross a process boundary
        return {"path": self.path, "readonly": self.readonly}

    def __setstate__(self, state: dict) -> None:
        self.path, self.readonly = state["path"], state.get("readonly", False)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (reopened after a fork)."""
        conn, pid = getattr(self._local, "conn", None), getattr(self._local, "pid", None)
        if conn is None or pid != os.getpid():
            target = _readonly_uri(self.path) if self.readonly else str(self.path)
            conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, uri=self.readonly)
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
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._fault(err) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. on a full disk)
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise self._fault(err) from None
            raise

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the file (a round's rows arrive together or not at all)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._fault(err) from None

    def _fault(self, err: sqlite3.Error) -> sqlite3.Error:
        """`err` as a `StoreFault` with a sentence naming this file, when it says the file cannot
        be used (full, read-only, damaged); any other error (a constraint, a bug) as it is."""
        if isinstance(err, StoreFault):
            return err
        kind = fault_kind(self.path, err)
        return StoreFault(_open_problem(self.path, err), kind, str(err)) if kind else err


def _create_private(path: Path) -> None:
    """Make a new store file readable by its owner only (0600; SQLite gives its -wal and -shm
    files the same mode), in a folder only its owner can open (0700) where the folder is new too.
    An existing file or folder keeps the mode its operator gave it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file is an empty database
    except FileExistsError:
        pass


def _readonly_uri(path: Path) -> str:
    """The URI that opens `path` for reading only. In a folder this process may not write, and
    with no -wal file holding unmerged writes, the file is opened as immutable: SQLite then needs
    no -shm file beside it (which it could not create there) and takes no locks."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    if not os.access(path.parent, os.W_OK) and not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return uri


SQLITE_HEADER = b"SQLite format 3\x00"
FIX = "point FLCORE_STORE (or --store) at another file"


def fault_kind(path: Path, err: BaseException) -> str | None:
    """What `err` says about the store file: "damaged", "full", "readonly" or "io" (None: nothing)."""
    text = str(err).lower()
    if "not a database" in text or "malformed" in text:
        return "damaged"
    if "full" in text:
        return "full"
    if "readonly" in text or "read-only" in text or isinstance(err, PermissionError) or "unable to open" in text:
        return "readonly"
    if "disk i/o" in text:
        return "io"
    return None


def _is_sqlite_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _open_problem(path: Path, err: BaseException) -> str:
    """One sentence for a store that cannot be opened, read or written: what is wrong with which
    file, and what to do."""
    text, kind = str(err), fault_kind(path, err)
    if kind == "damaged" and (_is_sqlite_file(path) or "malformed" in text):
        return (
            f"the run store {path} is damaged or truncated (SQLite says: {text}); restore it from a backup, or {FIX}; "
            "`python -m flcore check` says which runs can still be read"
        )
    if kind == "damaged":
        return (
            f"the file {path} is not a flcore run store: it is not an SQLite file (it may be truncated or damaged, or another kind "
            f"of file); restore it from a backup, or {FIX}"
        )
    if kind == "full":
        return (
            f"the run store {path} cannot grow: its disk is full ({text}); free space on that disk, or {FIX}, then try again "
            "(a run stopped by this can be resumed from its last finished round)"
        )
    if kind == "readonly":
        return (
            f"cannot write the run store {path} ({text}); check the permissions of the file and its folder, or {FIX} "
            "(`python -m flcore runs` and `show` read a store they may not write)"
        )
    if kind == "io":
        return f"the run store {path} could not be read or written ({text}); check its disk, or {FIX}"
    return f"the run store {path} cannot be used: {text}"


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
