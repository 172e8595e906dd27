"""SCAFFOLD (Karimireddy et al. 2020): control variates that correct client drift.

The server keeps a control variate c and each client i its own c_i; during local training every
gradient gets (c - c_i) added (`client_corrections`). After a round, with option II of the paper,
client i updates c_i += dc_i, dc_i = -c + (x - y_i) / (K_i lr) = -c - delta_i / (K_i lr), where
K_i is its number of local steps and lr the client learning rate; the server moves
x += server_lr * mean_i(delta_i) and c += (|S| / N) * mean_i(dc_i).

The model update is the plain mean over the sampled clients, as in the paper (not FedAvg's
sample-weighted mean), so the control variates and the model step average the same way.

This is the one strategy with per-client server state: `extra["client_controls"]` maps each
client id that has taken part to its c_i (a client never sampled has c_i = 0 and no entry).
Memory grows with the number of distinct participants times the model size.
"""

from __future__ import annotations

import torch

from flcore.strategies.aggregate import scaffold_control_deltas, scaffold_server_control
from flcore.strategies.base import ClientUpdates, ServerState, Strategy, register


@register(
    "scaffold",
    label="SCAFFOLD",
    description="Corrects client drift on skewed data with server and client control variates (Karimireddy et al. 2020).",
    params=("server_lr",),
)
class Scaffold(Strategy):
    sends_corrections = True  # c - c_i travels with the model
    averages = False  # its control variates would leak the un-noised updates under central DP

    def init(self, params: torch.Tensor) -> ServerState:
        state = super().init(params)
        return state.evolve(extra={"control": torch.zeros_like(state.params), "client_controls": {}})

    def client_corrections(self, state: ServerState, client_ids: list[int]) -> torch.Tensor:
        """[n, P]: c - c_i for each client, added to every local gradient."""
        c = state.extra["control"]
        controls = state.extra["client_controls"]
        if not client_ids:
            return c.new_zeros((0, c.numel()))
        return torch.stack([c - controls[i] if i in controls else c for i in client_ids])

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        return updates.deltas.mean(0), {}

    def aggregate(self, state: ServerState, updates: ClientUpdates) -> tuple[ServerState, dict[str, float]]:
        new_state, metrics = super().aggregate(state, updates)  # x += server_lr * mean(delta)
        c = state.extra["control"]
        controls = state.extra["client_controls"]
        dc = scaffold_control_deltas(c, updates.deltas, updates.num_steps, self.config.lr)  # [n, P], option II
        new_controls = dict(controls)  # a new dict: the old state stays as it was
        for row, client in enumerate(updates.client_ids):
            old = controls.get(client)
            # clone: a row view would keep this round's whole [n, P] dc alive
            new_controls[client] = dc[row].clone() if old is None else old + dc[row]
        new_c = scaffold_server_control(c, dc, self.config.num_clients)
        metrics = {**metrics, "control_norm": float(new_c.norm())}
        return new_state.evolve(extra={"control": new_c, "client_controls": new_controls}), metrics
