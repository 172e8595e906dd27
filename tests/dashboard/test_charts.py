"""The chart builders on a small run stored as the engine stores one: every registered chart is
titled, has labelled axes and a caption, draws what it is given, and gives each client one colour
everywhere."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from dashboard_helpers import stored_frames

from dashboard import charts
from flcore.federation.personalization import fairness
from flcore.records import ClientEvaluation, ClientResult, Offline, RoundResult


def client(cid: int, loss: float, norm: float, cosine: float, distance: float, malicious: bool = False) -> ClientResult:
    return ClientResult(cid, num_samples=5, num_steps=1, train_loss=loss, train_accuracy=0.2, update_norm=norm, malicious=malicious,
                        metrics={"drift_cosine": cosine, "drift_distance": distance})  # fmt: skip


# 3 clients, 2 sampled per round; client 2 is malicious; client 1 was offline in round 3.
RESULTS = [
    RoundResult(1, (0, 1), (client(0, 2.0, 1.0, 0.9, 1.0), client(1, 1.9, 1.1, 0.7, 1.2)), test_loss=2.0, test_accuracy=0.3,
                wall_time_s=0.5, bytes_sent=10, bytes_received=10,
                metrics={"epsilon": 1.5, "drift_cosine_mean": 0.5, "drift_cosine_std": 0.1, "sim_round_s": 4.0, "sim_clock_s": 4.0}),
    RoundResult(2, (1, 2), (client(1, 1.5, 0.9, 0.8, 0.8), client(2, 3.0, 9.0, -0.9, 9.0, malicious=True)), test_loss=1.5,
                test_accuracy=0.5, wall_time_s=0.4, bytes_sent=10, bytes_received=10,
                metrics={"epsilon": 2.25, "drift_cosine_mean": 0.2, "drift_cosine_std": 0.6, "sim_round_s": 6.0, "sim_clock_s": 10.0}),
    RoundResult(3, (0, 2), (client(0, 1.1, 0.8, 0.6, 1.0), client(2, 3.5, 9.5, -0.7, 9.4, malicious=True)), test_loss=1.2,
                test_accuracy=0.6, wall_time_s=0.4, bytes_sent=10, bytes_received=10,
                metrics={"epsilon": 2.75, "drift_cosine_mean": 0.1, "drift_cosine_std": 0.7, "sim_round_s": 5.0, "sim_clock_s": 15.0},
                offline=Offline(group=1, counts=(0, 1, 0))),
]  # fmt: skip


def evaluated(result: RoundResult, accuracy: list[float], own: list[float]) -> RoundResult:
    """`result` with every client evaluated on its own 4 test samples (the global model's and its
    own model's accuracy) and the round's fairness summaries, as the engine stores them."""
    evaluations = tuple(ClientEvaluation(c, 4, 1.0 - a, a, 1.0 - o, o) for c, (a, o) in enumerate(zip(accuracy, own)))
    summaries = {**fairness(np.array(accuracy), 0.5, "client_accuracy"), **fairness(np.array(own), 0.5, "personal_accuracy")}
    return dataclasses.replace(result, evaluations=evaluations, metrics={**result.metrics, **summaries})


# Every client is evaluated after rounds 2 and 3 (eval_every=2 would skip round 1 likewise).
RESULTS[1:] = [evaluated(RESULTS[1], [0.25, 0.5, 0.75], [0.5, 0.75, 1.0]), evaluated(RESULTS[2], [0.5, 0.5, 0.75], [0.75, 1.0, 1.0])]
# client 0 holds labels 0 and 1, client 1 label 1, client 2 label 2 (3 labels).
COUNTS = np.array([[4, 1, 0], [0, 6, 0], [0, 0, 5]])
STORED = stored_frames(RESULTS, COUNTS)
ROUNDS, CLIENTS, PARTITION, OFFLINE = STORED.rounds, STORED.clients, STORED.partition, STORED.offline
EVALUATIONS = STORED.evaluations
SAMPLE = charts.Sample(
    ROUNDS, CLIENTS, PARTITION, OFFLINE, num_clients=3, total_rounds=5, class_names=("zero", "one", "two"), evaluations=EVALUATIONS
)


def test_the_stored_run_is_the_one_written():
    assert ROUNDS["test_accuracy"].tolist() == [0.3, 0.5, 0.6] and ROUNDS["epsilon"].tolist() == [1.5, 2.25, 2.75]
    assert list(zip(CLIENTS["round"], CLIENTS["client_id"])) == [(1, 0), (1, 1), (2, 1), (2, 2), (3, 0), (3, 2)]
    assert CLIENTS["malicious"].tolist() == [False, False, False, True, False, True]
    assert OFFLINE[["round", "group"]].values.tolist() == [[3, 1]] and list(OFFLINE["counts"].iloc[0]) == [0, 1, 0]
    assert list(zip(EVALUATIONS["round"], EVALUATIONS["client_id"])) == [(2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)]
    assert ROUNDS["client_accuracy_mean"].iloc[1:].tolist() == [0.5, 0.5833333333333334] and np.isnan(
        ROUNDS["client_accuracy_mean"].iloc[0]
    )


# The registry: each chart declared once, drawn from its example -------------------------------
@pytest.mark.parametrize("empty", [False, True], ids=["with data", "before the first round"])
@pytest.mark.parametrize("name", charts.CHARTS.names())
def test_every_chart_has_a_title_labelled_axes_and_a_caption(name, empty):
    fig = charts.CHARTS.get(name).figure(SAMPLE.empty() if empty else SAMPLE)
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text, f"{name} has no title"
    assert fig.layout.xaxis.title.text, f"{name} has no x-axis title"
    assert fig.layout.yaxis.title.text, f"{name} has no y-axis title"
    assert charts.CAPTIONS[name].strip(), f"{name} has no caption"
    if empty:  # says why it is empty instead of drawing a blank frame
        assert any("…" in a.text or "Pick" in a.text for a in fig.layout.annotations), name
    else:
        assert fig.data, f"{name} draws nothing from its example"


def test_the_warm_up_draws_every_chart_from_data():
    made_up = charts.made_up()
    for entry in charts.CHARTS.entries():
        fig = entry.obj.figure(made_up)
        waiting = [a.text for a in fig.layout.annotations if a.xref == "paper" and a.yref == "paper"]  # a note across the frame
        assert fig.data and not waiting, f"{entry.name} draws no data for the warm-up: {waiting}"
    charts.warm_up()


def test_every_chart_function_is_registered():
    """A chart drawn on a page is registered (so it has a caption, and the tests and the warm-up
    draw it); the one exception is the general per-client builder the registered ones call."""
    registered = {entry.obj.draw for entry in charts.CHARTS.entries()}
    general = {charts.client_metric_chart}
    modules = (
        charts.global_model,
        charts.time_and_communication,
        charts.clients,
        charts.drift,
        charts.data,
        charts.fairness,
        charts.compare,
    )
    for module in modules:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if (
                function.__module__ == module.__name__
                and not name.startswith("_")
                and inspect.signature(function).return_annotation in ("go.Figure", go.Figure)
            ):
                assert function in registered | general, f"{module.__name__}.{name} draws a chart that is not registered"


def test_a_chart_name_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        charts.chart("accuracy", caption="again", example=lambda s: (s.rounds,))(charts.accuracy_chart)


def test_accuracy_chart_draws_every_round_and_spans_the_whole_run():
    fig = charts.accuracy_chart(ROUNDS, total_rounds=10)
    (trace,) = fig.data
    assert list(trace.x) == [1, 2, 3] and list(trace.y) == [0.3, 0.5, 0.6]
    assert tuple(fig.layout.xaxis.range) == (0.5, 10.5)  # the axis does not jump as rounds arrive
    assert fig.layout.yaxis.tickformat == ".0%"


def test_client_colours_are_fixed_distinct_and_shared_by_every_chart():
    first = [charts.client_color(i) for i in range(200)]
    assert first == [charts.client_color(i) for i in range(200)]
    assert len(set(first)) == 200
    assert all(c.startswith("#") and len(c) == 7 for c in first)
    # the per-client line chart and the participation marks use the same colour for a client
    lines = {t.name: t.line.color for t in charts.client_loss_chart(CLIENTS).data}
    assert lines["client 0"] == charts.client_color(0)
    assert lines["client 2 (malicious)"] == charts.client_color(2)
    marks = charts.participation_chart(CLIENTS, 3).data[0]
    assert list(marks.marker.color) == [charts.client_color(c) for c in CLIENTS["client_id"]]
    # and the partition charts colour client ticks the same way
    ticks = charts.partition_bars(PARTITION).layout.xaxis.ticktext
    assert charts.client_color(1) in ticks[1]


def test_per_client_lines_mark_malicious_clients():
    fig = charts.client_loss_chart(CLIENTS)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"client 0", "client 1", "client 2 (malicious)"}
    assert by_name["client 2 (malicious)"].line.dash == "dot"
    assert by_name["client 0"].line.dash == "solid"
    assert list(by_name["client 1"].x) == [1, 2]  # only the rounds it was sampled in


def test_many_clients_become_a_heatmap_with_malicious_clients_marked():
    rng = np.random.default_rng(0)
    rows = [(r, c, bool(c == 7)) for r in range(1, 6) for c in rng.choice(50, 10, replace=False)]
    clients = pd.DataFrame(rows, columns=["round", "client_id", "malicious"]).assign(train_loss=1.0, update_norm=2.0)
    fig = charts.update_norm_chart(clients, 5)
    heat = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heat) == 1 and fig.layout.yaxis.title.text == "Client"
    assert heat[0].z.shape == (clients["client_id"].nunique(), 5)
    marked = [t for t in fig.data if t.name == "malicious client"]
    if (clients["client_id"] == 7).any():
        assert list(marked[0].y) == [7]


def test_partition_charts_show_the_counts():
    heat = charts.partition_heatmap(PARTITION, ["zero", "one", "two"]).data[0]
    assert np.array_equal(np.asarray(heat.z), COUNTS)
    assert list(heat.x) == ["zero", "one", "two"]
    bars = charts.partition_bars(PARTITION, ["zero", "one", "two"])
    assert bars.layout.barmode == "stack"
    assert [list(t.y) for t in bars.data] == COUNTS.T.tolist()  # one trace per label, one bar per client
    assert [t.marker.color for t in bars.data] == [charts.label_color(i) for i in range(3)]


def test_partition_bars_cap_the_number_of_clients_and_say_so():
    big = pd.DataFrame({"client_id": np.arange(300), "label": 0, "count": 3})
    fig = charts.partition_bars(big, max_clients=100)
    assert len(fig.data[0].x) == 100
    assert "first 100 of 300" in fig.layout.title.text


def test_sampled_labels_adds_up_the_sampled_clients_and_tracks_what_was_seen():
    fig = charts.sampled_labels_chart(CLIENTS, PARTITION)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    # round 1 samples clients 0, 1 -> labels [4, 7, 0]; round 2: 1, 2 -> [0, 6, 5]; round 3: 0, 2 -> [4, 1, 5]
    assert [list(b.y) for b in bars] == [[4, 0, 4], [7, 6, 1], [0, 5, 5]]
    lines = {t.name: list(t.y) for t in fig.data if isinstance(t, go.Scatter)}
    assert lines["clients seen"] == pytest.approx([2 / 3, 1, 1])
    assert lines["labels seen"] == pytest.approx([2 / 3, 1, 1])
    assert lines["samples seen"] == pytest.approx([11 / 16, 1, 1])


def test_participation_marks_each_sampled_client_and_becomes_a_heatmap_when_large():
    fig = charts.participation_chart(CLIENTS, 3)
    marks = fig.data[0]
    assert list(zip(marks.x, marks.y)) == list(zip(CLIENTS["round"], CLIENTS["client_id"]))
    assert list(marks.marker.symbol) == ["square", "square", "square", "x", "square", "x"]
    heat = charts.participation_chart(CLIENTS, 3, max_marks=2).data[0]
    assert isinstance(heat, go.Heatmap)
    assert np.asarray(heat.z).tolist() == [[1, 0, 1], [1, 1, 0], [0, 1, 1]]


def test_compare_chart_draws_one_curve_per_run_in_its_own_colour():
    curves = pd.concat([ROUNDS.assign(run="fedavg"), ROUNDS.assign(run="krum")])
    fig = charts.compare_chart(curves, "test_loss")
    assert [t.name for t in fig.data] == ["fedavg", "krum"]
    assert fig.data[0].line.color != fig.data[1].line.color
    assert fig.data[0].line.dash != fig.data[1].line.dash  # identical curves stay visible
    assert fig.layout.yaxis.title.text.startswith("Test loss")


# Clients that come and go, and the simulated clock -------------------------------------------
def test_the_timeline_grid_shows_each_clients_state_in_each_round():
    clients = CLIENTS.assign(status=["trained", "dropped", "partial", "late", "trained", "trained"])
    fig = charts.client_timeline_chart(clients, OFFLINE, 3, 5)
    grid = fig.data[0]
    z, words = np.asarray(grid.z), np.asarray(grid.text)
    states = list(charts.TIMELINE)
    expected = [  # rows: clients 0-2, columns: rounds 1-3
        ["trained", "idle", "trained"],
        ["dropped", "partial", "offline"],
        ["idle", "late", "trained"],
    ]
    assert [[states[v] for v in row] for row in z] == expected
    assert words[1, 0] == "dropped out" and words[1, 2] == "offline" and words[0, 1] == "online, not sampled"
    assert [t.name for t in fig.data[1:]] == [charts.TIMELINE[s][0] for s in states]  # a legend entry for each state that occurs
    assert fig.layout.yaxis.ticktext[1] == f'<span style="color:{charts.client_color(1)}"><b>1</b></span>'  # clients in their colours
    assert tuple(fig.layout.xaxis.range) == (0.5, 5.5)  # the whole run's rounds


def test_a_big_runs_timeline_is_bounded_bars_that_add_up_to_every_client():
    rng = np.random.default_rng(0)
    num_clients, rounds, per_round = 1000, 500, 20
    rows = [(r, c) for r in range(1, rounds + 1) for c in np.sort(rng.choice(num_clients, per_round, replace=False))]
    clients = pd.DataFrame(rows, columns=["round", "client_id"]).assign(status=rng.choice(["trained", "partial", "dropped"], len(rows)))
    offline = pd.DataFrame({"round": np.arange(1, rounds + 1), "group": 5, "counts": [[2] * 200] * rounds})  # 400 offline a round
    fig = charts.client_timeline_chart(clients, offline, num_clients, rounds)
    assert all(isinstance(t, go.Bar) and len(t.x) <= charts.MAX_ROUND_BARS for t in fig.data)
    totals = np.sum([np.asarray(t.y) for t in fig.data], axis=0)
    assert np.allclose(totals, num_clients)  # every client is in one state each round
    offline_bars = next(t for t in fig.data if t.name == "offline")
    assert np.allclose(offline_bars.y, 400) and "mean over" in fig.layout.title.text


def test_time_charts_use_the_simulated_clock_in_readable_units():
    hours = ROUNDS.assign(sim_clock_s=[3600.0 * 3, 3600.0 * 5, 3600.0 * 8])
    fig = charts.time_accuracy_chart(hours)
    assert fig.layout.xaxis.title.text == "Simulated time (h)" and list(fig.data[0].x) == [3, 5, 8]
    old = ROUNDS.drop(columns=["sim_round_s", "sim_clock_s"])  # a run stored before the clock
    assert "before flcore had a simulated clock" in charts.time_accuracy_chart(old).layout.annotations[0].text
    assert "before flcore had a simulated clock" in charts.round_time_chart(old).layout.annotations[0].text
    long = pd.DataFrame({"round": np.arange(1, 1001), "sim_round_s": np.repeat([1.0, 3.0], 500)})
    bars = charts.round_time_chart(long, 1000).data[0]
    assert len(bars.x) <= charts.MAX_ROUND_BARS and bars.y[0] == 1.0 and bars.y[-1] == 3.0  # the mean of each bin of rounds
    assert all(1.0 <= y <= 3.0 for y in bars.y) and "mean over 9 rounds" in charts.round_time_chart(long, 1000).layout.title.text


def test_sweep_bands_are_the_mean_and_std_over_seeds_of_each_setting():
    curves = pd.DataFrame(
        {"setting": ["b", "b", "a", "a", "b", "b", "a"], "seed": [0, 1, 0, 1, 0, 1, 0], "round": [1, 1, 1, 1, 2, 2, 2],
         "test_accuracy": [0.5, 0.7, 0.2, 0.4, 0.6, 0.8, 0.3]}
    )  # fmt: skip
    bands = charts.sweep_bands(curves, "test_accuracy")
    assert list(zip(bands["setting"], bands["round"])) == [("b", 1), ("b", 2), ("a", 1), ("a", 2)]  # settings keep their order
    assert bands["mean"].tolist() == pytest.approx([0.6, 0.7, 0.3, 0.3])
    assert bands["std"].tolist() == pytest.approx([0.2 / 2**0.5, 0.2 / 2**0.5, 0.2 / 2**0.5, 0.0])  # one seed reached a's round 2
    assert bands["seeds"].tolist() == [2, 2, 2, 1]
    assert (bands["high"] - bands["low"]).tolist() == pytest.approx((2 * bands["std"]).tolist())
    assert charts.sweep_bands(curves.iloc[0:0], "test_accuracy").empty


def test_sweep_chart_draws_a_band_and_a_mean_line_per_setting_in_one_colour():
    fig = charts.sweep_chart(SAMPLE.sweep, "test_accuracy")
    bands, lines = fig.data[0::2], fig.data[1::2]
    assert [t.name for t in lines] == ["lr=0.1", "lr=0.01"]
    assert all(t.fill == "toself" and t.mode == "lines" for t in bands) and not any(t.showlegend for t in bands)
    assert list(lines[0].y) == pytest.approx([0.31, 0.51, 0.61])  # mean of seeds 0 and 1 (+0.00 and +0.02)
    # the band runs along the upper edge and back along the lower one
    assert list(bands[0].y) == pytest.approx([0.31 + 0.01 * 2**0.5, 0.51 + 0.01 * 2**0.5, 0.61 + 0.01 * 2**0.5,
                                               0.61 - 0.01 * 2**0.5, 0.51 - 0.01 * 2**0.5, 0.31 - 0.01 * 2**0.5])  # fmt: skip
    assert list(bands[0].x) == [1, 2, 3, 3, 2, 1]
    for band, line in zip(bands, lines):
        r, g, b = (int(line.line.color[i : i + 2], 16) for i in (1, 3, 5))
        assert band.fillcolor.startswith(f"rgba({r}, {g}, {b},")  # the band in its line's colour
    assert fig.layout.yaxis.tickformat == ".0%"


# Privacy, communication and drift ----------------------------------------------------------------
def test_epsilon_chart_draws_the_stored_epsilon_and_the_budget():
    fig = charts.epsilon_chart(ROUNDS, 10, 1e-5, 3.0)
    (trace,) = fig.data
    assert list(trace.x) == [1, 2, 3] and list(trace.y) == [1.5, 2.25, 2.75]
    assert "delta = 1e-05" in fig.layout.title.text
    (budget,) = fig.layout.shapes
    assert (budget.y0, budget.y1, budget.line.dash) == (3.0, 3.0, "dash")
    assert not charts.epsilon_chart(ROUNDS, 10, 1e-5, None).layout.shapes
    infinite = charts.epsilon_chart(ROUNDS.assign(epsilon=float("inf")), 10)
    assert not infinite.data and "infinite" in infinite.layout.annotations[0].text


def test_accuracy_against_bytes_accumulates_what_the_clients_sent():
    rounds = ROUNDS.assign(bytes_received=[100, 40, 40])
    (trace,) = charts.accuracy_bytes_chart(rounds.iloc[::-1]).data  # in round order, whatever the frame's order
    assert list(trace.x) == [100, 140, 180] and list(trace.y) == [0.3, 0.5, 0.6]
    assert list(trace.customdata) == [1, 2, 3]


def test_drift_chart_places_each_client_at_its_mean_in_its_colour_and_marks_attackers():
    fig = charts.drift_chart(CLIENTS)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"client 0", "client 1", "client 2 (malicious)"}
    # client 0: rounds 1 and 3, cosines 0.9 and 0.6, distances 1.0 and 1.0
    assert list(by_name["client 0"].x) == pytest.approx([0.75]) and list(by_name["client 0"].y) == pytest.approx([1.0])
    assert list(by_name["client 2 (malicious)"].x) == pytest.approx([-0.8]) and list(by_name["client 2 (malicious)"].y) == pytest.approx(
        [9.2]
    )
    assert by_name["client 2 (malicious)"].marker.symbol == "x" and by_name["client 0"].marker.symbol == "circle"
    assert all(t.marker.color == charts.client_color(int(t.name.split()[1])) for t in fig.data)  # the colour of every chart
    assert tuple(fig.layout.xaxis.range) == (-1.08, 1.08)


def test_drift_chart_for_many_clients_keeps_the_farthest_and_says_so():
    clients = pd.DataFrame({"round": 1, "client_id": np.arange(50), "malicious": np.arange(50) == 3,
                            "drift_cosine": np.linspace(1, -1, 50), "drift_distance": np.arange(50.0)})  # fmt: skip
    fig = charts.drift_chart(clients, max_points=30)
    points = fig.data[0]  # more than MANY_CLIENTS: one trace, each point in its client's colour
    assert "the 30 farthest of 50 clients" in fig.layout.title.text
    assert sorted(points.y) == list(range(20, 50)) and list(points.marker.color) == [charts.client_color(c) for c in range(49, 19, -1)]
    everyone = charts.drift_chart(clients).data
    assert everyone[1].name == "malicious client"
    symbols = list(everyone[0].marker.symbol)
    assert symbols.count("x") == 1 and everyone[0].text[symbols.index("x")] == "client 3 (malicious)"
    honest = charts.drift_chart(clients.assign(malicious=False)).data
    assert len(honest) == 1 and honest[0].marker.symbol == "circle"  # one symbol for all


def test_drift_spread_is_the_mean_with_a_band_of_one_standard_deviation():
    band, mean = charts.drift_spread_chart(ROUNDS, 5).data
    assert list(mean.y) == [0.5, 0.2, 0.1]
    assert list(band.y) == pytest.approx([0.6, 0.8, 0.8, -0.6, -0.4, 0.4])  # upper edge, then the lower edge backwards


def test_compare_tradeoffs_overlay_runs_on_bytes_and_leave_out_runs_without_privacy():
    curves = pd.concat([ROUNDS.assign(run="private"), ROUNDS.drop(columns="epsilon").assign(run="plain", bytes_received=5)])
    on_bytes = charts.compare_tradeoff_chart(curves, "bytes")
    assert [t.name for t in on_bytes.data] == ["private", "plain"]
    assert list(on_bytes.data[0].x) == [10, 20, 30] and list(on_bytes.data[1].x) == [5, 10, 15]
    on_epsilon = charts.compare_tradeoff_chart(curves, "epsilon")
    assert [t.name for t in on_epsilon.data] == ["private"] and list(on_epsilon.data[0].x) == [1.5, 2.25, 2.75]
    none = charts.compare_tradeoff_chart(curves[curves["run"] == "plain"], "epsilon")
    assert not none.data and "no epsilon" in none.layout.annotations[0].text


# Every client on its own test data ------------------------------------------------------------
def test_client_accuracy_distribution_boxes_each_evaluated_round_and_shows_each_client_in_its_colour():
    fig = charts.client_accuracy_distribution_chart(EVALUATIONS, 5, 0.5)
    boxes = {t.name: t for t in fig.data if isinstance(t, go.Box)}
    assert set(boxes) == {"global model", "own model"}
    assert list(boxes["global model"].median) == [0.5, 0.5] and list(boxes["own model"].lowerfence) == [0.5, 0.75]
    assert all(g < o for g, o in zip(boxes["global model"].x, boxes["own model"].x))  # global left of own, per round
    points = {t.name: t for t in fig.data if isinstance(t, go.Scatter)}
    assert set(points) == {"client 0", "client 1", "client 2"}
    assert points["client 1"].marker.color == charts.client_color(1)
    assert sorted(points["client 0"].y) == [0.25, 0.5, 0.5, 0.75]  # both rounds, both models
    assert [s.y0 for s in fig.layout.shapes] == [0.5]  # the threshold


def test_client_accuracy_distribution_without_own_models_draws_the_global_model_alone():
    fig = charts.client_accuracy_distribution_chart(EVALUATIONS.assign(personal_accuracy=np.nan), 5)
    assert [t.name for t in fig.data if isinstance(t, go.Box)] == ["global model"]


def test_fairness_lines_are_mean_and_worst_tenth_of_each_model_with_the_threshold():
    fig = charts.fairness_lines_chart(ROUNDS, 5, 0.6)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"global model: mean", "global model: worst 10%", "own model: mean", "own model: worst 10%"}
    assert list(by_name["global model: worst 10%"].x) == [2, 3] and list(by_name["global model: worst 10%"].y) == [0.25, 0.5]
    assert by_name["own model: worst 10%"].line.dash == "dash" and by_name["own model: mean"].line.dash == "solid"
    assert by_name["own model: mean"].line.color != by_name["global model: mean"].line.color
    assert [s.y0 for s in fig.layout.shapes] == [0.6]


def test_compare_client_accuracy_takes_each_runs_last_evaluated_round():
    finals = charts.final_client_accuracies({"a": EVALUATIONS, "b": EVALUATIONS.iloc[0:0], "c": EVALUATIONS[EVALUATIONS["round"] == 2]})
    assert finals["run"].tolist() == ["a"] * 3 + ["c"] * 3
    assert finals["test_accuracy"].tolist() == [0.5, 0.5, 0.75, 0.25, 0.5, 0.75]
    fig = charts.compare_client_accuracy_chart(finals)
    boxes = {t.name: t for t in fig.data}
    assert set(boxes) == {"global model", "own model"} and list(boxes["own model"].x) == ["a"] * 3 + ["c"] * 3
