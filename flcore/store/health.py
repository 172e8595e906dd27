"""Is the store file whole? SQLite's own check, and which runs can still be read in full.

`quick_check` asks SQLite (``PRAGMA quick_check``: every page and record, in about the time of
reading the file once) and is what the dashboard's server runs at start-up. `damaged_runs` reads
every row of each run (its record, rounds, clients, split and checkpoint) and names the runs
whose rows cannot be read: those are lost unless a backup has them, and the others stay usable.
`python -m flcore check` prints both.
"""

from __future__ import annotations

import logging
import sqlite3

from flcore.store.database import FIX, Database, StoreFault

log = logging.getLogger(__name__)

QUICK_CHECK_LINES = 20  # SQLite lists at most this many findings


def quick_check(db: Database) -> list[str]:
    """What SQLite's quick check finds wrong with the file ([] when it is whole)."""
    try:
        rows = db._conn().execute(f"PRAGMA quick_check({QUICK_CHECK_LINES})").fetchall()
    except sqlite3.DatabaseError as err:  # so damaged that the check itself stops
        return [str(err)]
    found = [row[0] for row in rows]
    return [] if found == ["ok"] else found


def damaged_runs(store) -> dict[str, str]:
    """run id -> what could not be read of it, for every run whose rows cannot all be read; a run
    id that names no readable record is reported under "runs table"."""
    try:
        run_ids = [r[0] for r in store._conn().execute("SELECT run_id FROM runs").fetchall()]
    except sqlite3.DatabaseError as err:
        return {"runs table": f"the list of runs cannot be read ({err})"}
    damaged = {}
    readers = (
        ("its record", store.get_run),
        ("its rounds", store.rounds_frame),
        ("its clients", store.clients_frame),
        ("its split", store.label_counts),
        ("its checkpoint", store.load_checkpoint),
    )
    for run_id in run_ids:
        for what, read in readers:
            try:
                read(run_id)
            except (sqlite3.DatabaseError, ValueError) as err:  # a StoreFault is a DatabaseError too
                damaged[run_id] = f"{what} cannot be read ({getattr(err, 'detail', '') or err})"
                break
    return damaged


def readable_runs(store) -> list:
    """Every run whose record can still be read, newest first, from a file whose runs table cannot
    be scanned whole (each run read on its own, by its id); says on the log how many could not."""
    try:
        run_ids = [r[0] for r in store._conn().execute("SELECT run_id FROM runs").fetchall()]
    except sqlite3.DatabaseError as err:
        raise StoreFault(
            f"the run store {store.path} is damaged: not even the list of its runs can be read ({err}); restore it from a backup, or {FIX}",
            "damaged",
            str(err),
        ) from None
    runs, lost = [], 0
    for run_id in run_ids:
        try:
            info = store.get_run(run_id)
        except sqlite3.DatabaseError:
            lost += 1
            continue
        if info is not None:
            runs.append(info)
    log.warning(
        "the run store %s is damaged: %d of its %d runs cannot be read; `python -m flcore check` names them; "
        "restore the file from a backup to get them back",
        store.path,
        lost,
        len(run_ids),
    )
    return sorted(runs, key=lambda r: r.created_at, reverse=True)


def damage_sentence(db: Database, findings: list[str]) -> str:
    """One sentence for a file that failed SQLite's check."""
    return (
        f"the run store {db.path} is damaged: SQLite's integrity check found {len(findings)}"
        f"{'+' if len(findings) >= QUICK_CHECK_LINES else ''} problem{'s' if len(findings) != 1 else ''} "
        f"({findings[0]}); runs whose rows can still be read stay usable, `python -m flcore check` names the others; "
        f"restore the file from a backup, or {FIX}"
    )
