"""Coordinate-wise median (Yin et al. 2018, "Byzantine-robust distributed learning: towards
optimal statistical rates").

Each coordinate of the aggregate update is the median of that coordinate over the round's
clients, so a minority of arbitrarily bad updates cannot drag it far. Sample counts are ignored:
weighting by them would let an attacker win by claiming a large dataset.
"""

from __future__ import annotations

import torch

from flcore.strategies.aggregate import coordinate_median
from flcore.strategies.base import ClientUpdates, Strategy, register


@register(
    "median",
    label="Coordinate-wise median",
    description="Per-parameter median of the client updates, robust to a minority of attackers (Yin et al. 2018).",
    params=("server_lr",),
)
class Median(Strategy):
    averages = False

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        return coordinate_median(updates.deltas), {}
