"""`python -m flcore runs` and `show`, and the summary lines a run ends with (privacy,
communication, drift)."""

from __future__ import annotations

import argparse
import time

import pandas as pd

from flcore.cli.args import UsageError
from flcore.config import ExperimentConfig


def _size(num_bytes: float) -> str:
    """3.52 MB, 870 kB, 12 B."""
    for unit in ("B", "kB", "MB"):
        if num_bytes < 1000:
            return f"{num_bytes:.3g} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.3g} GB"


def summary_lines(config: ExperimentConfig, rounds: pd.DataFrame) -> list[str]:
    """Privacy, communication and client drift of a run, one line each, from its rounds."""
    if rounds.empty:
        return []
    last = rounds.iloc[-1]
    lines = []
    if "epsilon" in rounds:
        from flcore.federation.privacy import EPSILON_KINDS

        lines.append(
            f"privacy: {EPSILON_KINDS.get(config.dp, config.dp)} epsilon {last['epsilon']:.4g} at dp_delta={config.dp_delta:g} "
            f"after round {int(last['round'])} "
            f"(dp={config.dp!r}, dp_noise_multiplier={config.dp_noise_multiplier:g}, dp_clip={config.dp_clip:g})"
        )
    received, sent = rounds["bytes_received"].sum(), rounds["bytes_sent"].sum()
    line = f"communication: clients sent {_size(received)}, the server sent {_size(sent)}"
    if config.compression != "none" and "bytes_uncompressed" in rounds:  # the uploads that happened, uncompressed
        whole = rounds["bytes_uncompressed"].sum()
        line += f" (compression={config.compression!r}: {received / whole:.1%} of the same uploads uncompressed)" if whole else ""
    lines.append(line)
    if "drift_cosine_mean" in rounds:
        lines.append(
            f"client drift in the last round: cosine with the global update {last['drift_cosine_mean']:.3f} "
            f"± {last['drift_cosine_std']:.3f}, distance from the global model {last['drift_distance_mean']:.3g} "
            f"± {last['drift_distance_std']:.3g}"
        )
    return lines


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
