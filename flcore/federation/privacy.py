"""Differential privacy: clipped updates, Gaussian noise, and epsilon from a real accountant.

`dp="central"` is DP-FedAvg (McMahan et al. 2018, "Learning differentially private recurrent
language models"): every sampled client clips its update to L2 norm `dp_clip` (in the local
update path both executors share, `training/objective.py`), and the server replaces the
strategy's combining rule by

    delta = (sum_i clip(u_i) + N(0, (dp_noise_multiplier * dp_clip)^2 I)) / D

over the clients whose update arrived, then takes the strategy's own server step (FedAvgM,
FedAdam, ... are post-processing of that noised mean). Choices, with the paper's options:
clients join a round by Poisson sampling (each online client independently with probability
q = clients_per_round / num_clients, `availability.sample_clients`), every client weighs the
same (w_k = 1; sample-weighted averaging would let one client's share exceed dp_clip), and the
denominator D is fixed before any data is seen: the expected number of updates in the sum
(`expected_updates`: clients_per_round when every client is always online and none drops out).
The noised sum is released every round, even one in which no client took part. The server
clips what it receives once more: an honest update passes unchanged, but an attacker, a
quantized update or error feedback can make what arrives longer than dp_clip, and the noise
only covers dp_clip. Strategies that combine updates otherwise (median, trimmed mean, Krum,
SCAFFOLD's control variates) have no such noised sum and are refused with dp="central".
`dp="local"`: each client adds the same noise to its own clipped update before it leaves, so
any strategy's aggregation is post-processing.

Accounting: epsilon at `dp_delta` is Opacus's Renyi-DP analysis of the sampled Gaussian
mechanism (Mironov 2017; Mironov, Talwar and Zhang 2019, as `opacus.accountants.RDPAccountant`
computes it), a pure function of the config and the round, so a resumed run needs no
accountant state.

- Central DP is user-level DP (add or remove one client's data) for what the server releases.
  The accountant's Poisson analysis is exactly the sampling simulated: a client is in a round's
  sum when it is online (p_c), joins (q) and does not drop out (1 - dropout), independent events,
  so its rate is q p_c (1 - dropout); the epsilon reported is the most exposed client's
  (`inclusion_probabilities`). A straggler the server does not wait for only removes an update.
- Local DP is the usual local definition (any two inputs of one client), so the sensitivity of
  a clipped update is 2 dp_clip, and it is counted against the server, which knows who sent
  what: no amplification, the Gaussian mechanism composed over the rounds in which the client
  sent an update (sampled and not dropped out). Each client's epsilon is recorded with its
  round, and the round's epsilon is the worst client's.

`dp_target_epsilon` ends the run before the first round that would spend more than the budget;
since epsilon depends only on the config and the round, that round is known before the run
starts.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from flcore import seeding
from flcore.federation.availability import dropped_out, online_clients, online_probabilities, sample_clients
from flcore.problems import Problem
from flcore.registry import Registry
from flcore.training.objective import clip_rows_

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.strategies.base import ClientUpdates, ServerState, Strategy


@dataclass(frozen=True)
class Mechanism:
    noise_at: str | None  # "server" (central), "client" (local) or None (no privacy)


PRIVACY: Registry[Mechanism] = Registry("privacy mechanism")
DP_FIELDS = ("dp_clip", "dp_noise_multiplier", "dp_delta", "dp_target_epsilon")
# The smallest noise multiplier other than 0 (no noise): Opacus's RDP analysis divides by its
# square, which for 1e-300 is 0 (a ZeroDivisionError); at 1e-6 (5e-7 for local DP, which halves
# it) epsilon is still finite (about 1e16 after 10,000 rounds) at any sampling rate.
MIN_NOISE_MULTIPLIER = 1e-6

PRIVACY.register("none", label="No differential privacy", description="Updates are sent and averaged as they are.")(Mechanism(None))
PRIVACY.register(
    "central",
    label="Central DP (DP-FedAvg)",
    description="Clients clip their updates; the server adds Gaussian noise to their sum before averaging (McMahan et al. 2018).",
    params=DP_FIELDS,
)(Mechanism("server"))
PRIVACY.register(
    "local",
    label="Local DP",
    description="Each client clips its update and adds the Gaussian noise itself, so not even the server sees it in the clear.",
    params=DP_FIELDS,
)(Mechanism("client"))


# Noise (pure tensor functions; clipping is `training.objective.clip_rows_`) -----------------
def gaussian(size: int, std: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """N(0, std^2) noise of `size` values, drawn on the CPU from `generator` (so CPU and GPU runs
    draw the same numbers), on the device and dtype of `like`."""
    return (std * torch.randn(size, generator=generator, dtype=torch.float32)).to(like)


def dp_fedavg_mean(updates: torch.Tensor, clip: float, noise_std: float, generator: torch.Generator, denominator: float) -> torch.Tensor:
    """DP-FedAvg's fixed-denominator estimate (McMahan et al. 2018, w_k = 1): (sum of the rows
    clipped to `clip` + N(0, noise_std^2 I)) / `denominator`, the expected number of rows, fixed in
    advance (dividing by the rows that arrived would make the scale depend on who took part)."""
    total = clip_rows_(updates.clone(), clip).sum(0)
    return (total + gaussian(total.numel(), noise_std, generator, total)) / denominator


# Accounting (Opacus) ------------------------------------------------------------------------
LOCAL_SENSITIVITY = 2.0  # local DP: two inputs of one client give updates up to 2 * dp_clip apart


def inclusion_probabilities(config: "ExperimentConfig") -> np.ndarray:
    """Each client's probability of having its update in a round's noised sum under central DP:
    online (p_c), joined (Poisson, q = clients_per_round / num_clients) and not dropped out
    (1 - dropout), three independent events, so q * p_c * (1 - dropout) exactly. A straggler the
    server does not wait for only removes an update, which spends no more."""
    q = config.clients_per_round_resolved / config.num_clients
    online = online_probabilities(config)
    p = np.ones(config.num_clients) if online is None else online
    return q * p * (1.0 - config.dropout)


def sample_rate(config: "ExperimentConfig") -> float:
    """The rate central DP's accountant amplifies by: the most exposed client's inclusion
    probability (`inclusion_probabilities`); a client more available than the others is sampled
    more often, and its epsilon is what counts. 1 for local DP (the server knows who sent)."""
    if config.dp == "local":
        return 1.0
    return float(inclusion_probabilities(config).max())


def expected_updates(config: "ExperimentConfig") -> float:
    """DP-FedAvg's fixed denominator: the expected number of updates in a round's sum (the sum of
    the inclusion probabilities; clients_per_round when every client is always online and none
    drops out), fixed before any data is seen, as the accountant's analysis requires."""
    return math.fsum(inclusion_probabilities(config))


@functools.lru_cache(maxsize=256)
def _rdp_of_one_round(noise_multiplier: float, rate: float) -> np.ndarray:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp

    return rdp.compute_rdp(q=rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS)


def epsilon(*, noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """Epsilon at `delta` after `rounds` rounds of the sampled Gaussian mechanism, as Opacus's
    `RDPAccountant` gives it after `rounds` calls of step(noise_multiplier=..., sample_rate=...)
    (its RDP of one round is cached; `rounds` of them compose by multiplying it, as Opacus does).
    Infinite without noise."""
    if rounds <= 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp

    with warnings.catch_warnings():  # "optimal order is the smallest/largest alpha": a looser bound, still a bound
        warnings.simplefilter("ignore")
        eps, _ = rdp.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=_rdp_of_one_round(noise_multiplier, sample_rate) * rounds, delta=delta
        )
    return float(eps)


def local_epsilon(config: "ExperimentConfig", rounds_sent: int) -> float:
    """Local DP's epsilon of a client that sent `rounds_sent` noised updates: the Gaussian
    mechanism with sensitivity 2 * dp_clip (any two inputs of the client), i.e. noise multiplier
    dp_noise_multiplier / 2, composed over those rounds, with no amplification."""
    return epsilon(
        noise_multiplier=config.dp_noise_multiplier / LOCAL_SENSITIVITY, sample_rate=1.0, rounds=rounds_sent, delta=config.dp_delta
    )


def senders(config: "ExperimentConfig", round_: int) -> np.ndarray:
    """The clients whose update leaves them in `round_`: sampled and not dropped out (a
    straggler the server does not wait for still sends, late). A function of (seed, round)."""

    sampled = sample_clients(config, round_, online_clients(config, online_probabilities(config), round_))
    return sampled[~dropped_out(config, round_, sampled)]


class Participation:
    """How many rounds each client has sent an update in, advanced round by round (local DP's
    per-client count); asked for an earlier round it counts again from the start."""

    def __init__(self, config: "ExperimentConfig") -> None:
        self.config = config
        self.round = 0
        self.counts = np.zeros(config.num_clients, dtype=np.int64)

    def at(self, round_: int) -> np.ndarray:
        if round_ < self.round:
            self.round, self.counts = 0, np.zeros_like(self.counts)
        while self.round < round_:
            self.round += 1
            self.counts[senders(self.config, self.round)] += 1
        return self.counts


@functools.lru_cache(maxsize=32)
def _most_rounds_sent(config: "ExperimentConfig") -> tuple[int, ...]:
    """After each round 0..config.rounds, the most rounds any one client has sent an update in."""
    tally, most = Participation(config), [0]
    for r in range(1, config.rounds + 1):
        most.append(int(tally.at(r).max()))
    return tuple(most)


def config_epsilon(config: "ExperimentConfig", rounds: int) -> float:
    """The epsilon a run reports after `rounds` rounds: central DP's user-level epsilon, or local
    DP's epsilon of the client that has sent the most updates."""
    if config.dp == "local":
        return local_epsilon(config, _most_rounds_sent(config)[min(rounds, config.rounds)])
    return epsilon(noise_multiplier=config.dp_noise_multiplier, sample_rate=sample_rate(config), rounds=rounds, delta=config.dp_delta)


EPSILON_KINDS = {"central": "central (user-level)", "local": "local (worst client)"}


def epsilon_label(config: "ExperimentConfig") -> str:
    """What a run's epsilon means, in a few words: 'central (user-level) epsilon at delta = 1e-05'."""
    return f"{EPSILON_KINDS.get(config.dp, config.dp)} epsilon at delta = {config.dp_delta:g}"


def label_epsilon_columns(config: "ExperimentConfig", rounds: pd.DataFrame) -> pd.DataFrame:
    """A rounds table with the kind and the delta of its epsilon next to it (for CSV files)."""
    if "epsilon" not in rounds or config.dp == "none":
        return rounds
    out = rounds.copy()
    at = out.columns.get_loc("epsilon") + 1
    out.insert(at, "epsilon_delta", config.dp_delta)
    out.insert(at, "epsilon_kind", EPSILON_KINDS.get(config.dp, config.dp))
    return out


def affordable_rounds(config: "ExperimentConfig") -> int:
    """How many of the configured rounds fit in dp_target_epsilon (all of them without one)."""
    if config.dp == "none" or config.dp_target_epsilon is None:
        return config.rounds
    target = config.dp_target_epsilon
    low, high = 0, config.rounds  # epsilon grows with the rounds: the last round within budget
    while low < high:
        mid = (low + high + 1) // 2
        if config_epsilon(config, mid) <= target:
            low = mid
        else:
            high = mid - 1
    return low


def budget_message(config: "ExperimentConfig", rounds: int) -> str | None:
    """Why a run with a privacy budget stops after `rounds` of its rounds; None when it runs them all."""
    if rounds >= config.rounds:
        return None
    return (
        f"The privacy budget dp_target_epsilon={config.dp_target_epsilon:g} allows {rounds} of the {config.rounds} rounds: "
        f"epsilon is {config_epsilon(config, rounds):.3g} after round {rounds} and would be "
        f"{config_epsilon(config, rounds + 1):.3g} after round {rounds + 1} (dp_delta={config.dp_delta:g}), "
        f"so the run stopped after round {rounds}."
    )


# Checking a config ---------------------------------------------------------------------------
def supports_central(strategy_cls: type) -> bool:
    """Whether DP-FedAvg's noised mean can stand in for the strategy's combining rule: the
    strategy declares that it `averages` (its server step may differ)."""
    return strategy_cls.averages


def config_problems(c: "ExperimentConfig") -> list[Problem]:
    """(field, sentence) pairs for privacy settings that cannot work; the dp_* fields are read
    only when dp is not 'none'."""
    from flcore.strategies import STRATEGIES

    if c.dp == "none" or c.dp not in PRIVACY:
        return []
    problems = []
    if c.dp == "central" and c.strategy in STRATEGIES and not supports_central(STRATEGIES.get(c.strategy)):
        means = ", ".join(n for n in STRATEGIES.names() if supports_central(STRATEGIES.get(n)))
        problems.append(
            Problem(
                "dp",
                f"dp='central' (DP-FedAvg) adds its noise to the plain mean of the clipped updates, which strategy={c.strategy!r} "
                f"does not take; choose a strategy that averages ({means}) or dp='local'",
            )
        )
    if 0 < c.dp_noise_multiplier < MIN_NOISE_MULTIPLIER:
        problems.append(
            Problem(
                "dp_noise_multiplier",
                f"dp_noise_multiplier={c.dp_noise_multiplier:g} is too small to account for: give 0 (no noise) or at least "
                f"{MIN_NOISE_MULTIPLIER:g}",
            )
        )
        return problems
    target = c.dp_target_epsilon
    if target is not None and c.dp_noise_multiplier == 0:
        problems.append(
            Problem(
                "dp_target_epsilon",
                f"dp_target_epsilon={target:g} cannot be kept with dp_noise_multiplier=0: without noise epsilon is infinite; "
                "raise dp_noise_multiplier or clear dp_target_epsilon",
            )
        )
    elif target is not None and (first := config_epsilon(c, 1)) > target:
        problems.append(
            Problem(
                "dp_target_epsilon",
                f"dp_target_epsilon={target:g} is spent by the first round already (epsilon {first:.3g} after one round at "
                f"dp_delta={c.dp_delta:g}); raise dp_target_epsilon or dp_noise_multiplier",
            )
        )
    return problems


# In the round loop ---------------------------------------------------------------------------
class Privacy:
    """A run's privacy: the local noise, the central aggregation, epsilon, and the last round the
    budget allows. With dp='none' every method hands its input back unchanged."""

    def __init__(self, config: "ExperimentConfig") -> None:
        self.config = config
        self.noise_at = PRIVACY.get(config.dp).noise_at
        self.noise_std = config.dp_noise_multiplier * config.dp_clip
        self.rate = sample_rate(config) if self.noise_at is not None else None  # once, not every round
        self.denominator = expected_updates(config) if self.noise_at == "server" else None
        self.participation = Participation(config) if self.noise_at == "client" else None
        self.last_round = affordable_rounds(config)
        self.stop_message = budget_message(config, self.last_round)

    def privatize(self, deltas: torch.Tensor, client_ids: list[int], round_: int) -> torch.Tensor:
        """Local DP: each client's update plus its own N(0, noise_std^2 I), drawn from
        (seed, round, client)."""
        if self.noise_at != "client":
            return deltas
        g = lambda c: seeding.torch_generator(self.config.seed, "dp_local", round_, c)
        noise = torch.stack([gaussian(deltas.shape[1], self.noise_std, g(c), deltas) for c in client_ids])
        return deltas + noise

    def aggregate(
        self, strategy: "Strategy", state: "ServerState", updates: "ClientUpdates", round_: int
    ) -> tuple["ServerState", dict[str, float]]:
        """The strategy's aggregation; with central DP, DP-FedAvg's noised mean (noise from
        (seed, round)) followed by the strategy's server step."""
        if self.noise_at != "server":
            return strategy.aggregate(state, updates)
        g = seeding.torch_generator(self.config.seed, "dp_central", round_)
        return strategy.apply(state, dp_fedavg_mean(updates.deltas, self.config.dp_clip, self.noise_std, g, self.denominator), {})

    @property
    def aggregates_every_round(self) -> bool:
        """Central DP releases its noised sum every round, even one with no update in it: whether
        a round had any must not show in what the server releases."""
        return self.noise_at == "server"

    def round_metrics(self, round_: int) -> dict[str, float]:
        """{"epsilon": spent after `round_`} with DP on (central: user-level; local: the client that
        has sent the most updates so far); nothing without."""
        if self.noise_at is None:
            return {}
        if self.noise_at == "client":
            return {"epsilon": local_epsilon(self.config, int(self.participation.at(round_).max()))}
        return {
            "epsilon": epsilon(
                noise_multiplier=self.config.dp_noise_multiplier, sample_rate=self.rate, rounds=round_, delta=self.config.dp_delta
            )
        }

    def client_metrics(self, round_: int, client: int) -> dict[str, float]:
        """Local DP: {"epsilon": what `client` has spent after `round_`}; nothing otherwise."""
        if self.noise_at != "client":
            return {}
        return {"epsilon": local_epsilon(self.config, int(self.participation.at(round_)[client]))}
