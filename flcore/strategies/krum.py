"""Krum and Multi-Krum (Blanchard et al. 2017, "Machine learning with adversaries: Byzantine
tolerant gradient descent").

Each update is scored by the summed squared distance to its n - f - 2 nearest neighbours, where
f is the number of attackers assumed per round; Krum keeps the best-scored update, Multi-Krum
averages the `multi_krum_m` best (default n - f). Krum's guarantee needs n > 2f + 2, which
`config_problems` enforces. f is `krum_byzantine` when set, else round(attack_fraction * n)
clamped to what n allows. The metrics say how many updates were kept ("krum_selected") and
which client scored best ("krum_best_client").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from flcore.problems import Problem
from flcore.strategies.aggregate import krum_max_byzantine, krum_select
from flcore.strategies.base import ClientUpdates, Strategy, register

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


@register(
    "krum",
    label="Krum",
    description="Keeps the one client update closest to its neighbours, discarding outliers (Blanchard et al. 2017).",
    params=("server_lr", "krum_byzantine"),
)
class Krum(Strategy):
    averages = False  # keeps some updates and drops the rest
    min_updates = 3  # n > 2f + 2 even with f = 0

    @classmethod
    def config_problems(cls, config: "ExperimentConfig") -> list[Problem]:
        m = config.clients_per_round_resolved
        f_max = krum_max_byzantine(m)
        if f_max < 0:
            return [
                Problem(
                    "clients_per_round",
                    f"strategy={cls.name!r} needs clients_per_round of at least 3 (Krum requires n > 2f + 2 "
                    f"updates per round); got clients_per_round={m}",
                )
            ]
        f = config.krum_byzantine
        if f is not None and f > f_max:
            return [
                Problem(
                    "krum_byzantine",
                    f"krum_byzantine={f} is too large for clients_per_round={m}: Krum requires "
                    f"clients_per_round > 2 * krum_byzantine + 2, so krum_byzantine can be at most {f_max}",
                )
            ]
        return []

    def num_byzantine(self, n: int) -> int:
        """f for a round of n updates: krum_byzantine, else the expected attackers, clamped."""
        c = self.config
        f = c.krum_byzantine if c.krum_byzantine is not None else round(c.attack_fraction * n)
        return max(0, min(f, krum_max_byzantine(n)))

    def num_selected(self, n: int, f: int) -> int:
        return 1

    def combine(self, updates: ClientUpdates) -> tuple[torch.Tensor, dict[str, float]]:
        n = updates.deltas.shape[0]
        f = self.num_byzantine(n)
        chosen = krum_select(updates.deltas, f, self.num_selected(n, f))
        return updates.deltas[chosen].mean(0), {
            "krum_byzantine": float(f),
            "krum_selected": float(len(chosen)),
            "krum_best_client": float(updates.client_ids[int(chosen[0])]),
        }


@register(
    "multikrum",
    label="Multi-Krum",
    description="Averages the client updates with the best Krum scores (Blanchard et al. 2017).",
    params=("server_lr", "krum_byzantine", "multi_krum_m"),
)
class MultiKrum(Krum):
    @classmethod
    def config_problems(cls, config: "ExperimentConfig") -> list[Problem]:
        problems = super().config_problems(config)
        m = config.clients_per_round_resolved
        if config.multi_krum_m is not None and config.multi_krum_m > m:
            problems.append(
                Problem(
                    "multi_krum_m",
                    f"multi_krum_m={config.multi_krum_m} exceeds clients_per_round={m}; "
                    f"Multi-Krum averages at most the {m} updates of a round",
                )
            )
        return problems

    def num_selected(self, n: int, f: int) -> int:
        m = self.config.multi_krum_m
        return n - f if m is None else min(m, n)
