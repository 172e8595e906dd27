"""Sweeps in the store: a grid of settings and seeds, queued as one run per combination.

A sweep row keeps the sweep's name and its grid (`flcore.service.sweep` reads and expands grids); each
of its runs is an ordinary run (queued, trained, cancelled and resumed like any other) that
carries the sweep's id. The `Sweeps` part owns the sweeps table only: it asks `Runs` to insert a
sweep's runs and to list them. The sweep and all its runs are written in one transaction, so a
sweep is queued whole or not at all. Deleting a sweep's last run deletes the sweep, in the same
transaction (`Runs.on_delete`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

from flcore.config import ExperimentConfig
from flcore.store.database import Database
from flcore.store.runs import ACTIVE, Runs


@dataclass(frozen=True)
class SweepInfo:
    sweep_id: str
    name: str
    grid: dict  # {field: [values]}, the seeds under "seeds"
    created_at: float
    run_ids: tuple[str, ...] = ()
    statuses: dict[str, int] = field(default_factory=dict)  # status -> runs

    @property
    def total(self) -> int:
        return len(self.run_ids)

    @property
    def done(self) -> int:
        return self.statuses.get("done", 0)

    @property
    def active(self) -> bool:
        return any(self.statuses.get(s, 0) for s in ACTIVE)


class Sweeps:
    """The sweeps table: sweeps, and (asked of `Runs`) the runs they queued."""

    TABLES = ("sweeps",)

    def __init__(self, db: Database, runs: Runs) -> None:
        self.db, self.runs = db, runs
        runs.on_delete(self._delete_if_empty)

    def create_sweep(
        self, name: str, grid: dict, configs: list[ExperimentConfig], source: str = "cli", owner: str | None = None
    ) -> tuple[str, list[str]]:
        """Store a sweep and queue one run per config, all in one transaction; return the
        sweep's id and its runs' ids, in the order of `configs`."""
        if not configs:
            raise ValueError("a sweep needs at least one run")
        with self.db._write() as c:
            while True:
                sweep_id = secrets.token_hex(4)
                if not c.execute("SELECT 1 FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone():
                    break
            c.execute(
                "INSERT INTO sweeps (sweep_id, name, grid_json, created_at) VALUES (?, ?, ?, ?)",
                (sweep_id, name, json.dumps(grid), time.time()),
            )
            run_ids = [self.runs.insert(c, config, source, owner, sweep_id) for config in configs]
        return sweep_id, run_ids

    def _delete_if_empty(self, c, run_id: str, sweep_id: str | None) -> None:
        """Inside the write deleting run `run_id`: delete its sweep when that was the sweep's last run."""
        if sweep_id is not None and not self.runs.in_sweep(c, sweep_id):
            c.execute("DELETE FROM sweeps WHERE sweep_id = ?", (sweep_id,))

    def list_sweeps(self) -> list[SweepInfo]:
        """Every sweep, newest first, with its runs' ids (oldest first) and statuses."""
        sweeps = self.db._query("SELECT sweep_id, name, grid_json, created_at FROM sweeps ORDER BY created_at DESC, rowid DESC")
        ids: dict[str, list[str]] = {}
        statuses: dict[str, Counter] = {}
        for sweep_id, run_id, status in self.runs.of_sweeps():
            ids.setdefault(sweep_id, []).append(run_id)
            statuses.setdefault(sweep_id, Counter())[status] += 1
        return [
            SweepInfo(sid, name, json.loads(grid), created, tuple(ids.get(sid, ())), dict(statuses.get(sid, {})))
            for sid, name, grid, created in sweeps
        ]

    def get_sweep(self, sweep_id: str) -> SweepInfo | None:
        return next((s for s in self.list_sweeps() if s.sweep_id == sweep_id), None)
