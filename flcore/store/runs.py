"""The run lifecycle: a run's status and who works on it, as a small state machine.

    queued --claim--> running --finish--> done | failed | cancelled
                         |  \\--(its worker died or the server stopped)--> interrupted
    queued --cancel--> cancelled
    interrupted | cancelled | failed --resume--> queued (continues from its checkpoint)

A claim is atomic, so two servers on one store never train a run twice. A running run records
the pid and host of its worker and beats a heartbeat (and, through a long round, how many of
the round's clients have trained: `RoundProgress`); a run whose worker is gone (no such
process on this host, or no heartbeat for STALE_AFTER_S) is marked interrupted. `actions` says
what a user may do with a run in its status; the dashboard asks it rather than knowing.

The `Runs` part owns the runs table and no other: the parts that keep rows per run (`Results`,
`Sweeps`) ask it about runs inside their own transactions, and are asked, through `on_delete`,
to delete their rows of a run in the transaction that deletes it.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from flcore.auth import User
from flcore.config import ConfigError, ExperimentConfig
from flcore.store.database import Database

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "interrupted")
RESUMABLE = ("interrupted", "cancelled", "failed")
STALE_AFTER_S = 120.0  # a running run whose heartbeat is older than this has lost its worker

_RUN_FIELDS = (
    "run_id, name, config_json, status, rounds_done, total_rounds, error, created_at, started_at, "
    "finished_at, final_accuracy, cancel_requested, source"
)  # then worker_json, owner, sweep_id and progress_json, which stores of earlier releases may lack (see `_run_fields`)


Admit = Callable[[int], None]  # called with the owner's queued + running count inside a write; raises to refuse


class RunNotRunning(RuntimeError):
    """A worker tried to write to a run that is no longer `running` (cancelled, interrupted or deleted)."""


@dataclass(frozen=True)
class RoundProgress:
    """How far the round a worker is training has come: `done` of its `total` clients trained."""

    round: int
    done: int
    total: int


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    config: ExperimentConfig
    status: str
    rounds_done: int
    total_rounds: int
    error: str | None  # why it failed or stopped; for a done run, why it ended before its last round (a privacy budget)
    created_at: float
    started_at: float | None
    finished_at: float | None
    final_accuracy: float | None
    cancel_requested: bool
    source: str
    worker: dict | None = None  # what its worker process was given: start method, threads, niceness
    owner: str | None = None  # who started it (None for runs stored before owners were kept)
    sweep_id: str | None = None  # the sweep it is one combination of (flcore.store.sweeps), if any
    round_progress: RoundProgress | None = None  # as its worker last said; see `training`

    @property
    def training(self) -> RoundProgress | None:
        """The progress of the round being trained now: only while running, and only for the
        round after the last one stored (an older report is about a round already stored)."""
        p = self.round_progress
        return p if self.status == "running" and p is not None and p.round == self.rounds_done + 1 else None

    @property
    def progress(self) -> float:
        return self.rounds_done / self.total_rounds if self.total_rounds else 0.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def actions(info: RunInfo, user: User | None = None) -> frozenset[str]:
    """What `user` may do with the run now: "cancel" a queued or running run (once), "resume" a
    stopped one that has rounds left, "delete" one that is not active. Only the run's owner or an
    admin may do any of them (None: no one is signed in, e.g. the CLI: anything goes)."""
    if user is not None and not user.may_act_on(info.owner):
        return frozenset()
    allowed = set()
    if info.active and not info.cancel_requested:
        allowed.add("cancel")
    if info.status in RESUMABLE and info.rounds_done < info.total_rounds:
        allowed.add("resume")
    if not info.active:
        allowed.add("delete")
    return frozenset(allowed)


def run_name(config: ExperimentConfig) -> str:
    """The config's own name, or one made of its main settings."""
    from flcore.data.partition import short_split

    if config.name:
        return config.name
    return f"{config.dataset} · {short_split(config)} · {config.strategy} · {config.num_clients} clients"


@functools.lru_cache(maxsize=4096)
def _parse_config(text: str) -> ExperimentConfig:
    """A stored config; one that no longer validates (e.g. a renamed strategy) is still shown."""
    try:
        return ExperimentConfig.from_json(text, stored=True)
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


# What another part does inside the write that deletes a run: delete its own rows of the run, on
# the open connection, given the run's id and the sweep it was one run of (None: none).
OnDelete = Callable[[sqlite3.Connection, str, str | None], None]


class Runs:
    """The runs table: runs and their statuses (see the module docstring for the transitions).

    The other parts keep rows per run and ask this one about runs: `insert`, `advance`, `rewind`
    and `in_sweep` work inside the caller's write transaction (`c`), and `on_delete` lets a part
    delete its rows of a run in the same transaction as the run's record."""

    TABLES = ("runs",)

    def __init__(self, db: Database) -> None:
        self.db = db
        self._on_delete: list[OnDelete] = []

    def on_delete(self, delete_rows: OnDelete) -> None:
        """Have `delete_rows` called inside every `delete_run`, after the run's record is gone."""
        self._on_delete.append(delete_rows)

    def create_run(self, config: ExperimentConfig, source: str = "dashboard", owner: str | None = None, admit: Admit | None = None) -> str:
        """Store `config` as a queued run started by `owner`; return its id. `admit`, when given,
        is called inside the write transaction with the number of runs `owner` has queued or
        running, and refuses the run by raising (`flcore.service.quotas.admission`): no other
        writer can queue a run between that count and this insert."""
        with self.db._write() as c:
            if admit is not None:
                admit(self._active_count(c, owner))
            return self.insert(c, config, source, owner)

    def _active_count(self, c, owner: str | None) -> int:
        """How many runs `owner` has queued or running, read inside the caller's transaction."""
        return c.execute("SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running') AND owner IS ?", (owner,)).fetchone()[0]

    def insert(self, c, config: ExperimentConfig, source: str, owner: str | None, sweep_id: str | None = None) -> str:
        """Insert a queued run inside the caller's write transaction; return its id."""
        while True:
            run_id = secrets.token_hex(4)
            if not c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                break
        c.execute(
            "INSERT INTO runs (run_id, name, config_json, status, total_rounds, created_at, source, owner, sweep_id) "
            "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            (run_id, run_name(config), config.to_json(), config.rounds, time.time(), source, owner, sweep_id),
        )
        return run_id

    def advance(self, c, run_id: str, round_: int, accuracy: float | None) -> bool:
        """A round of a running run was stored (inside the caller's write): record it as the run's
        last round, with its accuracy and a heartbeat. False, writing nothing, if it is not running."""
        cur = c.execute(
            "UPDATE runs SET rounds_done = ?, final_accuracy = ?, heartbeat_at = ? WHERE run_id = ? AND status = 'running'",
            (round_, accuracy, time.time(), run_id),
        )
        return cur.rowcount == 1

    def rewind(self, c, run_id: str, round_: int, accuracy: float | None) -> None:
        """The run's rounds past `round_` were dropped (inside the caller's write): `round_` is its last."""
        c.execute("UPDATE runs SET rounds_done = ?, final_accuracy = ? WHERE run_id = ?", (round_, accuracy, run_id))

    def in_sweep(self, c, sweep_id: str) -> int:
        """How many runs sweep `sweep_id` has, read inside the caller's transaction."""
        return c.execute("SELECT COUNT(*) FROM runs WHERE sweep_id = ?", (sweep_id,)).fetchone()[0]

    def of_sweeps(self) -> list[tuple[str, str, str]]:
        """(sweep id, run id, status) of every run of a sweep, oldest first."""
        return self.db._query("SELECT sweep_id, run_id, status FROM runs WHERE sweep_id IS NOT NULL ORDER BY created_at, rowid")

    def _run_fields(self) -> str:
        return ", ".join([_RUN_FIELDS] + [self.db.column("runs", name) for name in ("worker_json", "owner", "sweep_id", "progress_json")])

    def get_run(self, run_id: str) -> RunInfo | None:
        rows = self.db._query(f"SELECT {self._run_fields()} FROM runs WHERE run_id = ?", (run_id,))
        return _info(rows[0]) if rows else None

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        return [_info(r) for r in self.db._query(f"SELECT {self._run_fields()} FROM runs ORDER BY created_at DESC, rowid DESC")]

    def delete_run(self, run_id: str) -> None:
        """Remove the run's record and, in the same transaction, every other part's rows of it (see
        `on_delete`); a worker still running it stops at its next round."""
        with self.db._write() as c:
            row = c.execute("SELECT sweep_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            for delete_rows in self._on_delete:
                delete_rows(c, run_id, row[0] if row else None)

    def queued(self) -> list[str]:
        """Ids of the queued runs, oldest first."""
        return [r[0] for r in self.db._query("SELECT run_id FROM runs WHERE status = 'queued' ORDER BY created_at, rowid")]

    def queue(self) -> list[tuple[str, str | None]]:
        """(run id, owner) of the queued runs, oldest first."""
        return self.db._query("SELECT run_id, owner FROM runs WHERE status = 'queued' ORDER BY created_at, rowid")

    def active_by_owner(self) -> dict[str | None, tuple[int, int]]:
        """owner -> (queued, running) counts of their active runs."""
        out: dict[str | None, list[int]] = {}
        for owner, status, count in self.db._query(
            "SELECT owner, status, COUNT(*) FROM runs WHERE status IN ('queued', 'running') GROUP BY owner, status"
        ):
            out.setdefault(owner, [0, 0])[status == "running"] += count
        return {owner: (q, r) for owner, (q, r) in out.items()}

    def last_trained(self) -> dict[str | None, float]:
        """owner -> when a run of theirs last trained (its latest heartbeat), for owners who ever had one train."""
        return dict(self.db._query("SELECT owner, MAX(heartbeat_at) FROM runs WHERE heartbeat_at IS NOT NULL GROUP BY owner"))

    def claim(self, run_id: str) -> bool:
        """Atomically move a queued run to running; False if it is not queued (someone else took it)."""
        now = time.time()
        with self.db._write() as c:
            cur = c.execute(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), finished_at = NULL, "
                "heartbeat_at = ?, pid = ?, host = ?, progress_json = NULL WHERE run_id = ? AND status = 'queued'",
                (now, now, os.getpid(), socket.gethostname(), run_id),
            )
            return cur.rowcount == 1

    def mark_running(self, run_id: str, pid: int, worker: dict | None = None) -> None:
        """Record the process working on a claimed run (and, from a worker, what it was given);
        raise RunNotRunning if the run is not running."""
        with self.db._write() as c:
            cur = c.execute(
                "UPDATE runs SET pid = ?, host = ?, heartbeat_at = ?, worker_json = COALESCE(?, worker_json) "
                "WHERE run_id = ? AND status = 'running'",
                (pid, socket.gethostname(), time.time(), None if worker is None else json.dumps(worker), run_id),
            )
            if cur.rowcount != 1:
                raise RunNotRunning(f"run {run_id} is not running")

    def heartbeat(self, run_id: str) -> None:
        with self.db._write() as c:
            c.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'", (time.time(), run_id))

    def set_round_progress(self, run_id: str, round_: int, done: int, total: int) -> None:
        """Say that `done` of round `round_`'s `total` clients have trained (a heartbeat too)."""
        progress = json.dumps({"round": round_, "done": done, "total": total})
        with self.db._write() as c:
            c.execute(
                "UPDATE runs SET progress_json = ?, heartbeat_at = ? WHERE run_id = ? AND status = 'running'",
                (progress, time.time(), run_id),
            )

    def request_cancel(self, run_id: str) -> None:
        """A queued run becomes cancelled at once; a running one is flagged for its worker to stop."""
        with self.db._write() as c:
            c.execute(
                "UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished_at = ? WHERE run_id = ? AND status = 'queued'",
                (time.time(), run_id),
            )
            c.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ? AND status = 'running'", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        rows = self.db._query("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows and rows[0][0])

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run with one of FINISHED and, when it failed or stopped, a sentence saying why."""
        if status not in FINISHED:
            raise ValueError(f"status={status!r} does not end a run; choose one of: {', '.join(FINISHED)}")
        with self.db._write() as c:
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
        with self.db._write() as c:
            return c.execute(sql, params).rowcount == 1

    def mark_stale_interrupted(self, resume_round: Callable[[str], int]) -> list[str]:
        """Running runs whose worker is gone -> interrupted; returns their ids.

        A worker is gone when its process no longer exists on this host, or when its heartbeat
        is older than STALE_AFTER_S (workers beat every few seconds, so this also covers another
        host or a reused pid). Live workers of another server on the same store are left alone.
        `resume_round(run_id)` says after which round a resume would continue (its checkpoint's),
        for the sentence the run is marked with.
        """
        host, now = socket.gethostname(), time.time()
        stale = []
        for run_id, pid, run_host, beat in self.db._query("SELECT run_id, pid, host, heartbeat_at FROM runs WHERE status = 'running'"):
            gone = run_host == host and pid is not None and not pid_alive(pid)
            if gone or beat is None or now - beat > STALE_AFTER_S:
                reason = "its worker process is gone" if gone else f"its worker sent no heartbeat for {STALE_AFTER_S:.0f} s"
                error = f"The run stopped unexpectedly ({reason}); resume it to continue from round {resume_round(run_id) + 1}."
                if self.mark_interrupted(run_id, error, None if pid is None else (pid,)):
                    stale.append(run_id)
        return stale

    def resume(self, run_id: str, admit: Admit | None = None) -> None:
        """An interrupted, cancelled or failed run goes back in the queue, keeping its rounds.

        Its worker continues from the last checkpoint. Any other status is left as it is.
        `admit`, as for `create_run`, may refuse it inside the same transaction.
        """
        with self.db._write() as c:
            row = c.execute("SELECT owner, status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None or row[1] not in RESUMABLE:
                return
            if admit is not None:
                admit(self._active_count(c, row[0]))
            c.execute(
                "UPDATE runs SET status = 'queued', error = NULL, finished_at = NULL, cancel_requested = 0, pid = NULL "
                f"WHERE run_id = ? AND status IN ({', '.join(repr(s) for s in RESUMABLE)})",
                (run_id,),
            )


def _info(row: tuple) -> RunInfo:
    (run_id, name, config_json, status, rounds_done, total, error, created, started, finished, acc, cancel, source, worker, owner, sweep, progress) = row  # fmt: skip
    return RunInfo(
        run_id, name, _parse_config(config_json), status, rounds_done, total, error,
        created, started, finished, acc, bool(cancel), source, json.loads(worker) if worker else None, owner, sweep,
        RoundProgress(**json.loads(progress)) if progress else None,
    )  # fmt: skip
