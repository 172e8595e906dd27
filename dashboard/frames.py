"""A run's stored results, read in full once and then only what is new.

A page showing a running run draws it again after every round. Reading all of a big run's
client rows each time (50,000 rows for 500 rounds of 100 clients) costs more than drawing them,
so this server process keeps the frames of recently shown runs, keyed by store file and run,
and each read asks the store only for the rounds stored since. The store stays the only
source: the cache holds nothing the store does not, and a run whose stored rounds changed
under it (deleted, or rounds discarded and stored again by a resume) is read again in full.
No Streamlit here; the pages call `run_frames`.

Compare's sweep view needs only the rounds of each of its runs, maybe a hundred runs, on each
rerun: `rounds_frames` keeps each run's rounds with the (status, rounds done, finished at) they
were read at, and reads again only the runs whose row says something changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import pandas as pd

from flcore.store import RunInfo, RunStore

MAX_RUNS = 16  # runs whose frames stay in memory (a big run's are a few MB)
MAX_ROUNDS_RUNS = 1024  # runs whose rounds alone stay in memory (a few kB each)


@dataclass(frozen=True)
class RunFrames:
    rounds: pd.DataFrame  # RunStore.rounds_frame
    clients: pd.DataFrame  # RunStore.clients_frame
    partition: pd.DataFrame  # RunStore.partition_frame (empty until the worker stored the split)
    offline: pd.DataFrame  # RunStore.offline_frame: the rounds with offline clients
    evaluations: pd.DataFrame  # RunStore.evaluations_frame: every client on its own test data (empty without any)

    @property
    def last_round(self) -> int:
        return int(self.rounds["round"].iloc[-1]) if len(self.rounds) else 0

    @property
    def last_wall_time(self) -> float | None:
        return float(self.rounds["wall_time_s"].iloc[-1]) if len(self.rounds) else None


_cache: OrderedDict[tuple[str, str], RunFrames] = OrderedDict()
_lock = threading.Lock()


def run_frames(store: RunStore, run_id: str) -> RunFrames:
    """Everything stored about `run_id`'s rounds and split, reading only what is new."""
    key = (str(store.path), run_id)
    with _lock:
        cached = _cache.get(key)
    if cached is not None and cached.last_round and store.round_wall_time(run_id, cached.last_round) != cached.last_wall_time:
        cached = None  # the rounds we hold are no longer the ones stored
    after = cached.last_round if cached is not None else 0
    rounds, clients = store.results(run_id, after)
    offline, evaluations = store.offline_frame(run_id, after), store.evaluations_frame(run_id, after)
    if len(rounds):  # a round stored between the reads is read with the next ones
        offline = offline[offline["round"] <= rounds["round"].iloc[-1]]
        evaluations = evaluations[evaluations["round"] <= rounds["round"].iloc[-1]]
    else:
        offline, evaluations = offline.iloc[:0], evaluations.iloc[:0]
    if cached is None:
        frames = RunFrames(rounds, clients, store.partition_frame(run_id), offline, evaluations)
    else:
        partition = cached.partition if len(cached.partition) else store.partition_frame(run_id)
        frames = RunFrames(
            _append(cached.rounds, rounds),
            _append(cached.clients, clients),
            partition,
            _append(cached.offline, offline),
            _append(cached.evaluations, evaluations),
        )
    with _lock:
        _cache[key] = frames
        _cache.move_to_end(key)
        while len(_cache) > MAX_RUNS:
            _cache.popitem(last=False)
    return frames


_rounds: OrderedDict[tuple[str, str], tuple[tuple, pd.DataFrame]] = OrderedDict()


def rounds_frames(store: RunStore, runs: list[RunInfo]) -> dict[str, pd.DataFrame]:
    """run id -> `store.rounds_frame(run id)` for each of `runs` (rows read just now), reading
    only the runs whose status, rounds done or end changed since they were last read here."""
    out = {}
    for info in runs:
        key, seen = (str(store.path), info.run_id), (info.status, info.rounds_done, info.finished_at)
        with _lock:
            cached = _rounds.get(key)
        if cached is None or cached[0] != seen:
            cached = (seen, store.rounds_frame(info.run_id))
        with _lock:
            _rounds[key] = cached
            _rounds.move_to_end(key)
            while len(_rounds) > MAX_ROUNDS_RUNS:
                _rounds.popitem(last=False)
        out[info.run_id] = cached[1]
    return out


def _append(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if new.empty:
        return old
    if old.empty:
        return new
    return pd.concat([old, new], ignore_index=True)


def forget(store: RunStore, run_id: str) -> None:
    """Drop a run's frames (after it was deleted)."""
    with _lock:
        _cache.pop((str(store.path), run_id), None)
        _rounds.pop((str(store.path), run_id), None)
