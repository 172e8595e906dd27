"""The run store: every run's config, status, progress and per-round results, in one SQLite file.

One `Database` (`database`: connections, transactions, versioned migrations) is shared by parts,
each a plain class over it that owns its own tables and asks another part, through a method,
for anything about that part's rows:

- `Runs` (`runs`): the runs table; the run lifecycle: statuses, claims, heartbeats, cancel and
  resume, the queue.
- `Sweeps` (`sweeps`): the sweeps table; a grid of settings queued as one run per combination
  (its runs are `Runs`').
- `Results` (`results`): the rounds, client_rounds, partitions and checkpoints tables; what runs
  produced.

Work that spans parts stays one transaction: the part that opens the write hands the open
connection to the other part's method (a stored round advances its run, `Runs.advance`; deleting
a run deletes every part's rows of it, `Runs.on_delete`). `RunStore` is what the dashboard, the
runner and the CLI open: it opens the file, builds the parts over it (`store.db`, `store.runs`,
`store.sweeps`, `store.run_results`) and answers each part's methods as its own, as listed in its
class body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from flcore.store.database import MIGRATIONS, Database, StoreError, StoreFault, default_store_path
from flcore.store.results import PARTITION_COLUMNS, Results
from flcore.store.runs import (
    ACTIVE,
    FINISHED,
    RESUMABLE,
    STALE_AFTER_S,
    STATUSES,
    RunInfo,
    RunNotRunning,
    Runs,
    actions,
    pid_alive,
    run_name,
)
from flcore.store.sweeps import SweepInfo, Sweeps


def _delegate(part: str, method: Callable) -> Callable:
    """A `RunStore` method that calls `method` on its part `part` (with `method`'s signature and docstring)."""
    name = method.__name__

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return getattr(getattr(self, part), name)(*args, **kwargs)

    call.__qualname__ = f"RunStore.{name}"
    return call


class RunStore:
    """A handle on one store file: its runs' lifecycle, its sweeps and the runs' results, each
    answered by the part that owns its tables. Cheap to create, safe to share between threads;
    it pickles as its file (`Database`), and is rebuilt over it on the other side.

    `readonly=True` opens an existing store for reading only (see `Database`)."""

    def __init__(self, path: str | Path | None = None, readonly: bool = False) -> None:
        self._build(Database(path, readonly))

    def _build(self, db: Database) -> None:
        self.db = db
        self.runs = Runs(db)
        self.run_results = Results(db, self.runs)
        self.sweeps = Sweeps(db, self.runs)

    def __getstate__(self) -> dict:
        return {"db": self.db}

    def __setstate__(self, state: dict) -> None:
        self._build(state["db"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.db.path)!r})"

    # The file (`Database`) ------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def readonly(self) -> bool:
        return self.db.readonly

    version = _delegate("db", Database.version)
    column = _delegate("db", Database.column)
    _conn = _delegate("db", Database._conn)  # what `health` and `flcore check` read the file with
    _query = _delegate("db", Database._query)

    # The run lifecycle (`Runs`) -------------------------------------------------------------
    create_run = _delegate("runs", Runs.create_run)
    get_run = _delegate("runs", Runs.get_run)
    delete_run = _delegate("runs", Runs.delete_run)
    queued = _delegate("runs", Runs.queued)
    queue = _delegate("runs", Runs.queue)
    active_by_owner = _delegate("runs", Runs.active_by_owner)
    last_trained = _delegate("runs", Runs.last_trained)
    claim = _delegate("runs", Runs.claim)
    mark_running = _delegate("runs", Runs.mark_running)
    heartbeat = _delegate("runs", Runs.heartbeat)
    set_round_progress = _delegate("runs", Runs.set_round_progress)
    request_cancel = _delegate("runs", Runs.request_cancel)
    cancel_requested = _delegate("runs", Runs.cancel_requested)
    finish = _delegate("runs", Runs.finish)
    mark_interrupted = _delegate("runs", Runs.mark_interrupted)
    resume = _delegate("runs", Runs.resume)

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first; in a damaged file, every run whose record can still be read
        (`health.readable_runs`), so that what is left stays usable."""
        try:
            return self.runs.list_runs()
        except StoreFault as err:
            if err.kind != "damaged":
                raise
            from flcore.store.health import readable_runs

            return readable_runs(self)

    def mark_stale_interrupted(self) -> list[str]:
        """Running runs whose worker is gone -> interrupted, each with a sentence saying from which
        round a resume continues (its checkpoint's, from `Results`); returns their ids."""
        return self.runs.mark_stale_interrupted(self.run_results.checkpoint_round)

    # Sweeps (`Sweeps`) ----------------------------------------------------------------------
    create_sweep = _delegate("sweeps", Sweeps.create_sweep)
    list_sweeps = _delegate("sweeps", Sweeps.list_sweeps)
    get_sweep = _delegate("sweeps", Sweeps.get_sweep)

    # What runs produced (`Results`) ---------------------------------------------------------
    save_partition = _delegate("run_results", Results.save_partition)
    label_counts = _delegate("run_results", Results.label_counts)
    partition_frame = _delegate("run_results", Results.partition_frame)
    append_round = _delegate("run_results", Results.append_round)
    load_checkpoint = _delegate("run_results", Results.load_checkpoint)
    checkpoint_round = _delegate("run_results", Results.checkpoint_round)
    discard_rounds_after = _delegate("run_results", Results.discard_rounds_after)
    results = _delegate("run_results", Results.results)
    round_wall_time = _delegate("run_results", Results.round_wall_time)
    rounds_frame = _delegate("run_results", Results.rounds_frame)
    clients_frame = _delegate("run_results", Results.clients_frame)
    offline_frame = _delegate("run_results", Results.offline_frame)
    evaluations_frame = _delegate("run_results", Results.evaluations_frame)


__all__ = [
    "ACTIVE", "FINISHED", "MIGRATIONS", "PARTITION_COLUMNS", "RESUMABLE", "STALE_AFTER_S", "STATUSES",
    "Database", "Results", "RunInfo", "RunNotRunning", "RunStore", "Runs", "StoreError", "StoreFault", "SweepInfo", "Sweeps",
    "actions", "default_store_path", "pid_alive", "run_name",
]  # fmt: skip
