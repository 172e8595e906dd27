"""`python -m flcore sweep`: a grid of configs, queued together and trained in turn."""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from flcore.cli.args import config_from_args, use_server_flags

SWEEP_POLL_S = 0.5


def cmd_sweep(args: argparse.Namespace) -> int:
    from flcore.auth import local_user
    from flcore.service import sweep
    from flcore.store import RunStore

    use_server_flags(args)
    grid = sweep.read_grid(args.grid)
    base = config_from_args(args)
    name = base.name or args.grid.stem
    combos = sweep.expand(grid, base, name)
    store = RunStore(args.store)
    sweep_id, run_ids = store.create_sweep(name, grid, [c.config for c in combos], owner=local_user().name)
    print(f"sweep {sweep_id} ({name}): {sweep.describe_size(grid)}, queued in {store.path}")
    if args.no_wait:
        print(
            "they train when a runner works on this store: the dashboard's (`streamlit run dashboard/serve.py`), or this command without --no-wait"
        )
        return 0
    return _run_sweep(store, sweep_id, run_ids, combos, grid, args.quiet)


def _run_sweep(store, sweep_id: str, run_ids: list[str], combos: list, grid: dict, quiet: bool) -> int:
    """Train the sweep's runs with a runner in this process until none is queued or running."""
    from tqdm import tqdm

    from flcore import ray_support
    from flcore.service.scheduler import Runner
    from flcore.service.sweep import final_accuracy_table, setting_label

    runner = Runner(store.path)
    where = (
        f"on Ray ({ray_support.ADDRESS_ENV}={ray_support.address()})"
        if ray_support.address()
        else f"in local worker processes, {runner.max_workers} at a time"
    )
    print(f"training them {where}; Ctrl-C stops them (resume them from the dashboard)")
    total = sum(c.config.rounds for c in combos)
    bar = tqdm(total=total, desc="rounds", unit="round", disable=quiet, file=sys.stderr)
    runner.start()
    try:
        while True:
            runs = [store.get_run(r) for r in run_ids]
            bar.update(sum(r.rounds_done for r in runs) - bar.n)
            if not any(r.active for r in runs):
                break
            time.sleep(SWEEP_POLL_S)
    except KeyboardInterrupt:
        runner.shutdown(wait=False)
        bar.close()
        print(f"stopped; sweep {sweep_id}'s unfinished runs can be resumed from the dashboard", file=sys.stderr)
        return 130
    runner.shutdown(wait=True)
    bar.close()
    finals = pd.DataFrame(
        {"setting": setting_label(c.setting), "seed": c.seed, "final_accuracy": r.final_accuracy} for c, r in zip(combos, runs)
    )
    table = final_accuracy_table(finals)
    print(table[["setting", "runs", "final accuracy"]].to_string(index=False))
    failed = [r for r in runs if r.status != "done"]
    for r in failed:
        print(f"run {r.run_id} ({r.name}) {r.status}: {r.error or ''}".rstrip(": "), file=sys.stderr)
    return 1 if failed else 0
