"""The round loop: one `RoundResult` per communication round (McMahan et al. 2017).

`Simulation(config, settings)` loads the data once (from the server's data folder in `settings`), splits it with the data seed, builds the model and
the strategy. `run()` then repeats, top to bottom:

  1. sample clients       seeded by (seed, round), from those online; plan who reports and when
  2. broadcast            the global parameters (and SCAFFOLD's corrections)
  3. local training       each sampled client whose update can arrive trains on its own samples
                          (clipped under DP)
  4. attack               malicious clients poison the update they send
     send                 local DP noise, then compression with error feedback: what travels
  5. aggregate            the strategy turns the updates into the next global model
                          (under central DP, DP-FedAvg's noised mean and the strategy's step)
  6. evaluate             the global model on the held-out test set; every `eval_every` rounds
                          every client on its own test data, with the global model and its own
                          (flcore.federation.personalization)
  7. emit                 a RoundResult with global and per-client numbers

Storage, progress bars, cancellation and checkpoints hang off this loop as consumers of the
iterator; the loop itself knows nothing about them. Progress inside a long round is the one
callback: `run(on_clients=...)` hands it to the executor, which calls it with (clients done,
clients training) as they finish. Each result carries the server state after
its round (`result.state`), which is what a consumer checkpoints. Every round's randomness is a
function of (seed, round), so running from a checkpointed `ServerState` reproduces an
uninterrupted run. Who is online, drops out or straggles, and the simulated clock, are planned
by `flcore.federation.availability` before a round trains; the state carries the clock.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator

import pandas as pd
import torch

from flcore import seeding
from flcore.config import ExperimentConfig
from flcore.data.datasets import load_dataset
from flcore.data.partition import counts_frame, group_by_client, label_counts, split_dataset
from flcore.federation.attacks import ATTACKS, malicious_clients
from flcore.federation.availability import Availability, client_clock, round_clock, sample_clients
from flcore.federation.compression import Channel, Sent
from flcore.federation.metrics import ClientRound, compute_client_metrics, round_summaries
from flcore.federation.personalization import (
    FAIRNESS_PREFIXES,
    PERSONAL,
    PERSONALIZATION,
    client_test_parts,
    fairness,
    score_clients,
    score_own_models,
)
from flcore.federation.privacy import Privacy
from flcore.models import build_model
from flcore.records import ClientEvaluation, ClientResult, RoundResult
from flcore.settings import Settings
from flcore.settings import current as current_settings
from flcore.strategies import ClientUpdates, ServerState, build_strategy
from flcore.training import ClientsDone, ClientTask, TrainedClients, TrainingData, evaluate, make_executor
from flcore.training.local import flat_params
from flcore.training.objective import LocalSettings

__all__ = ["ClientResult", "DivergedError", "RoundResult", "Simulation", "sample_clients"]


class DivergedError(RuntimeError):
    """The global model's parameters stopped being finite numbers."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was chosen but no CUDA GPU is available; use device='cpu' or 'auto'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Simulation:
    def __init__(self, config: ExperimentConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings if settings is not None else current_settings()  # the server's: its data folder, limits
        self.device = resolve_device(config.device)
        data = load_dataset(config, self.settings)
        self.info = data.info
        x, y = data.x_train.to(self.device), data.y_train.to(self.device)
        self.data = TrainingData.holding(config, self.device, x, y, self.settings)
        self.x_test, self.y_test = data.x_test.to(self.device), data.y_test.to(self.device)

        labels = data.y_train.numpy()
        self.parts = split_dataset(data, config)  # each client's samples
        self.label_counts = label_counts(labels, self.parts, data.info.num_classes)
        # each client's training samples, and its own test data: the part it keeps of its samples, or, for a
        # natural split of data that ships each client's test samples (LEAF, Synthetic), those (rows of the test set)
        self.natural_tests = config.partition == "natural" and data.test_clients is not None and config.client_test_fraction > 0
        if self.natural_tests:
            self.train_parts, self.test_parts = list(self.parts), group_by_client(data.test_clients, config.num_clients)
        else:
            self.train_parts, self.test_parts = client_test_parts(self.parts, config.client_test_fraction, config.data_seed_resolved)
        self._part_tensors = [torch.from_numpy(p).to(self.device) for p in self.train_parts]
        self._test_tensors = [torch.from_numpy(p).to(self.device) for p in self.test_parts]

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
        self.vector_bytes = self.num_params * flat_params(self.model).element_size()
        self.per_client = 2 if self.strategy.sends_corrections else 1  # SCAFFOLD sends control variates both ways
        self.personal = PERSONALIZATION.get(config.personalization)(config, self.model, data.info.num_classes)
        self.personal.check_memory()
        sizes = [len(p) for p in self.train_parts]
        self.availability = Availability(config, sizes, LocalSettings.from_config(config), self.vector_bytes * self.per_client)
        self.privacy = Privacy(config)  # noise, epsilon and the rounds a budget allows (clipping: in the executors)
        self.channel = Channel(config, self.num_params)  # what clients really send back

    # Describing the split -----------------------------------------------------------
    def partition_frame(self) -> pd.DataFrame:
        return counts_frame(self.label_counts)

    # The loop -----------------------------------------------------------------------
    def initial_state(self) -> ServerState:
        return self.strategy.init(flat_params(self.model))

    def run(self, state: ServerState | None = None, on_clients: ClientsDone | None = None) -> Iterator[RoundResult]:
        """Yield one result per round, from `state` (a checkpoint) or from the start; each
        carries the server state after its round. `on_clients(done, total)` hears, while a
        round trains, how many of its clients finished (throttled by the executor)."""
        state = state if state is not None else self.initial_state()
        if state.clock_s is None:  # a checkpoint from before the simulated clock: replay its rounds' durations
            state = state.evolve(clock_s=self.clock_at(state.round))
        try:
            while state.round < self.privacy.last_round:  # config.rounds, unless a privacy budget ends the run sooner
                state, result = self.step(state, on_clients)
                yield result
        finally:  # the run ended, failed or was abandoned (cancelled): release what trains it
            self.close()

    def close(self) -> None:
        """Release what the executor holds between rounds (the `ray` executor's actors); a later
        round starts them again."""
        self.executor.close()

    def clock_at(self, round_: int) -> float:
        """The simulated time at the end of `round_`: every round's duration is planned from
        (seed, round) alone, before training, so it can be summed without training."""
        total = 0.0
        for r in range(1, round_ + 1):
            online = self.availability.online(r)
            total += self.availability.plan(r, sample_clients(self.config, r, online).tolist(), online).duration_s
        return total

    def _uncompressed(self, reported: int) -> dict[str, float]:
        """With compression on, {"bytes_uncompressed": what the updates that arrived would have
        taken uncompressed}, the figure compression is measured against."""
        if self.config.compression == "none":
            return {}
        return {"bytes_uncompressed": float(reported * self.vector_bytes * self.per_client)}

    def step(self, state: ServerState, on_clients: ClientsDone | None = None) -> tuple[ServerState, RoundResult]:
        """Run round state.round + 1 and return the new state with its result."""
        start = time.perf_counter()
        round_ = state.round + 1

        # 1. sample clients from those online; plan who reports, how much each works, the clock
        online = self.availability.online(round_)
        sampled = sample_clients(self.config, round_, online).tolist()
        plan = self.availability.plan(round_, sampled, online)
        ids = [sampled[i] for i in plan.training]  # the clients whose update will arrive: they train
        flips = self.attack.flips_labels
        tasks = [ClientTask(c, self._part_tensors[c], flips and c in self.malicious, plan.max_steps(i)) for i, c in zip(plan.training, ids)]

        # 2. broadcast (SCAFFOLD also sends each client its correction)
        corrections = self.strategy.client_corrections(state, ids)

        # 3. local training (a personalized method also trains what each client keeps)
        progress = {"on_clients": on_clients} if on_clients is not None and _reports_progress(self.executor) else {}
        start_loss = self._start_loss(state, ids) if self.strategy.needs_start_loss else None
        trained, kept = (
            self.personal.train(self.executor, state, tasks, self.data, round_, corrections, progress)
            if tasks
            else (_no_training(state.params), {})
        )

        # 4. attack: malicious clients poison what they send
        deltas = trained.deltas
        bad = [i for i, c in enumerate(ids) if c in self.malicious]
        if bad and self.attack.poison is not None:
            g = seeding.torch_generator(self.config.seed, "attack_noise", round_)
            deltas = deltas.clone()
            deltas[bad] = self.attack.poison(deltas[bad], self.attack_scale, g)

        # send: local DP noise, then compression with error feedback (the residuals live in the state)
        sent = self.channel.send(self.privacy.privatize(deltas, ids, round_), ids, round_, state) if ids else Sent(deltas, 0, None)
        deltas = sent.deltas

        # 5. aggregate (a round in which fewer updates arrived than the strategy needs keeps the model)
        before = state
        aggregated = len(ids) >= self.strategy.min_updates or self.privacy.aggregates_every_round
        if aggregated:
            updates = ClientUpdates(ids, deltas, trained.num_samples, trained.num_steps, start_loss)
            state, metrics = self.privacy.aggregate(self.strategy, state, updates, round_)
        else:
            state, metrics = state.evolve(round=round_), {}
        state = self.channel.keep(state, sent).evolve(clock_s=before.clock_s + plan.duration_s)
        if self.personal.keeps:  # what each client keeps: every trained client's new entry (strategies rebuild `extra`)
            state = state.evolve(extra={**state.extra, PERSONAL: {**before.extra.get(PERSONAL, {}), **kept}})
        if not torch.isfinite(state.params).all():
            raise DivergedError(
                f"the global model diverged in round {round_} (its weights are no longer finite numbers); "
                f"lower lr={self.config.lr} or server_lr, or use a robust strategy against attack={self.config.attack!r}"
            )

        # 6. evaluate
        test_loss, test_accuracy = evaluate(self.model, state.params, self.x_test, self.y_test)
        evaluations, fair = self._evaluate_clients(state, round_)

        # 7. emit
        norms = deltas.norm(dim=1).tolist()
        extra = compute_client_metrics(ClientRound(round_, ids, deltas, trained, before.params, state.params)) if ids else {}
        row = {c: i for i, c in enumerate(ids)}  # a client's row in the training results
        clients = tuple(
            ClientResult(
                client_id=c,
                num_samples=len(self.train_parts[c]),
                num_steps=int(trained.num_steps[row[c]]) if c in row else 0,
                train_loss=float(trained.train_loss[row[c]]) if c in row else math.nan,
                train_accuracy=float(trained.train_accuracy[row[c]]) if c in row else math.nan,
                update_norm=norms[row[c]] if c in row else math.nan,
                malicious=c in self.malicious,
                status=plan.status[j],
                metrics={
                    **({name: values[row[c]] for name, values in extra.items()} if c in row else {}),
                    **client_clock(self.config, plan, j),
                    **(self.privacy.client_metrics(round_, c) if plan.status[j] != "dropped" else {}),
                },
            )
            for j, c in enumerate(sampled)
        )
        return state, RoundResult(
            round=round_,
            sampled_clients=tuple(sampled),
            clients=clients,
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            wall_time_s=time.perf_counter() - start,
            bytes_sent=len(sampled) * self.vector_bytes * self.per_client,
            bytes_received=sent.bytes + len(ids) * self.vector_bytes * (self.per_client - 1),
            metrics={
                **metrics,
                **round_summaries(extra),
                **self.privacy.round_metrics(round_),
                **self._uncompressed(len(ids)),
                **round_clock(self.config, plan, state.clock_s, aggregated),
                **fair,
            },
            offline=plan.offline,
            evaluations=evaluations,
            state=state,
        )

    def _start_loss(self, state: ServerState, ids: list[int]) -> torch.Tensor:
        """Each client's loss on its training samples with the global model, before it trains (q-FFL's F_k)."""
        x, y = self.data.tensors()
        scores = score_clients(self.model, state.params, x, y, [self._part_tensors[c] for c in ids])
        return torch.as_tensor(scores.loss, dtype=torch.float32)

    def evaluates_clients(self, round_: int) -> bool:
        """Whether every client is evaluated on its own test data after `round_`: every `eval_every`
        rounds and in the last, when clients keep test data."""
        c = self.config
        return c.client_test_fraction > 0 and (round_ % c.eval_every == 0 or round_ == self.privacy.last_round)

    def _evaluate_clients(self, state: ServerState, round_: int) -> tuple[tuple[ClientEvaluation, ...], dict[str, float]]:
        """Every client on its own test data: with the global model, and with its own where the
        method has one; and the round's fairness summaries of both."""
        if not self.evaluates_clients(round_):
            return (), {}
        x, y = (self.x_test, self.y_test) if self.natural_tests else self.data.tensors()  # where the clients' test rows are
        shared = score_clients(self.model, state.params, x, y, self._test_tensors)
        everyone = [ClientTask(c, t) for c, t in enumerate(self._part_tensors)]
        models = self.personal.models(state, everyone, self.data, round_)
        own = score_own_models(self.model, models, x, y, self._test_tensors) if models is not None else None
        nan = math.nan
        evaluations = tuple(
            ClientEvaluation(
                client_id=c,
                test_samples=len(self.test_parts[c]),
                test_loss=float(shared.loss[c]),
                test_accuracy=float(shared.accuracy[c]),
                personal_loss=float(own.loss[c]) if own is not None else nan,
                personal_accuracy=float(own.accuracy[c]) if own is not None else nan,
            )
            for c in range(self.config.num_clients)
        )
        threshold = self.config.fairness_threshold
        summaries = fairness(shared.accuracy, threshold, FAIRNESS_PREFIXES["global"])
        if own is not None:
            summaries |= fairness(own.accuracy, threshold, FAIRNESS_PREFIXES["personal"])
        return evaluations, summaries


def _reports_progress(executor) -> bool:
    """Whether `executor.train` takes `on_clients` (an executor registered before progress
    existed does not, and trains without reporting it)."""
    params = inspect.signature(executor.train).parameters
    return "on_clients" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _no_training(params: torch.Tensor) -> TrainedClients:
    """The training results of a round in which no client trains."""
    empty = torch.zeros(0)
    return TrainedClients(params.new_zeros((0, params.numel())), empty, empty, empty, empty)
