"""Server settings: what the operator decides, never the person filling in a form.

Where datasets live and whether they may be downloaded, who may sign in, and how much one
person may ask of a shared server are the operator's settings, not experiment settings: a form
field that named a folder let anyone make the server read (and unpickle) files from it. They are
read from environment variables, and from an optional TOML file named by ``FLCORE_SETTINGS``
(keys as below, lower case, e.g. ``data_dir = "/srv/flcore/data"``); the environment wins.

| variable | meaning | default |
|---|---|---|
| `FLCORE_DATA_DIR` | where datasets are read and downloaded | `~/.cache/flcore/data` |
| `FLCORE_DOWNLOAD` | download a missing torchvision dataset (`1`/`0`) | `1` |
| `FLCORE_USERS` | a users file (see `flcore.auth`): sign-in with a password | none (open) |
| `FLCORE_ADMINS` | comma-separated users who may act on anyone's runs | none |
| `FLCORE_MAX_QUEUED` | runs one person may have queued or running at once | 5 |
| `FLCORE_MAX_RUNNING` | runs of one person that train at the same time | 2 |
| `FLCORE_MAX_CLIENT_UPDATES` | the work of one run: rounds x clients per round | 250000 |
| `FLCORE_MAX_RUN_TFLOP` | the compute of one run, estimated before it is queued (`flcore.service.quotas.run_cost`), in trillions of operations | 200 |
| `FLCORE_MAX_UPLOAD_MB` | the largest data file one may upload on New run | 100 |
| `FLCORE_MAX_DECODED_MB` | the most a data file may take once read (its samples as 8-byte numbers) | 256 |
| `FLCORE_ALLOW_OPEN_NETWORK` | serve without sign-in to other machines too (`1`/`0`): everyone who reaches it owns every run | `0` |

A process has one `Settings` (`current()`), read where the process meets the world (the web
server, a CLI command); the engine is given it as an argument (`Simulation(config, settings)`,
`load_dataset(config, settings)`), and the runner hands its own to the workers it starts, so a
worker never reads the environment of another moment. The CLI's `--data-dir` and `--download`
flags change them for that one command.

How this machine runs runs is read from the environment when a store, a runner or a Ray
connection starts (`store_path`, `max_workers`, `worker_threads`, `worker_nice`, `page_times`, `ray_address`):

| variable | meaning | default |
|---|---|---|
| `FLCORE_STORE` | the run store (SQLite file) | `~/.local/share/flcore/runs.db` |
| `FLCORE_MAX_WORKERS` | runs that train at the same time | (cores - 1) // 2, at least 1 |
| `FLCORE_WORKER_THREADS` | torch intra-op threads of each worker | (cores - 1) // workers, at least 1 |
| `FLCORE_WORKER_NICE` | how much lower a worker's priority is (0-19) | 10 |
| `FLCORE_RAY_ADDRESS` | send runs to Ray: `auto`, `ray://host:10001` or `local` | unset: local processes |
| `FLCORE_PAGE_TIMES` | a file the dashboard appends each page it draws to, one JSON line: the page, its seconds and its CPU seconds on the server | unset: not written |

Every `FLCORE_*` variable is read and checked here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path.home() / ".cache" / "flcore" / "data"


def env_int(name: str, low: int, high: int | None = None, raw: str | None = None) -> int | None:
    """$name (or `raw`, a value given for it) as a whole number within [low, high], or None when
    unset; a sentence naming the variable when invalid."""
    raw = (os.environ.get(name, "") if raw is None else raw).strip()
    if not raw:
        return None
    allowed = f"a whole number of at least {low}" if high is None else f"a whole number from {low} to {high}"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be {allowed}") from None
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}={raw!r} must be {allowed}")
    return value


class SettingsError(ValueError):
    """A server setting is invalid; the message names the variable and what is allowed."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    download: bool = True
    users_file: Path | None = None  # None: no password sign-in
    admins: frozenset[str] = field(default_factory=frozenset)
    max_queued: int = 5
    max_running: int = 2
    max_client_updates: int = 250_000
    max_run_tflop: int = 200  # about 3 hours of one core at the 20 GFLOP/s a worker thread trains at (see quotas.run_cost)
    max_upload_mb: int = 100
    max_decoded_mb: int = 256
    allow_open_network: bool = False  # open mode (no sign-in) answers other machines as well

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings from $FLCORE_SETTINGS (a TOML file, optional) overridden by the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = env.get("FLCORE_SETTINGS", "").strip()
        if path:
            values.update(_read_file(Path(path).expanduser()))
        if "users" in values:  # the file's `users` key names the users file
            values["users_file"] = values.pop("users")
        names = {f.name for f in fields(cls)}
        variables = {f"FLCORE_{n.upper()}": n for n in names if n != "users_file"} | {"FLCORE_USERS": "users_file"}
        for var, name in variables.items():
            raw = env.get(var, "").strip()
            if raw:
                values[name] = raw
        return cls(**{k: _parse(k, v) for k, v in values.items() if k in names})

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **{k: _parse(k, v) for k, v in changes.items()})


def _read_file(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise SettingsError(f"FLCORE_SETTINGS={path}: reading a settings file needs Python 3.11 or newer") from None
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise SettingsError(f"FLCORE_SETTINGS={path} cannot be read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"FLCORE_SETTINGS={path} is not valid TOML: {e}") from None
    known = {f.name for f in fields(Settings)} | {"users"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"FLCORE_SETTINGS={path} has unknown settings {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def _parse(name: str, value: Any) -> Any:
    """A setting from its environment string (or TOML value), checked."""
    var = "FLCORE_USERS" if name == "users_file" else f"FLCORE_{name.upper()}"
    if name == "data_dir":
        return Path(str(value)).expanduser().resolve()
    if name == "users_file":
        return None if value in (None, "") else Path(str(value)).expanduser().resolve()
    if name in ("download", "allow_open_network"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise SettingsError(f"{var}={value!r} must be 1 or 0 (true or false)")
        return text in ("1", "true", "yes", "on")
    if name == "admins":
        if isinstance(value, (set, frozenset, list, tuple)):
            return frozenset(str(v).strip() for v in value if str(v).strip())
        return frozenset(v.strip() for v in str(value).split(",") if v.strip())
    if name in ("max_queued", "max_running", "max_client_updates", "max_run_tflop", "max_upload_mb", "max_decoded_mb"):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        number = env_int(var, 1, None, str(value))
        return number
    raise SettingsError(f"{name} is not a server setting")


_current: Settings | None = None


def current() -> Settings:
    """This process's settings (read from the environment the first time)."""
    global _current
    if _current is None:
        _current = Settings.from_environment()
    return _current


def use(settings: Settings) -> None:
    """Make `settings` this process's settings (a worker takes its server's; a CLI command its flags)."""
    global _current
    _current = settings


# How this machine runs runs (read when asked: a runner or a store starts) --------------------
def store_path() -> Path:
    """$FLCORE_STORE, else ~/.local/share/flcore/runs.db."""
    raw = os.environ.get("FLCORE_STORE", "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".local" / "share" / "flcore" / "runs.db"


def max_workers() -> int | None:
    """$FLCORE_MAX_WORKERS (runs that train at once), None when unset."""
    return env_int("FLCORE_MAX_WORKERS", 1)


def worker_threads() -> int | None:
    """$FLCORE_WORKER_THREADS (torch threads of each worker), None when unset."""
    return env_int("FLCORE_WORKER_THREADS", 1)


def worker_nice() -> int | None:
    """$FLCORE_WORKER_NICE (0-19), None when unset."""
    return env_int("FLCORE_WORKER_NICE", 0, 19)


def page_times() -> Path | None:
    """$FLCORE_PAGE_TIMES (where the dashboard records how long each page took), None when unset."""
    raw = os.environ.get("FLCORE_PAGE_TIMES", "").strip()
    return Path(raw).expanduser() if raw else None


def ray_address() -> str | None:
    """$FLCORE_RAY_ADDRESS, or None when runs should not go to Ray."""
    return os.environ.get("FLCORE_RAY_ADDRESS", "").strip() or None
