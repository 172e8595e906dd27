"""Every client's own model: personalized methods and per-client evaluation.

In a non-IID federation one global accuracy hides what each participant gets. Each client
therefore keeps a part of its own samples as its test data (`client_test_fraction`, split by the
data seed; `client_test_parts`), and every `eval_every` rounds every client, sampled or not, is
evaluated on it with the global model and, under a personalized method, with its own model
(`PersonalMethod.models`). The round's fairness summaries (`fairness`) follow from those numbers.

Data that ships each client's test samples (LEAF's per-user test files, the FedProx authors'
Synthetic devices) keeps them: under its natural split, a client's test data are its rows of the
test set (`partition.group_by_client`) and it trains on all its training samples.

The methods, each registered in `PERSONALIZATION` (the config's `personalization` field):

- ``none``: every client is served the global model.
- ``finetune`` (FedAvg+FT): a client's model is the global model after `finetune_steps` local
  steps on its own training samples, taken when it is evaluated; nothing is kept between rounds.
- ``fedper`` (Arivazhagan et al. 2019): the last `head_layers` layers with weights are the
  client's head and never leave it. A client trains body and head from (global body, its head);
  the server averages the bodies only.
- ``fedrep`` (Collins et al. 2021): as FedPer, but a client first trains its head with the body
  frozen, then the body with its new head frozen, `local_epochs` epochs each.
- ``ditto`` (Li et al. 2021): the global model trains as FedAvg's; each sampled client also
  trains a model of its own, v_k, on its samples with the proximal pull (ditto_lambda / 2)
  ||v_k - w||^2 toward the global model w, with the same optimizer and local steps.

Personal state (a head, or Ditto's whole model) is per-client memory kept in the server state
(`ServerState.extra[PERSONAL]`, a {client: tensor} map), so a checkpoint holds it and a resumed
run is exact. A client gets its entry the first round it trains, starting from the global model
of that round; until then it is served the global model (`bytes_per_client` says the cost).
Every executor that `personalizes` (sequential, vectorized, auto) trains these methods with the
same numbers: personal training is only `starts` (each client's own parameters) and `trainable`
(a mask of frozen coordinates) passed to `Executor.train`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flcore import seeding
from flcore.problems import Problem
from flcore.registry import Registry

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.strategies import ServerState
    from flcore.training import ClientTask, Executor, TrainedClients, TrainingData

PERSONAL = "personal"  # the ServerState.extra key of the clients' personal parameters
EVAL_ROUND_OFFSET = 1 << 30  # fine-tuning's batch order is seeded apart from training's: (seed, round + this, client)
PERSONAL_STATE_LIMIT = 4 * 2**30  # bytes of personal state a run may keep at most (every client's entry)
EVAL_CHUNK_BYTES = 256 * 2**20  # personal models are built and evaluated this many bytes of parameters at a time


# The held-out part of each client's data ------------------------------------------------------
def client_test_count(size: int, fraction: float) -> int:
    """How many of a client's `size` samples it keeps as its test data: round(fraction * size),
    at least one when fraction > 0 and the client has two or more samples, and never all of them
    (a client always keeps one to train on)."""
    if fraction <= 0 or size < 2:
        return 0
    return min(size - 1, max(1, round(fraction * size)))


def client_test_parts(parts: list[np.ndarray], fraction: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, test) index arrays of each client: a random `client_test_count` of its samples,
    drawn with (data seed, client), are its test data; the rest, in their original order, its
    training data. With fraction 0 the training parts are `parts` themselves."""
    if fraction <= 0:
        return list(parts), [p[:0] for p in parts]
    train, test = [], []
    for c, part in enumerate(parts):
        k = client_test_count(len(part), fraction)
        held = np.zeros(len(part), dtype=bool)
        held[seeding.rng(seed, "client_test", c).permutation(len(part))[:k]] = True
        train.append(part[~held])
        test.append(part[held])
    return train, test


# Evaluating clients on their own data ---------------------------------------------------------
@dataclass(frozen=True)
class ClientScores:
    """Loss and accuracy of each client on its own test data ([clients] each; NaN without any)."""

    loss: np.ndarray
    accuracy: np.ndarray


@torch.no_grad()
def score_clients(model: nn.Module, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, parts: list[torch.Tensor]) -> ClientScores:
    """Every client's loss and accuracy on its `parts[c]` of (x, y) with one model `params`, in one
    pass over the clients' samples together."""
    from flcore.training.local import load_flat

    load_flat(model, params)
    model.eval()
    sizes = torch.tensor([len(p) for p in parts], dtype=torch.long)
    if not int(sizes.sum()):
        nan = np.full(len(parts), np.nan)
        return ClientScores(nan, nan.copy())
    rows = torch.cat(list(parts)).to(x.device)
    owner = torch.repeat_interleave(torch.arange(len(parts)), sizes).to(x.device)
    loss_sum = torch.zeros(len(parts), dtype=torch.float64, device=x.device)
    correct = torch.zeros(len(parts), dtype=torch.float64, device=x.device)
    for i in range(0, len(rows), 2048):
        batch = rows[i : i + 2048]
        logits = model(x[batch])
        loss_sum.index_add_(0, owner[i : i + 2048], F.cross_entropy(logits, y[batch], reduction="none").double())
        correct.index_add_(0, owner[i : i + 2048], (logits.argmax(1) == y[batch]).double())
    n = sizes.to(torch.float64).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return ClientScores(loss_sum.cpu().numpy() / n, correct.cpu().numpy() / n)


def score_own_models(
    model: nn.Module, models: Iterator[tuple[list[int], torch.Tensor]], x: torch.Tensor, y: torch.Tensor, parts: list[torch.Tensor]
) -> ClientScores:
    """Each client's loss and accuracy on its own test data with its own model: `models` yields
    (clients, their parameters [k, P]) a few clients at a time (a generator that may train: not
    under no_grad)."""
    loss, accuracy = np.full(len(parts), np.nan), np.full(len(parts), np.nan)
    for clients, params in models:
        for c, p in zip(clients, params):
            got = score_clients(model, p, x, y, [parts[c]])
            loss[c], accuracy[c] = got.loss[0], got.accuracy[0]
    return ClientScores(loss, accuracy)


def fairness(accuracy: np.ndarray, threshold: float, prefix: str) -> dict[str, float]:
    """The round's summaries of its clients' accuracies (clients without test data left out):
    mean, standard deviation (over clients), the mean of the worst and of the best 10% of clients
    (at least one client each), and the fraction of clients below `threshold`."""
    a = np.sort(accuracy[np.isfinite(accuracy)])
    if not len(a):
        return {}
    tail = max(1, math.ceil(0.1 * len(a)))
    return {
        f"{prefix}_mean": float(a.mean()),
        f"{prefix}_std": float(a.std()),
        f"{prefix}_worst10": float(a[:tail].mean()),
        f"{prefix}_best10": float(a[-tail:].mean()),
        f"{prefix}_below": float((a < threshold).mean()),
    }


FAIRNESS_PREFIXES = {"global": "client_accuracy", "personal": "personal_accuracy"}  # round metric names: <prefix>_mean, ...


# The methods ---------------------------------------------------------------------------------
def head_mask(model: nn.Module, head_layers: int) -> torch.Tensor:
    """A [P] 0/1 vector over the flat parameters: 1 on the last `head_layers` modules that own
    weights (the head), 0 on the rest (the body)."""
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    if head_layers >= len(owners):
        raise ValueError(
            f"head_layers={head_layers} leaves no shared body: the model has {len(owners)} layers with weights; "
            f"choose at most {len(owners) - 1}"
        )
    head = {id(p) for m in owners[len(owners) - head_layers :] for p in m.parameters(recurse=False)}
    return torch.cat([torch.full((p.numel(),), float(id(p) in head)) for p in model.parameters()])


class PersonalMethod:
    """No personalization: every client is served the global model (see the module doc)."""

    keeps: str = ""  # what each client keeps between rounds: "" (nothing), "head" or "model"

    def __init__(self, config: "ExperimentConfig", model: nn.Module, num_classes: int) -> None:
        self.config, self.model = config, model
        self.num_params = sum(p.numel() for p in model.parameters())

    @classmethod
    def config_problems(cls, config: "ExperimentConfig") -> list[Problem]:
        if config.personalization != "none" and config.client_test_fraction <= 0:
            return [
                Problem(
                    "client_test_fraction",
                    f"client_test_fraction=0 keeps no test data on the clients, so personalization={config.personalization!r} "
                    "could not be evaluated; choose a fraction above 0, e.g. 0.2",
                )
            ]
        return []

    def bytes_per_client(self) -> int:
        """Bytes of personal state a client holds once it has trained (0: none)."""
        return 0

    def check_memory(self) -> None:
        need = self.bytes_per_client() * self.config.num_clients
        if need > PERSONAL_STATE_LIMIT:
            raise ValueError(
                f"personalization={self.config.personalization!r} keeps {self.bytes_per_client():,} bytes per client, "
                f"{need / 2**30:.1f} GiB for num_clients={self.config.num_clients}, above the {PERSONAL_STATE_LIMIT / 2**30:.0f} GiB "
                "a run may keep; use fewer clients, a smaller model, or 'fedper'/'fedrep' (which keep only a head)"
            )

    def train(
        self,
        executor: "Executor",
        state: "ServerState",
        tasks: list["ClientTask"],
        data: "TrainingData",
        round_: int,
        corrections: torch.Tensor | None,
        progress: dict,
    ) -> tuple["TrainedClients", dict[int, torch.Tensor]]:
        """The round's local training with the run's `executor`: what the clients send (deltas
        from the global model, as the strategy aggregates them) and each trained client's new
        personal entry."""
        return executor.train(state.params, tasks, data, round_, corrections, **progress), {}

    def models(
        self, state: "ServerState", tasks: list["ClientTask"], data: "TrainingData", round_: int
    ) -> Iterator[tuple[list[int], torch.Tensor]] | None:
        """Each client's own parameters, a few clients at a time ((clients, [k, P])); `tasks`
        hold every client's training samples. None: the method has no personal models."""
        return None

    def _chunks(self, tasks: list["ClientTask"]) -> Iterator[list["ClientTask"]]:
        size = max(1, EVAL_CHUNK_BYTES // (4 * self.num_params))
        for i in range(0, len(tasks), size):
            yield tasks[i : i + size]


class FineTune(PersonalMethod):
    """FedAvg+FT: the global model fine-tuned for `finetune_steps` local steps, at evaluation."""

    def __init__(self, config, model, num_classes) -> None:
        super().__init__(config, model, num_classes)
        from flcore.training import make_executor

        steps = config.finetune_steps  # at least this many batches: every epoch holds one or more
        tuning = config.model_copy(update={"local_epochs": steps, "prox_mu": 0.0, "dp": "none"})
        self.tuner = make_executor(tuning, model, num_classes)

    def models(self, state, tasks, data, round_):
        from dataclasses import replace

        for part in self._chunks(tasks):
            short = [replace(t, max_steps=self.config.finetune_steps, flip_labels=False) for t in part]
            tuned = self.tuner.train(state.params, short, data, EVAL_ROUND_OFFSET + round_)
            yield [t.client_id for t in part], state.params + tuned.deltas


class FedPer(PersonalMethod):
    """FedPer: the head stays on the client; the server averages the body."""

    keeps = "head"

    def __init__(self, config, model, num_classes) -> None:
        super().__init__(config, model, num_classes)
        self.head = head_mask(model, config.head_layers).to(next(model.parameters()).device)
        self.where, self.body = self.head.bool(), 1 - self.head

    def bytes_per_client(self) -> int:
        return 4 * int(self.head.sum())

    def starts(self, state: "ServerState", client_ids: list[int]) -> torch.Tensor:
        """The global body with each client's own head (the global head for a client without one)."""
        held = state.extra.get(PERSONAL, {})
        rows = state.params.expand(len(client_ids), -1).clone()
        for i, c in enumerate(client_ids):
            if c in held:
                rows[i, self.where] = held[c]
        return rows

    def _local(self, executor, state, tasks, data, round_, corrections, progress, starts):
        """Body and head together, from (global body, own head); each client keeps its new head."""
        trained = executor.train(state.params, tasks, data, round_, corrections, **progress, starts=starts)
        ends = starts + trained.deltas
        return trained, {t.client_id: ends[i, self.where].clone() for i, t in enumerate(tasks)}

    def train(self, executor, state, tasks, data, round_, corrections, progress):
        starts = self.starts(state, [t.client_id for t in tasks])
        trained, heads = self._local(executor, state, tasks, data, round_, corrections, progress, starts)
        return _replace_deltas(trained, trained.deltas * self.body), heads  # the head never travels

    def models(self, state, tasks, data, round_):
        for part in self._chunks(tasks):
            ids = [t.client_id for t in part]
            yield ids, self.starts(state, ids)


class FedRep(FedPer):
    """FedRep: the head trains first with the body frozen, then the body with the head frozen."""

    def _local(self, executor, state, tasks, data, round_, corrections, progress, starts):
        head = executor.train(state.params, tasks, data, round_, corrections, starts=starts, trainable=self.head)
        starts = starts + head.deltas
        body = executor.train(state.params, tasks, data, round_, corrections, **progress, starts=starts, trainable=self.body)
        heads = {t.client_id: starts[i, self.where].clone() for i, t in enumerate(tasks)}
        return _replace_deltas(body, body.deltas + head.deltas), heads


class Ditto(PersonalMethod):
    """Ditto: FedAvg's global model, and a personal model per client pulled toward it."""

    keeps = "model"

    def __init__(self, config, model, num_classes) -> None:
        super().__init__(config, model, num_classes)
        from flcore.training import make_executor

        own = config.model_copy(update={"prox_mu": config.ditto_lambda, "dp": "none"})  # the pull; a personal model is never sent
        self.own = make_executor(own, model, num_classes)

    def bytes_per_client(self) -> int:
        return 4 * self.num_params

    def _own(self, state: "ServerState", client_ids: list[int]) -> torch.Tensor:
        held = state.extra.get(PERSONAL, {})
        return torch.stack([held.get(c, state.params) for c in client_ids])

    def train(self, executor, state, tasks, data, round_, corrections, progress):
        trained = executor.train(state.params, tasks, data, round_, corrections, **progress)
        starts = self._own(state, [t.client_id for t in tasks])
        own = self.own.train(state.params, tasks, data, round_, starts=starts)
        ends = starts + own.deltas
        return trained, {t.client_id: ends[i].clone() for i, t in enumerate(tasks)}

    def models(self, state, tasks, data, round_):
        for part in self._chunks(tasks):
            ids = [t.client_id for t in part]
            yield ids, self._own(state, ids)


def state_line(config: "ExperimentConfig", model: nn.Module, num_classes: int) -> str | None:
    """What the configured method keeps per client, in words (None: nothing kept between rounds)."""
    method = PERSONALIZATION.get(config.personalization)(config, model, num_classes)
    if not method.keeps:
        return None
    each = method.bytes_per_client()
    return (
        f"personal state: each client keeps its {method.keeps}, {each:,} bytes, once it has trained "
        f"(at most {each * config.num_clients / 1e6:,.3g} MB for num_clients={config.num_clients})"
    )


def _replace_deltas(trained: "TrainedClients", deltas: torch.Tensor) -> "TrainedClients":
    from dataclasses import replace

    return replace(trained, deltas=deltas)


def _head(config: "ExperimentConfig") -> str:
    return f"head: last {config.head_layers} layer{'s' if config.head_layers > 1 else ''}"


PERSONALIZATION: Registry[type[PersonalMethod]] = Registry("personalization")
PERSONALIZATION.register("none", label="None", description="Every client is served the global model.")(PersonalMethod)
PERSONALIZATION.register(
    "finetune",
    label="Fine-tuning (FedAvg+FT)",
    description="Each client fine-tunes the global model on its own samples for a few steps before it is evaluated.",
    params=("finetune_steps",),
    describe=lambda c: f"Fine-tuning ({c.finetune_steps} steps)",
)(FineTune)
PERSONALIZATION.register(
    "fedper",
    label="FedPer (personal head)",
    description="The last layers stay on each client; the server averages the rest (Arivazhagan et al. 2019).",
    params=("head_layers",),
    describe=lambda c: f"FedPer ({_head(c)})",
)(FedPer)
PERSONALIZATION.register(
    "fedrep",
    label="FedRep (head, then body)",
    description="As FedPer, but each client trains its head first, then the shared body (Collins et al. 2021).",
    params=("head_layers",),
    describe=lambda c: f"FedRep ({_head(c)})",
)(FedRep)
PERSONALIZATION.register(
    "ditto",
    label="Ditto (own model per client)",
    description="Each client also trains a model of its own, pulled toward the global one by lambda (Li et al. 2021).",
    params=("ditto_lambda",),
    describe=lambda c: f"Ditto (lambda={c.ditto_lambda:g})",
)(Ditto)
