"""Model registry: logistic regression, McMahan et al.'s 2NN and CNN, and a small CIFAR net.

Every model builds from ``(input_shape, num_classes)`` so one name works on 8x8 digits,
28x28 MNIST and 32x32x3 CIFAR-10 alike. None uses BatchNorm: its running statistics are
state outside the parameters, which breaks both averaging and vectorized training; the
architectures here need no normalization layers (GroupNorm would be the choice if one did).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from flcore.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[tuple[int, ...], int], nn.Module]
    min_side: int = 0  # smallest image side the architecture can read (0 = any input)

    def unsupported(self, input_shape: tuple[int, ...]) -> str | None:
        """Why this model cannot read inputs of `input_shape`, or None."""
        if self.min_side and (len(input_shape) != 3 or min(input_shape[1:]) < self.min_side):
            shape = "x".join(map(str, input_shape))
            return f"it needs images of at least {self.min_side}x{self.min_side} pixels, this dataset has inputs of {shape}"
        return None


MODELS: Registry[ModelSpec] = Registry("model")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MODELS.get(name).build(tuple(input_shape), num_classes)


def _register(name: str, label: str, description: str, min_side: int = 0):
    def add(build: Callable[[tuple[int, ...], int], nn.Module]) -> Callable[[tuple[int, ...], int], nn.Module]:
        MODELS.register(name, label=label, description=description)(ModelSpec(build, min_side))
        return build

    return add


@_register("logistic", "Logistic regression", "One linear layer on the flattened input.")
def logistic(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


@_register("mlp", "MLP (2NN)", "Two hidden layers of 200 ReLU units (McMahan et al. 2017's 2NN).")
def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 200),
        nn.ReLU(),
        nn.Linear(200, 200),
        nn.ReLU(),
        nn.Linear(200, num_classes),
    )


@_register("cnn", "CNN (McMahan et al.)", "Two 5x5 conv layers (32, 64 channels) with max-pooling, 512 dense units.", min_side=4)
def cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), 512),
        nn.ReLU(),
        nn.Linear(512, num_classes),
    )


@_register("cifar_cnn", "Small CIFAR CNN", "The PyTorch CIFAR tutorial net: conv 6, conv 16, dense 120, 84.", min_side=16)
def cifar_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels, height, width = input_shape
    side = lambda s: ((s - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side(height) * side(width), 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )
