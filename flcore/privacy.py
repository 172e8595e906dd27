"""Differential privacy: clipped updates, Gaussian noise, and epsilon from a real accountant.

`dp="central"` is DP-FedAvg (McMahan et al. 2018, "Learning differentially private recurrent
language models"): every sampled client clips its update to L2 norm `dp_clip` (in the local
update path both executors share, `training/objective.py`), and the server replaces the
strategy's combining rule by

    delta = (sum_i clip(u_i) + N(0, (dp_noise_multiplier * dp_clip)^2 I)) / m

over the m sampled clients, then takes the strategy's own server step (FedAvgM, FedAdam, ... are
post-processing of that noised mean). Choices, with the paper's options: every client weighs the
same (w_k = 1; sample-weighted averaging would let one client's share exceed dp_clip), and the
denominator m is the configured clients per round, fixed before any data is seen. The server
clips what it receives once more: an honest update passes unchanged, but an attacker, a
quantized update or error feedback can make what arrives longer than dp_clip, and the noise
only covers dp_clip. Strategies that combine updates otherwise (median, trimmed mean, Krum,
SCAFFOLD's control variates) have no such noised sum and are refused with dp="central".
`dp="local"`: each client adds the same noise to its own clipped update before it leaves, so
any strategy's aggregation is post-processing.

Accounting: epsilon at `dp_delta` after each round is Opacus's Renyi-DP analysis of the sampled
Gaussian mechanism (Mironov 2017; Mironov, Talwar and Zhang 2019, as `opacus.accountants
.RDPAccountant` computes it), a pure function of the rounds done, so a resumed run needs no
accountant state. Central DP is user-level DP for the server's releases with sampling rate
clients_per_round / num_clients (the analysis assumes Poisson sampling; the simulator samples a
fixed number without replacement, the usual approximation); when clients are online only some
of the time, the rate is a bound on the most available client's chance to be sampled
(`inclusion_bound`); dropouts and stragglers only remove updates, which spends no more. Local
DP is counted against the server, which knows who sent what, so sampling amplifies nothing:
rate 1 over every round so far, a bound for each client (one that sat rounds out spent less). `dp_target_epsilon` ends the
run before the first round that would spend more than the budget; since epsilon depends only on
the round count, that round is known before the run starts.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from flcore import seeding
from flcore.availability import online_probabilities
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


def dp_fedavg_mean(updates: torch.Tensor, clip: float, noise_std: float, generator: torch.Generator) -> torch.Tensor:
    """DP-FedAvg's estimate (McMahan et al. 2018, w_k = 1): (sum of the rows clipped to `clip`
    + N(0, noise_std^2 I)) / number of rows."""
    total = clip_rows_(updates.clone(), clip).sum(0)
    return (total + gaussian(total.numel(), noise_std, generator, total)) / updates.shape[0]


# Accounting (Opacus) ------------------------------------------------------------------------
def sample_rate(config: "ExperimentConfig") -> float:
    """The rate the accountant amplifies by: 1 for local DP (the server knows who took part); for
    central DP, clients_per_round / num_clients, or, when clients are not always online, a bound
    on any client's chance to be sampled in a round (`inclusion_bound`)."""
    if config.dp == "local":
        return 1.0
    k, n = config.clients_per_round_resolved, config.num_clients
    online = online_probabilities(config)
    if online is None:
        return k / n
    return inclusion_bound(float(online.min()), float(online.max()), n, k)


@functools.lru_cache(maxsize=64)
def inclusion_bound(p_min: float, p_max: float, num_clients: int, per_round: int) -> float:
    """An upper bound on any client's chance to be sampled in a round when client c is online
    with probability p_c in [p_min, p_max] and `per_round` clients are drawn from those online
    (all of them when fewer are): p_c * E[min(1, per_round / (1 + X))] with X the other clients
    online. That expectation falls as X grows, and X is at least Binomial(num_clients - 1,
    p_min) in distribution, so p_max times it at that binomial bounds every client; with one
    probability for all (uniform availability) it is the exact rate. A client more available than
    the mean is sampled more often than per_round / num_clients, and its epsilon is what counts."""
    others = np.arange(num_clients)
    log_pmf = np.array([math.lgamma(num_clients) - math.lgamma(x + 1) - math.lgamma(num_clients - x) for x in others])
    if 0 < p_min < 1:
        log_pmf += others * math.log(p_min) + (num_clients - 1 - others) * math.log1p(-p_min)
        pmf = np.exp(log_pmf)
    else:  # nobody else online (p_min = 0) or everybody (p_min = 1)
        pmf = (others == (0 if p_min <= 0 else num_clients - 1)).astype(np.float64)
    return min(1.0, p_max * float((pmf * np.minimum(1.0, per_round / (1 + others))).sum()))


@functools.lru_cache(maxsize=256)
def _rdp_of_one_round(noise_multiplier: float, rate: float) -> np.ndarray:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp

    return rdp.compute_rdp(q=rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS)


def epsilon(noise_multiplier: float, rate: float, rounds: int, delta: float) -> float:
    """Epsilon at `delta` after `rounds` rounds of the sampled Gaussian mechanism, as Opacus's
    `RDPAccountant` gives it after `rounds` calls of step(noise_multiplier, rate) (its RDP of one
    round is cached; `rounds` of them compose by multiplying it, as Opacus does). Infinite
    without noise."""
    if rounds <= 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp

    with warnings.catch_warnings():  # "optimal order is the smallest/largest alpha": a looser bound, still a bound
        warnings.simplefilter("ignore")
        eps, _ = rdp.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=_rdp_of_one_round(noise_multiplier, rate) * rounds, delta=delta
        )
    return float(eps)


def config_epsilon(config: "ExperimentConfig", rounds: int) -> float:
    return epsilon(config.dp_noise_multiplier, sample_rate(config), rounds, config.dp_delta)


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
    """Whether DP-FedAvg's noised mean can stand in for the strategy's combining rule: it must
    combine and aggregate as FedAvg does (its server step may differ)."""
    from flcore.strategies.base import Strategy

    return strategy_cls.combine is Strategy.combine and strategy_cls.aggregate is Strategy.aggregate


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
        return strategy.apply(state, dp_fedavg_mean(updates.deltas, self.config.dp_clip, self.noise_std, g), {})

    def round_metrics(self, round_: int) -> dict[str, float]:
        """{"epsilon": spent after `round_`} with DP on; nothing without."""
        if self.noise_at is None:
            return {}
        return {"epsilon": epsilon(self.config.dp_noise_multiplier, self.rate, round_, self.config.dp_delta)}
