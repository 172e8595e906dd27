"""Background job manager: queued runs are trained in worker processes, never in the caller.

`Runner` owns a scheduler thread that starts each queued run of the store in its own process, at
most `max_workers` at once, oldest first; the rest wait in the queue. Workers start warm: they
are forked from a forkserver that the runner starts with the server and that has imported
torch and flcore once (`flcore.service.warm`), so a run's first round is stored a fraction of a second
after it is queued, not after a new interpreter has imported torch. The forkserver is a fresh
interpreter, not a fork of the web server, so a worker never inherits the server's threads or
CUDA state; where forkserver does not exist (Windows) workers are spawned. Each worker applies
the `CpuBudget` (its torch threads and a lower priority) before it trains. A worker runs `execute_run`:
it builds the `Simulation`, stores the partition, continues from the run's checkpoint if it has
one, and writes every round with a fresh checkpoint in one transaction. Cancelling sets a flag
that the worker reads between rounds. A worker that raises marks its run `failed` with the
error's message; one that dies (killed, out of memory) is seen by the scheduler and its run
marked `interrupted`, as are runs left `running` by a server that died, when the next starts.
Resuming an interrupted run continues from its last checkpoint and, because every round's
randomness is a function of (seed, round), reproduces the numbers of an uninterrupted run.
With $FLCORE_RAY_ADDRESS set, the runner starts each run on a Ray cluster instead of in a local
process (`flcore.service.ray_runs`): a thread here drives the run's actor there and writes its rounds
through the same `execute_claimed`, so this process stays the only writer of the store.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from flcore import settings as server_settings_module
from flcore.auth import User
from flcore.config import ExperimentConfig
from flcore.service.budget import CpuBudget
from flcore.service.execute import error_message, execute_claimed
from flcore.service.quotas import admission, next_runs
from flcore.service.ray_runs import RayRuns
from flcore.settings import Settings
from flcore.settings import current as current_settings
from flcore.store import RunNotRunning, RunStore, actions

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)

POLL_S = 0.25  # how often the scheduler looks for runs queued by other processes (it wakes at once for its own)
STALE_CHECK_S = 30.0  # how often the scheduler looks for runs whose worker vanished
STOP_GRACE_S = 5.0  # how long shutdown waits for a terminated worker before killing it


def _worker_main(store_path: str, run_id: str, budget: CpuBudget, start_method: str, server: Settings, server_pid: int) -> None:
    """Entry point of a worker process: apply the CPU budget, then train one claimed run with the
    server's settings (handed over, not installed as this process's) while the server lives."""
    from flcore.service import warm  # already imported in a forked worker; in a spawned one, before torch

    applied = budget.apply()
    worker = {
        "pid": os.getpid(),
        "parent_pid": os.getppid(),  # the forkserver's, not the web server's, for a forked worker
        "start_method": start_method,
        "warm": os.getpid() != warm.LOADED_BY,  # imported by the forkserver, not by this process
        "python_threads": threading.active_count(),  # 1: no thread of the server came along
        "cuda_initialized": warm.torch.cuda.is_initialized(),  # False: a run that wants CUDA starts it itself
        **applied,
    }
    execute_claimed(RunStore(store_path), run_id, None, worker, server_pid, settings=server)


# The scheduler -----------------------------------------------------------------------------
PRELOAD = ["flcore.service.warm"]


def worker_context(start_method: str | None = None) -> multiprocessing.context.BaseContext:
    """How workers start: `forkserver` (warm, preloaded with `flcore.service.warm`) where it exists, else `spawn`."""
    if start_method is None:
        start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if start_method not in ("forkserver", "spawn"):
        raise ValueError(f"start_method={start_method!r} is not supported; choose 'forkserver' or 'spawn'")
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    return ctx


def default_max_workers() -> int:
    """$FLCORE_MAX_WORKERS, else what the CPU budget gives this machine."""
    return CpuBudget.plan().max_workers


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


_RUNNERS: "weakref.WeakSet[Runner]" = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:  # before multiprocessing's own exit handler kills the daemon workers
    for runner in list(_RUNNERS):
        runner.shutdown(wait=False)


class Runner:
    """Starts queued runs of one store in worker processes; one per server process."""

    def __init__(
        self,
        store_path: str | Path | None = None,
        max_workers: int | None = None,
        *,
        threads_per_worker: int | None = None,
        start_method: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.store = RunStore(store_path)
        self.store_path = self.store.path
        self.settings = settings if settings is not None else current_settings()
        self.budget = CpuBudget.plan(max_workers=max_workers, threads=threads_per_worker)
        self.max_workers = self.budget.max_workers
        self._ctx = worker_context(start_method)
        self.start_method = self._ctx.get_start_method()
        # With $FLCORE_RAY_ADDRESS set, runs go to a Ray cluster instead of local processes (flcore/service/ray_runs.py).
        self._ray = RayRuns.from_env(self.store_path, max_workers if max_workers is not None else server_settings_module.max_workers())
        self._workers: dict[str, multiprocessing.process.BaseProcess] = {}
        self._lock = threading.Lock()
        self._wake_r = self._wake_w = None  # a socket pair while the scheduler runs: a byte wakes it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # What callers do ------------------------------------------------------------------
    def submit(self, config: ExperimentConfig, source: str = "dashboard", user: User | None = None) -> str:
        """Queue `config` as a new run of `user` and wake the scheduler; returns the run id.
        Raises QuotaError when it would break one of the server's limits for that user."""
        owner = user.name if user is not None else None
        run_id = self.store.create_run(config, source, owner, admit=admission(config, self.settings, user))
        self._nudge()
        return run_id

    def cancel(self, run_id: str, user: User | None = None) -> None:
        self._check(run_id, user, "cancel")
        self.store.request_cancel(run_id)

    def resume(self, run_id: str, user: User | None = None) -> None:
        """Queue an interrupted, cancelled or failed run again; it continues from its checkpoint.
        Raises QuotaError, as `submit` does, when queueing it would break one of the server's limits."""
        self._check(run_id, user, "resume")
        info = self.store.get_run(run_id)
        if info is None:
            return
        self.store.resume(run_id, admit=admission(info.config, self.settings, user))
        self._nudge()

    def delete(self, run_id: str, user: User | None = None) -> None:
        self._check(run_id, user, "delete")
        self.store.delete_run(run_id)

    def _check(self, run_id: str, user: User | None, action: str) -> None:
        """Raise PermissionError (a sentence) unless `user` may `action` the run now."""
        info = self.store.get_run(run_id)
        if info is None or user is None or action in actions(info, user):
            return
        if not user.may_act_on(info.owner):
            whose = f"{info.owner}'s run" if info.owner else "a run from before runs had owners"
            raise PermissionError(f"Only its owner or an admin may {action} {whose}; you are signed in as {user.name}.")
        raise PermissionError(f"A {info.status} run cannot be {action}{'l' if action == 'cancel' else ''}ed.")

    def active(self) -> dict[str, int]:
        """Run id -> worker pid of the runs this runner is training now."""
        with self._lock:
            return {run_id: p.pid for run_id, p in self._workers.items() if p.pid is not None}

    # Lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler thread (once; later calls do nothing while it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        if self.start_method == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()  # it imports flcore.service.warm now, while nobody waits for a run
        stale = self.store.mark_stale_interrupted()
        if stale:
            log.warning("marked %d run(s) left running by a previous server as interrupted: %s", len(stale), ", ".join(stale))
        self._thread = threading.Thread(target=self._loop, name="flcore-runner", daemon=True)
        self._thread.start()
        _RUNNERS.add(self)

    def shutdown(self, wait: bool = False) -> None:
        """Stop scheduling. wait=True lets running workers finish their runs; wait=False stops
        them now and marks their runs interrupted (resumable). Queued runs stay queued."""
        self._stop.set()
        self._nudge()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            for sock in (self._wake_r, self._wake_w):
                sock.close()
        self._thread = None
        with self._lock:
            workers = dict(self._workers)
        if not wait:
            for proc in workers.values():
                proc.terminate()
            for run_id, proc in workers.items():
                proc.join(STOP_GRACE_S)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                self.store.mark_interrupted(
                    run_id,
                    "The server shut down during the run; resume it to continue from its last finished round.",
                    (proc.pid, os.getpid()),
                )
        for proc in workers.values():
            proc.join()
        self._reap()

    def __enter__(self) -> "Runner":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=False)

    # The loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        next_stale_check = time.monotonic() + STALE_CHECK_S
        while not self._stop.is_set():
            try:
                self._reap()
                if time.monotonic() >= next_stale_check:
                    self.store.mark_stale_interrupted()
                    next_stale_check = time.monotonic() + STALE_CHECK_S
                self._launch()
            except Exception:  # e.g. the database stayed locked: log it and try again next tick
                log.exception("the run scheduler hit an error; retrying")
            self._sleep()

    def _nudge(self) -> None:
        """Wake the scheduler now (a run was queued or resumed, or it should stop)."""
        try:
            self._wake_w.send(b"!")
        except (AttributeError, OSError):  # not started, closed at shutdown, or already full of wake-ups
            pass

    def _sleep(self) -> None:
        """Wait until a worker ends (its sentinel), a nudge, or POLL_S for runs queued elsewhere."""
        with self._lock:
            sentinels = [p.sentinel for p in self._workers.values()]
        ready = multiprocessing.connection.wait([*sentinels, self._wake_r], timeout=POLL_S)
        if self._wake_r in ready:
            self._wake_r.recv(4096)

    def _reap(self) -> None:
        """Forget finished workers; a run whose worker ended while it was still running is interrupted."""
        with self._lock:
            ended = {run_id: p for run_id, p in self._workers.items() if not p.is_alive()}
            for run_id in ended:
                del self._workers[run_id]
        for run_id, proc in ended.items():
            proc.join()
            error = (
                f"The worker process stopped unexpectedly ({_exit_reason(proc.exitcode)}); "
                "resume the run to continue from its last finished round."
            )
            if self.store.mark_interrupted(run_id, error, (proc.pid, os.getpid())):
                log.warning("run %s: %s", run_id, error)

    def _launch(self) -> None:
        """Start workers for queued runs while slots are free, people in turn (quotas.next_runs)."""
        limit = self._ray.capacity() if self._ray is not None else self.max_workers
        with self._lock:
            free = limit - len(self._workers)
        if free <= 0:
            return
        for run_id in next_runs(self.store, free, self.settings):
            if self._stop.is_set():
                break
            if not self.store.claim(run_id):  # another server took it
                continue
            if self._ray is not None:  # a thread here drives the run's actor on the cluster
                proc = self._ray.process(run_id, execute_claimed, self.settings)
            else:
                proc = self._ctx.Process(
                    target=_worker_main,
                    args=(str(self.store_path), run_id, self.budget, self.start_method, self.settings, os.getpid()),
                    name=f"flcore-run-{run_id}",
                    daemon=True,
                )
            try:
                proc.start()
            except Exception as e:
                self.store.finish(run_id, "failed", f"The worker process could not start: {error_message(e)}")
                continue
            with self._lock:
                self._workers[run_id] = proc
            try:
                self.store.mark_running(run_id, proc.pid)
            except RunNotRunning:  # cancelled or deleted in between; the worker notices and exits
                pass
