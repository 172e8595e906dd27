"""FedAvg (McMahan et al. 2017): the sample-weighted mean of client updates.

x_{t+1} = x_t + server_lr * sum_k n_k (y_k - x_t) / sum_k n_k. With server_lr = 1 this is the
average of the client models. The round splits into two hooks: `combine` turns the client
updates into one update vector (robust strategies override only this), and `aggregate` applies
it to the global model (server optimizers and SCAFFOLD override this, and reuse `combine`).
"""

from __future__ import annotations

import torch

from flcore.strategies import STRATEGIES
from flcore.strategies.aggregate import weighted_mean
from flcore.strategies.base import ClientUpdates, ServerState, Strategy


@STRATEGIES.register(
    "fedavg",
    label="FedAvg",
    description="Average of client models weighted by their number of samples (McMahan et al. 2017).",
    params=("server_lr",),
)
class FedAvg(Strategy):
    name = "fedavg"

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        """One aggregate update vector from the round's client updates, and metrics about how
        it was formed (e.g. which clients Krum kept)."""
        return weighted_mean(updates.deltas, updates.num_samples), {}

    def aggregate(self, state: ServerState, updates: ClientUpdates) -> tuple[ServerState, dict[str, float]]:
        delta, metrics = self.combine(updates)
        params = state.params + self.server_lr * delta
        return state.evolve(params=params, round=state.round + 1), {
            "aggregate_update_norm": float(delta.norm()),
            **metrics,
        }
