"""The tables and sentences the pages show, computed from hand-made runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard import tables
from flcore.config import ExperimentConfig
from flcore.federation.privacy import affordable_rounds
from flcore.store import RunInfo


def info(
    run_id="a1", name="demo", status="done", rounds_done=4, total=4, started=100.0, final=0.8, sweep_id=None, owner=None, **config
) -> RunInfo:
    cfg = ExperimentConfig.create(rounds=total, **config)
    return RunInfo(
        run_id, name, cfg, status, rounds_done, total, None, 50.0, started, None, final, False, "dashboard", None, owner, sweep_id
    )


def test_describe_split_names_each_partitioner_with_its_setting():
    assert tables.describe_split(ExperimentConfig.create(alpha=0.1)) == "Dirichlet α=0.1"
    assert tables.describe_split(ExperimentConfig.create(partition="shards", shards_per_client=3)) == "Shards (3 per client)"
    assert tables.describe_split(ExperimentConfig.create(partition="iid")) == "IID"
    assert "lognormal" in tables.describe_split(ExperimentConfig.create(partition="quantity_skew"))


def test_field_labels_are_words():
    assert tables.field_label("lr") == "Client learning rate"
    assert tables.field_label("some_new_field") == "Some new field"


@pytest.mark.parametrize(("seconds", "text"), [(None, ""), (4.4, "4 s"), (65, "1 min 05 s"), (7440, "2 h 04 min")])
def test_format_duration(seconds, text):
    assert tables.format_duration(seconds) == text


def test_time_left_follows_the_pace_so_far():
    running = info(status="running", rounds_done=2, total=10, started=100.0)
    assert tables.time_left(running, now=110.0) == pytest.approx(40.0)  # 5 s per round, 8 rounds to go
    assert tables.time_left(info(status="running", rounds_done=0, total=10), now=110.0) is None
    assert tables.time_left(info(status="done"), now=110.0) is None


def test_runs_table_has_the_columns_the_runs_page_promises():
    table = tables.runs_table([info(strategy="krum", num_clients=12), info("b2", status="running", rounds_done=1)])
    for column in ("name", "owner", "dataset", "split", "strategy", "clients", "status", "progress", "final accuracy", "created"):
        assert column in table.columns
    assert table.loc[0, "strategy"] == "Krum" and table.loc[0, "clients"] == 12
    assert table.loc[1, "progress"] == pytest.approx(0.25)
    swept = tables.runs_table([info(sweep_id="s1"), info("b2")], {"s1": "lr sweep"})
    assert swept["sweep"].tolist() == ["lr sweep", ""]


GRID = {"strategy": ["fedavg", "median"], "lr": [0.05, 0.1], "seeds": [0, 1]}


def sweep_runs() -> list[RunInfo]:
    """A 2 x 2 x 2 sweep; fedavg at lr 0.05 finished at 0.90 and 0.80, one median run is still going."""
    finals = {("fedavg", 0.05): (0.9, 0.8), ("fedavg", 0.1): (0.7, 0.7), ("median", 0.05): (0.6, None), ("median", 0.1): (0.5, 0.3)}
    runs = []
    for s in ("fedavg", "median"):
        for lr in (0.05, 0.1):
            for seed in (0, 1):
                final = finals[(s, lr)][seed]
                status = "running" if final is None else "done"
                runs.append(info(f"{s}{lr}{seed}", status=status, final=final, sweep_id="s1", strategy=s, lr=lr, seed=seed))
    return runs


def test_sweep_summary_gives_final_accuracy_mean_and_std_per_setting():
    table = tables.sweep_summary(sweep_runs(), GRID)
    assert table["setting"].tolist() == [
        "strategy=fedavg, lr=0.05",
        "strategy=fedavg, lr=0.1",
        "strategy=median, lr=0.05",
        "strategy=median, lr=0.1",
    ]
    assert table["Aggregation"].tolist() == ["FedAvg", "FedAvg", "Coordinate-wise median", "Coordinate-wise median"]
    assert table["Client learning rate"].tolist() == ["0.05", "0.1", "0.05", "0.1"]
    first = table.iloc[0]
    assert first["mean final accuracy"] == pytest.approx(0.85) and first["std over seeds"] == pytest.approx(0.1 / 2**0.5)
    assert first["final accuracy"] == "85.00% ± 7.07%" and first["runs"] == "2 / 2"
    going = table.iloc[2]
    assert (going["runs"], going["mean final accuracy"], going["still training"]) == ("1 / 2", 0.6, 1)


def test_sweep_curves_label_each_run_with_its_setting_and_seed():
    runs = sweep_runs()[:3]
    frame = pd.DataFrame({"round": [1, 2], "test_accuracy": [0.5, 0.6], "test_loss": [1.0, 0.9], "wall_time_s": [0.1, 0.1]})
    curves = tables.sweep_curves(runs, {runs[0].run_id: frame, runs[1].run_id: frame, runs[2].run_id: frame.iloc[0:0]}, GRID)
    assert curves.columns.tolist() == ["setting", "seed", "round", "test_accuracy", "test_loss"]
    assert curves["setting"].unique().tolist() == ["strategy=fedavg, lr=0.05"] and curves["seed"].tolist() == [0, 0, 1, 1]
    assert tables.sweep_curves([], {}, GRID).empty


def test_config_differences_lists_only_the_settings_that_differ():
    diff = tables.config_differences(
        {
            "a": ExperimentConfig.create(name="a", strategy="fedavg"),
            "b": ExperimentConfig.create(name="b", strategy="median", alpha=0.1),
        }
    )
    assert list(diff.index) == ["Dirichlet alpha", "Aggregation"]
    assert diff.loc["Aggregation"].tolist() == ["FedAvg", "Coordinate-wise median"]
    assert tables.config_differences({"a": ExperimentConfig(), "b": ExperimentConfig()}).empty


def test_final_metrics_and_unique_labels():
    runs = [info("a1", name="same"), info("b2", name="same", status="failed", rounds_done=1)]
    frames = {
        "a1": pd.DataFrame({"round": [1, 2], "test_accuracy": [0.5, 0.4], "test_loss": [1.0, 1.1], "wall_time_s": [1.0, 3.0]}),
        "b2": pd.DataFrame(columns=["round", "test_accuracy", "test_loss", "wall_time_s"]),
    }
    table = tables.final_metrics(runs, frames)
    assert table["run"].tolist() == ["same [a1]", "same [b2]"]
    first = table.iloc[0]
    assert (first["final accuracy"], first["best accuracy"], first["best round"]) == (0.4, 0.5, 1)
    assert first["seconds per round"] == 2.0
    assert pd.isna(table.iloc[1]["final accuracy"])


def test_results_json_holds_config_and_every_table():
    rounds = pd.DataFrame({"round": [1], "test_accuracy": [0.5]})
    doc = json.loads(tables.results_json(info(), rounds, rounds.iloc[0:0], rounds.iloc[0:0]))
    assert doc["evaluations"] == []
    evaluations = pd.DataFrame({"round": [1], "client_id": [0], "test_accuracy": [0.75]})
    assert json.loads(tables.results_json(info(), rounds, rounds, rounds, evaluations))["evaluations"] == [
        {"round": 1, "client_id": 0, "test_accuracy": 0.75}
    ]
    assert doc["config"]["rounds"] == 4 and doc["rounds"] == [{"round": 1, "test_accuracy": 0.5}]
    assert ExperimentConfig.create(**doc["config"]) == info().config


def test_privacy_and_compression_appear_in_the_run_line_the_final_metrics_and_the_differences():
    plain = ExperimentConfig.create()
    private = ExperimentConfig.create(dp="local", dp_noise_multiplier=0.8, dp_target_epsilon=20, compression="quantize", compression_bits=4)
    line = tables.describe_config(private)
    assert "local DP (noise ×0.8, clip 1, budget ε=20)" in line and "updates: 4-bit quantized" in line
    assert "DP" not in tables.describe_config(plain) and "updates:" not in tables.describe_config(plain)
    frames = {
        "a1": pd.DataFrame({"round": [1, 2], "test_accuracy": [0.5, 0.6], "test_loss": [1.0, 0.9], "bytes_received": [1e6, 5e5],
                            "epsilon": [1.5, 2.5]}),
        "b2": pd.DataFrame({"round": [1], "test_accuracy": [0.4], "test_loss": [1.2], "bytes_received": [2e6]}),
    }  # fmt: skip
    table = tables.final_metrics([info("a1"), info("b2")], frames).set_index("run")
    assert table.loc["demo [a1]", "final epsilon"] == 2.5 and pd.isna(table.loc["demo [b2]", "final epsilon"])
    assert table["MB sent by clients"].tolist() == [1.5, 2.0]
    diff = tables.config_differences({"plain": plain, "private": private})
    assert {"Differential privacy", "Noise multiplier", "Privacy budget (epsilon)", "Update compression", "Bits per coordinate"} <= set(
        diff.index
    )
    assert diff.loc["Differential privacy"].tolist() == ["No differential privacy", "Local DP"]


def test_a_run_with_a_privacy_budget_plans_and_times_only_the_rounds_it_allows():
    limited = info(status="running", rounds_done=2, total=40, num_clients=20, clients_per_round=2, dp="central", dp_target_epsilon=3)
    allowed = affordable_rounds(limited.config)
    assert 2 < allowed < 40 and tables.planned_rounds(limited) == allowed
    assert tables.time_left(limited, now=110.0) == pytest.approx(5.0 * (allowed - 2))  # 5 s per round so far
    assert tables.planned_rounds(info(total=40)) == 40


def test_every_clients_table_is_the_last_evaluated_round_with_the_gain_of_its_own_model():
    evaluations = pd.DataFrame({
        "round": [2, 2, 4, 4], "client_id": [1, 0, 1, 0], "test_samples": [5, 4, 5, 4], "test_loss": [1.0] * 4,
        "test_accuracy": [0.2, 0.4, 0.6, 0.5], "personal_loss": [0.5] * 4, "personal_accuracy": [0.3, 0.5, 0.8, 0.5],
    })  # fmt: skip
    table = tables.client_evaluations_table(evaluations)
    assert table["client"].tolist() == [0, 1] and table["test samples"].tolist() == [4, 5]
    assert table["global model accuracy"].tolist() == [0.5, 0.6] and table["gain"].tolist() == pytest.approx([0.0, 0.2])
    assert tables.client_evaluations_table(evaluations.iloc[0:0]).empty


def test_final_metrics_show_the_last_evaluated_rounds_fairness_only_where_some_run_measured_it():
    frames = {
        "a1": pd.DataFrame({"round": [1, 2, 3], "test_accuracy": [0.5, 0.6, 0.7], "test_loss": [1.0, 0.9, 0.8],
                            "client_accuracy_mean": [0.4, 0.5, np.nan], "client_accuracy_worst10": [0.1, 0.2, np.nan],
                            "client_accuracy_below": [0.5, 0.25, np.nan]}),
        "b2": pd.DataFrame({"round": [1], "test_accuracy": [0.4], "test_loss": [1.2]}),
    }  # fmt: skip
    table = tables.final_metrics([info("a1"), info("b2")], frames).set_index("run")
    assert table.loc["demo [a1]", ["client mean accuracy", "client worst 10%", "client share below threshold"]].tolist() == [0.5, 0.2, 0.25]
    assert pd.isna(table.loc["demo [b2]", "client mean accuracy"])
    assert "own model mean accuracy" not in table  # no run had own models
    plain = tables.final_metrics([info("b2")], {"b2": frames["b2"]})
    assert not set(tables.FAIRNESS_COLUMNS.values()) & set(plain.columns)
