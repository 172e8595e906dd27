"""What the runner tests share: a tiny config, and polling the store until something holds
(workers and Ray actors take seconds to start, so tests poll with a timeout, never sleep)."""

from __future__ import annotations

import time

from flcore.config import ExperimentConfig
from flcore.store import RunStore

WAIT_S = 60.0


def tiny(**changes) -> ExperimentConfig:
    base = dict(dataset="digits", num_clients=4, model="logistic", batch_size=32, rounds=3, partition="iid")
    return ExperimentConfig.create(**{**base, **changes})


def wait_for(check, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_status(store: RunStore, run_id: str, *statuses: str, timeout: float = WAIT_S):
    run = lambda: (r := store.get_run(run_id)) is not None and r.status in statuses and r
    return wait_for(run, f"run {run_id} to be {statuses}", timeout)
