"""The `ray` executor: a round's sampled clients split over long-lived Ray actors.

Ray (Moritz et al. 2018) is what Flower's simulation backend, blades and FedScale's examples run
clients on, and it runs the same code on one machine and on a cluster. Here each actor
(`ClientTrainer`) is started at the run's first round and lives until the run ends (`close`,
which the simulation calls; the actors are cached on the executor between rounds). An actor
resolves the run's `TrainingData` once, in its own process: from the dataset registry with the
run's config, or, for tensors made in the driver (benchmarks, tests), from Ray's object store.
It trains the clients it is given with the local executors (`auto`: the vectorized one, the
sequential one where the model needs it), so no training code is written twice.

A round puts the global parameters in the object store once and sends each actor its share of
the `ClientTask`s (index tensors on the CPU; a straggler's step limit travels with its task) and
of SCAFFOLD's corrections. Shares are balanced by the samples each client goes through this round
(the largest first, onto the least loaded actor; a straggler's partial work counts for less). The driver puts the rows
back in task order and aggregates as with any executor. A client's numbers do not depend on
which actor or chunk trains it, so the results equal the vectorized executor's to float
tolerance (the tests compare them for every strategy, attacks, FedProx and SCAFFOLD).

Actors: `ray_actors`, else one per free CPU of the Ray cluster (one per GPU where the cluster
has GPUs and `device` is not `cpu`), never more than a round's clients; Ray's SPREAD strategy
places them on different nodes. Without $FLCORE_RAY_ADDRESS the run starts a Ray of its own on
this machine (see `flcore.ray_support`) and shuts it down when it ends. An actor that is lost (its node died) stops the run as
interrupted (`RayWorkerLost`), to be resumed from its last checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from flcore import ray_support
from flcore.problems import Problem
from flcore.training.base import EXECUTORS, ClientsDone, ClientTask, ExecutorSpec, TrainedClients, TrainingData, throttled
from flcore.training.local import local_steps, samples_in_steps
from flcore.training.objective import LocalSettings

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


def split_tasks(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Positions 0..len(sizes)-1 dealt into at most `parts` non-empty shares of about equal total
    size: the largest first, each onto the share with the least so far (ties: the lower share,
    then the lower position), so the split is a function of the sizes alone. Each share is sorted."""
    if parts < 1:
        raise ValueError(f"parts={parts} must be at least 1")
    loads, shares = [0] * parts, [[] for _ in range(parts)]
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        k = min(range(parts), key=lambda k: (loads[k], k))
        shares[k].append(i)
        loads[k] += sizes[i]
    return [sorted(s) for s in shares if s]


class ClientTrainer:
    """One Ray actor: holds the run's training data once and trains the clients it is sent."""

    def setup(
        self, model: nn.Module, config: "ExperimentConfig", num_classes: int, tensors: Any = None, server_settings: Any = None
    ) -> dict:
        """Build the local executor and resolve the data (with the server's settings: its data
        folder and download switch); returns where this actor runs."""
        import ray

        use_gpu = config.device != "cpu" and torch.cuda.is_available()  # Ray hides GPUs it did not give
        if config.device == "cuda" and not use_gpu:
            raise RuntimeError("device='cuda' was chosen but the Ray actor was given no GPU; use device='auto' or 'cpu'")
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.model = model.to(self.device)
        self.executor = EXECUTORS.get("auto").build(self.model, config, num_classes)
        if tensors is None:  # load it here, from the registry, with the run's config
            self.data = TrainingData(config, str(self.device), settings=server_settings)
        else:  # tensors the driver made, from the object store
            x, y = (torch.from_numpy(a.copy()).to(self.device) for a in tensors)
            self.data = TrainingData.holding(None, self.device, x, y)
        self.data.tensors()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "device": str(self.device)}

    def train(self, params: torch.Tensor, tasks: list[ClientTask], round_: int, corrections: torch.Tensor | None) -> tuple:
        """The local executor's results for `tasks` as numpy arrays, and the seconds it took.

        numpy, not torch: Ray hands numpy arrays to the driver straight from its shared-memory
        object store, where a pickled tensor would be copied twice more (a round of workload C
        returns 80 MB of updates)."""
        start = time.perf_counter()
        corr = None if corrections is None else corrections.to(self.device)
        out = self.executor.train(params.to(self.device), tasks, self.data, round_, corr)
        arrays = {f: getattr(out, f).cpu().numpy() for f in _FIELDS}
        arrays["metrics"] = {k: v.cpu().numpy() for k, v in out.metrics.items()}
        return arrays, time.perf_counter() - start


_FIELDS = ("deltas", "num_samples", "num_steps", "train_loss", "train_accuracy")  # TrainedClients' tensors
ACTOR_START_TIMEOUT_S = 300.0  # how long a run waits for the cluster to place its actors
_REMOTE: dict[str, Any] = {}  # the ray.remote class, made on first use so that importing needs no Ray


def _trainer_class(ray) -> Any:
    if "trainer" not in _REMOTE:
        _REMOTE["trainer"] = ray.remote(ClientTrainer)
    return _REMOTE["trainer"]


def _same_data(a: TrainingData | None, b: TrainingData) -> bool:
    if a is None:
        return False
    if a.config is None or b.config is None:
        return a.held is not None and b.held is not None and all(p is q for p, q in zip(a.held, b.held))
    return a.key == b.key


class RayExecutor:
    """Trains a round's clients on Ray actors that live for the run (see the module docstring)."""

    def __init__(self, model: nn.Module, config: "ExperimentConfig", num_classes: int, num_actors: int | None = None) -> None:
        self.model = copy.deepcopy(model).cpu()  # what each actor is sent
        self.config, self.num_classes = config, num_classes
        self.num_actors = num_actors if num_actors is not None else config.ray_actors
        self._actors: list = []
        self._data: TrainingData | None = None
        self.placement: list[dict] = []  # where each actor runs: pid, node, device
        self.last_round: dict[str, Any] = {}  # seconds of the last round: wall_s (here), actor_s (each actor's training)

    def train(
        self,
        global_params: torch.Tensor,
        tasks: Sequence[ClientTask],
        data: TrainingData,
        round_: int,
        corrections: torch.Tensor | None = None,
        on_clients: ClientsDone | None = None,
    ) -> TrainedClients:
        start = time.perf_counter()
        ray = ray_support.connect()
        actors = self._actors_for(ray, data, len(tasks))
        shares = split_tasks([self._work(t) for t in tasks], len(actors))
        params = ray.put(global_params.detach().cpu())
        futures = []
        for actor, rows in zip(actors, shares):
            share = [dataclasses.replace(tasks[i], indices=tasks[i].indices.cpu()) for i in rows]
            corr = None if corrections is None else corrections[rows].detach().cpu()
            futures.append(actor.train.remote(params, share, round_, corr))
        if on_clients is not None:  # each actor's share is reported as it comes back (its clients are done)
            _report_shares(ray, futures, [len(rows) for rows in shares], throttled(on_clients), len(tasks))
        parts = self._get(ray, futures)
        out = _assemble([p for p, _ in parts], shares, len(tasks), global_params.device)
        self.last_round = {"wall_s": time.perf_counter() - start, "actor_s": [s for _, s in parts]}
        return out

    def _work(self, task: ClientTask) -> int:
        """The samples `task`'s client goes through this round: its local steps' batches."""
        settings = LocalSettings.from_config(self.config)
        n = len(task.indices)
        return samples_in_steps(n, settings.batch_size, local_steps(n, settings, task.max_steps))

    def close(self) -> None:
        """Stop the actors (the run ended), and the Ray this run started for itself, if it did;
        the next `train` starts them anew."""
        actors, self._actors, self._data, self.placement = self._actors, [], None, []
        if actors and ray_support.available():
            import ray

            if ray.is_initialized():
                for actor in actors:
                    ray.kill(actor)
        if actors:
            ray_support.release_private()

    def _actors_for(self, ray, data: TrainingData, num_tasks: int) -> list:
        """The actors of this run, started (and given the data) on the first round."""
        if self._actors and _same_data(self._data, data):
            return self._actors
        self.close()
        use_gpu = self.config.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        slots = int(ray.available_resources().get("GPU" if use_gpu else "CPU", 0))
        count = max(1, min(self.num_actors or slots, max(num_tasks, 1)))
        tensors = None if data.config is not None else ray.put(tuple(t.detach().cpu().numpy() for t in data.tensors()))
        trainer = _trainer_class(ray).options(num_cpus=1, num_gpus=1 if use_gpu else 0, scheduling_strategy="SPREAD")
        actors = [trainer.remote() for _ in range(count)]
        self._actors, self._data = actors, data  # set first, so a failure below still closes them
        setups = [a.setup.remote(self.model, self.config, self.num_classes, tensors, data._settings()) for a in actors]
        self.placement = self._get(ray, setups, timeout=ACTOR_START_TIMEOUT_S, count=count, use_gpu=use_gpu)
        return actors

    def _get(self, ray, futures: list, timeout: float | None = None, **starting) -> list:
        """ray.get, with a lost actor as RayWorkerLost and an error inside an actor as itself."""
        try:
            return ray.get(futures, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            unit = "GPU" if starting.get("use_gpu") else "CPU"
            free = ray.available_resources().get(unit, 0)  # before close(), which may shut this run's own Ray down
            self.close()
            raise RuntimeError(
                f"the Ray cluster did not start {starting.get('count')} actors (one {unit} each) within {timeout:.0f} s; "
                f"it has {free:g} {unit}s free now: lower ray_actors, or add nodes"
            ) from None
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as err:
            self.close()
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ray_support.RayWorkerLost(
                f"a Ray actor training this run's clients was lost ({first_line}); resume the run to continue from its last finished round"
            ) from None
        except ray.exceptions.RayTaskError as err:
            self.close()
            cause = getattr(err, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise


def _report_shares(ray, futures: list, sizes: list[int], report: ClientsDone, total: int) -> None:
    """Call `report(done, total)` as the actors' shares finish (a lost or failed actor's share
    counts as finished here; `_get` then raises its error)."""
    size = dict(zip(futures, sizes))
    pending, done = list(futures), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done += sum(size[f] for f in ready)
        report(done, total)


def _assemble(parts: list[dict], shares: list[list[int]], n: int, device: torch.device) -> TrainedClients:
    """One TrainedClients in task order from the actors' shares (numpy arrays, see `ClientTrainer.train`)."""

    def gather(pick) -> torch.Tensor:
        first = pick(parts[0])
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        for rows, part in zip(shares, parts):
            out[rows] = pick(part)  # the one copy out of Ray's read-only shared memory
        return torch.from_numpy(out).to(device)

    metrics = {k: gather(lambda p, k=k: p["metrics"][k]) for k in parts[0]["metrics"]}
    return TrainedClients(*(gather(lambda p, f=f: p[f]) for f in _FIELDS), metrics)


def config_problems(config: "ExperimentConfig") -> list[Problem]:
    """The ray executor needs Ray installed."""
    if ray_support.available():
        return []
    return [Problem("executor", f"executor='ray' needs Ray, which is not installed; {ray_support.INSTALL_HINT}, or choose executor='auto'")]


def ray_executor(model: nn.Module, config: "ExperimentConfig", num_classes: int) -> RayExecutor:
    return RayExecutor(model, config, num_classes)


EXECUTORS.register(
    "ray",
    label="Spread over Ray actors",
    description="A round's clients are split over Ray actors (one per CPU or GPU, on one machine or a cluster), "
    "each training its share all at once: same numbers, more machines. Needs Ray (requirements-ray.txt).",
    params=("ray_actors", "chunk_size"),
)(ExecutorSpec(ray_executor, config_problems=config_problems, personalizes=False))
