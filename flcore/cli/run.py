"""`python -m flcore run`: one simulation, stored (or not), its CSV files and its summary."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from flcore.cli.args import config_from_args, use_server_flags, writable_folder
from flcore.config import ExperimentConfig
from flcore.describe import describe_config, summary_lines


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from flcore.auth import local_user
    from flcore.federation.simulation import Simulation
    from flcore.records import RoundResult

    use_server_flags(args)
    config = config_from_args(args)
    out = writable_folder(Path(args.out)) if args.out else None
    store = run_id = None
    if not args.no_store:
        from flcore.store import RunStore

        store = RunStore(args.store)
        run_id = store.create_run(config, source="cli", owner=local_user().name)
    out = out or writable_folder(Path("runs") / (run_id or time.strftime("%Y%m%d-%H%M%S")))
    config.save(out / "config.json")

    results: list[RoundResult] = []
    bar = tqdm(total=config.rounds, desc="rounds", unit="round", disable=args.quiet, file=sys.stderr)

    def on_round(result: RoundResult) -> None:
        results.append(result)
        bar.set_postfix(postfix(result), refresh=False)
        bar.update(1)

    def on_clients(done: int, total: int) -> None:  # inside a round: how many of its clients trained
        bar.set_postfix(postfix(results[-1] if results else None, done, total))

    started = time.perf_counter()
    if store is not None:
        from flcore.service.execute import execute_run

        status = execute_run(store, run_id, on_round=on_round, on_clients=on_clients)
        info = store.get_run(run_id)
        counts = store.partition_frame(run_id)
        if status != "done":
            bar.close()
            print(f"run {run_id} {status}: {info.error or ''}".rstrip(": "), file=sys.stderr)
            _write_results(out, results, counts, config)
            return 1
        note = info.error  # a done run's note: a privacy budget ended it early
    else:
        sim = Simulation(config)
        counts = sim.partition_frame()
        for result in sim.run(on_clients=on_clients):
            on_round(result)
        note = sim.privacy.stop_message
    bar.close()
    _write_results(out, results, counts, config)
    _print_summary(config, results, time.perf_counter() - started, out, run_id, store)
    if note:
        print(note)
    return 0


def postfix(last, done: int | None = None, total: int | None = None) -> dict[str, str]:
    """What the bar shows after its count: the last round's accuracy and loss, and while a round
    trains, how many of its clients are done ("clients=37/131")."""
    shown = {} if last is None else {"acc": f"{last.test_accuracy:.3f}", "loss": f"{last.test_loss:.3f}"}
    if done is not None and done < total:
        shown["clients"] = f"{done}/{total}"
    return shown


def _write_results(out: Path, results: list, counts: pd.DataFrame, config: ExperimentConfig) -> None:
    from flcore.federation.privacy import label_epsilon_columns
    from flcore.records import EVALUATION_COLUMNS, TIMING_COLUMNS, names

    rounds = label_epsilon_columns(config, pd.DataFrame([r.row() for r in results]))
    if len(rounds):
        rounds.drop(columns=list(TIMING_COLUMNS)).to_csv(out / "rounds.csv", index=False)
        rounds[["round", *TIMING_COLUMNS]].to_csv(out / "timings.csv", index=False)
    pd.DataFrame([row for r in results for row in r.client_rows()]).to_csv(out / "clients.csv", index=False)
    evaluations = [row for r in results for row in r.evaluation_rows()]
    if evaluations:  # every client on its own test data, in the rounds that evaluated them
        pd.DataFrame(evaluations, columns=names(EVALUATION_COLUMNS)).to_csv(out / "evaluations.csv", index=False)
    counts.to_csv(out / "partition.csv", index=False)


def _personal_state(config: ExperimentConfig) -> list[str]:
    """What a personalized method kept per client (its head, or its own model), in bytes."""
    if config.personalization == "none":
        return []
    from flcore.data.datasets import dataset_info
    from flcore.federation.personalization import state_line
    from flcore.models import build_model

    info = dataset_info(config)
    line = state_line(config, build_model(config.model, info.input_shape, info.num_classes, info.vocab_size), info.num_classes)
    return [line] if line else []


def _print_summary(config: ExperimentConfig, results: list, seconds: float, out: Path, run_id, store) -> None:
    from flcore.federation.availability import summary
    from flcore.records import best_round

    final = results[-1]
    best = best_round(pd.DataFrame([r.row() for r in results]))
    print(
        f"{describe_config(config)}\n{len(results)} rounds in {seconds:.1f} s\n"
        f"final test accuracy {final.test_accuracy:.4f} (loss {final.test_loss:.4f}); "
        f"best {best['test_accuracy']:.4f} at round {int(best['round'])}\n"
        f"{summary(config, results)}\n"
        + "".join(line + "\n" for line in summary_lines(config, pd.DataFrame([r.row() for r in results])))
        + "".join(line + "\n" for line in _personal_state(config))
        + f"results written to {out}/"
        + (f"\nrecorded as run {run_id} in {store.path}" if run_id else "")
    )
