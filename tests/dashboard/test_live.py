"""What keeps live pages cheap: the incremental frame cache, the change checks, bounded charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from dashboard_helpers import record_run

from dashboard import charts, frames, live
from flcore.config import ExperimentConfig
from flcore.federation.simulation import Simulation
from flcore.store import RunStore


# The frame cache ------------------------------------------------------------------------------
def test_run_frames_read_only_new_rounds_and_always_equal_the_store(store, monkeypatch):
    config = ExperimentConfig.create(num_clients=4, rounds=5, model="logistic", batch_size=32, availability=0.7)
    run_id = store.create_run(config)
    store.claim(run_id)
    sim = Simulation(config)
    store.save_partition(run_id, sim.label_counts)
    steps = sim.run()
    store.append_round(run_id, next(steps))

    asked = []
    real = RunStore.results
    monkeypatch.setattr(RunStore, "results", lambda self, rid, after=0: asked.append(after) or real(self, rid, after))
    first = frames.run_frames(store, run_id)
    for _ in range(3):
        store.append_round(run_id, next(steps))
    later = frames.run_frames(store, run_id)
    assert asked == [0, 1]  # the second read asked only for the rounds after round 1
    pd.testing.assert_frame_equal(later.rounds, store.rounds_frame(run_id))
    pd.testing.assert_frame_equal(later.clients, store.clients_frame(run_id))
    pd.testing.assert_frame_equal(later.partition, store.partition_frame(run_id))
    pd.testing.assert_frame_equal(later.offline.reset_index(drop=True), store.offline_frame(run_id))
    assert len(later.offline)  # 30% offline: some rounds had someone offline
    assert first.last_round == 1 and later.last_round == 4


def test_run_frames_notice_rounds_stored_again_and_deleted_runs(store):
    run_id = record_run(store, stop_after=3, status="cancelled")
    before = frames.run_frames(store, run_id)
    store.discard_rounds_after(run_id, 1)  # what a resume does before it computes rounds 2, 3 again
    store.resume(run_id)
    store.claim(run_id)
    sim = Simulation(store.get_run(run_id).config)
    for result in sim.run():
        if result.round > 1:
            store.append_round(run_id, result)
        if result.round == 3:
            break
    after = frames.run_frames(store, run_id)
    pd.testing.assert_frame_equal(after.rounds, store.rounds_frame(run_id))
    assert not after.rounds["wall_time_s"].equals(before.rounds["wall_time_s"])
    store.delete_run(run_id)
    assert frames.run_frames(store, run_id).rounds.empty


# The change checks ----------------------------------------------------------------------------
def test_a_run_page_redraws_at_once_only_for_what_a_user_waits_for():
    at_once = live.run_changed_at_once
    assert at_once(("running", 0, False), ("running", 1, False))  # the first point
    assert at_once(("running", 5, False), ("done", 20, False))  # finished
    assert at_once(("running", 5, False), ("running", 5, True))  # cancel pressed
    assert at_once(("running", 5, False), None)  # deleted
    assert not at_once(("running", 5, False), ("running", 6, False))  # a further round waits for the pace


def test_polling_is_fast_before_the_first_round_and_redraws_are_paced_by_size():
    small = ExperimentConfig.create(num_clients=10)
    big = ExperimentConfig.create(dataset="synthetic", partition="dirichlet", num_clients=1000, clients_per_round=100, rounds=500)

    class Info:
        def __init__(self, config, rounds_done):
            self.config, self.rounds_done = config, rounds_done

    assert live.poll_seconds(Info(small, 0)) < live.poll_seconds(Info(small, 3))
    assert live.redraw_seconds(Info(small, 3)) == live.REDRAW_S
    assert live.redraw_seconds(Info(big, 300)) == live.BIG_RUN_REDRAW_S
    assert live.poll_seconds(Info(small, 3)) == live.POLL_S < live.poll_seconds(Info(big, 300)) <= live.BIG_RUN_REDRAW_S
    assert live.poll_seconds(Info(big, 0)) == live.FIRST_ROUND_POLL_S
    assert live.run_fingerprint(None) is None


# Bounded charts -------------------------------------------------------------------------------
def big_clients(num_clients=1000, per_round=100, rounds=500, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(r, c) for r in range(1, rounds + 1) for c in np.sort(rng.choice(num_clients, per_round, replace=False))]
    frame = pd.DataFrame(rows, columns=["round", "client_id"])
    return frame.assign(train_loss=rng.random(len(frame)), update_norm=1.0, malicious=frame["client_id"] == 7)


def test_a_big_run_sends_heatmaps_of_bounded_size_that_keep_the_means():
    clients = big_clients()
    fig = charts.client_loss_chart(clients, 500)
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    z = np.asarray(heat.z)
    assert z.shape[0] <= charts.MAX_ROWS and z.shape[1] <= charts.MAX_COLUMNS
    assert "mean over" in fig.layout.title.text
    assert np.nanmean(z) == pytest.approx(clients["train_loss"].mean(), rel=0.05)
    marked = next(t for t in fig.data if t.name == "malicious client")
    first, last = map(int, marked.y[0].split("–"))
    assert len(marked.y) == 1 and first <= 7 <= last  # the group that holds client 7

    part = charts.participation_chart(clients, 1000, 500)
    share = np.asarray(part.data[0].z)
    assert share.shape[0] <= charts.MAX_ROWS and share.shape[1] <= charts.MAX_COLUMNS
    assert share.mean() == pytest.approx(100 / 1000, rel=0.05)  # 100 of 1,000 clients per round


def test_long_runs_send_thinned_lines_that_keep_the_first_and_last_round():
    rounds = pd.DataFrame({"round": np.arange(1, 10_001), "test_accuracy": np.linspace(0, 1, 10_000), "test_loss": 1.0})
    trace = charts.accuracy_chart(rounds, 10_000).data[0]
    assert len(trace.x) <= charts.MAX_POINTS
    assert trace.x[0] == 1 and trace.x[-1] == 10_000
    bars = charts.sampled_labels_chart(
        big_clients(num_clients=50, per_round=5, rounds=1000),
        pd.DataFrame({"client_id": np.arange(50), "label": np.arange(50) % 3, "count": 4}),
    )
    assert max(len(t.x) for t in bars.data if isinstance(t, go.Bar)) <= charts.MAX_ROUND_BARS


def test_partitions_of_many_clients_are_summed_in_groups():
    counts = pd.DataFrame({"client_id": np.repeat(np.arange(5000), 2), "label": np.tile([0, 1], 5000), "count": 1})
    heat = charts.partition_heatmap(counts).data[0]
    assert np.asarray(heat.z).shape[0] <= charts.MAX_ROWS
    assert np.asarray(heat.z).sum() == 10_000  # every sample still counted


def test_thin_keeps_short_frames_whole():
    frame = pd.DataFrame({"round": [1, 2, 3]})
    assert charts.thin(frame) is frame
