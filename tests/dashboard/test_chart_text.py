"""Run names and labels of uploaded files reach Plotly, which renders tags (`<a href>`, `<b>`,
`<br>`) in trace names, tick labels and hover text and fills in `%{...}` in hover templates: the
charts hand it those strings escaped, so they are shown as typed, never as a link."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from dashboard_helpers import stored_frames

from dashboard import charts
from flcore.records import RoundResult

TYPED = '<a href="http://evil.example">sign in again</a> <b>now</b> %{y} & more'
# Two rounds of a run (no client rows needed) and its split: client 0 holds 3 of label 0 and 4 of
# label 1, client 1 holds 5 of label 1; as the store gives them back.
STORED = stored_frames(
    [RoundResult(r, (), (), test_loss=loss, test_accuracy=accuracy, wall_time_s=0.1, bytes_sent=10, bytes_received=10)
     for r, loss, accuracy in ((1, 1.0, 0.5), (2, 0.9, 0.6))],
    np.array([[3, 4], [0, 5]]),
)  # fmt: skip


def shown(text: str) -> str:
    """What Plotly displays for `text`: character references become the characters."""
    return html.unescape(text)


def no_markup(text: str) -> bool:
    return "<a" not in text and "<b>" not in text and "%{y} &" not in text


def test_run_names_are_escaped_in_legends_and_hover_text():
    rounds = STORED.rounds
    figures = [
        charts.compare_chart(rounds.assign(run=TYPED)),
        charts.compare_tradeoff_chart(rounds.assign(run=TYPED), "bytes"),
        charts.sweep_chart(pd.concat([rounds.assign(setting=TYPED, seed=0), rounds.assign(setting=TYPED, seed=1)])),
    ]
    for fig in figures:
        named = [t for t in fig.data if t.name]
        assert named
        for trace in named:
            assert no_markup(trace.name) and shown(trace.name).startswith(TYPED)
            if trace.hovertemplate:
                assert no_markup(trace.hovertemplate.split("<br>")[0])
                assert shown(trace.hovertemplate.split("<br>")[0]) == TYPED


def test_labels_of_an_uploaded_file_are_escaped_in_tick_labels_legends_and_hover_text():
    partition = STORED.partition
    names = [TYPED, "<img src=x>"]
    heatmap = charts.partition_heatmap(partition, names)
    assert [shown(x) for x in heatmap.data[0].x] == names and all("<" not in x for x in heatmap.data[0].x)
    bars = charts.partition_bars(partition, names)
    assert [shown(t.name) for t in bars.data] == names
    assert all(no_markup(t.name) and "<img" not in t.hovertemplate for t in bars.data)
