"""The Run page's "Data" tab (and New run's preview): how the labels are split over the clients,
and which labels the clients sampled in each round brought to the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    MANY_CLIENTS,
    MAX_BARS,
    MAX_ROUND_BARS,
    MAX_ROWS,
    _bin_centers,
    _client_ticks,
    _label_names,
    _layout,
    _round_axis,
    _rows_height,
    _waiting,
    bin_width,
    label_color,
    thin,
)
from dashboard.charts.registry import chart


# Partition -----------------------------------------------------------------------------------
def _counts_matrix(partition: pd.DataFrame, num_classes: int | None = None) -> np.ndarray:
    """Clients x classes counts from the long (client_id, label, count) form."""
    if partition.empty:
        return np.zeros((0, num_classes or 0), dtype=np.int64)
    clients = int(partition["client_id"].max()) + 1
    classes = max(int(partition["label"].max()) + 1, num_classes or 0)
    counts = np.zeros((clients, classes), dtype=np.int64)
    np.add.at(counts, (partition["client_id"].astype(int), partition["label"].astype(int)), partition["count"].astype(np.int64))
    return counts


@chart(
    "partition_heatmap",
    caption="Training samples of each label held by each client: a dark diagonal or scattered dark cells mean a skewed (non-IID) split; an even shade means IID.",
    example=lambda s: (s.partition, s.class_names),
)
def partition_heatmap(partition: pd.DataFrame, class_names: Sequence[str] | None = None) -> go.Figure:
    """Clients x labels heatmap of training-sample counts (clients summed in groups past MAX_ROWS)."""
    fig = go.Figure()
    if partition.empty:
        _layout(fig, "Labels per client", "Label", "Client")
        return _waiting(fig, "The split is saved when the run starts…")
    counts = _counts_matrix(partition, len(class_names) if class_names else None)
    k, c = counts.shape
    names = _label_names(c, class_names)
    width = bin_width(k, MAX_ROWS)
    title = "Labels per client (training samples)"
    if width > 1:  # groups of `width` consecutive clients, summed
        counts = np.add.reduceat(counts, np.arange(0, k, width), axis=0)
        y = [f"{i}–{min(i + width, k) - 1}" for i in range(0, k, width)]
        title = f"Labels per group of {width} clients (training samples)"
    else:
        y = list(range(k))
    _layout(fig, title, "Label", "Client", height=_rows_height(len(y)))
    fig.add_trace(
        go.Heatmap(
            z=counts,
            x=names,
            y=y,
            colorscale="Blues",
            colorbar={"title": {"text": "Samples", "side": "right"}},
            texttemplate="%{z}" if k <= MANY_CLIENTS and c <= 12 else None,
            hovertemplate=("client" if width == 1 else "clients") + " %{y}<br>label %{x}<br>%{z} samples<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed")
    if k <= MANY_CLIENTS:
        fig.update_yaxes(tickmode="array", tickvals=list(range(k)), ticktext=_client_ticks(range(k), True))
    return fig


@chart(
    "partition_bars",
    caption="Each bar is one client's training data, split by label: unequal heights mean unequal client sizes, single-colour bars mean clients that see few labels.",
    example=lambda s: (s.partition, s.class_names),
)
def partition_bars(partition: pd.DataFrame, class_names: Sequence[str] | None = None, max_clients: int = MAX_BARS) -> go.Figure:
    """One stacked bar per client: its training samples split by label."""
    fig = go.Figure()
    if partition.empty:
        _layout(fig, "Training samples per client", "Client", "Training samples")
        return _waiting(fig, "The split is saved when the run starts…")
    counts = _counts_matrix(partition, len(class_names) if class_names else None)
    k, c = counts.shape
    shown = min(k, max_clients)
    names = _label_names(c, class_names)
    title = "Training samples per client, by label"
    if shown < k:
        title += f" (first {shown} of {k} clients)"
    _layout(fig, title, "Client", "Training samples", legend_title="Label")
    x = list(range(shown))
    for label in range(c):
        fig.add_trace(
            go.Bar(
                x=x,
                y=counts[:shown, label],
                name=names[label],
                marker_color=label_color(label),
                hovertemplate=f"client %{{x}}<br>label {names[label]}: %{{y}} samples<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack", bargap=0.15)
    if shown <= MANY_CLIENTS:
        fig.update_xaxes(tickmode="array", tickvals=x, ticktext=_client_ticks(x, True))
    else:  # too many for a label each: let Plotly space the client numbers
        fig.update_xaxes(tickformat="d", range=[-0.5, shown - 0.5])
    return fig


@chart(
    "sampled_labels",
    caption="Bars: the labels held by the clients sampled in each round. Lines: the share of clients, labels and training samples the server has seen so far.",
    example=lambda s: (s.clients, s.partition, s.class_names, s.total_rounds),
)
def sampled_labels_chart(
    clients: pd.DataFrame,
    partition: pd.DataFrame,
    class_names: Sequence[str] | None = None,
    total_rounds: int | None = None,
) -> go.Figure:
    """Per round: labels held by the sampled clients (stacked bars; rounds averaged in bins past
    MAX_ROUND_BARS), and the cumulative share of clients, labels and training samples seen so far
    (lines, right axis)."""
    title = "Labels of the sampled clients, and what the server has seen so far"
    fig = go.Figure()
    _layout(fig, title, "Round", "Training samples of the sampled clients", legend_title="Label / share")
    fig.update_layout(yaxis2={
        "title": {"text": "Share seen so far"}, "overlaying": "y", "side": "right", "range": [0, 1.05],
        "tickformat": ".0%", "dtick": 0.25, "showgrid": False,
    })  # fmt: skip
    if clients.empty or partition.empty:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    counts = _counts_matrix(partition, len(class_names) if class_names else None)
    k, c = counts.shape
    names = _label_names(c, class_names)
    ids = clients["client_id"].astype(int).to_numpy()
    rounds = clients["round"].astype(int).to_numpy()
    inside = ids < k
    ids, rounds = ids[inside], rounds[inside]
    last = int(rounds.max())
    held = counts[ids]  # labels held by each sampled client, row by row
    per_round = np.stack([np.bincount(rounds - 1, weights=held[:, j], minlength=last) for j in range(c)], axis=1)
    present_rounds = np.unique(rounds)

    width = bin_width(last, MAX_ROUND_BARS)
    if width > 1:  # the mean over each bin of rounds
        starts = np.arange(0, last, width)
        bar_x = _bin_centers(width, len(starts), 1)
        bar_y = np.add.reduceat(per_round, starts, axis=0) / np.diff(np.append(starts, last))[:, None]
        title += f" (bars: mean over {width} rounds)"
        fig.update_layout(title_text=title)
    else:
        bar_x, bar_y = present_rounds, per_round[present_rounds - 1]
    for label in range(c):
        fig.add_trace(
            go.Bar(
                x=bar_x,
                y=bar_y[:, label],
                name=names[label],
                marker_color=label_color(label),
                opacity=0.85,
                hovertemplate=f"round %{{x:.0f}}<br>label {names[label]}: %{{y:.0f}} samples<extra></extra>",
            )
        )

    # The round each client was first sampled in; what is seen by round r is what came before it.
    first = np.full(k, last + 1)
    np.minimum.at(first, ids, rounds)
    seen = first <= last
    by_round = np.stack([np.bincount(first[seen], weights=counts[seen, j], minlength=last + 1) for j in range(c)], axis=1)
    labels_by_round = np.cumsum(by_round, axis=0)[1:]  # [r-1]: labels held by clients seen by round r
    present = max(int((counts.sum(0) > 0).sum()), 1)
    lines = pd.DataFrame({
        "round": np.arange(1, last + 1),
        "clients seen": np.cumsum(np.bincount(first[seen], minlength=last + 1))[1:] / max(k, 1),
        "labels seen": (labels_by_round > 0).sum(1) / present,
        "samples seen": labels_by_round.sum(1) / max(int(counts.sum()), 1),
    }).iloc[present_rounds - 1]  # fmt: skip
    lines = thin(lines)
    for name, dash in (("clients seen", "solid"), ("labels seen", "dash"), ("samples seen", "dot")):
        fig.add_trace(
            go.Scatter(
                x=lines["round"],
                y=lines[name],
                name=name,
                mode="lines+markers" if len(lines) <= 100 else "lines",
                line={"color": "#333", "dash": dash, "width": 2},
                hovertemplate=f"round %{{x}}<br>{name}: %{{y:.0%}}<extra></extra>",
                yaxis="y2",
            )
        )
    fig.update_layout(barmode="stack", bargap=0.2, height=460, legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    _round_axis(fig, total_rounds, last)
    return fig
