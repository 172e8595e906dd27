"""Attack registry: what a seeded fraction of malicious clients does.

`label_flip` poisons data (a malicious client trains on label C-1-y); the others poison the
update a malicious client sends: `sign_flip` sends -scale * its update, `scale` sends
scale * its update (a boosting attack), `gaussian_noise` sends pure noise N(0, scale^2).
Robust strategies (median, trimmed mean, Krum) exist to survive these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from flcore.registry import Registry


@dataclass(frozen=True)
class Attack:
    default_scale: float
    flips_labels: bool = False
    # (updates of the malicious clients [k, P], scale, generator) -> poisoned updates [k, P]
    poison: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor] | None = None


ATTACKS: Registry[Attack] = Registry("attack")

ATTACKS.register("none", label="No attack", description="Every client is honest.")(Attack(default_scale=1.0))
ATTACKS.register(
    "label_flip",
    label="Label flipping",
    description="Malicious clients train on flipped labels (label y becomes C-1-y).",
    params=("attack_fraction",),
)(Attack(default_scale=1.0, flips_labels=True))
ATTACKS.register(
    "sign_flip",
    label="Sign flipping",
    description="Malicious clients send their update reversed and scaled: -scale x update.",
    params=("attack_fraction", "attack_scale"),
)(Attack(default_scale=4.0, poison=lambda u, s, g: -s * u))
ATTACKS.register(
    "gaussian_noise",
    label="Gaussian noise",
    description="Malicious clients send random noise with standard deviation `scale` instead of an update.",
    params=("attack_fraction", "attack_scale"),
)(Attack(default_scale=1.0, poison=lambda u, s, g: s * torch.randn(u.shape, generator=g).to(u)))
ATTACKS.register(
    "scale",
    label="Scaled update",
    description="Malicious clients boost their update: scale x update.",
    params=("attack_fraction", "attack_scale"),
)(Attack(default_scale=10.0, poison=lambda u, s, g: s * u))


def malicious_clients(num_clients: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded choice of round(fraction * num_clients) malicious client ids, sorted."""
    k = round(fraction * num_clients)
    return np.sort(rng.choice(num_clients, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)
