"""Ray, where flcore uses it: whether it is installed, how to get it, and this process's connection.

Ray (Moritz et al. 2018, "Ray: A Distributed Framework for Emerging AI Applications") runs the
same Python code on a laptop and on a cluster; Flower's simulation backend uses it too. flcore
uses it for two things, both optional: the `ray` executor (a round's clients trained by Ray
actors) and, with ``$FLCORE_RAY_ADDRESS`` set, the runner starting each run as a Ray actor
instead of a local worker process. Nothing else imports Ray, and nothing here imports it at
module level, so flcore works without it; asking for it without it installed is refused with a
sentence saying how to install it (`INSTALL_HINT`).

``$FLCORE_RAY_ADDRESS`` says which Ray this process joins: unset (the default) means runs train
in local worker processes and the `ray` executor starts a private Ray for its run; ``auto`` the
cluster this machine belongs to (started with ``ray start --head`` or ``ray start --address``);
``ray://host:10001`` a remote cluster through Ray Client; ``local`` a Ray started inside this
process on this machine's cores (what the tests use). On an existing cluster, flcore's own code
travels with the job (``py_modules``), so the other nodes need only the packages of
requirements.txt and requirements-ray.txt.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from types import ModuleType

ADDRESS_ENV = "FLCORE_RAY_ADDRESS"
RAY_AUTH_MODE = "RAY_AUTH_MODE"  # Ray's own: "token" makes its servers refuse callers without the cluster's token
INSTALL_HINT = "install it with `pip install -r requirements-ray.txt` (or `pip install 'ray>=2.9'`)"
NAMESPACE = "flcore"  # run actors are named in it, so `ray list actors` shows which run each one is

_connect_lock = threading.Lock()
_private: dict[str, bool] = {"started": False}  # whether connect() started a Ray of this process's own


class RayWorkerLost(RuntimeError):
    """A Ray actor doing a run's work is gone (its node died, or it was killed): the run stops
    as interrupted and resumes from its last checkpoint. The message is the sentence a user reads."""


def available() -> bool:
    """Whether Ray can be imported here."""
    return importlib.util.find_spec("ray") is not None


def version() -> str | None:
    """The installed Ray's version, or None without Ray (reads the package metadata, does not import it)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("ray")
    except PackageNotFoundError:
        return None


def address() -> str | None:
    """$FLCORE_RAY_ADDRESS, or None when runs should not go to Ray (`flcore.settings.ray_address`)."""
    from flcore import settings

    return settings.ray_address()


def missing_sentence(what: str) -> str:
    return f"{what} needs Ray, which is not installed; {INSTALL_HINT}"


def connect() -> ModuleType:
    """The `ray` module, connected: to the Ray this process already joined (inside a Ray actor,
    or after the caller's own `ray.init`), else to the one $FLCORE_RAY_ADDRESS names, else to a
    new local one. Raises RuntimeError with a sentence when Ray is missing or unreachable."""
    if not available():
        raise RuntimeError(missing_sentence("this"))
    import ray

    with _connect_lock:
        if ray.is_initialized():
            return ray
        where = address()
        kwargs: dict = {"namespace": NAMESPACE, "include_dashboard": False}
        if where not in (None, "local"):
            # Other nodes import flcore from the job, not from a checkout of their own.
            kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parent)]}
        else:
            # A Ray of our own listens on every interface: `_node_ip_address="127.0.0.1"` does
            # not change that (Ray replaces a loopback address with the machine's, measured with
            # Ray 2.60), so it must at least want a token from whoever connects (Ray 2.5x and
            # later; an older Ray ignores this). An operator's own RAY_AUTH_MODE is kept.
            os.environ.setdefault(RAY_AUTH_MODE, "token")
        try:
            ray.init(address=None if where in (None, "local") else where, **kwargs)
            _private["started"] = where is None
        except Exception as err:
            shown = f"{ADDRESS_ENV}={where}" if where else "a local Ray"
            raise RuntimeError(
                f"could not start or reach Ray ({shown}): {err}; start a cluster with `ray start --head`, "
                f"or unset {ADDRESS_ENV} to train in local worker processes"
            ) from None
    return ray


def release_private() -> None:
    """Shut down the Ray that `connect` started for this process alone ($FLCORE_RAY_ADDRESS
    unset), when the run that needed it ends: a worker process exits without running Ray's own
    exit hooks, which left Ray's agent processes behind. A Ray this process joined, or one set
    up by its caller (tests, benchmarks), is left alone."""
    with _connect_lock:
        if not _private["started"]:
            return
        _private["started"] = False
        import ray

        ray.shutdown()


def describe() -> str:
    """One line for `python -m flcore list`: is Ray here, and where would runs go."""
    if not available():
        return f"not installed: the `ray` executor and runs on a cluster need it; {INSTALL_HINT}"
    where = address()
    runs = f"runs are sent to Ray at {ADDRESS_ENV}={where}" if where else f"runs train in local worker processes ({ADDRESS_ENV} is not set)"
    return f"available (ray {version()}); {runs}"
