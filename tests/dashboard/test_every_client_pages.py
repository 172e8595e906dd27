"""Every client's own model on the pages (issue 20): the Run page's "Every client" tab, Compare's
fairness columns and chart, and New run's personalization section, under AppTest against runs a
real simulation wrote into a real store."""

from __future__ import annotations

import numpy as np
import pytest
from dashboard_helpers import app, figure_titled, no_exceptions, page, record_run, texts

RUN, COMPARE = "app_pages/run.py", "app_pages/compare.py"


@pytest.fixture
def ditto(store) -> str:
    return record_run(store, personalization="ditto", ditto_lambda=0.5, name="ditto")


def test_a_ditto_run_shows_every_client_with_the_global_and_its_own_model_from_the_store(store, ditto):
    at = page(RUN, run=ditto)
    no_exceptions(at)
    assert "Every client" in [t.label for t in at.tabs]
    at.session_state["run_tab"] = "Every client"
    at.run()
    no_exceptions(at)
    evaluations, rounds = store.evaluations_frame(ditto), store.rounds_frame(ditto)
    last = evaluations[evaluations["round"] == evaluations["round"].max()].sort_values("client_id")
    # the distribution: one box per evaluated round and model, each client a point in its colour
    boxes = {t["name"]: t for t in figure_titled(at, "Accuracy of every client")["data"] if t["type"] == "box"}
    assert set(boxes) == {"global model", "own model"}
    assert boxes["own model"]["median"][-1] == pytest.approx(np.median(last["personal_accuracy"]))
    assert boxes["global model"]["lowerfence"][-1] == pytest.approx(last["test_accuracy"].min())
    # the lines: the stored fairness summaries, with the run's threshold
    lines = {t["name"]: t for t in figure_titled(at, "Mean and worst-10% client accuracy")["data"]}
    assert lines["own model: worst 10%"]["y"] == pytest.approx(rounds["personal_accuracy_worst10"].tolist())
    assert lines["global model: mean"]["y"] == pytest.approx(rounds["client_accuracy_mean"].tolist())
    # the table: every client at the last evaluated round, sortable
    (table,) = at.dataframe
    shown = table.value
    assert list(shown.columns) == ["client", "test samples", "global model accuracy", "own model accuracy", "gain"]
    assert shown["client"].tolist() == list(range(6))
    assert shown["own model accuracy"].tolist() == pytest.approx((100 * last["personal_accuracy"]).tolist())  # in percent
    assert shown["gain"].tolist() == pytest.approx((100 * (last["personal_accuracy"] - last["test_accuracy"])).tolist())
    assert f"Every client after round {int(last['round'].iloc[0])}" in texts(at)
    at.session_state["run_tab"] = "Settings and downloads"
    at.run()
    assert "Evaluations (CSV)" in [d.proto.label for d in at.get("download_button")]


def test_a_run_without_client_test_data_has_no_every_client_tab_nor_its_download(store):
    run_id = record_run(store, client_test_fraction=0.0)
    at = page(RUN, run=run_id)
    no_exceptions(at)
    assert "Every client" not in [t.label for t in at.tabs]
    at.session_state["run_tab"] = "Settings and downloads"
    at.run()
    assert "Evaluations (CSV)" not in [d.proto.label for d in at.get("download_button")]


def test_a_run_without_a_personalized_method_shows_the_global_model_alone(store):
    run_id = record_run(store)
    at = page(RUN, run=run_id)
    at.session_state["run_tab"] = "Every client"
    at.run()
    no_exceptions(at)
    assert list(at.dataframe[0].value.columns) == ["client", "test samples", "global model accuracy"]
    names = {t["name"] for t in figure_titled(at, "Mean and worst-10% client accuracy")["data"]}
    assert names == {"global model: mean", "global model: worst 10%"}


def test_compare_shows_fairness_columns_and_every_clients_final_accuracy(store, ditto):
    record_run(store, name="fedavg")
    at = page(COMPARE)  # the two finished runs are picked
    no_exceptions(at)
    table = at.dataframe[0].value.set_index("run")
    rounds = store.rounds_frame(ditto)
    assert table.loc["ditto", "client mean accuracy"] == pytest.approx(rounds["client_accuracy_mean"].iloc[-1])
    assert table.loc["ditto", "own model worst 10%"] == pytest.approx(rounds["personal_accuracy_worst10"].iloc[-1])
    assert table.loc["ditto", "client share below threshold"] == pytest.approx(rounds["client_accuracy_below"].iloc[-1])
    assert np.isnan(table.loc["fedavg", "own model mean accuracy"]) and np.isfinite(table.loc["fedavg", "client worst 10%"])
    boxes = {t["name"]: t for t in figure_titled(at, "Final accuracy of every client, by run")["data"]}
    assert set(boxes["global model"]["x"]) == {"ditto", "fedavg"} and set(boxes["own model"]["x"]) == {"ditto"}


def test_new_run_offers_personalization_and_builds_a_config_with_it(store):
    at = app().run()
    assert any(m.value == "**Personalization: every client's own model**" for m in at.markdown)
    keys = {w.key for kind in ("selectbox", "number_input") for w in getattr(at, kind)}
    assert {"cfg.personalization", "cfg.client_test_fraction", "cfg.eval_every", "cfg.fairness_threshold"} <= keys
    assert "cfg.ditto_lambda" not in keys  # a method's own parameter appears with it
    at.selectbox(key="cfg.personalization").set_value("ditto").run()
    at.number_input(key="cfg.ditto_lambda").set_value(0.3).run()
    at.number_input(key="cfg.eval_every").set_value(2).run()
    at.number_input(key="cfg.num_clients").set_value(4).run()
    at.number_input(key="cfg.rounds").set_value(2).run()
    at.selectbox(key="cfg.model").set_value("logistic").run()
    at.selectbox(key="cfg.executor").set_value("vectorized").run()
    no_exceptions(at)
    assert not at.error
    at.button(key="run_button").click().run()
    no_exceptions(at)
    (run,) = store.list_runs()
    assert (run.config.personalization, run.config.ditto_lambda, run.config.eval_every) == ("ditto", 0.3, 2)
    store.request_cancel(run.run_id)
