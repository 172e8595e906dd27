"""Runs on a Ray cluster: each run's Simulation in a Ray actor, its rounds written by the runner.

With $FLCORE_RAY_ADDRESS set (see `flcore.ray_support`), the `Runner` starts a queued run as a
`RunActor` on the cluster instead of a local worker process; `RayRuns` is what it delegates
to. The actor builds the run's Simulation wherever Ray placed it (loading the dataset there)
and trains one round per call of `next_round`. A thread in the runner's process drives it
through `RemoteSimulation`, which looks like a local Simulation to the runner's
`execute_claimed`: so the runner's process stores the split, then each round with its
checkpoint in the same `append_round` transaction, beats the run's heartbeat and checks for a
cancel between rounds, exactly as a local worker does. The actor never sees the store: no
process on another node touches the SQLite file. A round starts only when the runner asks for
it, after the previous one is stored, so nothing is computed that is not kept.

Cancel: the runner stops asking and the actor is killed. A lost actor (its node died, or it was
killed) raises `RayWorkerLost`: the run is marked interrupted with a sentence and resumes, on
any node, from its last checkpoint. The runner shutting down kills its actors and leaves their
runs interrupted, as with local workers; a runner process that dies takes its actors with it
(Ray ends an actor whose owner is gone) and the next runner marks the run interrupted.

Each run actor takes one CPU (and one GPU where the cluster has GPUs and the run's device is
not `cpu`); a run with `executor='ray'` takes none itself, its client actors hold them. At most
`max_runs` runs are dispatched at once: $FLCORE_MAX_WORKERS or the runner's `max_workers` when
given, else the cluster's CPUs.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flcore import ray_support
from flcore.store import RunStore

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.records import RoundResult
    from flcore.settings import Settings
    from flcore.strategies import ServerState

log = logging.getLogger(__name__)

STOPPED_JOIN_S = 30.0  # how long the server waits for a stopped run's thread (it may be stuck reaching Ray)
SHUTDOWN_MESSAGE = "The server shut down during the run; resume it to continue from its last finished round."


def to_device(value: Any, device: Any) -> Any:
    """`value` with every tensor in it (through dicts, lists and tuples) moved to `device`."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def state_to(state: "ServerState | None", device: Any) -> "ServerState | None":
    if state is None:
        return None
    return state.evolve(params=state.params.to(device), extra=to_device(state.extra, device))


class RunActor:
    """A run's Simulation on a Ray node; trains one round per `next_round` call."""

    def setup(self, config: "ExperimentConfig", server_settings: "Settings | None" = None) -> dict:
        """Build the Simulation (loading the data on this node, with the server's settings: its data
        folder and download switch); returns the split and where it runs."""
        from flcore.federation.simulation import Simulation

        self.sim = Simulation(config, server_settings)
        self.rounds = None
        return {"label_counts": self.sim.label_counts, "device": str(self.sim.device), **self.where()}

    def where(self) -> dict:
        """The process, host and Ray node this actor runs in."""
        import ray

        return {"pid": os.getpid(), "host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id()}

    def start(self, state: "ServerState | None") -> None:
        """Continue from `state` (a checkpoint, on the CPU) or from the start."""
        self.rounds = self.sim.run(state_to(state, self.sim.device))

    def next_round(self) -> "RoundResult | None":
        """The next round's result (its state on the CPU), or None after the last round."""
        try:
            result = next(self.rounds)
        except StopIteration:
            return None
        return dataclasses.replace(result, state=state_to(result.state, "cpu"))


_REMOTE: dict[str, Any] = {}


def _actor_class(ray) -> Any:
    if "run" not in _REMOTE:
        _REMOTE["run"] = ray.remote(RunActor)
    return _REMOTE["run"]


def actor_resources(config: "ExperimentConfig", cluster: dict[str, float]) -> dict[str, float]:
    """What a run's actor asks Ray for (see the module docstring)."""
    gpus = cluster.get("GPU", 0)
    if config.device == "cuda" and not gpus:
        raise RuntimeError("device='cuda' was chosen but the Ray cluster has no GPU; use device='auto' or 'cpu', or add a GPU node")
    if config.executor == "ray":  # it aggregates and evaluates; its client actors hold the CPUs
        return {"num_cpus": 0, "num_gpus": 0}
    return {"num_cpus": 1, "num_gpus": 1 if gpus and config.device != "cpu" else 0}


class RunControl:
    """What the runner's thread and the run's actor share: the actor, and whether the server is
    stopping it (so that its end reads as a shutdown, not as a lost node)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.actor = None
        self.stopping = False
        self._lock = threading.Lock()

    def attach(self, actor) -> None:
        with self._lock:
            self.actor = actor
            stop = self.stopping
        if stop:  # the server began stopping while the actor was being created
            self.release()

    def release(self) -> None:
        """Kill the run's actor (once; later calls do nothing)."""
        with self._lock:
            actor, self.actor = self.actor, None
        if actor is not None:
            import ray

            try:
                ray.kill(actor)
            except Exception:  # already dead, or Ray is gone: nothing left to stop
                log.debug("killing the actor of run %s failed", self.run_id, exc_info=True)

    def stop(self) -> None:
        self.stopping = True
        self.release()

    def get(self, ref) -> Any:
        """ray.get, with a lost actor as RayWorkerLost and an error inside the actor as itself."""
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as err:
            if self.stopping:
                raise ray_support.RayWorkerLost(SHUTDOWN_MESSAGE) from None
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ray_support.RayWorkerLost(
                f"The run stopped: its Ray actor was lost (its node may have died: {first_line}); "
                "resume it to continue from its last finished round."
            ) from None
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise


class RemoteSimulation:
    """What `execute_claimed` trains with when the run is on Ray: the run's actor, seen as a
    Simulation (`label_counts`, `device`, `run(state)` yielding RoundResults with their state)."""

    def __init__(self, config: "ExperimentConfig", control: RunControl, server: "Settings") -> None:
        import torch

        from flcore.federation.privacy import Privacy

        ray = ray_support.connect()
        self.control = control
        self.privacy = Privacy(config)  # the rounds a privacy budget allows, and why it ended (runner.py reads it)
        options = actor_resources(config, ray.cluster_resources())
        name = f"flcore-run-{control.run_id}-{secrets.token_hex(2)}"
        actor = _actor_class(ray).options(name=name, namespace=ray_support.NAMESPACE, max_restarts=0, **options).remote()
        control.attach(actor)
        self.placement = control.get(actor.setup.remote(config, server))
        self.label_counts = self.placement["label_counts"]
        self.device = torch.device("cpu")  # where checkpoints are read to before they travel

    def run(self, state: "ServerState | None" = None, on_clients=None):
        """The actor's rounds (`on_clients` is not heard: a round on Ray reports when it ends)."""
        actor = self.control.actor
        try:
            if actor is None:  # stopped before it began
                raise ray_support.RayWorkerLost(SHUTDOWN_MESSAGE)
            self.control.get(actor.start.remote(state))
            while True:
                result = self.control.get(actor.next_round.remote())
                if result is None:
                    return
                yield result
        finally:  # done, failed, or the runner stopped asking (cancel): the actor goes
            self.control.release()


class RunThread:
    """A run on Ray as the Runner sees a worker process: a thread here that drives the run's
    actor, with a process's `start`, `is_alive`, `join`, `terminate`, `kill`, `pid`,
    `exitcode` and a `sentinel` that becomes ready when it ends."""

    def __init__(self, run_id: str, target: Callable[[RunControl], Any]) -> None:
        self.control = RunControl(run_id)
        self.name = f"flcore-ray-run-{run_id}"
        self.pid = os.getpid()  # the run is this process's: it writes the store and beats the heartbeat
        self.exitcode: int | None = None
        self.sentinel, self._done = multiprocessing.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._main, args=(target,), name=self.name, daemon=True)
        self._closed = False

    def _main(self, target: Callable[[RunControl], Any]) -> None:
        try:
            target(self.control)
            self.exitcode = 0
        except BaseException:
            log.exception("the thread of run %s failed", self.control.run_id)
            self.exitcode = 1
        finally:
            self.control.release()
            self._done.close()  # the sentinel reads end-of-file: the scheduler wakes

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if timeout is None and self.control.stopping:  # a daemon thread: the server need not wait for ever
            timeout = STOPPED_JOIN_S
        self._thread.join(timeout)
        if not self._thread.is_alive() and not self._closed:
            self._closed = True
            self.sentinel.close()

    def terminate(self) -> None:
        """The server is stopping: kill the actor; the thread then marks the run interrupted."""
        self.control.stop()

    kill = terminate


class RayRuns:
    """Dispatches runs of one store to Ray; the Runner delegates to it when $FLCORE_RAY_ADDRESS is set."""

    def __init__(self, store_path: str | Path, max_runs: int | None = None) -> None:
        if not ray_support.available():
            raise RuntimeError(
                f"{ray_support.ADDRESS_ENV}={ray_support.address()} asks for runs on Ray, which is not installed; "
                f"{ray_support.INSTALL_HINT}, or unset {ray_support.ADDRESS_ENV} to train in local worker processes"
            )
        self.store_path = str(store_path)
        self.max_runs = max_runs
        self.address = ray_support.address() or "local"

    @classmethod
    def from_env(cls, store_path: str | Path, max_runs: int | None = None) -> "RayRuns | None":
        """A dispatcher when $FLCORE_RAY_ADDRESS is set, else None (runs train in local processes)."""
        return cls(store_path, max_runs) if ray_support.address() else None

    def capacity(self) -> int:
        """How many runs may be on the cluster at once (one until this process has joined Ray)."""
        if self.max_runs:
            return self.max_runs
        if ray_support.available():
            import ray

            if ray.is_initialized():
                return max(1, int(ray.cluster_resources().get("CPU", 1)))
        return 1

    def process(self, run_id: str, execute: Callable[..., str], server: "Settings") -> RunThread:
        """The handle of run `run_id` on Ray; `execute` is the runner's `execute_claimed`,
        `server` the runner's settings, which the run's actor loads its data with."""
        worker = {"start_method": "ray", "ray_address": self.address, "runner_pid": os.getpid(), "runner_host": socket.gethostname()}

        def target(control: RunControl) -> None:
            remote = lambda config, settings: RemoteSimulation(config, control, settings)
            execute(RunStore(self.store_path), run_id, None, worker, simulation=remote, settings=server)

        return RunThread(run_id, target)
