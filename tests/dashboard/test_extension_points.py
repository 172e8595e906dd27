"""The engine's extension points, each exercised the way a newcomer would use it.

A per-client metric is one registration in `flcore.federation.metrics`: it is computed every round,
stored with no schema change, exported to clients.csv and drawn on the Run page. An executor is
one registered factory: the config accepts its name, the CLI lists it, the form offers it and
the simulation trains with it. (A strategy: tests/strategies/test_strategies.py.)
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from dashboard_helpers import figure, page

from flcore.cli import main
from flcore.config import ExperimentConfig
from flcore.federation.metrics import CLIENT_METRICS, ClientMetric
from flcore.federation.simulation import Simulation
from flcore.registry import Entry
from flcore.service.execute import execute_run
from flcore.training import EXECUTORS, ExecutorSpec, SequentialExecutor
from flcore.training.objective import LocalSettings

SMALL = dict(num_clients=5, rounds=2, model="logistic", batch_size=32, partition="iid")


def distance_from_new_model(view) -> torch.Tensor:
    """How far each client's model ends from the new global model."""
    return (view.global_before + view.deltas - view.global_after).norm(dim=1)


@pytest.fixture
def distance_metric(monkeypatch):
    metric = ClientMetric("Distance (L2)", "How far each client's model ends from the new global model.", distance_from_new_model)
    monkeypatch.setitem(
        CLIENT_METRICS._entries, "distance_to_new", Entry("distance_to_new", metric, "Distance to the new model", "A test metric.")
    )


def test_a_registered_client_metric_is_computed_stored_exported_and_drawn(distance_metric, store, tmp_path):
    config = ExperimentConfig.create(**SMALL)
    run_id = store.create_run(config)
    assert execute_run(store, run_id) == "done"
    clients = store.clients_frame(run_id)
    assert clients["distance_to_new"].dtype == "float64" and (clients["distance_to_new"] > 0).all()
    # what was stored is what the round computed
    expected = [c.metrics["distance_to_new"] for r in Simulation(config).run() for c in r.clients]
    assert clients["distance_to_new"].tolist() == pytest.approx(expected)

    out = tmp_path / "out"
    assert (
        main(
            ["run", "--no-store", "--quiet", "--out", str(out), *sum((["--" + k.replace("_", "-"), str(v)] for k, v in SMALL.items()), [])]
        )
        == 0
    )
    assert "distance_to_new" in pd.read_csv(out / "clients.csv").columns

    at = page("app_pages/run.py", run=run_id)
    at.session_state["run_tab"] = "Clients"
    at.run()
    titles = [figure(c)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Distance to the new model" in titles
    assert "How far each client's model ends from the new global model." in [c.value for c in at.caption]


class LoggingSequential(SequentialExecutor):
    """A toy executor: the sequential one, counting the clients it trained."""

    trained = 0

    def train(self, global_params, tasks, data, round_, corrections=None):
        LoggingSequential.trained += len(tasks)
        return super().train(global_params, tasks, data, round_, corrections)


def test_an_executor_is_one_registered_factory(monkeypatch, capsys):
    def build(model, config, num_classes):
        return LoggingSequential(model, LocalSettings.from_config(config), num_classes, config.seed)

    monkeypatch.setattr(EXECUTORS, "_entries", dict(EXECUTORS._entries))  # registered for this test only
    EXECUTORS.register("logging", label="Logging", description="A test executor.")(ExecutorSpec(build))
    LoggingSequential.trained = 0
    config = ExperimentConfig.create(**SMALL, executor="logging")  # the config accepts the name
    ours = [r.test_accuracy for r in Simulation(config).run()]
    reference = [r.test_accuracy for r in Simulation(config.replace(executor="sequential")).run()]
    assert ours == reference and LoggingSequential.trained == 2 * 5

    assert main(["list"]) == 0
    assert "logging" in capsys.readouterr().out
    from dashboard.form import CHOICES

    assert "logging" in CHOICES["executor"].names()
    with pytest.raises(Exception, match="executor='nope' is not a known executor"):
        ExperimentConfig.create(executor="nope")
