"""Server strategies, one file per algorithm (the FedOpt family shares one), registered by name.
A new file in this folder that registers a strategy is picked up with no other change.

The registry (`STRATEGIES`, in base.py) holds strategy classes; `build_strategy(config)` makes
the configured one. The aggregation math itself is pure functions in `aggregate.py`.
"""

from __future__ import annotations

from flcore.registry import import_modules
from flcore.strategies.base import STRATEGIES, ClientUpdates, ServerState, Strategy, build_strategy, register

# Importing each module registers its strategies: these in the order the dashboard lists them,
# then any other module in this folder (a new strategy is one new file).
import_modules(__name__, __path__, first=("fedavg", "fedopt", "scaffold", "median", "trimmed_mean", "krum"), skip=("base", "aggregate"))

__all__ = ["STRATEGIES", "ClientUpdates", "ServerState", "Strategy", "build_strategy", "register"]
