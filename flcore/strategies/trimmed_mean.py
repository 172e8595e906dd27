"""Coordinate-wise trimmed mean (Yin et al. 2018, "Byzantine-robust distributed learning:
towards optimal statistical rates").

Per coordinate, the floor(trim_beta * n) smallest and largest client values are dropped and the
rest averaged (unweighted, so a claimed dataset size buys an attacker nothing). With trim_beta at
least the attacker fraction, every extreme value an attacker sends is cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from flcore.problems import Problem
from flcore.strategies.aggregate import trim_count, trimmed_mean
from flcore.strategies.base import ClientUpdates, Strategy, register

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


@register(
    "trimmed_mean",
    label="Trimmed mean",
    description="Per-parameter mean after dropping the largest and smallest client values (Yin et al. 2018).",
    params=("server_lr", "trim_beta"),
)
class TrimmedMean(Strategy):
    averages = False

    @classmethod
    def config_problems(cls, config: "ExperimentConfig") -> list[Problem]:
        m, beta = config.clients_per_round_resolved, config.trim_beta
        k = trim_count(m, beta)
        if 2 * k >= m:
            return [
                Problem(
                    "trim_beta",
                    f"trim_beta={beta} trims {k} updates from each end of clients_per_round={m}, leaving none; "
                    "floor(trim_beta * clients_per_round) * 2 must be below clients_per_round (trim_beta < 0.5)",
                )
            ]
        return []

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        n = updates.deltas.shape[0]
        return trimmed_mean(updates.deltas, self.config.trim_beta), {"trimmed_per_side": float(trim_count(n, self.config.trim_beta))}
