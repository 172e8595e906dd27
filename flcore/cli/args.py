"""The command line's shared parts: config flags made from ExperimentConfig's fields, the server
flags, and the usage error every refusal becomes (exit status 2 with a sentence)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flcore.config import ConfigError, ExperimentConfig

EXIT_USAGE = 2
NONE_WORDS = {"none", "null", "auto", "default"}


class UsageError(Exception):
    pass


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
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


def use_server_flags(args: argparse.Namespace) -> None:
    """--data-dir and --download set this command's server settings (see flcore.settings)."""
    from flcore import settings

    changes = {k: v for k, v in (("data_dir", args.data_dir), ("download", args.download)) if v is not None}
    if changes:
        settings.use(settings.current().with_changes(**changes))


def writable_folder(path: Path) -> Path:
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


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server settings (for this command; a dashboard takes them from its environment)")
    group.add_argument("--data-dir", metavar="DIR", help="where datasets are read and downloaded (default: $FLCORE_DATA_DIR)")
    group.add_argument("--download", action=argparse.BooleanOptionalAction, default=None, help="download a missing dataset")
