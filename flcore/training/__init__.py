"""Local training and the executors that run it: `sequential` (the plain reference) and
`vectorized` (all sampled clients as one batched computation, with the same numbers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from flcore.training.local import ClientTask, LocalSettings, SequentialExecutor, TrainedClients, evaluate
from flcore.training.vectorized import VectorizedExecutor, supports, unsupported_reason

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig

Executor = SequentialExecutor | VectorizedExecutor


def make_executor(config: "ExperimentConfig", model: nn.Module, num_classes: int) -> Executor:
    """The executor the config asks for; `auto` is the vectorized one wherever it supports the model."""
    settings = LocalSettings.from_config(config)
    kind = config.executor
    if kind == "auto":
        kind = "vectorized" if supports(model) else "sequential"
    if kind == "vectorized":
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"executor='vectorized' cannot train model={config.model!r}: {reason}; use executor='sequential' or 'auto'")
        return VectorizedExecutor(model, settings, num_classes, config.seed, chunk_size=config.chunk_size)
    return SequentialExecutor(model, settings, num_classes, config.seed)


__all__ = [
    "ClientTask",
    "Executor",
    "LocalSettings",
    "SequentialExecutor",
    "TrainedClients",
    "VectorizedExecutor",
    "evaluate",
    "make_executor",
    "supports",
]
