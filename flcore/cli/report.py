"""`python -m flcore runs` and `show`, and the summary lines a run ends with (privacy,
communication, drift)."""

from __future__ import annotations

import argparse
import time

import pandas as pd

from flcore.cli.args import UsageError
from flcore.describe import summary_lines


def cmd_runs(args: argparse.Namespace) -> int:
    from flcore.store import RunStore

    runs = RunStore(args.store, readonly=True).list_runs()
    if not runs:
        print("no runs stored yet; start one with `python -m flcore run`")
        return 0
    rows = [
        {
            "id": r.run_id,
            "name": r.name,
            "status": r.status,
            "rounds": f"{r.rounds_done}/{r.total_rounds}",
            "final_accuracy": "" if r.final_accuracy is None else f"{r.final_accuracy:.4f}",
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)),
        }
        for r in runs
    ]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from flcore.store import RunStore

    store = RunStore(args.store, readonly=True)
    info = store.get_run(args.run_id)
    if info is None:
        raise UsageError(f"no run with id {args.run_id!r} in {store.path}; `python -m flcore runs` lists them")
    print(f"run {info.run_id}: {info.name}\nstatus: {info.status} ({info.rounds_done}/{info.total_rounds} rounds)")
    if info.owner:
        print(f"started by: {info.owner}")
    if info.error:
        print(f"{'note' if info.status == 'done' else 'error'}: {info.error}")
    rounds = store.rounds_frame(info.run_id)
    if len(rounds):
        shown = [c for c in ("round", "test_accuracy", "test_loss", "bytes_received", "epsilon", "drift_cosine_mean") if c in rounds]
        print(rounds[shown].to_string(index=False))
        for line in summary_lines(info.config, rounds):
            print(line)
    print("config:\n" + info.config.to_json())
    return 0
