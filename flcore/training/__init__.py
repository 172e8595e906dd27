"""Local training and the executors that run it, registered by name in `EXECUTORS`.

`sequential` is the plain reference (one client after another), `vectorized` trains a round's
clients as one batched computation with the same numbers, `auto` picks the vectorized one
wherever it supports the model. Both share the local objective (objective.py). A new executor
is one new file in this folder that registers it (see base.py for its contract).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from flcore.registry import import_modules
from flcore.training.base import EXECUTORS, ClientsDone, ClientTask, Executor, ExecutorSpec, TrainedClients, TrainingData
from flcore.training.local import SequentialExecutor, evaluate
from flcore.training.objective import LocalObjective, LocalSettings
from flcore.training.vectorized import VectorizedExecutor, supports

import_modules(__name__, __path__, skip=("base", "objective"))  # any other module here registers an executor

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


def make_executor(config: "ExperimentConfig", model: nn.Module, num_classes: int) -> Executor:
    """The executor the config names, built for `model`."""
    return EXECUTORS.get(config.executor).build(model, config, num_classes)


__all__ = [
    "EXECUTORS", "ClientTask", "ClientsDone", "Executor", "ExecutorSpec", "LocalObjective", "LocalSettings", "SequentialExecutor", "TrainedClients",
    "TrainingData", "VectorizedExecutor", "evaluate", "make_executor", "supports",
]  # fmt: skip
