"""Command line: ``python -m flcore run | sweep | partition | list | runs | show | check``.

`run` takes an optional ``--config FILE.json`` and one flag per config field (``--num-clients``,
``--alpha``, ...), which override the file. It shows a progress bar, prints a summary, records
the run in the run store (so it appears in the dashboard) and writes ``config.json``,
``rounds.csv``, ``clients.csv``, ``partition.csv`` and ``timings.csv`` to ``--out``.
``rounds.csv`` and ``clients.csv`` hold only seeded results, so two runs of one config are
byte-identical; wall-clock times go to ``timings.csv``. Bad arguments exit with status 2 and
a sentence naming the field (a long value is cut, not echoed whole). `runs`, `show` and `run` first
mark interrupted the runs a killed process left `running` (`check.interrupt_gone_runs`); `check`
says whether the store file is whole and which runs can still be read. `sweep --grid GRID.json` queues one run per combination of a grid
of settings and seeds under one sweep id and runs them (in local worker processes, or on Ray
with $FLCORE_RAY_ADDRESS set), then prints each setting's final accuracy, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from flcore.cli.args import EXIT_USAGE, UsageError, add_config_flags, add_server_flags
from flcore.cli.check import cmd_check, interrupt_gone_runs
from flcore.cli.explore import cmd_list, cmd_partition
from flcore.cli.report import cmd_runs, cmd_show
from flcore.cli.run import cmd_run
from flcore.cli.sweep import cmd_sweep
from flcore.cli.users import cmd_users
from flcore.config import ConfigError
from flcore.problems import cut_long_words
from flcore.service.sweep import SweepError


# Parsing --------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's errors, as one sentence and status 2
        self.print_usage(sys.stderr)
        raise UsageError(cut_long_words(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m flcore", description="Federated-learning simulations from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one simulation")
    add_config_flags(run)
    add_server_flags(run)
    run.add_argument("--out", metavar="DIR", help="where to write the CSV results (default: runs/<run id>)")
    run.add_argument("--store", metavar="PATH", help="run store file (default: $FLCORE_STORE or ~/.local/share/flcore/runs.db)")
    run.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="queue and run one simulation per combination of a grid of settings and seeds")
    sweep.add_argument("--grid", type=Path, required=True, metavar="GRID.json", help='{"field": [values, ...], ..., "seeds": [0, 1]}')
    add_config_flags(sweep)
    add_server_flags(sweep)
    sweep.add_argument("--store", metavar="PATH", help="run store file (default: $FLCORE_STORE or ~/.local/share/flcore/runs.db)")
    sweep.add_argument(
        "--no-wait", action="store_true", help="only queue the runs; a runner on the same store (the dashboard's) trains them"
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(func=cmd_sweep)

    part = sub.add_parser("partition", help="print how the data would be split, without training")
    add_config_flags(part)
    add_server_flags(part)
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

    check = sub.add_parser("check", help="check that the run store is whole and say which runs can still be read")
    check.add_argument("--store", metavar="PATH")
    check.set_defaults(func=cmd_check)

    users = sub.add_parser("users", help="add, remove or list the users of a server's password sign-in")
    users.add_argument("action", choices=("add", "remove", "list"))
    users.add_argument("name", nargs="?")
    users.add_argument("--file", type=Path, help="the users file (default: $FLCORE_USERS)")
    users.add_argument("--admin", action="store_true", help="may cancel, resume and delete anyone's runs")
    users.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.set_defaults(func=cmd_users)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from flcore.auth import AuthError
    from flcore.settings import SettingsError
    from flcore.store import StoreError

    try:
        args = build_parser().parse_args(argv)
        if args.command in ("runs", "show") or (args.command == "run" and not args.no_store):
            interrupt_gone_runs(args.store)
        return args.func(args)
    except (UsageError, ConfigError, StoreError, AuthError, SettingsError, SweepError) as err:
        print(f"error: {cut_long_words(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as err:  # e.g. a store that became read-only: one sentence, not a traceback
        print(f"error: the run store cannot be written ({err}); check its permissions, or choose another with --store", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RuntimeError, OSError) as err:  # PartitionError, DatasetUnavailable, ...
        print(f"error: {cut_long_words(str(err))}", file=sys.stderr)
        return EXIT_USAGE if _refuses_settings(err) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _refuses_settings(err: BaseException) -> bool:
    """Whether `err` refuses the settings (a split the data cannot give, a data file that cannot
    be used: status 2, like any refusal) rather than says the run failed (status 1)."""
    from flcore.data.errors import DataFileError
    from flcore.data.partition import PartitionError

    return isinstance(err, (PartitionError, DataFileError))


if __name__ == "__main__":
    sys.exit(main())
