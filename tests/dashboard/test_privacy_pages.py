"""Privacy, communication and drift on the pages: epsilon next to accuracy, accuracy against the
bytes sent, the drift charts singling out attackers, a run a budget ended saying why, Compare's
trade-off charts and columns, and the New run form's privacy and compression sections."""

from __future__ import annotations

import numpy as np
import pytest
from dashboard_helpers import SMALL, app, errors, figure, figure_titled, no_exceptions, page, record_run, shown, texts

from dashboard import charts
from flcore.config import ExperimentConfig
from flcore.service.execute import execute_run

RUN, COMPARE = "app_pages/run.py", "app_pages/compare.py"
PRIVATE = dict(dp="central", dp_noise_multiplier=2.0, dp_clip=0.5, compression="topk", compression_ratio=0.2, error_feedback=True)


def titles(at) -> list[str]:
    return [figure(c)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_a_private_compressed_run_charts_epsilon_next_to_accuracy_and_accuracy_against_bytes(store):
    run_id = record_run(store, **PRIVATE)
    at = page(RUN, run=run_id)
    no_exceptions(at)
    # accuracy | epsilon, then the loss; accuracy against bytes on the Time and communication tab
    assert titles(at) == ["Global test accuracy", "Privacy spent: central (user-level) epsilon at delta = 1e-05", "Global test loss"]
    rounds = store.rounds_frame(run_id)
    epsilon = figure_titled(at, "Privacy spent")["data"][0]
    assert epsilon["y"] == pytest.approx(rounds["epsilon"].tolist()) and epsilon["x"] == [1, 2, 3]
    assert charts.CAPTIONS["epsilon"] in [c.value for c in at.caption]
    at.session_state["run_tab"] = "Time and communication"
    at.run()
    no_exceptions(at)
    sent = figure_titled(at, "Accuracy against data sent")["data"][0]
    assert sent["x"] == pytest.approx(np.cumsum(rounds["bytes_received"]).tolist())
    assert sent["y"] == pytest.approx(rounds["test_accuracy"].tolist())
    assert charts.CAPTIONS["accuracy_bytes"] in [c.value for c in at.caption]
    assert "central DP (noise ×2, clip 0.5)" in texts(at) and "top 20% of coordinates with error feedback" in texts(at)


def test_the_drift_charts_single_out_the_attackers(store):
    # Under the median the attackers cannot steer the model, so they disagree with where it went.
    # (Under FedAvg two sign-flipping attackers of six become the aggregate, and the honest
    # clients are the ones that disagree; the attackers still sit farthest away.)
    run_id = record_run(store, attack="sign_flip", attack_fraction=0.34, strategy="median")
    at = page(RUN, run=run_id)
    at.session_state["run_tab"] = "Drift"
    at.run()
    no_exceptions(at)
    drift = figure_titled(at, "Client drift: who pulls away")["data"]
    clients = store.clients_frame(run_id)
    bad = {f"client {c} (malicious)" for c in clients.query("malicious")["client_id"].unique()}
    assert bad and bad <= {t["name"] for t in drift}
    for trace in drift:  # each client in the colour it has on every chart, attackers as an x
        client = int(trace["name"].split()[1])
        assert trace["marker"]["color"] == charts.client_color(client)
        assert trace["marker"]["symbol"] == ("x" if trace["name"] in bad else "circle")
        assert trace["x"] == pytest.approx([clients.loc[clients["client_id"] == client, "drift_cosine"].mean()])
    attackers = [t["x"][0] for t in drift if t["name"] in bad]
    honest = [t["x"][0] for t in drift if t["name"] not in bad]
    assert max(attackers) < 0 < min(honest)  # they pull away
    far = [t["y"][0] for t in drift if t["name"] in bad]
    assert min(far) > max(t["y"][0] for t in drift if t["name"] not in bad)
    spread = figure_titled(at, "Client agreement per round")["data"][1]
    assert spread["y"] == pytest.approx(store.rounds_frame(run_id)["drift_cosine_mean"].tolist())
    assert charts.CAPTIONS["drift"] in [c.value for c in at.caption]


def test_a_run_its_privacy_budget_ended_is_finished_and_says_why(store):
    config = ExperimentConfig.create(
        **{**SMALL, "rounds": 30, "clients_per_round": 2, "dp": "central", "dp_noise_multiplier": 1.0, "dp_target_epsilon": 6}
    )
    run_id = store.create_run(config)
    assert execute_run(store, run_id) == "done"
    at = page(RUN, run=run_id)
    no_exceptions(at)
    done = store.get_run(run_id).rounds_done
    assert 0 < done < 30 and f"Round {done} of 30 · its privacy budget allows {done}" in at.get("progress")[0].proto.text
    assert "Finished" in at.success[0].value
    assert "The privacy budget dp_target_epsilon=6 allows" in shown(at.info[0].value) and not errors(at)
    assert figure_titled(at, "Privacy spent")["layout"]["shapes"][0]["y0"] == 6  # the budget line


def test_compare_overlays_accuracy_against_bytes_and_epsilon_and_lists_both(store):
    private = record_run(store, name="private", **PRIVATE)
    plain = record_run(store, name="plain")
    at = page(COMPARE)
    no_exceptions(at)
    assert sorted(at.multiselect(key="compare_pick").value) == sorted([private, plain])
    on_bytes = figure_titled(at, "Test accuracy against data sent by clients")["data"]
    assert sorted(t["name"] for t in on_bytes) == ["plain", "private"]
    sent = {t["name"]: t["x"][-1] for t in on_bytes}
    assert sent["private"] < sent["plain"]  # top-k sent less
    on_epsilon = figure_titled(at, "Test accuracy against privacy spent")["data"]
    assert [t["name"] for t in on_epsilon] == ["private (central (user-level) epsilon, delta 1e-05)"]  # plain spent none
    assert on_epsilon[0]["x"] == pytest.approx(store.rounds_frame(private)["epsilon"].tolist())
    metrics = at.dataframe[0].value.set_index("run")
    assert metrics.loc["private", "final epsilon"] == pytest.approx(store.rounds_frame(private)["epsilon"].iloc[-1])
    assert np.isnan(metrics.loc["plain", "final epsilon"])
    assert metrics.loc["private", "epsilon kind"] == "central (user-level) epsilon at delta = 1e-05"
    assert metrics.loc["plain", "MB sent by clients"] == pytest.approx(store.rounds_frame(plain)["bytes_received"].sum() / 1e6)
    at.multiselect(key="compare_pick").set_value([plain]).run()  # no private run chosen: no epsilon chart to draw
    no_exceptions(at)
    titles = [figure(c)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Test accuracy against data sent") for t in titles)
    assert not any("privacy spent" in t for t in titles)


def test_compare_never_draws_central_and_local_epsilons_unmarked(store):
    central = record_run(store, name="central", **PRIVATE)
    local = record_run(store, name="local", **{**PRIVATE, "dp": "local"})
    at = page(COMPARE)
    no_exceptions(at)
    assert sorted(at.multiselect(key="compare_pick").value) == sorted([central, local])
    chart = figure_titled(at, "Test accuracy against privacy spent")
    names = sorted(t["name"] for t in chart["data"])
    assert names == ["central (central (user-level) epsilon, delta 1e-05)", "local (local (worst client) epsilon, delta 1e-05)"]
    assert {t["marker"]["symbol"] for t in chart["data"]} == {"circle", "diamond"}
    assert "central and local epsilons are different guarantees" in chart["layout"]["xaxis"]["title"]["text"]


def test_the_form_places_privacy_and_compression_in_their_own_sections_and_explains_a_bad_choice(store):
    at = app().run()
    no_exceptions(at)
    assert {"Privacy", "Communication: what clients send back"} <= {m.value.strip("*") for m in at.markdown}
    assert "cfg.dp_clip" not in {w.key for w in at.number_input}  # hidden while dp is none
    at.selectbox(key="cfg.dp").set_value("central").run()
    keys = {w.key for w in at.number_input}
    assert {"cfg.dp_clip", "cfg.dp_noise_multiplier", "cfg.dp_delta", "cfg.dp_target_epsilon"} <= keys
    at.selectbox(key="cfg.compression").set_value("quantize").run()
    assert at.number_input(key="cfg.compression_bits").max == 16 and at.toggle(key="cfg.error_feedback")
    at.selectbox(key="cfg.strategy").set_value("median").run()
    no_exceptions(at)
    assert any("dp='central' (DP-FedAvg) adds its noise to the plain mean" in e for e in errors(at))
    assert "Ready:" not in texts(at)
