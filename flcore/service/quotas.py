"""Fair shares of a shared server: per-person limits, one run's size, and who goes next.

A person may have at most `max_queued` runs queued or running, of which at most `max_running`
train at the same time, and one run may ask for at most `max_client_updates` client updates
(rounds x clients per round; 5,000 clients for 10,000 rounds would be 50 million, about 40 hours
and 2 GB of store on 2 cores). The limits are server settings (`flcore.settings`). A refused
submission gets one sentence per limit it breaks, naming the limit and what to change. When a
worker is free, the queue takes people in turn (`next_runs`): the person with the fewest runs
training goes first, and among equals the one who has waited longest; one person's twenty runs
never keep everyone else waiting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flcore.problems import ConfigError, Problem

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings
    from flcore.store import RunStore


class QuotaError(ConfigError):
    """A submission over one of the server's limits; `problems` say which and what to change."""


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


def submission_problems(store: RunStore, config: ExperimentConfig, owner: str | None, settings: Settings) -> list[Problem]:
    """Why `owner` may not queue `config` on this server now (empty: they may)."""
    from flcore.data import uploads

    problems = run_size_problems(config, settings)
    if config.dataset == "file" and (bad := uploads.problem(config.data_file, settings)):
        problems.append(bad)  # a server reads only files uploaded to it, never a path someone typed
    queued, running = store.active_by_owner().get(owner, (0, 0))
    if queued + running >= settings.max_queued:
        problems.append(
            Problem(
                None,
                f"you have {queued + running} run{'s' if queued + running != 1 else ''} queued or running, the most one person may have on this server "
                f"({settings.max_queued}): wait for one to finish, or cancel one",
            )
        )
    return problems


def next_runs(store: RunStore, free: int, settings: Settings) -> list[str]:
    """Up to `free` queued run ids to start now, people in turn (see the module docstring)."""
    running = {owner: r for owner, (_, r) in store.active_by_owner().items()}
    waiting: dict[str | None, list[str]] = {}
    for run_id, owner in store.queue():  # oldest first
        waiting.setdefault(owner, []).append(run_id)
    order = list(waiting)  # owners by their oldest queued run
    chosen: list[str] = []
    while len(chosen) < free:
        candidates = [o for o in order if waiting[o] and running.get(o, 0) < settings.max_running]
        if not candidates:
            break
        owner = min(candidates, key=lambda o: (running.get(o, 0), order.index(o)))
        chosen.append(waiting[owner].pop(0))
        running[owner] = running.get(owner, 0) + 1
    return chosen
