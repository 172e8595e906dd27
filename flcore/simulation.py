"""The round loop: one `RoundResult` per communication round (McMahan et al. 2017).

`Simulation(config)` loads the data once, splits it with the data seed, builds the model and
the strategy. `run()` then repeats, top to bottom:

  1. sample clients       seeded by (seed, round)
  2. broadcast            the global parameters (and SCAFFOLD's corrections)
  3. local training       each sampled client trains on its own samples (clipped under DP)
  4. attack               malicious clients poison the update they send
     send                 local DP noise, then compression with error feedback: what travels
  5. aggregate            the strategy turns the updates into the next global model
                          (under central DP, DP-FedAvg's noised mean and the strategy's step)
  6. evaluate             the global model on the held-out test set
  7. emit                 a RoundResult with global and per-client numbers

Storage, progress bars, cancellation and checkpoints hang off this loop as consumers of the
iterator; the loop itself knows nothing about them. Each result carries the server state after
its round (`result.state`), which is what a consumer checkpoints. Every round's randomness is a
function of (seed, round), so running from a checkpointed `ServerState` reproduces an
uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from flcore import seeding
from flcore.attacks import ATTACKS, malicious_clients
from flcore.compression import Channel
from flcore.config import ExperimentConfig
from flcore.data.datasets import load_dataset
from flcore.data.partition import counts_frame, label_counts, split_dataset
from flcore.metrics import ClientRound, compute_client_metrics, round_summaries
from flcore.models import build_model
from flcore.privacy import Privacy
from flcore.records import ClientResult, RoundResult
from flcore.strategies import ClientUpdates, ServerState, build_strategy
from flcore.training import ClientTask, TrainingData, evaluate, make_executor
from flcore.training.local import flat_params

__all__ = ["ClientResult", "DivergedError", "RoundResult", "Simulation", "sample_clients"]


class DivergedError(RuntimeError):
    """The global model's parameters stopped being finite numbers."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was chosen but no CUDA GPU is available; use device='cpu' or 'auto'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def sample_clients(config: ExperimentConfig, round_: int) -> np.ndarray:
    """The sorted ids of the clients taking part in `round_`, a function of (seed, round)."""
    rng = seeding.rng(config.seed, "sampling", round_)
    return np.sort(rng.choice(config.num_clients, size=config.clients_per_round_resolved, replace=False))


class Simulation:
    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        data = load_dataset(config)
        self.info = data.info
        self.data = TrainingData.holding(config, self.device, data.x_train.to(self.device), data.y_train.to(self.device))
        self.x_test, self.y_test = data.x_test.to(self.device), data.y_test.to(self.device)

        labels = data.y_train.numpy()
        self.parts = split_dataset(data, config)
        self.label_counts = label_counts(labels, self.parts, data.info.num_classes)
        self._part_tensors = [torch.from_numpy(p).to(self.device) for p in self.parts]

        with torch.random.fork_rng(devices=[]):  # model init must not touch the caller's RNG
            torch.manual_seed(seeding.derive_seed(config.seed, "init"))
            self.model = build_model(config.model, data.info.input_shape, data.info.num_classes, data.info.vocab_size)
        self.model.to(self.device)
        self.num_params = sum(p.numel() for p in self.model.parameters())

        self.attack = ATTACKS.get(config.attack)
        self.attack_scale = config.attack_scale if config.attack_scale is not None else self.attack.default_scale
        self.malicious = set(malicious_clients(config.num_clients, config.attack_fraction, seeding.rng(config.seed, "attack")).tolist())
        self.strategy = build_strategy(config)
        self.executor = make_executor(config, self.model, data.info.num_classes)
        self.privacy = Privacy(config)  # noise, epsilon and the rounds a budget allows (clipping: in the executors)
        self.channel = Channel(config, self.num_params)  # what clients really send back

    # Describing the split -----------------------------------------------------------
    def partition_frame(self) -> pd.DataFrame:
        return counts_frame(self.label_counts)

    # The loop -----------------------------------------------------------------------
    def initial_state(self) -> ServerState:
        return self.strategy.init(flat_params(self.model))

    def run(self, state: ServerState | None = None) -> Iterator[RoundResult]:
        """Yield one result per round, from `state` (a checkpoint) or from the start; each
        carries the server state after its round."""
        state = state if state is not None else self.initial_state()
        try:
            while state.round < self.privacy.last_round:  # config.rounds, unless a privacy budget ends the run sooner
                state, result = self.step(state)
                yield result
        finally:  # the run ended, failed or was abandoned (cancelled): release what trains it
            self.close()

    def close(self) -> None:
        """Release what the executor holds between rounds (the `ray` executor's actors); a later
        round starts them again."""
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()

    def step(self, state: ServerState) -> tuple[ServerState, RoundResult]:
        """Run round state.round + 1 and return the new state with its result."""
        start = time.perf_counter()
        round_ = state.round + 1

        # 1. sample clients
        sampled = sample_clients(self.config, round_).tolist()
        tasks = [ClientTask(c, self._part_tensors[c], self.attack.flips_labels and c in self.malicious) for c in sampled]

        # 2. broadcast (SCAFFOLD also sends each client its correction)
        corrections = self.strategy.client_corrections(state, sampled)

        # 3. local training
        trained = self.executor.train(state.params, tasks, self.data, round_, corrections)

        # 4. attack: malicious clients poison what they send
        deltas = trained.deltas
        bad = [i for i, c in enumerate(sampled) if c in self.malicious]
        if bad and self.attack.poison is not None:
            g = seeding.torch_generator(self.config.seed, "attack_noise", round_)
            deltas = deltas.clone()
            deltas[bad] = self.attack.poison(deltas[bad], self.attack_scale, g)

        # send: local DP noise, then compression with error feedback (the residuals live in the state)
        sent = self.channel.send(self.privacy.privatize(deltas, sampled, round_), sampled, round_, state)
        deltas = sent.deltas

        # 5. aggregate
        updates = ClientUpdates(sampled, deltas, trained.num_samples, trained.num_steps)
        before = state
        state, metrics = self.privacy.aggregate(self.strategy, state, updates, round_)
        state = self.channel.keep(state, sent)
        if not torch.isfinite(state.params).all():
            raise DivergedError(
                f"the global model diverged in round {round_} (its weights are no longer finite numbers); "
                f"lower lr={self.config.lr} or server_lr, or use a robust strategy against attack={self.config.attack!r}"
            )

        # 6. evaluate
        test_loss, test_accuracy = evaluate(self.model, state.params, self.x_test, self.y_test)

        # 7. emit
        norms = deltas.norm(dim=1).tolist()
        extra = compute_client_metrics(ClientRound(round_, sampled, deltas, trained, before.params, state.params))
        clients = tuple(
            ClientResult(
                client_id=c,
                num_samples=int(trained.num_samples[i]),
                num_steps=int(trained.num_steps[i]),
                train_loss=float(trained.train_loss[i]),
                train_accuracy=float(trained.train_accuracy[i]),
                update_norm=norms[i],
                malicious=c in self.malicious,
                metrics={name: values[i] for name, values in extra.items()},
            )
            for i, c in enumerate(sampled)
        )
        vector_bytes = self.num_params * state.params.element_size()
        per_client = 2 if corrections is not None else 1  # SCAFFOLD sends control variates both ways
        return state, RoundResult(
            round=round_,
            sampled_clients=tuple(sampled),
            clients=clients,
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            wall_time_s=time.perf_counter() - start,
            bytes_sent=len(sampled) * vector_bytes * per_client,
            bytes_received=sent.bytes + len(sampled) * vector_bytes * (per_client - 1),
            metrics={**metrics, **round_summaries(extra), **self.privacy.round_metrics(round_)},
            state=state,
        )
