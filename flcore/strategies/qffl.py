"""q-FFL (Li et al. 2020, "Fair resource allocation in federated learning"), as q-FedAvg.

FedAvg weighs clients by their samples, so the model serves the typical client and can leave the
ones far from it with a high loss. q-FFL minimises sum_k p_k F_k(w)^(q+1) / (q+1) instead: the
larger q, the more a client with a high loss F_k counts (q = 0 is FedAvg's objective). Its
q-FedAvg step, as the authors' code (litian96/fair_flearn, `qffedavg.py`) computes it, with
L = 1 / lr (the client learning rate) and F_k the client's loss on its training samples with the
global model w before it trains (`ClientUpdates.start_loss`, which the strategy declares it
needs):

    Delta w_k = L (w - w_k)                 (w_k: the client's model after local training)
    Delta_k   = (F_k + 1e-10)^q Delta w_k
    h_k       = q (F_k + 1e-10)^(q-1) ||Delta w_k||^2 + L (F_k + 1e-10)^q
    w'        = w - sum_k Delta_k / sum_k h_k

In this engine's terms (delta_k = w_k - w) `combine` returns sum_k (F_k + 1e-10)^q L delta_k /
sum_k h_k and the server step adds it (server_lr 1 by default).
"""

from __future__ import annotations

import torch

from flcore.strategies.base import ClientUpdates, Strategy, register

EPS = 1e-10  # the authors' guard against a zero loss


@register(
    "qffl",
    label="q-FFL (fair)",
    description="Weighs clients with a high loss more, so the worst-served clients gain at some cost in the mean "
    "(q-FedAvg, Li et al. 2020).",
    params=("qffl_q",),
    describe=lambda c: f"q-FFL (q={c.qffl_q:g})",
)
class QFFL(Strategy):
    averages = False  # a loss-weighted, normalised step: not the plain mean DP-FedAvg noises
    needs_start_loss = True

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        q, L = self.config.qffl_q, 1.0 / self.config.lr
        loss = updates.start_loss.to(device=updates.deltas.device, dtype=torch.float64) + EPS
        grads = L * updates.deltas.double()  # -Delta w_k
        h = q * loss.pow(q - 1) * grads.pow(2).sum(1) + L * loss.pow(q)
        delta = (loss.pow(q)[:, None] * grads).sum(0) / h.sum()
        return delta.to(updates.deltas.dtype), {"qffl_mean_start_loss": float(loss.mean())}
