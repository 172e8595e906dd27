"""Local training and the executors that run it: `sequential` now, `vectorized` for speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from flcore.training.local import ClientTask, LocalSettings, SequentialExecutor, TrainedClients, evaluate

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


def make_executor(config: "ExperimentConfig", model: nn.Module, num_classes: int):
    """The executor the config asks for; `auto` picks the fastest one that supports the model."""
    settings = LocalSettings.from_config(config)
    return SequentialExecutor(model, settings, num_classes, config.seed)


__all__ = ["ClientTask", "LocalSettings", "SequentialExecutor", "TrainedClients", "evaluate", "make_executor"]
