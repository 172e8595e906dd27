"""The run store: every run's config, status, progress and per-round results, in one SQLite file.

Small parts over one file: `database` (connections, transactions, versioned migrations),
`runs` (the run lifecycle: statuses, claims, heartbeats, cancel and resume), `sweeps` (a grid of
settings queued as one run per combination) and `results` (what runs produced: rounds, clients,
the split, the checkpoint). `RunStore` is all of them, over one file; it is what the dashboard,
the runner and the CLI open.
"""

from __future__ import annotations

from flcore.store.database import MIGRATIONS, StoreError, StoreFault, default_store_path
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
from flcore.store.sweeps import SweepInfo, Sweeps


class RunStore(Sweeps, RunResults):
    """A handle on one store file: its runs' lifecycle, its sweeps and the runs' results."""

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first; in a damaged file, every run whose record can still be read
        (`health.readable_runs`), so that what is left stays usable."""
        try:
            return super().list_runs()
        except StoreFault as err:
            if err.kind != "damaged":
                raise
            from flcore.store.health import readable_runs

            return readable_runs(self)


__all__ = [
    "ACTIVE", "FINISHED", "MIGRATIONS", "PARTITION_COLUMNS", "RESUMABLE", "STALE_AFTER_S", "STATUSES",
    "RunInfo", "RunLifecycle", "RunNotRunning", "RunStore", "StoreError", "StoreFault", "SweepInfo", "actions", "default_store_path", "pid_alive", "run_name",
]  # fmt: skip
