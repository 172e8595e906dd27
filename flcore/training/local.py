"""Local client training: the plain reference, one client after another.

A client starts from the global parameters and trains a real `nn.Module` with autograd and
`torch.optim.SGD` (momentum) over its own samples for `local_epochs`, shuffled by a generator
seeded from (seed, round, client) so any executor reproduces the same batches. Weight decay,
FedProx's proximal term and SCAFFOLD's correction are added to each gradient by the shared
`LocalObjective` (objective.py). The vectorized executor must match this module's numbers; the
tests compare the two, and compare this one with hand-written SGD.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector

from flcore.seeding import torch_generator
from flcore.training.base import EXECUTORS, ClientsDone, ClientTask, ExecutorSpec, TrainedClients, TrainingData, throttled
from flcore.training.objective import LocalObjective, LocalSettings


def batch_order(num_samples: int, settings: LocalSettings, seed: int, round_: int, client_id: int) -> list[torch.Tensor]:
    """The client's mini-batches, as positions into its own sample list, in training order."""
    g = torch_generator(seed, "shuffle", round_, client_id)
    batches = []
    for _ in range(settings.epochs):
        batches.extend(torch.randperm(num_samples, generator=g).split(settings.batch_size))
    return batches


def local_steps(num_samples: int, settings: LocalSettings, max_steps: int | None = None) -> int:
    """The mini-batch steps a client takes: epochs x ceil(samples / batch), at most `max_steps`."""
    full = settings.epochs * -(-num_samples // settings.batch_size)
    return full if max_steps is None else min(full, max_steps)


def samples_in_steps(num_samples: int, batch_size: int, steps: int) -> int:
    """Samples a client's first `steps` mini-batches hold (each epoch's last batch may be short)."""
    per_epoch = -(-num_samples // batch_size)
    if not per_epoch:
        return 0
    epochs, rest = divmod(steps, per_epoch)
    return epochs * num_samples + rest * batch_size


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
    """Trains each client in turn with a real nn.Module, autograd and torch.optim.SGD."""

    def __init__(self, model: nn.Module, settings: LocalSettings, num_classes: int, seed: int) -> None:
        self.model, self.settings, self.num_classes, self.seed = model, settings, num_classes, seed
        self.objective = LocalObjective(settings)

    def close(self) -> None:
        """Nothing is held between rounds."""

    def train(
        self,
        global_params: torch.Tensor,
        tasks: Sequence[ClientTask],
        data: TrainingData,
        round_: int,
        corrections: torch.Tensor | None = None,
        on_clients: ClientsDone | None = None,
        starts: torch.Tensor | None = None,
        trainable: torch.Tensor | None = None,
    ) -> TrainedClients:
        x, y = data.tensors()
        report, rows = throttled(on_clients), []
        for i, t in enumerate(tasks):
            correction = None if corrections is None else corrections[i]
            rows.append(self._train_one(global_params, t, x, y, round_, correction, None if starts is None else starts[i], trainable))
            report(i + 1, len(tasks))
        deltas, samples, steps, losses, accs = zip(*rows)
        as_t = lambda v: torch.tensor(v, dtype=torch.float32)
        return TrainedClients(self.objective.finish(torch.stack(deltas)), as_t(samples), as_t(steps), as_t(losses), as_t(accs))

    def _train_one(self, global_params, task, x, y, round_, correction, start=None, trainable=None):
        s, model = self.settings, self.model
        start = global_params if start is None else start
        load_flat(model, start)
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum)  # weight decay: in the objective
        xs, ys = x[task.indices], y[task.indices]
        if task.flip_labels:
            ys = flip(ys, self.num_classes)
        batches = batch_order(len(task.indices), s, self.seed, round_, task.client_id)[: task.max_steps]
        anchors = self.objective.anchors(_split_like(global_params, params))  # FedProx's (and Ditto's) pull is toward the global model
        corr = _split_like(correction, params) if correction is not None else None
        masks = _split_like(trainable, params) if trainable is not None else None
        loss_sum = correct = seen = 0.0
        model.train()
        for b in batches:
            b = b.to(xs.device)
            logits = model(xs[b])
            loss = F.cross_entropy(logits, ys[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                self.objective.direction([p.grad for p in params], list(params), anchors, corr)
                if masks is not None:  # frozen coordinates take no step (their momentum stays 0)
                    for p, m in zip(params, masks):
                        p.grad.mul_(m)
            opt.step()
            loss_sum += loss.item() * len(b)
            correct += (logits.argmax(1) == ys[b]).sum().item()
            seen += len(b)
        delta = parameters_to_vector(params).detach() - start
        return delta, len(task.indices), len(batches), loss_sum / seen, correct / seen


def sequential(model: nn.Module, config, num_classes: int) -> SequentialExecutor:
    return SequentialExecutor(model, LocalSettings.from_config(config), num_classes, config.seed)


EXECUTORS.register(
    "sequential",
    label="One client after another",
    description="Each sampled client trains in turn with a real PyTorch module and optimizer: the plain reference, works for any model.",
)(ExecutorSpec(sequential))


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
