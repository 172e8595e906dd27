"""Fair shares of a shared server: per-person limits, one run's size, and who goes next.

A person may have at most `max_queued` runs queued or running, of which at most `max_running`
train at the same time, and one run may ask for at most `max_client_updates` client updates
(rounds x clients per round; 5,000 clients for 10,000 rounds would be 50 million, about 40 hours
and 2 GB of store on 2 cores). The limits are server settings (`flcore.settings`). A refused
submission gets one sentence per limit it breaks, naming the limit and what to change. When a
worker is free, the queue takes people in turn (`next_runs`): the person with the fewest runs
training goes first; among equals, the one whose runs trained least recently (never, before
anyone who has), and then the one whose oldest run has waited longest. So with one worker and
alice's three runs queued before bob's one, they start alice, bob, alice, alice: one person's
twenty runs never keep everyone else waiting. The admission check (`admission_problems`) is one
function, used by the New run page and by the runner's submit and resume alike; the runner counts
a person's runs in the same transaction that queues theirs, so runs submitted or resumed at the
same moment never pass the limit together.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flcore.auth import User
from flcore.problems import ConfigError, Problem

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings
    from flcore.store import RunStore


class QuotaError(ConfigError, PermissionError):
    """A submission or resume over one of the server's limits; `problems` say which and what to
    change. It is a PermissionError too: an action the server does not permit now, so a page
    that reports refused actions (cancel, resume, delete) shows its sentence."""


def run_size_problems(config: ExperimentConfig, settings: Settings) -> list[Problem]:
    work = config.rounds * config.clients_per_round_resolved
    if work <= settings.max_client_updates:
        return []
    return [
        Problem(
            "rounds",
            f"this run asks for {work:,} client updates (rounds={config.rounds} x clients_per_round="
            f"{config.clients_per_round_resolved}); one run may ask for at most {settings.max_client_updates:,} on this "
            "server: lower rounds or the clients per round",
        )
    ]


TRAIN_PASSES = 3  # a training step (forward and backward) costs about three forward passes
STEP_FLOP = 1_000_000  # a mini-batch step's fixed cost (optimizer, Python, small kernels): ~50 us at 20 GFLOP/s
FLOP_PER_S = 20e9  # what one worker thread trains at (an MLP or CNN on digits, measured), to say a cost in hours


@dataclass(frozen=True)
class RunCost:
    """What a run will compute, estimated from its workload before it is queued."""

    train_samples: int  # the dataset's training samples (split over num_clients)
    forward_flop: int  # one sample's forward pass through the model
    parameters: int
    samples_trained: float  # rounds x clients per round x local epochs x mean training samples per client (x2: Ditto, FedRep)
    steps: float  # mini-batch steps, each with a fixed cost as well
    flop: float  # training (TRAIN_PASSES forward passes a sample), evaluation every round (and of every client), and STEP_FLOP a step

    @property
    def tflop(self) -> float:
        return self.flop / 1e12

    @property
    def hours(self) -> float:
        return self.flop / FLOP_PER_S / 3600


def run_cost(config: ExperimentConfig, settings: Settings) -> RunCost | None:
    """The compute `config` asks for; None when its data is not on this server yet (it is
    downloaded when the run starts) or cannot be read (the run's own check says why)."""
    sizes = _dataset_sizes(config, settings)
    if sizes is None:
        return None
    train, test, shape, classes, vocab = sizes
    forward, parameters = _forward_flop(config.model, shape, classes, vocab)
    held = train * config.client_test_fraction  # the clients' own test samples, out of training
    per_client = (train - held) / config.num_clients
    trains = 2 if config.personalization in TRAINS_TWICE else 1  # Ditto's own model, FedRep's head then body
    passes = config.rounds * config.clients_per_round_resolved * config.local_epochs * trains  # a client's pass over its samples
    samples = passes * per_client
    steps = passes * math.ceil(per_client / config.batch_size)
    # every client on its own test data, each evaluation round, with the global model and its own
    evaluations = math.ceil(config.rounds / config.eval_every) if held else 0
    own = config.personalization != "none"
    tuned = evaluations * config.num_clients * config.finetune_steps if config.personalization == "finetune" else 0  # FedAvg+FT's steps
    samples += tuned * config.batch_size
    steps += tuned
    evaluated = forward * held * evaluations * (2 if own else 1)
    flop = TRAIN_PASSES * forward * samples + forward * test * config.rounds + evaluated + STEP_FLOP * steps
    return RunCost(train, forward, parameters, samples, steps, flop)


TRAINS_TWICE = ("ditto", "fedrep")  # personalized methods whose clients train two models, or two phases, a round


def run_cost_problems(config: ExperimentConfig, settings: Settings) -> list[Problem]:
    cost = run_cost(config, settings)
    if cost is None or cost.tflop <= settings.max_run_tflop:
        return []
    return [
        Problem(
            "rounds",
            f"this run would compute about {cost.tflop:,.0f} TFLOP, about {_duration(cost.hours)} of one core "
            f"(rounds={config.rounds} x clients_per_round={config.clients_per_round_resolved} x local_epochs="
            f"{config.local_epochs} x about {cost.train_samples / config.num_clients:,.0f} "
            f"samples a client, through {cost.parameters:,} parameters of model={config.model!r}); one run may compute at most "
            f"{settings.max_run_tflop:,} TFLOP on this server (FLCORE_MAX_RUN_TFLOP): lower rounds, the clients per round or "
            "local_epochs, or choose a smaller model",
        )
    ]


def _duration(hours: float) -> str:
    return f"{hours:,.0f} hours" if hours < 72 else f"{hours / 24:,.0f} days"


_SIZES: dict[str, tuple[int, int, tuple[int, ...], int, int] | None] = {}


def _dataset_sizes(config: ExperimentConfig, settings: Settings) -> tuple[int, int, tuple[int, ...], int, int] | None:
    """(training samples, test samples, input shape, classes, vocabulary) of the data `config`
    reads, loaded once per process and data folder; None when it is not here or cannot be read."""
    import json

    from flcore.data.datasets import DataFileError, DatasetUnavailable, availability, dataset_fields, load_dataset

    if availability(config.dataset, settings) != "present":  # reading it would download it
        return None
    fields = {f: getattr(config, f) for f in dataset_fields(config)}
    key = json.dumps([str(settings.data_dir), settings.max_decoded_mb, fields], sort_keys=True, default=str)
    if key not in _SIZES:
        try:
            data = load_dataset(config, settings)
        except (DataFileError, DatasetUnavailable, OSError, ValueError):
            return None  # not cached: the file may be fixed, or arrive
        info = data.info
        _SIZES[key] = (len(data.y_train), len(data.y_test), tuple(info.input_shape), info.num_classes, info.vocab_size)
    return _SIZES[key]


@functools.lru_cache(maxsize=64)
def _forward_flop(model: str, shape: tuple[int, ...], classes: int, vocab: int) -> tuple[int, int]:
    """(operations of one sample's forward pass, parameters) of `model`, counted by running it
    once on zeros (oneDNN off, so an LSTM's steps are counted too); at least two a parameter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from flcore.models import build_model

    net = build_model(model, shape, classes, vocab)
    parameters = sum(p.numel() for p in net.parameters())
    x = torch.zeros((1, *shape), dtype=torch.long if vocab else torch.float32)
    with warnings.catch_warnings():  # switching oneDNN warns about TF32 on Intel GPUs
        warnings.simplefilter("ignore")
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter:
            net(x)
    return max(int(counter.get_total_flops()), 2 * parameters), parameters


def run_problems(config: ExperimentConfig, settings: Settings, user: User | None = None) -> list[Problem]:
    """Why this server refuses `config` of `user` itself, however full the queue: its size, and
    whether its data may be read here by them (someone else's upload only by an admin; None:
    the server itself)."""
    from flcore.data import uploads
    from flcore.data.datasets import AVAILABILITY, DATASETS, availability

    if config.dataset not in DATASETS:  # a stored run whose dataset this server no longer has
        return [
            Problem("dataset", f"dataset={config.dataset!r} is not a dataset of this server; choose one of: {', '.join(DATASETS.names())}")
        ]
    problems = run_size_problems(config, settings)
    if config.dataset == "file" and (bad := uploads.problem(config.data_file, settings, user)):
        problems.append(bad)  # a server reads only files uploaded to it, never a path someone typed
    if availability(config.dataset, settings) == "missing":
        problems.append(Problem("dataset", f"{DATASETS.entry(config.dataset).label} is {AVAILABILITY['missing']}; choose another dataset"))
    if not problems:  # a run already refused is not read to estimate its cost
        problems += run_cost_problems(config, settings)
    return problems


def queue_problems(active: int, settings: Settings) -> list[Problem]:
    """Why one more run may not be queued by a person who has `active` runs queued or running."""
    if active < settings.max_queued:
        return []
    return [
        Problem(
            None,
            f"you have {active} run{'s' if active != 1 else ''} queued or running, the most one person may have on this server "
            f"({settings.max_queued}): wait for one to finish, or cancel one",
        )
    ]


def admission_problems(store: RunStore, config: ExperimentConfig, owner: User | str | None, settings: Settings) -> list[Problem]:
    """Why `owner` may not queue `config` on this server now (empty: they may). The one check
    behind the New run page, `Runner.submit` and `Runner.resume`, so each refuses the same
    things in the same sentences; the runner makes it with `admission`, which counts the
    owner's runs inside the transaction that queues the run. A name alone is an admin when the
    server's `admins` setting names it."""
    user = User(owner, admin=owner in settings.admins) if isinstance(owner, str) else owner
    queued, running = store.active_by_owner().get(user.name if user else None, (0, 0))
    return run_problems(config, settings, user) + queue_problems(queued + running, settings)


submission_problems = admission_problems  # its name from before resumes were checked too


def admission(config: ExperimentConfig, settings: Settings, user: User | None = None) -> Callable[[int], None]:
    """`admission_problems` in two halves, for `RunStore.create_run(admit=...)` and
    `RunStore.resume(admit=...)`: the config's own problems now (they may read the data, which
    must not happen while the store is locked), the queue's when the store calls back with the
    owner's count inside its write transaction. The callback raises QuotaError to refuse."""
    problems = run_problems(config, settings, user)

    def admit(active: int) -> None:
        found = problems + queue_problems(active, settings)
        if found:
            raise QuotaError(found)

    return admit


def next_runs(store: RunStore, free: int, settings: Settings) -> list[str]:
    """Up to `free` queued run ids to start now, people in turn (see the module docstring)."""
    running = {owner: r for owner, (_, r) in store.active_by_owner().items()}
    last = store.last_trained()  # owner -> when a run of theirs last trained
    waiting: dict[str | None, list[str]] = {}
    for run_id, owner in store.queue():  # oldest first
        waiting.setdefault(owner, []).append(run_id)
    order = list(waiting)  # owners by their oldest queued run
    chosen: list[str] = []
    while len(chosen) < free:
        candidates = [o for o in order if waiting[o] and running.get(o, 0) < settings.max_running]
        if not candidates:
            break
        owner = min(candidates, key=lambda o: (running.get(o, 0), last.get(o, -math.inf), order.index(o)))
        chosen.append(waiting[owner].pop(0))
        running[owner] = running.get(owner, 0) + 1
        last[owner] = math.inf  # their turn is now
    return chosen
