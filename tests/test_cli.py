"""`python -m flcore`: outputs, determinism of the CSVs, the store record, and clean errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flcore.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--num-clients", "4", "--rounds", "2", "--partition", "iid", "--model", "logistic", "--quiet"]


def test_run_writes_every_result_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", *SMALL, "--out", str(out), "--no-store"]) == 0
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "rounds.csv",
        "clients.csv",
        "partition.csv",
        "timings.csv",
        "evaluations.csv",
    }
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds.columns[:3].tolist() == ["round", "test_loss", "test_accuracy"] and rounds["round"].tolist() == [1, 2]
    clients = pd.read_csv(out / "clients.csv")
    assert {"round", "client_id", "train_loss", "num_samples", "update_norm", "malicious"} <= set(clients.columns)
    assert len(clients) == 8
    partition = pd.read_csv(out / "partition.csv")
    assert partition.columns.tolist() == ["client_id", "label", "count"] and partition["count"].sum() == 1438
    assert json.loads((out / "config.json").read_text())["num_clients"] == 4
    evaluations = pd.read_csv(out / "evaluations.csv")  # every client on its own test data, every round (eval_every=1)
    assert evaluations[["round", "client_id"]].values.tolist() == [[r, c] for r in (1, 2) for c in range(4)]
    assert (evaluations["test_samples"] > 0).all() and evaluations["personal_accuracy"].isna().all()
    printed = capsys.readouterr().out
    assert "final test accuracy" in printed
    last = evaluations[evaluations["round"] == 2]["test_accuracy"]
    assert f"clients' accuracy with the global model (round 2, own test data): mean {last.mean():.4f}" in printed


def test_the_bar_shows_how_many_of_a_rounds_clients_trained(tmp_path, capsys, monkeypatch):
    from flcore.cli.run import postfix
    from flcore.training import base

    monkeypatch.setattr(base, "PROGRESS_EVERY_S", 0.0)  # every client reports
    small = [a for a in SMALL if a != "--quiet"]
    for where in (["--no-store"], ["--store", str(tmp_path / "runs.db")]):
        assert main(["run", *small, "--executor", "sequential", "--out", str(tmp_path / where[0]), *where]) == 0
        bar = capsys.readouterr().err
        assert "clients=1/4" in bar and "clients=3/4" in bar and "clients=4/4" not in bar  # a finished round shows its accuracy
    assert postfix(None, 37, 131) == {"clients": "37/131"}


def test_clients_that_come_and_go_are_in_the_csvs_and_the_summary(tmp_path, capsys):
    out = tmp_path / "out"
    flags = ["--num-clients", "10", "--clients-per-round", "5", "--availability", "0.7", "--dropout", "0.3"]
    assert (
        main(
            [
                "run",
                *SMALL,
                *flags,
                "--stragglers",
                "0.5",
                "--straggler-policy",
                "partial",
                "--rounds",
                "3",
                "--out",
                str(out),
                "--no-store",
            ]
        )
        == 0
    )
    rounds, clients = pd.read_csv(out / "rounds.csv"), pd.read_csv(out / "clients.csv")
    assert {"sim_round_s", "sim_clock_s", "num_online", "num_reported", "num_dropped", "num_late", "num_partial"} <= set(rounds.columns)
    assert set(clients["status"]) <= {"trained", "partial", "late", "dropped"} and "dropped" in set(clients["status"])
    assert (clients.groupby("round").size() == rounds.set_index("round")["num_sampled"]).all()  # every sampled client, dropped ones too
    assert clients.loc[clients["status"] == "dropped", "train_loss"].isna().all()
    text = capsys.readouterr().out
    assert "simulated time" in text and f"{int(rounds['num_dropped'].sum())} dropped" in text


def test_same_config_twice_gives_identical_csvs(tmp_path):
    for name in ("a", "b"):
        assert main(["run", *SMALL, "--partition", "dirichlet", "--out", str(tmp_path / name), "--no-store"]) == 0
    for f in ("rounds.csv", "clients.csv", "partition.csv", "config.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_flags_override_the_config_file(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"num_clients": 6, "rounds": 1, "lr": 0.01}))
    out = tmp_path / "out"
    assert main(["run", "--config", str(cfg), "--lr", "0.2", "--clients-per-round", "0.5", "--out", str(out), "--no-store", "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["num_clients"], saved["lr"], saved["client_fraction"], saved["rounds"]) == (6, 0.2, 0.5, 1)


def test_cli_runs_are_recorded_in_the_store(tmp_path):
    from flcore.store import RunStore

    db = tmp_path / "runs.db"
    assert main(["run", *SMALL, "--out", str(tmp_path / "o"), "--store", str(db)]) == 0
    (info,) = RunStore(db).list_runs()
    assert (info.status, info.source, info.rounds_done) == ("done", "cli", 2)
    stored = RunStore(db).rounds_frame(info.run_id)
    written = pd.read_csv(tmp_path / "o" / "rounds.csv")
    assert stored["test_accuracy"].tolist() == pytest.approx(written["test_accuracy"].tolist())


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "flcore", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--num-clients", "10", "--clients-per-round", "50"], "clients_per_round=50 exceeds num_clients=10"),
        (["run", "--alpha", "-1"], "alpha='-1' is invalid"),
        (["run", "--strategy", "fedsgd"], "strategy='fedsgd' is not a known strategy; choose one of: fedavg"),
        (["run", "--availability", "0"], "availability='0' is invalid: input should be greater than 0 (allowed: above 0, at most 1)"),
        (["run", "--straggler-policy", "wait"], "straggler_policy='wait' is invalid: input should be 'drop' or 'partial'"),
        (["run", "--config", "/nonexistent.json"], "--config /nonexistent.json does not exist"),
        (["run", "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["partition", "--partition", "dirichlet", "--alpha", "0.01", "--min-samples-per-client", "100"], "raise alpha"),
    ],
)
def test_bad_arguments_exit_2_with_a_sentence_and_no_traceback(args, message, tmp_path):
    proc = _cli(*args, env={"FLCORE_STORE": str(tmp_path / "runs.db")})
    assert proc.returncode == 2 and message in proc.stderr  # a split the data cannot give is refused too
    assert "Traceback" not in proc.stderr


def test_list_and_partition_commands():
    listing = _cli("list")
    assert listing.returncode == 0
    for name in ("digits", "dirichlet", "mlp", "fedavg", "krum", "scaffold", "sign_flip", "ray"):
        assert name in listing.stdout
    assert "ray: available (ray 2." in listing.stdout  # the test install includes requirements-ray.txt
    part = _cli("partition", "--num-clients", "3", "--partition", "shards", "--shards-per-client", "1")
    assert part.returncode == 0 and "classes_per_client" in part.stdout


def test_list_shows_every_dataset_with_its_size_and_whether_it_works_offline(capsys):
    from flcore.data.datasets import DATASETS
    from flcore.models import MODELS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    datasets = out.split("datasets:\n")[1].split("\n\n")[0].splitlines()
    assert [row.split()[0] for row in datasets] == DATASETS.names()
    for row, entry in zip(datasets, DATASETS.entries()):
        where = "works offline" if entry.obj.info.offline else "downloaded when missing"
        assert f"({entry.obj.size}; {where})" in row, row
    rows = {row.split()[0]: row for row in datasets}
    assert "(60,000 images; downloaded when missing)" in rows["cifar100"]
    assert (
        "works offline" in rows["femnist"] and "LEAF" in rows["femnist"] and "[settings:" not in rows["femnist"]
    )  # its folder is the server's
    assert "[settings: data_file, label_column, client_column, drop_columns, missing_values, allow_many_classes]" in rows["file"]
    assert "[settings: emnist_split]" in rows["emnist"]
    for name in (*MODELS.names(), "natural"):
        assert f"  {name} " in out


def test_runs_and_show_read_the_store(tmp_path):
    db = str(tmp_path / "runs.db")
    assert main(["run", *SMALL, "--out", str(tmp_path / "o"), "--store", db]) == 0
    runs = _cli("runs", "--store", db)
    run_id = runs.stdout.splitlines()[1].split()[0]
    shown = _cli("show", run_id, "--store", db)
    assert shown.returncode == 0 and "status: done (2/2 rounds)" in shown.stdout
    missing = _cli("show", "nope", "--store", db)
    assert missing.returncode == 2 and "no run with id 'nope'" in missing.stderr
