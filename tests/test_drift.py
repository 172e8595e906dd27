"""Client drift: cosine with the global model's step and distance from the new global model, per
client, against a hand computation; their mean and spread per round; attackers stand out; and
every new number reaches rounds.csv and clients.csv."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from flcore.cli import main
from flcore.config import ExperimentConfig
from flcore.federation.metrics import ClientRound, compute_client_metrics, drift_cosine, drift_distance, round_summaries
from flcore.federation.simulation import Simulation
from flcore.training.base import TrainedClients

R = 1 / math.sqrt(2)


def view(deltas, before, after) -> ClientRound:
    deltas = torch.tensor(deltas)
    n = deltas.shape[0]
    trained = TrainedClients(deltas, torch.ones(n), torch.ones(n), torch.zeros(n), torch.zeros(n))
    return ClientRound(1, list(range(n)), deltas, trained, torch.tensor(before), torch.tensor(after))


def test_drift_by_hand():
    # Three clients from the origin; the global model moved to (0.5, 0.5), the mean of the first two.
    v = view([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [0.0, 0.0], [0.5, 0.5])
    assert drift_cosine(v).tolist() == pytest.approx([R, R, -R])  # (1*0.5) / (1 * 0.707)
    # the model each sent: (1, 0), (0, 1), (-1, 0); the new global model: (0.5, 0.5)
    assert drift_distance(v).tolist() == pytest.approx([R, R, math.sqrt(1.5**2 + 0.5**2)])
    values = compute_client_metrics(v)
    summary = round_summaries(values)
    assert summary["drift_cosine_mean"] == pytest.approx(R / 3)
    assert summary["drift_cosine_std"] == pytest.approx(math.sqrt(((R - R / 3) ** 2 * 2 + (-R - R / 3) ** 2) / 3))
    assert summary["drift_distance_mean"] == pytest.approx((2 * R + math.sqrt(2.5)) / 3)
    assert set(summary) == {"drift_cosine_mean", "drift_cosine_std", "drift_distance_mean", "drift_distance_std"}


def test_drift_is_measured_from_where_the_model_started():
    v = view([[1.0, 0.0]], [2.0, 3.0], [3.0, 3.0])  # the client is the whole federation
    assert drift_cosine(v).tolist() == pytest.approx([1.0]) and drift_distance(v).tolist() == pytest.approx([0.0], abs=1e-7)
    still = view([[0.0, 0.0]], [1.0, 1.0], [1.0, 1.0])  # nothing moved: no direction, no distance, no NaN
    assert drift_cosine(still).tolist() == [0.0] and drift_distance(still).tolist() == [0.0]


def test_attackers_pull_away_from_the_federation():
    config = ExperimentConfig.create(
        dataset="digits", partition="iid", model="logistic", num_clients=10, rounds=3, batch_size=32,
        attack="sign_flip", attack_fraction=0.2, strategy="median",
    )  # fmt: skip
    results = list(Simulation(config).run())
    for r in results:
        bad = [c.metrics["drift_cosine"] for c in r.clients if c.malicious]
        good = [c.metrics["drift_cosine"] for c in r.clients if not c.malicious]
        assert bad and max(bad) < 0 < min(good)
        far = [c.metrics["drift_distance"] for c in r.clients if c.malicious]
        assert min(far) > max(c.metrics["drift_distance"] for c in r.clients if not c.malicious)
        assert r.metrics["drift_cosine_std"] > 0.3  # two camps: a wide spread


def test_the_new_numbers_reach_the_csvs(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--num-clients", "4", "--rounds", "2", "--model", "logistic", "--quiet", "--no-store", "--out", str(out)]
    assert main([*args, "--dp", "central", "--dp-noise-multiplier", "0.5", "--compression", "topk"]) == 0
    rounds, clients = pd.read_csv(out / "rounds.csv"), pd.read_csv(out / "clients.csv")
    assert {"epsilon", "drift_cosine_mean", "drift_cosine_std", "drift_distance_mean", "drift_distance_std"} <= set(rounds.columns)
    assert {"drift_cosine", "drift_distance"} <= set(clients.columns)
    assert rounds["epsilon"].is_monotonic_increasing and rounds["epsilon"].gt(0).all()
    assert rounds["bytes_received"].lt(rounds["bytes_sent"]).all()  # top-k sends less than the model
    printed = capsys.readouterr().out
    assert set(rounds["epsilon_kind"]) == {"central (user-level)"} and set(rounds["epsilon_delta"]) == {1e-5}  # what the number means
    assert (
        "privacy: central (user-level) epsilon" in printed
        and "communication: clients sent" in printed
        and "client drift in the last round" in printed
    )
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert "epsilon" not in pd.read_csv(tmp_path / "plain" / "rounds.csv").columns  # only when dp is on
