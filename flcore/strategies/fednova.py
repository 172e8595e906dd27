"""FedNova (Wang et al. 2020, "Tackling the objective inconsistency problem in heterogeneous
federated optimization"): normalized averaging.

When clients take different numbers of local steps (more data, more epochs, or stragglers that
send partial work), FedAvg's weighted mean of their updates lets the clients that ran longer pull
the global model further, and the federation converges to the optimum of a different, skewed
objective. FedNova divides each client's update by ||a_i||_1, the number of steps' worth of
gradient its local solver accumulated (tau_i for plain SGD; more effective steps with client
momentum, fewer with FedProx's proximal term, see `aggregate.local_solver_norms`), averages
these normalized updates with FedAvg's sample weights p_i, and rescales by tau_eff = sum_i p_i
||a_i||_1, or, with a proximal term, by tau_eff = sum_i p_i tau_i, as the authors' code does
(JYWa/FedNova). With equal step counts of plain SGD this is FedAvg exactly; only `combine`
differs from it.
"""

from __future__ import annotations

import torch

from flcore.strategies.aggregate import local_solver_norms, normalized_average
from flcore.strategies.base import ClientUpdates, Strategy, register


@register(
    "fednova",
    label="FedNova",
    description="Normalized averaging: each update is divided by its client's number of local steps, so clients that ran "
    "more steps do not pull the model further (Wang et al. 2020).",
    params=("server_lr",),
)
class FedNova(Strategy):
    averages = False  # each update is rescaled by its own steps: not the plain mean DP-FedAvg noises

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        norms = local_solver_norms(updates.num_steps, lr=c.lr, momentum=c.momentum, prox_mu=c.prox_mu)
        # With a proximal term the authors' code rescales by the mean step count, not the mean norm.
        steps = updates.num_steps if c.prox_mu else None
        delta, tau_eff = normalized_average(updates.deltas, updates.num_samples, norms, steps)
        return delta, {"fednova_tau_eff": tau_eff}
