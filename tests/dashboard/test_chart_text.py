"""Run names and labels of uploaded files reach Plotly, which renders tags (`<a href>`, `<b>`,
`<br>`) in trace names, tick labels and hover text and fills in `%{...}` in hover templates: the
charts hand it those strings escaped, so they are shown as typed, never as a link."""

from __future__ import annotations

import html

import pandas as pd

from dashboard import charts

TYPED = '<a href="http://evil.example">sign in again</a> <b>now</b> %{y} & more'


def shown(text: str) -> str:
    """What Plotly displays for `text`: character references become the characters."""
    return html.unescape(text)


def no_markup(text: str) -> bool:
    return "<a" not in text and "<b>" not in text and "%{y} &" not in text


def test_run_names_are_escaped_in_legends_and_hover_text():
    rounds = pd.DataFrame(
        {"round": [1, 2], "test_accuracy": [0.5, 0.6], "test_loss": [1.0, 0.9], "bytes_received": [10, 10], "bytes_sent": [10, 10]}
    )
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
    partition = pd.DataFrame({"client_id": [0, 0, 1], "label": [0, 1, 1], "count": [3, 4, 5]})
    names = [TYPED, "<img src=x>"]
    heatmap = charts.partition_heatmap(partition, names)
    assert [shown(x) for x in heatmap.data[0].x] == names and all("<" not in x for x in heatmap.data[0].x)
    bars = charts.partition_bars(partition, names)
    assert [shown(t.name) for t in bars.data] == names
    assert all(no_markup(t.name) and "<img" not in t.hovertemplate for t in bars.data)
