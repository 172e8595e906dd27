"""Model registry: logistic regression, McMahan et al.'s 2NN and CNN, a small CIFAR net, and
LEAF's FEMNIST CNN and Shakespeare character LSTM (Caldas et al. 2018).

Every model builds from ``(input_shape, num_classes)`` so one name works on 8x8 digits,
28x28 MNIST and 32x32x3 CIFAR-10 alike; a model that reads sequences of token ids (the
character LSTM) also gets the vocabulary size, and reads only datasets whose info has one.
None uses BatchNorm: its running statistics are state outside the parameters, which breaks
both averaging and vectorized training; the architectures here need no normalization layers
(GroupNorm would be the choice if one did).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from flcore.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]  # (input_shape, num_classes), plus vocab_size= for a token model
    min_side: int = 0  # smallest image side the architecture can read (0 = any input)
    tokens: bool = False  # reads sequences of int64 token ids (a dataset with a vocabulary), not real-valued inputs
    batchable: bool = True  # the vectorized executor can train it (no embeddings or recurrent layers)

    def unsupported(self, input_shape: tuple[int, ...], vocab_size: int = 0) -> str | None:
        """Why this model cannot read inputs of `input_shape` (token ids in 0..vocab_size-1 when
        vocab_size is set, else real values), or None."""
        shape = "x".join(map(str, input_shape))
        if self.tokens and not vocab_size:
            return f"it reads sequences of character ids, this dataset has real-valued inputs of {shape}"
        if vocab_size and not self.tokens:
            return f"it reads real-valued inputs, this dataset has sequences of {shape} character ids; use model='char_lstm'"
        if self.min_side and (len(input_shape) != 3 or min(input_shape[1:]) < self.min_side):
            return f"it needs images of at least {self.min_side}x{self.min_side} pixels, this dataset has inputs of {shape}"
        return None


MODELS: Registry[ModelSpec] = Registry("model")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, vocab_size: int = 0) -> nn.Module:
    spec = MODELS.get(name)
    if spec.tokens:
        return spec.build(tuple(input_shape), num_classes, vocab_size=vocab_size)
    return spec.build(tuple(input_shape), num_classes)


def _register(name: str, label: str, description: str, min_side: int = 0, tokens: bool = False, batchable: bool = True):
    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name, label=label, description=description)(ModelSpec(build, min_side, tokens, batchable))
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
    return _two_conv_cnn(input_shape, num_classes, dense=512)


def _two_conv_cnn(input_shape: tuple[int, ...], num_classes: int, dense: int) -> nn.Module:
    """Two 5x5 'same' conv layers (32, 64 channels), each followed by 2x2 max-pooling, then
    `dense` ReLU units: McMahan et al.'s CNN (512) and LEAF's FEMNIST model (2048)."""
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), dense),
        nn.ReLU(),
        nn.Linear(dense, num_classes),
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


@_register(
    "femnist_cnn",
    "FEMNIST CNN (LEAF)",
    "LEAF's FEMNIST model (Caldas et al. 2018): two 5x5 conv layers (32, 64 channels) with max-pooling, 2048 dense units.",
    min_side=4,
)
def femnist_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return _two_conv_cnn(input_shape, num_classes, dense=2048)


class CharLSTM(nn.Module):
    """LEAF's Shakespeare model (Caldas et al. 2018): each character id is embedded in 8
    dimensions, a 2-layer LSTM of 256 units reads the sequence, and a dense layer on its last
    output predicts the next character."""

    def __init__(self, vocab_size: int, num_classes: int, embed: int = 8, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(ids))
        return self.head(out[:, -1])


@_register(
    "char_lstm",
    "Character LSTM (LEAF)",
    "LEAF's Shakespeare model: 8-dimensional character embedding, 2-layer LSTM of 256 units, next character from the last step.",
    tokens=True,
    batchable=False,
)
def char_lstm(input_shape: tuple[int, ...], num_classes: int, vocab_size: int) -> nn.Module:
    return CharLSTM(vocab_size, num_classes)
