"""The strategy interface: explicit server state in, new server state out.

A strategy has one job, as in FedJAX's `FederatedAlgorithm(init, apply)`: `init(params)` makes
the server state and `aggregate(state, updates)` turns one round of client updates into the
next state and a few metrics. Every model is handled as one flat parameter vector, so the
aggregation math (`aggregate.py`) is plain tensor algebra over a `[clients, parameters]` matrix.
No strategy keeps hidden mutable attributes: everything that persists across rounds lives in
`ServerState`, which the simulation checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


@dataclass(frozen=True)
class ServerState:
    """The global model as a flat vector, the round it belongs to, and strategy-owned tensors."""

    params: torch.Tensor
    round: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> "ServerState":
        return replace(self, **changes)


@dataclass(frozen=True)
class ClientUpdates:
    """One round's client results, stacked: row i belongs to client_ids[i]."""

    client_ids: list[int]
    deltas: torch.Tensor  # [n, P] local params minus global params, as the clients sent them
    num_samples: torch.Tensor  # [n] float, training samples of each client
    num_steps: torch.Tensor  # [n] float, local SGD steps each client took


class Strategy:
    """Base class: FedAvg-shaped. Subclasses override only what differs."""

    name: str = "base"
    default_server_lr: float = 1.0

    def __init__(self, config: "ExperimentConfig") -> None:
        self.config = config
        self.server_lr = config.server_lr if config.server_lr is not None else self.default_server_lr

    @classmethod
    def config_problems(cls, config: "ExperimentConfig") -> list[str]:
        """Sentences naming fields whose values this strategy cannot work with."""
        return []

    def init(self, params: torch.Tensor) -> ServerState:
        return ServerState(params=params.detach().clone())

    def client_corrections(self, state: ServerState, client_ids: list[int]) -> torch.Tensor | None:
        """A per-client gradient correction added during local training (SCAFFOLD); None for most."""
        return None

    def aggregate(self, state: ServerState, updates: ClientUpdates) -> tuple[ServerState, dict[str, float]]:
        raise NotImplementedError
