"""A client's local objective and its SGD update, written once for every executor.

Each sampled client starts from the global parameters w_g and runs SGD on its own samples for
`epochs` epochs of mini-batches of `batch_size`. Its step direction for parameters w is

    d = grad(mean cross-entropy) + weight_decay * w + prox_mu * (w - w_g) + (c - c_i)

where prox_mu * (w - w_g) is the gradient of FedProx's proximal term (prox_mu / 2)||w - w_g||^2
(Li et al. 2020) and c - c_i is SCAFFOLD's control-variate correction (Karimireddy et al. 2020),
and the step is PyTorch's SGD with momentum: buf = momentum * buf + d (buf = d at the first
step), w -= lr * buf. `LocalObjective.direction` adds everything but the loss gradient to it,
in place, over any list of tensors: one client's parameters (sequential executor) or a
`[clients, ...]` stack of them (vectorized executor), so both executors compute the same
arithmetic in the same order. What later changes to the local update add belongs here too:
`LocalObjective.finish` clips the finished updates to `clip` for differential privacy
(McMahan et al. 2018; see flcore/federation/privacy.py), for either executor's stack of updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


def clip_rows_(updates: torch.Tensor, clip: float) -> torch.Tensor:
    """In place: each row u becomes u * min(1, clip / ||u||), so no row is longer than `clip`
    (Abadi et al. 2016; McMahan et al. 2018). Returns `updates`."""
    norms = torch.linalg.vector_norm(updates, dim=1, keepdim=True)
    return updates.mul_((clip / norms.clamp_min(1e-12)).clamp_max(1.0))


@dataclass(frozen=True)
class LocalSettings:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    prox_mu: float
    clip: float | None = None  # DP: the L2 norm each finished update is clipped to (None: not clipped)

    @classmethod
    def from_config(cls, c: "ExperimentConfig") -> "LocalSettings":
        clip = c.dp_clip if c.dp != "none" else None
        return cls(c.local_epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.prox_mu, clip)


class LocalObjective:
    """The regularisers and corrections of a client's step direction (see the module doc)."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.decay = settings.weight_decay + settings.prox_mu  # both pull w towards 0; FedProx's anchor adds mu w_g back

    def anchors(self, global_weights: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """prox_mu * w_g for each parameter tensor (None without FedProx); computed once a round."""
        mu = self.settings.prox_mu
        return [mu * w for w in global_weights] if mu else None

    def direction(
        self,
        grads: list[torch.Tensor],
        weights: list[torch.Tensor],
        anchors: list[torch.Tensor] | None,
        corrections: list[torch.Tensor] | None,
    ) -> None:
        """In place: grads += (weight_decay + prox_mu) * weights - prox_mu * w_g + corrections."""
        for k, (g, w) in enumerate(zip(grads, weights)):
            if self.decay:
                g.add_(w, alpha=self.decay)
            if anchors is not None:
                g.sub_(anchors[k])
            if corrections is not None:
                g.add_(corrections[k])

    def finish(self, deltas: torch.Tensor) -> torch.Tensor:
        """In place, on the `[clients, P]` updates an executor is about to return: each clipped to
        L2 norm `clip` when differential privacy is on. Returns `deltas`."""
        if self.settings.clip is not None:
            clip_rows_(deltas, self.settings.clip)
        return deltas
