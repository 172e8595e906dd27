"""What every executor shares: its contract, what it is given and what it returns.

An executor trains one round's sampled clients from the global parameters and returns their
updates. It receives the global parameters, the round's `ClientTask`s, the training data as a
`TrainingData` handle and SCAFFOLD's corrections; it returns a `TrainedClients`. A task's
`max_steps` cuts the client's local work short after that many mini-batch steps (the first ones
of its usual batch order), as a straggler that sends what it finished does (Li et al. 2020);
every executor honours it with the same numbers. Executors are registered by name in
`EXECUTORS` (the config's `executor` field, the CLI flag and the form all read it) as an
`ExecutorSpec`: how to build one from the model, the config and the number of classes, what it
refuses at config time (`config_problems`: the `ray` executor where Ray is missing), and whether
it trains with batched layers (`batched`: then the model must be `ModelSpec.batchable`, checked
when the config is validated, not in the worker). Every executor has `close()` (the `Executor`
protocol), which the simulation calls when its run ends: one that holds resources between
rounds (processes, actors) releases them there, and may be trained again afterwards.

An executor may also report progress inside a round: given `on_clients`, it calls
`on_clients(done, total)` as clients (or chunks of clients) finish, through `throttled`, so at
most a few times a second and always with `total` last. Progress never changes the numbers.

`TrainingData` is a handle, not the tensors: it pickles as the run's config and a device, so
a worker in another process (or on another machine) resolves it by loading the dataset from the
registry, once per process; the process that built the simulation resolves it to the tensors it
already holds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from flcore.registry import Registry

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.problems import Problem
    from flcore.settings import Settings


@dataclass(frozen=True)
class ClientTask:
    """What one sampled client trains on this round."""

    client_id: int
    indices: torch.Tensor  # int64 positions in the training set
    flip_labels: bool = False  # a label-flipping attacker
    max_steps: int | None = None  # stop after this many local steps (a straggler's partial work); None: all of them


@dataclass(frozen=True)
class TrainedClients:
    """Stacked results of one round's local training; row i is tasks[i]."""

    deltas: torch.Tensor  # [n, P] local params - global params
    num_samples: torch.Tensor  # [n]
    num_steps: torch.Tensor  # [n]
    train_loss: torch.Tensor  # [n] sample-weighted mean loss over all local batches
    train_accuracy: torch.Tensor  # [n]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)  # [n] each: numbers an executor adds


@dataclass(frozen=True)
class TrainingData:
    """The training samples of a run, as a handle any process can resolve (see the module doc)."""

    config: ExperimentConfig | None = None  # what to load where the tensors are not held
    device: str = "cpu"
    held: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False, compare=False)
    settings: Settings | None = None  # the server's settings to load with (its data folder); None: this process's

    @classmethod
    def holding(
        cls, config: ExperimentConfig | None, device: str, x: torch.Tensor, y: torch.Tensor, settings: Settings | None = None
    ) -> "TrainingData":
        """A handle that resolves to `x` and `y` in this process, and, sent to another process,
        loads the same samples there from `config` with `settings` (None: tensors that cannot
        leave this process)."""
        return cls(config, str(device), (x, y), settings)

    @property
    def key(self) -> tuple:
        """What the samples depend on (the dataset fields of the config and the data folder they
        are read from) and the device."""
        from flcore.data.datasets import dataset_fields

        folder = str(self._settings().data_dir)
        return (*(getattr(self.config, f) for f in dataset_fields(self.config)), folder, self.device)

    def _settings(self) -> Settings:
        from flcore import settings

        return self.settings if self.settings is not None else settings.current()

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """x_train, y_train on the device: the ones held, else loaded in this process once."""
        if self.held is not None:
            return self.held
        key = self.key
        if key not in _LOADED:
            from flcore.data.datasets import load_dataset

            data = load_dataset(self.config, self._settings())
            _LOADED[key] = (data.x_train.to(self.device), data.y_train.to(self.device))
            while len(_LOADED) > MAX_LOADED:
                _LOADED.popitem(last=False)
        _LOADED.move_to_end(key)
        return _LOADED[key]

    def __getstate__(self) -> dict:  # a handle travels as its recipe, never with its tensors
        if self.config is None:
            raise TypeError("training data made from tensors cannot leave its process; make the handle from a config")
        return {"config": self.config, "device": self.device, "held": None, "settings": self.settings}


_LOADED: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()  # datasets this process loaded
MAX_LOADED = 4  # a worker trains one run; a notebook may try a few datasets


ClientsDone = Callable[[int, int], None]  # on_clients(done, total): clients of the round trained so far
PROGRESS_EVERY_S = 0.25  # an executor reports progress inside a round at most this often


def throttled(on_clients: ClientsDone | None, every_s: float | None = None) -> ClientsDone:
    """`on_clients`, called at most every `every_s` seconds (PROGRESS_EVERY_S by default, timed
    from now) and always for the last client (done == total); a no-op when `on_clients` is None."""
    if on_clients is None:
        return lambda done, total: None
    every_s = PROGRESS_EVERY_S if every_s is None else every_s
    last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done >= total or now - last >= every_s:
            last = now
            on_clients(done, total)

    return report


class Executor(Protocol):
    def train(
        self,
        global_params: torch.Tensor,
        tasks: Sequence[ClientTask],
        data: TrainingData,
        round_: int,
        corrections: torch.Tensor | None = None,
        on_clients: ClientsDone | None = None,
        starts: torch.Tensor | None = None,
        trainable: torch.Tensor | None = None,
    ) -> TrainedClients:
        """Train each task's client from `global_params`; SCAFFOLD's `corrections` are [n, P];
        `on_clients(done, total)` hears of finished clients (see the module doc). A personalized
        method (an executor whose spec declares `personalizes`) may give `starts`, [n, P]: each
        client then starts from its own parameters, its delta is measured from them, and FedProx's
        pull stays toward `global_params`; and `trainable`, a [P] 0/1 mask: the coordinates at 0
        are frozen (their step is zeroed after the objective's terms are added)."""
        ...

    def close(self) -> None:
        """Release what the executor holds between rounds (nothing, for most)."""
        ...


ExecutorFactory = Callable[[nn.Module, "ExperimentConfig", int], Executor]  # (model, config, classes) -> executor


def _no_problems(config: "ExperimentConfig") -> list["Problem"]:
    return []


@dataclass(frozen=True)
class ExecutorSpec:
    """A registered executor: its factory and what it declares about itself."""

    build: ExecutorFactory
    config_problems: Callable[["ExperimentConfig"], list["Problem"]] = _no_problems
    batched: bool = False  # trains with batched layers: the model must be batchable (ModelSpec.batchable)
    personalizes: bool = True  # takes `starts` and `trainable`, which personalized methods need (see `Executor.train`)

    def problems(self, config: "ExperimentConfig") -> list["Problem"]:
        """What this executor refuses in `config`: its own checks, and a model it cannot batch."""
        from flcore.models import MODELS
        from flcore.problems import Problem

        found = list(self.config_problems(config))
        if not self.personalizes and config.personalization != "none":
            found.append(
                Problem(
                    "personalization",
                    f"executor={config.executor!r} cannot train personalization={config.personalization!r} (clients that start from "
                    "their own parameters); choose executor='auto', 'vectorized' or 'sequential'",
                )
            )
        if self.batched and config.model in MODELS and not MODELS.get(config.model).batchable:
            found.append(
                Problem(
                    "executor",
                    f"executor={config.executor!r} cannot train model={config.model!r}: it has no batched version of its layers "
                    "(embeddings and recurrent layers); choose executor='sequential' or 'auto'",
                )
            )
        return found


EXECUTORS: Registry[ExecutorSpec] = Registry("executor")
