"""What runs produced: each round's global and per-client numbers, every client's evaluation on
its own test data, the split, the checkpoint.

A round's global row, client rows, the run's progress and the checkpoint are written in one
transaction (`append_round`), so the store never holds half a round and the checkpoint always
matches the last stored round. The columns come from `flcore.records`; numbers beyond them (a
strategy's metrics, registered client metrics) are kept as JSON and read back as extra float
columns. Which clients were offline in a round is kept in a bounded form (`records.Offline`,
`offline_frame`). Frames can be read from a round on (`after=`) and from one snapshot
(`results`), which is how a live page reads only what is new.

The `Results` part owns the rounds, client_rounds, client_evals, partitions and checkpoints tables. A run's own
record is the `Runs` part's: a stored round asks it to advance the run (`Runs.advance`), and
deleting a run asks this part to delete its rows (`Runs.on_delete`), each inside the same
transaction.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd

from flcore.records import CLIENT_COLUMNS, EVALUATION_COLUMNS, ROUND_COLUMNS, Offline, RoundResult, names, typed_frame
from flcore.store.database import Database
from flcore.store.runs import RunNotRunning, Runs

PARTITION_COLUMNS = ("client_id", "label", "count")
_ROUND_NAMES = names(ROUND_COLUMNS)
_CLIENT_NAMES = names(CLIENT_COLUMNS)
_EVALUATION_NAMES = names(EVALUATION_COLUMNS)


class Results:
    """The tables of what runs produced: per-round results, the split and the checkpoint of each
    run. A run's own record (its status, its rounds done) is `Runs`', which this part asks."""

    TABLES = ("rounds", "client_rounds", "client_evals", "partitions", "checkpoints")

    def __init__(self, db: Database, runs: Runs) -> None:
        self.db, self.runs = db, runs
        runs.on_delete(self._delete_rows)

    def save_partition(self, run_id: str, counts: np.ndarray) -> None:
        """The clients x classes label-count matrix of the run's split."""
        matrix = np.asarray(counts, dtype=np.int64)
        if matrix.ndim != 2:
            raise ValueError(f"label counts must be a clients x classes matrix, got shape {matrix.shape}")
        with self.db._write() as c:
            c.execute("INSERT OR REPLACE INTO partitions (run_id, counts_json) VALUES (?, ?)", (run_id, json.dumps(matrix.tolist())))

    def label_counts(self, run_id: str) -> np.ndarray | None:
        rows = self.db._query("SELECT counts_json FROM partitions WHERE run_id = ?", (run_id,))
        return np.array(json.loads(rows[0][0]), dtype=np.int64) if rows else None

    def partition_frame(self, run_id: str) -> pd.DataFrame:
        """client_id, label, count (empty, with those columns, before the worker saved the split)."""
        from flcore.data.partition import counts_frame

        counts = self.label_counts(run_id)
        if counts is None or counts.size == 0:
            return pd.DataFrame({c: pd.Series(dtype="int64") for c in PARTITION_COLUMNS})
        return counts_frame(counts)

    def append_round(self, run_id: str, result: RoundResult, checkpoint: bytes | None = None) -> None:
        """Store one round, its clients, the progress and the checkpoint, in one transaction.

        Raises RunNotRunning (and writes nothing) if the run is no longer running.
        """
        row = result.row()
        metrics = {k: v for k, v in row.items() if k not in _ROUND_NAMES}
        clients = result.client_rows()
        with self.db._write() as c:
            if not self.runs.advance(c, run_id, result.round, _float(result.test_accuracy)):
                raise RunNotRunning(f"run {run_id} is no longer running; round {result.round} was not stored")
            c.execute(
                f"INSERT INTO rounds ({', '.join(_ROUND_NAMES)}, run_id, metrics_json, offline_json) "
                f"VALUES ({', '.join('?' * (len(_ROUND_NAMES) + 3))})",
                (*(row[k] for k in _ROUND_NAMES), run_id, json.dumps(metrics, default=float), _offline_json(result.offline)),
            )
            c.executemany(
                f"INSERT INTO client_rounds (run_id, {', '.join(_CLIENT_NAMES)}, metrics_json) "
                f"VALUES ({', '.join('?' * (len(_CLIENT_NAMES) + 2))})",
                [(run_id, *(r[k] for k in _CLIENT_NAMES), _extra_json(r, _CLIENT_NAMES)) for r in clients],
            )
            c.executemany(
                f"INSERT INTO client_evals (run_id, {', '.join(_EVALUATION_NAMES)}) VALUES ({', '.join('?' * (len(_EVALUATION_NAMES) + 1))})",
                [(run_id, *(r[k] for k in _EVALUATION_NAMES)) for r in result.evaluation_rows()],
            )
            if checkpoint is not None:
                c.execute(
                    "INSERT OR REPLACE INTO checkpoints (run_id, round, state) VALUES (?, ?, ?)",
                    (run_id, result.round, sqlite3.Binary(checkpoint)),
                )

    def load_checkpoint(self, run_id: str) -> bytes | None:
        rows = self.db._query("SELECT state FROM checkpoints WHERE run_id = ?", (run_id,))
        return bytes(rows[0][0]) if rows else None

    def checkpoint_round(self, run_id: str) -> int:
        """The round the run's checkpoint was taken after (0 without one): where a resume continues."""
        rows = self.db._query("SELECT round FROM checkpoints WHERE run_id = ?", (run_id,))
        return rows[0][0] if rows else 0

    def _delete_rows(self, c, run_id: str, sweep_id: str | None) -> None:
        """Inside the write deleting run `run_id` (`Runs.delete_run`): delete all its rows here."""
        for table in self.TABLES:
            c.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def discard_rounds_after(self, run_id: str, round_: int) -> None:
        """Drop stored rounds past `round_` (those a resumed run will compute again)."""
        with self.db._write() as c:
            c.execute("DELETE FROM rounds WHERE run_id = ? AND round > ?", (run_id, round_))
            c.execute("DELETE FROM client_rounds WHERE run_id = ? AND round > ?", (run_id, round_))
            c.execute("DELETE FROM client_evals WHERE run_id = ? AND round > ?", (run_id, round_))
            row = c.execute("SELECT test_accuracy FROM rounds WHERE run_id = ? AND round = ?", (run_id, round_)).fetchone()
            self.runs.rewind(c, run_id, round_, row[0] if row else None)

    def results(self, run_id: str, after: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """`rounds_frame` and `clients_frame` of the rounds past `after`, from one snapshot."""
        with self.db._snapshot():
            return self.rounds_frame(run_id, after), self.clients_frame(run_id, after)

    def round_wall_time(self, run_id: str, round_: int) -> float | None:
        """The stored wall time of one round (None if it is not stored): a cheap fingerprint that
        changes when a resumed run stores that round again."""
        rows = self.db._query("SELECT wall_time_s FROM rounds WHERE run_id = ? AND round = ?", (run_id, round_))
        return rows[0][0] if rows else None

    def rounds_frame(self, run_id: str, after: int = 0) -> pd.DataFrame:
        """One row per round (those past round `after`): ROUND_COLUMNS, then the metrics."""
        rows = self.db._query(
            f"SELECT {', '.join(_ROUND_NAMES)}, metrics_json FROM rounds WHERE run_id = ? AND round > ? ORDER BY round",
            (run_id, after),
        )
        return typed_frame([r[:-1] for r in rows], ROUND_COLUMNS, [json.loads(r[-1]) for r in rows])

    def clients_frame(self, run_id: str, after: int = 0) -> pd.DataFrame:
        """One row per sampled client per round (of the rounds past `after`): CLIENT_COLUMNS, then
        the client metrics."""
        metrics = self.db.column("client_rounds", "metrics_json", default="'{}'")  # a read-only store may predate it
        columns = ", ".join(self.db.column("client_rounds", n, default="'trained'") if n == "status" else n for n in _CLIENT_NAMES)
        rows = self.db._query(
            f"SELECT {columns}, {metrics} FROM client_rounds WHERE run_id = ? AND round > ? ORDER BY round, client_id",
            (run_id, after),
        )
        return typed_frame([r[:-1] for r in rows], CLIENT_COLUMNS, [json.loads(r[-1]) for r in rows])

    def evaluations_frame(self, run_id: str, after: int = 0) -> pd.DataFrame:
        """One row per client per round that evaluated every client on its own test data (of the
        rounds past `after`): EVALUATION_COLUMNS (empty for a run that kept no client test data)."""
        rows = []
        if self.db.column("client_evals", "round") == "round":  # else a read-only store of an earlier release
            rows = self.db._query(
                f"SELECT {', '.join(_EVALUATION_NAMES)} FROM client_evals WHERE run_id = ? AND round > ? ORDER BY round, client_id",
                (run_id, after),
            )
        frame = pd.DataFrame(rows, columns=_EVALUATION_NAMES)
        return frame.astype({c.name: c.dtype for c in EVALUATION_COLUMNS})

    def offline_frame(self, run_id: str, after: int = 0) -> pd.DataFrame:
        """The rounds past `after` in which some clients were offline: round, group (consecutive
        client ids per count) and counts (a list: how many of each group were offline)."""
        rows = []
        if self.db.column("rounds", "offline_json") == "offline_json":  # else a read-only store of an earlier release
            rows = self.db._query(
                "SELECT round, offline_json FROM rounds WHERE run_id = ? AND round > ? AND offline_json IS NOT NULL ORDER BY round",
                (run_id, after),
            )
        parsed = [(r, json.loads(text)) for r, text in rows]
        return pd.DataFrame(
            {"round": [r for r, _ in parsed], "group": [p["group"] for _, p in parsed], "counts": [p["counts"] for _, p in parsed]}
        ).astype({"round": "int64", "group": "int64"})


def _offline_json(offline: Offline | None) -> str | None:
    return None if offline is None else json.dumps({"group": offline.group, "counts": list(offline.counts)})


def _extra_json(row: dict, typed: list[str]) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in typed}, default=float)


def _float(value) -> float | None:
    return None if value is None else float(value)
