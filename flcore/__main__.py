"""Command line: ``python -m flcore run | sweep | partition | list | runs | show``.

`run` takes an optional ``--config FILE.json`` and one flag per config field (``--num-clients``,
``--alpha``, ...), which override the file. It shows a progress bar, prints a summary, records
the run in the run store (so it appears in the dashboard) and writes ``config.json``,
``rounds.csv``, ``clients.csv``, ``partition.csv`` and ``timings.csv`` to ``--out``.
``rounds.csv`` and ``clients.csv`` hold only seeded results, so two runs of one config are
byte-identical; wall-clock times go to ``timings.csv``. Bad arguments exit with status 2 and
a sentence naming the field. `sweep --grid GRID.json` queues one run per combination of a grid
of settings and seeds under one sweep id and runs them (in local worker processes, or on Ray
with $FLCORE_RAY_ADDRESS set), then prints each setting's final accuracy, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from flcore.config import ConfigError, ExperimentConfig
from flcore.sweep import SweepError

EXIT_USAGE = 2
NONE_WORDS = {"none", "null", "auto", "default"}


class UsageError(Exception):
    pass


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ExperimentConfig field; values are validated by the config, not argparse."""
    parser.add_argument("--config", type=Path, help="a JSON config file; flags override its values")
    group = parser.add_argument_group("experiment settings (see `python -m flcore list` for names)")
    for name, info in ExperimentConfig.model_fields.items():
        default = info.default
        shown = "" if default in (None, "") else f" (default: {default})"
        if name == "clients_per_round":
            help_text = "clients per round: a count (5) or a fraction of all clients (0.5)"
        else:
            help_text = (info.description or "") + shown
        if info.annotation is bool:
            group.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(_flag(name), dest=name, metavar="VALUE", default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    values: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.exists():
            raise ConfigError([f"--config {args.config} does not exist"])
        values.update(ExperimentConfig.load(args.config).model_dump())
    for name, info in ExperimentConfig.model_fields.items():
        raw = getattr(args, name, None)
        if raw is None:
            continue
        if isinstance(raw, str) and raw.lower() in NONE_WORDS and info.default is None:
            values[name] = None
        elif name == "clients_per_round" and isinstance(raw, str) and "." in raw:
            values.update(clients_per_round=None, client_fraction=raw)  # a fraction of all clients
        else:
            values[name] = raw
    return ExperimentConfig.create(**values)


# Commands -------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from flcore.config import registries
    from flcore.metrics import CLIENT_METRICS

    titles = {"dataset": "datasets", "partition": "partitions", "model": "models", "strategy": "strategies",
              "attack": "attacks", "dp": "differential privacy (--dp)", "compression": "update compression (--compression)",
              "executor": "executors"}  # fmt: skip
    for field, registry in [*registries().items(), ("client metric", CLIENT_METRICS)]:
        title = titles.get(field, "per-client metrics (clients.csv)")
        print(f"{title}:")
        for e in registry.entries():
            params = f"  [settings: {', '.join(e.params)}]" if e.params else ""
            facts = f"({e.obj.size}; {'works offline' if e.obj.info.offline else 'downloaded when missing'}) " if field == "dataset" else ""
            print(f"  {e.name:<16} {facts}{e.description}{params}")
        print()
    from flcore import ray_support

    print(f"ray: {ray_support.describe()}")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    from flcore.data.datasets import load_dataset
    from flcore.data.partition import heterogeneity, label_counts, split_dataset

    _use_server_flags(args)
    config = config_from_args(args)
    data = load_dataset(config)
    labels = data.y_train.numpy()
    parts = split_dataset(data, config)
    counts = label_counts(labels, parts, data.info.num_classes)
    stats = heterogeneity(counts)
    table = pd.DataFrame(counts, columns=[f"label_{c}" for c in range(counts.shape[1])])
    table.insert(0, "client", range(len(counts)))
    table["samples"] = counts.sum(1)
    table["classes"] = stats.per_client["classes"].to_numpy()
    table["tv_distance"] = stats.per_client["distance_from_global"].round(3).to_numpy()
    print(f"{config.dataset}: {len(labels)} training samples, {config.partition} split over {config.num_clients} clients")
    print(table.to_string(index=False))
    print()
    for key, value in stats.summary().items():
        print(f"{key:>22}: {value:.3f}")
    return 0


def _use_server_flags(args: argparse.Namespace) -> None:
    """--data-dir and --download set this command's server settings (see flcore.settings)."""
    from flcore import settings

    changes = {k: v for k, v in (("data_dir", args.data_dir), ("download", args.download)) if v is not None}
    if changes:
        settings.use(settings.current().with_changes(**changes))


def _writable_folder(path: Path) -> Path:
    """`path`, created if missing, after checking results can be written there (before a run is recorded)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file; give a folder for the results")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".flcore-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {path} cannot be written ({e.strerror or e}); choose another folder") from None
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from flcore.auth import local_user
    from flcore.records import RoundResult
    from flcore.simulation import Simulation

    _use_server_flags(args)
    config = config_from_args(args)
    out = _writable_folder(Path(args.out)) if args.out else None
    store = run_id = None
    if not args.no_store:
        from flcore.store import RunStore

        store = RunStore(args.store)
        run_id = store.create_run(config, source="cli", owner=local_user().name)
    out = out or _writable_folder(Path("runs") / (run_id or time.strftime("%Y%m%d-%H%M%S")))
    config.save(out / "config.json")

    results: list[RoundResult] = []
    bar = tqdm(total=config.rounds, desc="rounds", unit="round", disable=args.quiet, file=sys.stderr)

    def on_round(result: RoundResult) -> None:
        results.append(result)
        bar.set_postfix(acc=f"{result.test_accuracy:.3f}", loss=f"{result.test_loss:.3f}")
        bar.update(1)

    started = time.perf_counter()
    if store is not None:
        from flcore.runner import execute_run

        status = execute_run(store, run_id, on_round=on_round)
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
        for result in sim.run():
            on_round(result)
        note = sim.privacy.stop_message
    bar.close()
    _write_results(out, results, counts, config)
    _print_summary(config, results, time.perf_counter() - started, out, run_id, store)
    if note:
        print(note)
    return 0


def _write_results(out: Path, results: list, counts: pd.DataFrame, config: ExperimentConfig) -> None:
    from flcore.privacy import label_epsilon_columns
    from flcore.records import TIMING_COLUMNS

    rounds = label_epsilon_columns(config, pd.DataFrame([r.row() for r in results]))
    if len(rounds):
        rounds.drop(columns=list(TIMING_COLUMNS)).to_csv(out / "rounds.csv", index=False)
        rounds[["round", *TIMING_COLUMNS]].to_csv(out / "timings.csv", index=False)
    pd.DataFrame([row for r in results for row in r.client_rows()]).to_csv(out / "clients.csv", index=False)
    counts.to_csv(out / "partition.csv", index=False)


def _print_summary(config: ExperimentConfig, results: list, seconds: float, out: Path, run_id, store) -> None:
    from flcore.availability import summary
    from flcore.records import best_round

    final = results[-1]
    best = best_round(pd.DataFrame([r.row() for r in results]))
    print(
        f"{config.dataset} · {config.partition} · {config.strategy} · {config.num_clients} clients · "
        f"{len(results)} rounds in {seconds:.1f} s\n"
        f"final test accuracy {final.test_accuracy:.4f} (loss {final.test_loss:.4f}); "
        f"best {best['test_accuracy']:.4f} at round {int(best['round'])}\n"
        f"{summary(config, results)}\n"
        + "".join(line + "\n" for line in summary_lines(config, pd.DataFrame([r.row() for r in results])))
        + f"results written to {out}/"
        + (f"\nrecorded as run {run_id} in {store.path}" if run_id else "")
    )


SWEEP_POLL_S = 0.5


def cmd_sweep(args: argparse.Namespace) -> int:
    from flcore import sweep
    from flcore.auth import local_user
    from flcore.store import RunStore

    _use_server_flags(args)
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
    from flcore.runner import Runner
    from flcore.sweep import final_accuracy_table, setting_label

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
        from flcore.privacy import EPSILON_KINDS

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


def cmd_users(args: argparse.Namespace) -> int:
    """Manage the users file of a server's password sign-in."""
    import getpass

    from flcore import settings
    from flcore.auth import Users

    path = args.file or settings.current().users_file
    if path is None:
        raise UsageError("name the users file with --file (or set FLCORE_USERS to it)")
    users = Users(path)
    if args.action == "list":
        for name, record in sorted(users.load().items()):
            print(name + ("  (admin)" if record.get("admin") else ""))
        return 0
    if not args.name:
        raise UsageError(f"`users {args.action}` needs a user name")
    if args.action == "remove":
        users.remove(args.name)
        print(f"removed {args.name} from {users.path}")
        return 0
    password = args.password_stdin and sys.stdin.readline().rstrip("\n")
    if not password:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ; nothing was changed")
    users.add(args.name, password, admin=args.admin)
    print(f"{args.name} can now sign in{' (admin)' if args.admin else ''}; users file: {users.path}")
    return 0


# Parsing --------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's errors, as one sentence and status 2
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m flcore", description="Federated-learning simulations from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one simulation")
    _add_config_flags(run)
    _add_server_flags(run)
    run.add_argument("--out", metavar="DIR", help="where to write the CSV results (default: runs/<run id>)")
    run.add_argument("--store", metavar="PATH", help="run store file (default: $FLCORE_STORE or ~/.local/share/flcore/runs.db)")
    run.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="queue and run one simulation per combination of a grid of settings and seeds")
    sweep.add_argument("--grid", type=Path, required=True, metavar="GRID.json", help='{"field": [values, ...], ..., "seeds": [0, 1]}')
    _add_config_flags(sweep)
    _add_server_flags(sweep)
    sweep.add_argument("--store", metavar="PATH", help="run store file (default: $FLCORE_STORE or ~/.local/share/flcore/runs.db)")
    sweep.add_argument(
        "--no-wait", action="store_true", help="only queue the runs; a runner on the same store (the dashboard's) trains them"
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(func=cmd_sweep)

    part = sub.add_parser("partition", help="print how the data would be split, without training")
    _add_config_flags(part)
    _add_server_flags(part)
    part.set_defaults(func=cmd_partition)

    sub.add_parser(
        "list", help="list datasets, partitions, models, strategies, attacks, privacy, compression, executors and client metrics"
    ).set_defaults(func=cmd_list)

    runs = sub.add_parser("runs", help="list the runs in the run store")
    runs.add_argument("--store", metavar="PATH")
    runs.set_defaults(func=cmd_runs)

    show = sub.add_parser("show", help="show one stored run")
    show.add_argument("run_id")
    show.add_argument("--store", metavar="PATH")
    show.set_defaults(func=cmd_show)

    users = sub.add_parser("users", help="add, remove or list the users of a server's password sign-in")
    users.add_argument("action", choices=("add", "remove", "list"))
    users.add_argument("name", nargs="?")
    users.add_argument("--file", type=Path, help="the users file (default: $FLCORE_USERS)")
    users.add_argument("--admin", action="store_true", help="may cancel, resume and delete anyone's runs")
    users.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.set_defaults(func=cmd_users)
    return parser


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server settings (for this command; a dashboard takes them from its environment)")
    group.add_argument("--data-dir", metavar="DIR", help="where datasets are read and downloaded (default: $FLCORE_DATA_DIR)")
    group.add_argument("--download", action=argparse.BooleanOptionalAction, default=None, help="download a missing dataset")


def main(argv: Sequence[str] | None = None) -> int:
    from flcore.auth import AuthError
    from flcore.settings import SettingsError
    from flcore.store import StoreError

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, ConfigError, StoreError, AuthError, SettingsError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as err:  # e.g. a store that became read-only: one sentence, not a traceback
        print(f"error: the run store cannot be written ({err}); check its permissions, or choose another with --store", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RuntimeError, OSError) as err:  # PartitionError, DatasetUnavailable, ...
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
