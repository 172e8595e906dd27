"""Local client training: the plain reference, one client after another.

A client starts from the global parameters and runs SGD (PyTorch's, with momentum and weight
decay) over its own samples for `local_epochs`, shuffled by a generator seeded from
(seed, round, client) so any executor reproduces the same batches. FedProx (Li et al. 2020)
adds (mu / 2) * ||w - w_global||^2 to the loss; SCAFFOLD (Karimireddy et al. 2020) adds its
control-variate correction (c - c_i) to every gradient. The vectorized executor must match
this module's numbers; the tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector

from flcore.seeding import torch_generator

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig


@dataclass(frozen=True)
class LocalSettings:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    prox_mu: float

    @classmethod
    def from_config(cls, c: "ExperimentConfig") -> "LocalSettings":
        return cls(c.local_epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.prox_mu)


@dataclass(frozen=True)
class ClientTask:
    """What one sampled client trains on this round."""

    client_id: int
    indices: torch.Tensor  # int64 positions in the training set
    flip_labels: bool = False  # a label-flipping attacker


@dataclass(frozen=True)
class TrainedClients:
    """Stacked results of one round's local training; row i is tasks[i]."""

    deltas: torch.Tensor  # [n, P] local params - global params
    num_samples: torch.Tensor  # [n]
    num_steps: torch.Tensor  # [n]
    train_loss: torch.Tensor  # [n] sample-weighted mean loss over all local batches
    train_accuracy: torch.Tensor  # [n]


def batch_order(num_samples: int, settings: LocalSettings, seed: int, round_: int, client_id: int) -> list[torch.Tensor]:
    """The client's mini-batches, as positions into its own sample list, in training order."""
    g = torch_generator(seed, "shuffle", round_, client_id)
    batches = []
    for _ in range(settings.epochs):
        batches.extend(torch.randperm(num_samples, generator=g).split(settings.batch_size))
    return batches


def flip(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return num_classes - 1 - labels


def flat_params(model: nn.Module) -> torch.Tensor:
    return parameters_to_vector(model.parameters()).detach().clone()


@torch.no_grad()
def load_flat(model: nn.Module, vector: torch.Tensor) -> None:
    """Copy a flat vector into the model's parameters.

    Unlike torch's `vector_to_parameters`, which makes the parameters views of `vector`, this
    copies, so training the model can never write into the server's global parameters.
    """
    params = list(model.parameters())
    for p, v in zip(params, _split_like(vector, params)):
        p.copy_(v)


class SequentialExecutor:
    """Trains each client in turn with a real nn.Module and torch.optim.SGD."""

    name = "sequential"

    def __init__(self, model: nn.Module, settings: LocalSettings, num_classes: int, seed: int) -> None:
        self.model, self.settings, self.num_classes, self.seed = model, settings, num_classes, seed

    def train(
        self,
        global_params: torch.Tensor,
        tasks: list[ClientTask],
        x: torch.Tensor,
        y: torch.Tensor,
        round_: int,
        corrections: torch.Tensor | None = None,
    ) -> TrainedClients:
        rows = [
            self._train_one(global_params, t, x, y, round_, None if corrections is None else corrections[i])
            for i, t in enumerate(tasks)
        ]
        deltas, samples, steps, losses, accs = zip(*rows)
        as_t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
        return TrainedClients(torch.stack(deltas), as_t(samples), as_t(steps), as_t(losses), as_t(accs))

    def _train_one(self, global_params, task, x, y, round_, correction):
        s, model = self.settings, self.model
        load_flat(model, global_params)
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        xs, ys = x[task.indices], y[task.indices]
        if task.flip_labels:
            ys = flip(ys, self.num_classes)
        batches = batch_order(len(task.indices), s, self.seed, round_, task.client_id)
        anchor = [p.detach().clone() for p in params] if s.prox_mu else None
        corr = _split_like(correction, params) if correction is not None else None
        loss_sum = correct = seen = 0.0
        model.train()
        for b in batches:
            b = b.to(xs.device)
            logits = model(xs[b])
            loss = F.cross_entropy(logits, ys[b])
            objective = loss
            if anchor is not None:
                objective = loss + 0.5 * s.prox_mu * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
            opt.zero_grad(set_to_none=True)
            objective.backward()
            if corr is not None:
                for p, c in zip(params, corr):
                    p.grad.add_(c)
            opt.step()
            loss_sum += loss.item() * len(b)
            correct += (logits.argmax(1) == ys[b]).sum().item()
            seen += len(b)
        delta = parameters_to_vector(params).detach() - global_params
        return delta, len(task.indices), len(batches), loss_sum / seen, correct / seen


def _split_like(vector: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for p in params:
        out.append(vector[i : i + p.numel()].view_as(p))
        i += p.numel()
    return out


@torch.no_grad()
def evaluate(model: nn.Module, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `params` on (x, y)."""
    load_flat(model, params)
    model.eval()
    loss_sum = correct = 0.0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])
        loss_sum += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return loss_sum / len(y), correct / len(y)
