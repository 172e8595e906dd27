"""Executing one run in this process: claim it, build its Simulation, continue from its
checkpoint, write every round (with a fresh checkpoint) in one transaction, heartbeat, say how
many of a long round's clients have trained (at most once every PROGRESS_S), and end
the run as done, cancelled, failed or interrupted with a sentence (interrupted, and resumable,
when the store file takes no more rounds, as on a full disk). Used by worker processes,
by the Ray driver thread and by the CLI."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flcore.ray_support import RayWorkerLost
from flcore.service.checkpoint import numerics_from_bytes, state_from_bytes, state_to_bytes, train_as_before
from flcore.settings import current as current_settings
from flcore.store import RunNotRunning, RunStore, StoreFault, pid_alive

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from flcore.records import RoundResult
    from flcore.settings import Settings
    from flcore.training import ClientsDone


HEARTBEAT_S = 10.0  # how often a worker says it is alive (the store's STALE_AFTER_S is much longer)
SERVER_CHECK_S = 1.0  # how often a worker checks that its server still lives
PROGRESS_S = 1.0  # how often a worker stores how many of the round's clients have trained


# Running one run ---------------------------------------------------------------------------
def error_message(error: BaseException) -> str:
    """What a user reads when a run fails: flcore's own errors are sentences already."""
    text = str(error).strip()
    if type(error).__module__.startswith("flcore."):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def execute_run(
    store: RunStore,
    run_id: str,
    on_round: Callable[["RoundResult"], None] | None = None,
    settings: "Settings | None" = None,
    on_clients: "ClientsDone | None" = None,
) -> str:
    """Run one stored run to the end in THIS process; returns its final status. Used by worker processes and by the CLI.
    `on_clients(done, total)` hears, as the store does, how many of a round's clients trained.

    The run must be queued (a new run, or one put back with `RunStore.resume`); a run in any
    other state is left alone and its status returned, so a run is never trained twice at once.
    """
    if not store.claim(run_id):
        run = store.get_run(run_id)
        if run is None:
            raise LookupError(f"there is no run {run_id!r} in {store.path}")
        return run.status
    return execute_claimed(store, run_id, on_round, settings=settings, on_clients=on_clients)


def execute_claimed(
    store: RunStore,
    run_id: str,
    on_round: Callable[["RoundResult"], None] | None,
    worker: dict | None = None,
    server_pid: int | None = None,
    simulation: Callable | None = None,
    settings: "Settings | None" = None,
    on_clients: "ClientsDone | None" = None,
) -> str:
    """Train a claimed run, writing each round here; `simulation` builds what trains it from the
    config and the server's `settings` (this process's when None): a local `Simulation` by
    default; on Ray, a `RemoteSimulation` driving an actor."""
    try:
        store.mark_running(run_id, os.getpid(), worker)
        run = store.get_run(run_id)
        with _Heartbeat(store, run_id, server_pid):
            if store.cancel_requested(run_id):
                store.finish(run_id, "cancelled")
                return "cancelled"
            from flcore.federation.simulation import Simulation

            server = settings if settings is not None else current_settings()
            sim = (simulation or Simulation)(run.config.replace(), server)  # validated again: registries may have changed
            store.save_partition(run_id, sim.label_counts)
            blob = store.load_checkpoint(run_id)
            state = state_from_bytes(blob, sim.device) if blob is not None else None
            if blob is not None:
                train_as_before(numerics_from_bytes(blob))
            store.discard_rounds_after(run_id, state.round if state is not None else 0)
            progress = _ClientProgress(store, run_id, (state.round if state is not None else 0) + 1, on_clients)
            for result in sim.run(state, on_clients=progress):
                store.append_round(run_id, result, state_to_bytes(result.state))
                progress.round = result.round + 1
                if on_round is not None:
                    on_round(result)
                if store.cancel_requested(run_id):
                    store.finish(run_id, "cancelled")
                    return "cancelled"
            store.finish(run_id, "done", sim.privacy.stop_message)  # why a privacy budget ended it early, if it did
            return "done"
    except RunNotRunning:  # cancelled, interrupted or deleted under our feet: stop quietly
        run = store.get_run(run_id)
        return run.status if run is not None else "cancelled"
    except KeyboardInterrupt:
        store.mark_interrupted(run_id, "The run was stopped with Ctrl-C; resume it to continue from its last finished round.")
        raise
    except StoreFault as e:  # the store took no more (a full disk): the run stops resumable, saying why and where
        sentence = str(e)[0].upper() + str(e)[1:] + "."
        try:
            store.mark_interrupted(run_id, sentence)
        except sqlite3.Error:  # not even that could be written: the caller says it
            raise e from None
        log.warning("run %s stopped: %s", run_id, sentence)
        return "interrupted"
    except RayWorkerLost as e:  # a node of the Ray cluster died, or the server stopped the run there
        store.mark_interrupted(run_id, str(e))
        return "interrupted"
    except Exception as e:
        # The sentence is stored for the pages and the CLI; the traceback only in a debug log.
        log.debug("run %s failed", run_id, exc_info=True)
        store.finish(run_id, "failed", error_message(e))
        return "failed"


class _ClientProgress:
    """The `on_clients` a worker gives its simulation: stores how many of the training round's
    clients are done, at most every PROGRESS_S (a write in the store's row of the run), and
    passes every report on to `also` (the CLI's bar)."""

    def __init__(self, store: RunStore, run_id: str, round_: int, also: "ClientsDone | None" = None) -> None:
        self.store, self.run_id, self.round, self.also = store, run_id, round_, also
        self._last = float("-inf")

    def __call__(self, done: int, total: int) -> None:
        if self.also is not None:
            self.also(done, total)
        if done >= total or time.monotonic() - self._last < PROGRESS_S:
            return  # a finished round is said by its stored result, at once
        self._last = time.monotonic()
        try:
            self.store.set_round_progress(self.run_id, self.round, done, total)
        except sqlite3.Error:  # a busy database must not stop the round; the next report tries again
            log.warning("progress of run %s could not be stored", self.run_id, exc_info=True)


class _Heartbeat:
    """A thread that marks the run alive every HEARTBEAT_S, even through a long round, and, in a
    worker, watches the server that started it: a worker whose server died marks its run
    interrupted (resumable) and exits, instead of training on unsupervised and uncounted."""

    def __init__(self, store: RunStore, run_id: str, server_pid: int | None = None) -> None:
        self.store, self.run_id, self.server_pid = store, run_id, server_pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"flcore-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_S
        while not self._stop.wait(SERVER_CHECK_S if self.server_pid else HEARTBEAT_S):
            if self.server_pid and not pid_alive(self.server_pid):
                self.store.mark_interrupted(
                    self.run_id,
                    "The server that started this run stopped; resume the run to continue from its last finished round.",
                    (os.getpid(),),
                )
                log.warning("run %s: its server (pid %d) is gone; stopping", self.run_id, self.server_pid)
                os._exit(3)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_S
                try:
                    self.store.heartbeat(self.run_id)
                except Exception:  # a busy database must not kill the run; the next beat tries again
                    log.warning("heartbeat of run %s failed", self.run_id, exc_info=True)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
