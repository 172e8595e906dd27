"""The strategy interface, FedAvg's behaviour as its defaults, and the strategy registry.

A strategy has one job, as in FedJAX's `FederatedAlgorithm(init, apply)`: `init(params)` makes
the server state and `aggregate(state, updates)` turns one round of client updates into the
next state and a few metrics. Every model is handled as one flat parameter vector, so the
aggregation math (`aggregate.py`) is plain tensor algebra over a `[clients, parameters]` matrix.
No strategy keeps hidden mutable attributes: everything that persists across rounds lives in
`ServerState`, which the simulation checkpoints.

`Strategy` is FedAvg (McMahan et al. 2017): a round is `combine` (the client updates into one
update vector: their sample-weighted mean) then `server_step` (the global model moves by
server_lr times it). A strategy overrides only what differs: robust ones `combine`, server
optimizers `server_step` (and `init` for their moments), SCAFFOLD its corrections. Strategies
are registered by name with `register`, which also gives the class its `name`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from flcore.registry import Registry
from flcore.strategies.aggregate import weighted_mean

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.problems import Problem


@dataclass(frozen=True)
class ServerState:
    """The global model as a flat vector, the round it belongs to, strategy-owned tensors, and
    the simulated time at the end of that round (flcore.federation.clock)."""

    params: torch.Tensor
    round: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    clock_s: float | None = 0.0  # None: not known (a checkpoint from before the clock existed; the simulation replays it)

    def evolve(self, **changes: Any) -> "ServerState":
        return replace(self, **changes)


@dataclass(frozen=True)
class ClientUpdates:
    """One round's client results, stacked: row i belongs to client_ids[i]."""

    client_ids: list[int]
    deltas: torch.Tensor  # [n, P] local params minus global params, as the clients sent them
    num_samples: torch.Tensor  # [n] float, training samples of each client
    num_steps: torch.Tensor  # [n] float, local SGD steps each client took
    start_loss: torch.Tensor | None = None  # [n] each client's training loss with the global model before it trained (q-FFL)


class Strategy:
    """FedAvg; subclasses override only what differs (see the module docstring)."""

    name: str = "fedavg"  # set by `register`
    default_server_lr: float = 1.0
    min_updates: int = 1  # a round in which fewer updates arrive (clients offline, dropped, late) keeps the model
    # What a strategy declares about itself, read by the simulation and the config checks:
    sends_corrections: bool = False  # broadcasts a per-client correction with the model (SCAFFOLD), so twice the bytes
    averages: bool = True  # combines updates by their mean, so DP-FedAvg's noised mean can stand in (central DP)
    needs_start_loss: bool = False  # reads each client's loss with the global model before training (ClientUpdates.start_loss)

    def __init__(self, config: "ExperimentConfig") -> None:
        self.config = config
        self.server_lr = config.server_lr if config.server_lr is not None else self.default_server_lr

    @classmethod
    def config_problems(cls, config: "ExperimentConfig") -> list["Problem"]:
        """(field, sentence) pairs for settings this strategy cannot work with."""
        return []

    def init(self, params: torch.Tensor) -> ServerState:
        return ServerState(params=params.detach().clone())

    def client_corrections(self, state: ServerState, client_ids: list[int]) -> torch.Tensor | None:
        """A per-client gradient correction added during local training (SCAFFOLD, which declares
        `sends_corrections`); None for most."""
        return None

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        """One update vector from the round's client updates, and metrics about how it was formed
        (e.g. which clients Krum kept). FedAvg: the mean weighted by sample counts."""
        return weighted_mean(updates.deltas, updates.num_samples), {}

    def server_step(self, state: ServerState, delta: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any], dict[str, float]]:
        """The new global parameters from the combined update, the new strategy tensors and
        metrics. FedAvg: x + server_lr * delta."""
        return state.params + self.server_lr * delta, state.extra, {}

    def aggregate(self, state: ServerState, updates: ClientUpdates) -> tuple[ServerState, dict[str, float]]:
        return self.apply(state, *self.combine(updates))

    def apply(self, state: ServerState, delta: torch.Tensor, metrics: dict[str, float]) -> tuple[ServerState, dict[str, float]]:
        """The next state from a combined update (`server_step`), and the round's metrics. DP-FedAvg
        (flcore/federation/privacy.py) calls it with its noised mean in place of `combine`'s."""
        params, extra, step_metrics = self.server_step(state, delta)
        new = state.evolve(params=params, round=state.round + 1, extra=extra)
        return new, {"aggregate_update_norm": float(delta.norm()), **step_metrics, **metrics}


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register(name: str, **entry: Any) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register a strategy class under `name` (with the registry's label, description, params)."""

    def add(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name, **entry)(cls)

    return add


def build_strategy(config: "ExperimentConfig") -> Strategy:
    return STRATEGIES.get(config.strategy)(config)
