"""Sweeps: grids checked with sentences, expanded into one config per combination, stored under
one sweep id in one transaction, trained by the CLI, and summarised as mean ± std over seeds."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from flcore.cli import main
from flcore.config import ExperimentConfig
from flcore.service.sweep import SweepError, check_grid, describe_size, expand, final_accuracy_table, setting_label, setting_of
from flcore.store import RunStore

BASE = ExperimentConfig.create(dataset="digits", num_clients=4, rounds=2, model="logistic", partition="iid", batch_size=32)
GRID = {"strategy": ["fedavg", "median"], "lr": [0.05, 0.1], "seeds": [0, 1]}
SMALL = ["--num-clients", "4", "--rounds", "2", "--model", "logistic", "--partition", "iid", "--batch-size", "32", "--quiet"]


# Grids ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"lrr": [0.1]}, 'grid key "lrr" is not a setting (did you mean "lr"?)'),
        ({"lr": 0.1}, 'grid key "lr" must be a list of values, e.g. "lr": [0.1]; got 0.1'),
        ({"lr": []}, 'grid key "lr" has an empty list'),
        ({"lr": [0.1, 0.1]}, 'grid key "lr" lists 0.1 twice'),
        ({"seed": [0, 1]}, 'list the seeds under "seeds", e.g. "seeds": [0, 1]'),
        ({"name": ["a"]}, 'grid key "name" cannot be swept'),
        ({"seeds": [0, -1]}, '"seeds" must be whole numbers from 0 to 2147483647; got -1'),
        ({"seeds": [0, 1.5]}, "got 1.5"),
        ({}, "the grid is empty"),
        ([["lr", 0.1]], "the grid must be a JSON object"),
    ],
)
def test_a_bad_grid_is_refused_with_a_sentence_naming_the_key(grid, message):
    with pytest.raises(SweepError) as info:
        check_grid(grid)
    assert message in str(info.value)


def test_a_grid_expands_to_one_named_config_per_combination_seeds_innermost():
    combos = expand(GRID, BASE, "demo")
    assert describe_size(GRID) == "2 strategy x 2 lr x 2 seeds = 8 runs"
    assert len(combos) == 8
    assert [(dict(c.setting)["strategy"], dict(c.setting)["lr"], c.seed) for c in combos] == [
        (s, lr, seed) for s in ("fedavg", "median") for lr in (0.05, 0.1) for seed in (0, 1)
    ]
    first = combos[0].config
    assert (first.strategy, first.lr, first.seed, first.num_clients, first.rounds) == ("fedavg", 0.05, 0, 4, 2)
    assert first.name == "demo · strategy=fedavg, lr=0.05 · seed 0"
    assert all(setting_of(c.config, GRID) == c.setting for c in combos)
    assert setting_label(()) == "base settings"
    assert len(expand({"seeds": [3, 4]}, BASE, "x")) == 2 and describe_size({"seeds": [3, 4]}) == "2 seeds = 2 runs"


def test_a_refused_combination_names_its_settings_and_nothing_is_expanded():
    grid = {"strategy": ["fedavg", "krum"], "attack": ["none", "sign_flip"]}
    with pytest.raises(SweepError) as info:
        expand(grid, BASE, "x")
    text = str(info.value)
    assert text.startswith("2 of the grid's 4 settings are refused, so nothing was queued")
    assert "strategy=fedavg, attack=sign_flip: attack_fraction=0 must be above 0" in text
    assert "strategy=krum, attack=sign_flip" in text


def test_too_many_combinations_are_refused_with_the_count():
    with pytest.raises(SweepError, match=r"the grid makes 40 batch_size x 40 lr = 1600 runs, more than 1000"):
        expand({"batch_size": list(range(1, 41)), "lr": [0.01 * i for i in range(1, 41)]}, BASE, "x")


def test_final_accuracy_mean_and_std_over_seeds():
    finals = pd.DataFrame(
        {"setting": ["a", "a", "b", "b", "c"], "seed": [0, 1, 0, 1, 0], "final_accuracy": [0.9, 0.8, 0.5, math.nan, math.nan]}
    )
    table = final_accuracy_table(finals)
    assert table["setting"].tolist() == ["a", "b", "c"]
    assert table["mean"].iloc[0] == pytest.approx(0.85) and table["std"].iloc[0] == pytest.approx(math.sqrt(0.005))
    assert table["final accuracy"].iloc[0] == "85.00% ± 7.07%"
    assert (table["mean"].iloc[1], table["std"].iloc[1], table["runs"].iloc[1]) == (0.5, 0.0, "1 / 2")
    assert table["final accuracy"].iloc[2] == "no rounds yet" and math.isnan(table["mean"].iloc[2])


# The store ------------------------------------------------------------------------------------------
def test_a_sweep_and_its_runs_are_stored_together(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    alone = store.create_run(BASE)
    combos = expand(GRID, BASE, "demo")
    sweep_id, run_ids = store.create_sweep("demo", GRID, [c.config for c in combos])
    (info,) = store.list_sweeps()
    assert (info.sweep_id, info.name, info.grid, info.total, info.statuses) == (sweep_id, "demo", GRID, 8, {"queued": 8})
    assert info.run_ids == tuple(run_ids) and info.active
    assert {r.run_id: r.sweep_id for r in store.list_runs()} == {alone: None, **{r: sweep_id for r in run_ids}}
    assert store.get_run(run_ids[3]).config == combos[3].config
    for run_id in run_ids[:-1]:
        store.delete_run(run_id)
    assert store.get_sweep(sweep_id).total == 1
    store.delete_run(run_ids[-1])  # its last run: the sweep goes too
    assert store.list_sweeps() == [] and store.get_sweep(sweep_id) is None


# The command line ----------------------------------------------------------------------------------
def test_sweep_queues_one_run_per_combination_under_one_sweep_id(tmp_path, capsys):
    grid, db = tmp_path / "grid.json", tmp_path / "runs.db"
    grid.write_text(json.dumps(GRID))
    assert main(["sweep", "--grid", str(grid), "--store", str(db), "--no-wait", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "2 strategy x 2 lr x 2 seeds = 8 runs, queued in" in out
    store = RunStore(db)
    (sweep,) = store.list_sweeps()
    assert sweep.name == "grid" and sweep.statuses == {"queued": 8} and f"sweep {sweep.sweep_id} (grid)" in out
    assert sorted((r.config.strategy, r.config.lr, r.config.seed) for r in store.list_runs()) == sorted(
        (s, lr, seed) for s in ("fedavg", "median") for lr in (0.05, 0.1) for seed in (0, 1)
    )


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"lrr": [0.1]}, 'error: grid key "lrr" is not a setting'),
        (
            {"strategy": ["krum"], "attack": ["sign_flip"]},
            "error: 1 of the grid's 1 settings is refused, so nothing was queued: strategy=krum",
        ),
    ],
)
def test_a_bad_sweep_exits_2_and_queues_nothing(grid, message, tmp_path, capsys):
    path, db = tmp_path / "grid.json", tmp_path / "runs.db"
    path.write_text(json.dumps(grid))
    assert main(["sweep", "--grid", str(path), "--store", str(db), *SMALL]) == 2
    assert message in capsys.readouterr().err
    assert RunStore(db).list_runs() == []


def test_a_missing_or_broken_grid_file_is_a_sentence(tmp_path, capsys):
    assert main(["sweep", "--grid", str(tmp_path / "nope.json"), "--store", str(tmp_path / "r.db")]) == 2
    assert "--grid" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{lr: [0.1]")
    assert main(["sweep", "--grid", str(broken), "--store", str(tmp_path / "r.db")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_sweep_trains_its_runs_in_local_workers_and_prints_mean_and_std(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FLCORE_RAY_ADDRESS", raising=False)
    grid, db = tmp_path / "grid.json", tmp_path / "runs.db"
    grid.write_text(json.dumps({"lr": [0.05, 0.1], "seeds": [0, 1]}))
    assert main(["sweep", "--grid", str(grid), "--store", str(db), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "training them in local worker processes" in out
    store = RunStore(db)
    runs = store.list_runs()
    assert len(runs) == 4 and {r.status for r in runs} == {"done"} and {r.worker["start_method"] for r in runs} != {"ray"}
    finals = {(r.config.lr, r.config.seed): r.final_accuracy for r in runs}
    values = [finals[(0.1, 0)], finals[(0.1, 1)]]
    mean, std = sum(values) / 2, abs(values[0] - values[1]) / math.sqrt(2)
    assert f"lr=0.1 2 / 2 {mean:.2%} ± {std:.2%}" in " ".join(out.split())
