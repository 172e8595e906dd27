"""Server strategies, one file each, registered by name in `STRATEGIES`.

The registry holds strategy classes; `build_strategy(config)` makes the configured one.
The aggregation math itself is pure functions in `aggregate.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flcore.registry import Registry
from flcore.strategies.base import ClientUpdates, ServerState, Strategy

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def build_strategy(config: "ExperimentConfig") -> Strategy:
    return STRATEGIES.get(config.strategy)(config)


# Importing each module registers its strategies, in the order the dashboard lists them.
from flcore.strategies import fedavg, fedopt, scaffold, median, trimmed_mean, krum  # noqa: E402,F401,I001

__all__ = ["STRATEGIES", "ClientUpdates", "ServerState", "Strategy", "build_strategy"]
