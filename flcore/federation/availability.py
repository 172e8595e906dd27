"""Clients that come and go: who is online, who is sampled, who fails to report, who straggles.

Real federations are uneven (Bonawitz et al. 2019; Li et al. 2020, FedProx): a device is online
only some of the time, a sampled device may fail before its update arrives, and slow devices get
through less work than the others in the time a round takes. `Availability` decides all of it
for a round before anything trains, from the config, the round and the clients' sizes, through
named random streams indexed by round (and client), so runs stay deterministic and resume to
the same numbers, whichever executor trains them:

- online: client c is online in a round with probability p_c: `availability` for every client
  ('uniform'), or ('heterogeneous') its own p_c ~ Beta(k a, k (1 - a)), drawn once, mean a =
  `availability`, concentration k = HETEROGENEITY. The sampler draws `clients_per_round` clients
  from those online, or takes all of them when fewer are online (the round says how many).
- dropout: each sampled client fails to report with probability `dropout` ("dropped"). It does
  not train: nothing it did could reach the server.
- stragglers: a `stragglers` fraction of the sampled clients is slow this round: each gets
  through k of its K local steps, k uniform in 1..K-1 (below the full count, as FedProx's code
  draws its stragglers' work), in the time its K steps would take. With straggler_policy
  'partial' it sends those k steps ("partial": the paper's variable amounts of work); with
  'drop' the server does not wait for it ("late": FedAvg's behaviour in the paper; all K steps
  would take it K / k times as long).
- deadline: a client whose compute plus upload time (`flcore.federation.clock`) passes `round_deadline_s`
  is "late" too. No late update is used, so late clients do not train.

A round records each sampled client's status, steps and simulated times, and, in a bounded form
(`records.Offline`), which clients were offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flcore import seeding
from flcore.federation import clock
from flcore.federation.clock import Devices, devices, round_duration
from flcore.records import REPORTED, Offline, RoundResult
from flcore.training.local import local_steps, samples_in_steps

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.training.objective import LocalSettings

HETEROGENEITY = 4.0  # Beta concentration of heterogeneous availability: p_c spreads widely around the mean
OFFLINE_GROUPS = 200  # a round stores at most this many offline counts, whatever the number of clients


def uneven(config: ExperimentConfig) -> bool:
    """Whether clients can be offline, drop out, straggle or miss a deadline in this run."""
    return config.availability < 1 or config.dropout > 0 or config.stragglers > 0 or config.round_deadline_s is not None


def online_probabilities(config: ExperimentConfig) -> np.ndarray | None:
    """Each client's probability of being online in a round; None when every client always is."""
    a = config.availability
    if a >= 1:
        return None
    if config.availability_model == "uniform":
        return np.full(config.num_clients, a)
    rng = seeding.rng(config.seed, "availability")
    return rng.beta(HETEROGENEITY * a, HETEROGENEITY * (1 - a), config.num_clients)


def online_clients(config: ExperimentConfig, probabilities: np.ndarray | None, round_: int) -> np.ndarray | None:
    """The sorted ids of the clients online in `round_` (client c with probability
    probabilities[c]); None when every client always is."""
    if probabilities is None:
        return None
    draws = seeding.rng(config.seed, "online", round_).random(config.num_clients)
    return np.flatnonzero(draws < probabilities)


def poisson_sampling(config: ExperimentConfig) -> bool:
    """Whether clients join a round independently (central DP: the sampling its accountant
    analyses) rather than as a fixed-size draw."""
    return config.dp == "central"


def sample_clients(config: ExperimentConfig, round_: int, online: np.ndarray | None = None) -> np.ndarray:
    """The sorted ids of the clients taking part in `round_`, a function of (seed, round), among
    the clients `online` this round (None: all are).

    Usually `clients_per_round` are drawn without replacement (all of those online when fewer
    are). Under central DP each online client joins independently with probability
    q = clients_per_round / num_clients (Poisson sampling, as DP-FedAvg's accountant assumes;
    McMahan et al. 2018), so a round has clients_per_round clients on average, not exactly."""
    rng = seeding.rng(config.seed, "sampling", round_)
    k, n = config.clients_per_round_resolved, config.num_clients
    if poisson_sampling(config):
        joined = np.flatnonzero(rng.random(n) < k / n)
        return joined if online is None else np.intersect1d(joined, online)
    if online is None:
        return np.sort(rng.choice(n, size=k, replace=False))
    return np.sort(rng.choice(online, size=min(k, len(online)), replace=False))


def dropped_out(config: ExperimentConfig, round_: int, sampled: list[int] | np.ndarray) -> np.ndarray:
    """Which of the `sampled` clients fail to report in `round_` (each with probability `dropout`,
    independently), as a boolean array aligned with `sampled`."""
    if not config.dropout:
        return np.zeros(len(sampled), dtype=bool)
    return seeding.rng(config.seed, "dropout", round_).random(config.num_clients)[np.asarray(sampled, dtype=np.int64)] < config.dropout


def offline_summary(online: np.ndarray, num_clients: int) -> Offline:
    """How many clients of each group of consecutive ids were offline (at most OFFLINE_GROUPS groups)."""
    group = max(1, -(-num_clients // OFFLINE_GROUPS))
    offline = np.ones(num_clients, dtype=bool)
    offline[online] = False
    counts = np.bincount(np.flatnonzero(offline) // group, minlength=-(-num_clients // group))
    return Offline(group, tuple(int(n) for n in counts))


def round_clock(config: ExperimentConfig, plan: RoundPlan, clock_s: float, aggregated: bool) -> dict[str, float]:
    """A round's numbers for RoundResult.metrics: its simulated duration and the clock at its end;
    in a run whose clients come and go, also how many were online, reported, dropped, were late or
    sent partial work, and whether an update was made (1) or too few arrived for the strategy (0)."""
    out = {"sim_round_s": plan.duration_s, "sim_clock_s": clock_s}
    if uneven(config):
        out |= {"num_online": float(plan.num_online), "num_reported": float(len(plan.training))}
        out |= {f"num_{s}": float(plan.status.count(s)) for s in ("dropped", "late", "partial")}
        out["aggregated"] = float(aggregated)
    return out


def client_clock(config: ExperimentConfig, plan: RoundPlan, i: int) -> dict[str, float]:
    """Sampled client i's numbers for ClientResult.metrics: its simulated compute and upload
    times (unknown, so absent, for a client that dropped out), and in a run whose clients come and
    go the share of its full local work that reached the server (`work_done`)."""
    if plan.status[i] == "dropped":
        return {}
    out = {"sim_compute_s": plan.compute_s[i], "sim_upload_s": plan.upload_s[i]}
    if uneven(config):
        out["work_done"] = plan.steps[i] / plan.full_steps[i] if plan.full_steps[i] else 0.0
    return out


@dataclass(frozen=True)
class RoundPlan:
    """What happens to a round's sampled clients; list i belongs to sampled[i]."""

    sampled: list[int]
    status: list[str]  # records.STATUSES
    steps: list[int]  # local steps it runs (0: it does not train)
    full_steps: list[int]  # local steps of a full round of work
    compute_s: list[float]  # simulated compute time (NaN: unknown, it dropped out)
    upload_s: list[float]  # simulated upload time (NaN: it dropped out)
    duration_s: float  # how long the round lasted on the simulated clock
    num_online: int
    offline: Offline | None  # None: every client was online

    @property
    def training(self) -> list[int]:
        """Positions (in `sampled`) of the clients whose update the server will use: those that train."""
        return [i for i, s in enumerate(self.status) if s in REPORTED]

    def max_steps(self, i: int) -> int | None:
        """The step limit of sampled[i]'s task: its k steps when partial, None (all) otherwise."""
        return self.steps[i] if self.status[i] == "partial" else None


class Availability:
    """Decides who is online and what becomes of each sampled client, round by round."""

    def __init__(self, config: ExperimentConfig, sizes: list[int], settings: LocalSettings, update_bytes: int) -> None:
        self.config, self.sizes, self.settings, self.update_bytes = config, sizes, settings, update_bytes
        self.probabilities = online_probabilities(config)
        self.devices: Devices = devices(config)

    def online(self, round_: int) -> np.ndarray | None:
        """The sorted ids of the clients online in `round_`; None when every client always is."""
        return online_clients(self.config, self.probabilities, round_)

    def plan(self, round_: int, sampled: list[int], online: np.ndarray | None) -> RoundPlan:
        """Statuses, steps and simulated times of the clients sampled in `round_`."""
        c, n = self.config, len(sampled)
        full = [local_steps(self.sizes[k], self.settings) for k in sampled]
        dropped = dropped_out(c, round_, sampled)
        slow = np.zeros(n, dtype=bool)
        if c.stragglers and n:
            count = int(np.floor(c.stragglers * n + 0.5))
            slow[seeding.rng(c.seed, "stragglers", round_).choice(n, size=count, replace=False)] = True
        rows = [self._client(round_, k, K, bool(d), bool(w)) for k, K, d, w in zip(sampled, full, dropped, slow)]
        status, steps, compute, upload = (list(column) for column in zip(*rows)) if rows else ([], [], [], [])
        finish = [compute[i] + upload[i] for i in range(n) if status[i] in REPORTED]
        duration = round_duration(finish, c.round_deadline_s, all_reported=len(finish) == n)
        num_online = c.num_clients if online is None else len(online)
        offline = None if online is None else offline_summary(online, c.num_clients)
        return RoundPlan(sampled, status, steps, full, compute, upload, duration, num_online, offline)

    def _client(self, round_: int, client: int, full: int, dropped: bool, slow: bool) -> tuple[str, int, float, float]:
        """(status, steps, compute seconds, upload seconds) of one sampled client."""
        c = self.config
        if dropped:
            return "dropped", 0, float("nan"), float("nan")
        seconds = samples_in_steps(self.sizes[client], self.settings.batch_size, full) / self.devices.speed[client]
        upload = self.update_bytes / self.devices.bandwidth[client]
        status, steps = "trained", full
        if slow:  # k of its K steps in the time K usually take
            steps = int(seeding.rng(c.seed, "partial_work", round_, client).integers(1, full)) if full > 1 else 1
            if c.straggler_policy == "partial":
                status = "partial"
            else:  # the server does not wait for it: all K steps would take K / k times as long
                status, seconds = "late", seconds * full / steps
        if c.round_deadline_s is not None and seconds + upload > c.round_deadline_s:
            status = "late"
        return status, steps if status in REPORTED else 0, float(seconds), float(upload)


def summary(config: ExperimentConfig, results: list[RoundResult]) -> str:
    """The command line's lines about the simulated clock and, when clients come and go, what
    became of the sampled ones."""
    if not results:
        return ""
    total = results[-1].metrics.get("sim_clock_s", 0.0)
    lines = [f"simulated time {clock.describe(total)} ({clock.describe(total / len(results))} a round on average)"]
    if uneven(config):
        statuses = [c.status for r in results for c in r.clients]
        online = sum(r.metrics.get("num_online", config.num_clients) for r in results) / (len(results) * config.num_clients)
        skipped = sum(r.metrics.get("aggregated", 1.0) == 0 for r in results)
        lines.append(
            f"clients online {online:.0%} of the time; of {len(statuses)} sampled, {sum(s in REPORTED for s in statuses)} reported "
            f"({statuses.count('partial')} with partial work), {statuses.count('late')} late, {statuses.count('dropped')} dropped"
            + (f"; {skipped} rounds had too few updates to aggregate" if skipped else "")
        )
    return "\n".join(lines)
