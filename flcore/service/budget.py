"""The CPU budget: how many runs train at once, and how many threads each one may use.

On one machine the workers share the cores with the web server and with the browsers watching
it. Left alone, every worker's torch would start one thread per core, two workers on two cores
would run four busy threads, and a watched run trained 10-40 times slower than an unwatched one.
So the budget keeps one core for the web server (when there are two or more), gives each
worker about two of the rest, splits them evenly into intra-op threads, and lowers the workers'
scheduling priority (nice), so that a page request always gets the CPU before training does.

Every number can be overridden (the environment variables win over the defaults; arguments
win over both):

| variable | meaning | default |
|---|---|---|
| `FLCORE_MAX_WORKERS` | runs that train at the same time | (cores - 1) // 2, at least 1 |
| `FLCORE_WORKER_THREADS` | torch intra-op threads of each worker | (cores - 1) // workers, at least 1 |
| `FLCORE_WORKER_NICE` | how much lower a worker's priority is (0-19) | 10 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from flcore import settings

RESERVED_CORES = 1  # for the web server and a watching browser
CORES_PER_WORKER = 2
DEFAULT_NICE = 10


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _at_least(name: str, value: int, low: int) -> int:
    if value < low:
        raise ValueError(f"{name}={value} must be at least {low}")
    return value


@dataclass(frozen=True)
class CpuBudget:
    cores: int
    max_workers: int  # runs training at once
    threads: int  # torch intra-op threads per worker
    nice: int  # niceness added to each worker (0 = the server's priority)

    @classmethod
    def plan(
        cls,
        max_workers: int | None = None,
        threads: int | None = None,
        nice: int | None = None,
        cores: int | None = None,
    ) -> "CpuBudget":
        """The budget for this machine: arguments, else the environment, else the defaults."""
        cores = cores or cpu_count()
        spare = max(1, cores - RESERVED_CORES)
        workers = _at_least("max_workers", _first(max_workers, settings.max_workers(), max(1, spare // CORES_PER_WORKER)), 1)
        threads = _at_least("threads", _first(threads, settings.worker_threads(), max(1, spare // workers)), 1)
        nice = _at_least("nice", _first(nice, settings.worker_nice(), DEFAULT_NICE), 0)
        return cls(cores, workers, threads, nice)

    def apply(self) -> dict[str, int]:
        """In a worker process, before it trains: set torch's threads and lower this process's
        priority. Returns what the process now runs with."""
        import torch

        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)  # a round's ops run one after another
        except RuntimeError:  # already set, or inter-op work has begun (not in a fresh worker)
            pass
        niceness = os.nice(self.nice) if self.nice and hasattr(os, "nice") else 0
        return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(), "nice": niceness}

    def describe(self) -> str:
        runs = "1 run" if self.max_workers == 1 else f"{self.max_workers} runs"
        threads = "1 torch thread" if self.threads == 1 else f"{self.threads} torch threads"
        return f"{self.cores} cores: {runs} at a time, {threads} each, at nice {self.nice}"
