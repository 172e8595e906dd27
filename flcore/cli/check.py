"""`python -m flcore check`: is the run store whole, and which runs can still be read; and what
the CLI checks whenever it opens a store (runs left `running` by a process that is gone).

`check` runs SQLite's integrity check on the store and reads every row of every run. It prints
one line when all is well (exit status 0); otherwise a sentence saying what is wrong with which
file and what to do, then each damaged run with what of it cannot be read (exit status 1). It
only reads the file, so it works on a store it may not write.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys


def cmd_check(args: argparse.Namespace) -> int:
    from flcore.store import RunStore, StoreError
    from flcore.store.health import damage_sentence, damaged_runs, quick_check

    try:
        store = RunStore(args.store, readonly=True)
        findings = quick_check(store)
        damaged = damaged_runs(store)
        total = len(store._query("SELECT run_id FROM runs")) if "runs table" not in damaged else None
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not findings and not damaged:
        print(f"the run store {store.path} is whole: SQLite's integrity check passed and all {total} runs can be read")
        return 0
    if findings:
        print(damage_sentence(store, findings))
        for line in findings[:5]:
            print(f"  SQLite: {line}")
    if damaged:
        of = f" of {total}" if total is not None else ""
        print(f"{len(damaged)}{of} runs cannot be read in full (only a backup of the file has them):")
        for run_id, what in damaged.items():
            print(f"  {run_id}: {what}")
    if total is not None:
        print(f"the other {total - len(damaged)} runs can be read (`python -m flcore runs` lists them)")
    return 1


def interrupt_gone_runs(path: str | None) -> list[str]:
    """Mark interrupted the runs left `running` by a process that is gone (killed, or its machine
    restarted) with no server to notice, as the dashboard's runner does for its workers, and say
    so on stderr; returns their ids. A store this process may not write, or one of an older
    schema (which reading must not migrate), is left as it is."""
    from flcore.store import MIGRATIONS, RunStore, StoreError

    try:
        reader = RunStore(path, readonly=True)
        if not reader._query("SELECT 1 FROM runs WHERE status = 'running' LIMIT 1") or reader.version() != len(MIGRATIONS):
            return []
        gone = RunStore(reader.path).mark_stale_interrupted()
    except (StoreError, sqlite3.Error):
        return []
    for run_id in gone:
        print(
            f"run {run_id} was left running by a process that is gone; it is now interrupted, and resuming it "
            "continues from its last finished round",
            file=sys.stderr,
        )
    return gone
