"""The run store: every run's config, status, progress and per-round results, in one SQLite file.

Three small parts over one file: `database` (connections, transactions, versioned migrations),
`runs` (the run lifecycle: statuses, claims, heartbeats, cancel and resume) and `results` (what
runs produced: rounds, clients, the split, the checkpoint). `RunStore` is both, over one file;
it is what the dashboard, the runner's workers and the CLI open.
"""

from __future__ import annotations

from flcore.store.database import MIGRATIONS, StoreError, default_store_path
from flcore.store.results import PARTITION_COLUMNS, RunResults
from flcore.store.runs import (
    ACTIVE,
    FINISHED,
    RESUMABLE,
    STALE_AFTER_S,
    STATUSES,
    RunInfo,
    RunLifecycle,
    RunNotRunning,
    actions,
    pid_alive,
    run_name,
)


class RunStore(RunLifecycle, RunResults):
    """A handle on one store file: its runs' lifecycle and their results."""


__all__ = [
    "ACTIVE", "FINISHED", "MIGRATIONS", "PARTITION_COLUMNS", "RESUMABLE", "STALE_AFTER_S", "STATUSES",
    "RunInfo", "RunNotRunning", "RunStore", "StoreError", "actions", "default_store_path", "pid_alive", "run_name",
]  # fmt: skip
