"""Chart builders: pure functions from the store's frames to Plotly figures.

Every function takes the DataFrames that `flcore.store.RunStore` returns (`rounds_frame`,
`clients_frame`, `partition_frame`) or a partition preview in the same long form, and returns a
`plotly.graph_objects.Figure` with a title and labelled axes; `CAPTIONS` holds the one line the
page shows under each chart saying what to look for. Nothing here imports Streamlit, so the
charts are unit-tested on their own. A client has one colour everywhere (`client_color`), a
label one colour everywhere (`label_color`), so a reader can follow client 3 from the partition
to its loss curve. Per-client charts switch from one line per client to a client x round
heatmap above `MANY_CLIENTS` clients, where lines would be unreadable.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MANY_CLIENTS = 20  # above this many clients, per-client lines become a heatmap
MAX_BARS = 100  # the stacked bar chart of a partition shows at most this many clients
MAX_MARKS = 4000  # the participation chart switches from marks to a heatmap above this many

# The one line under each chart, saying what to look for.
CAPTIONS = {
    "accuracy": "Accuracy of the global model on the held-out test set after each round: look for how fast it climbs and where it levels off.",
    "loss": "Loss of the global model on the test set after each round: it should fall; a rise means the clients are pulling the model apart.",
    "client_loss": "Each sampled client's training loss in each round: clients whose loss stays high hold data unlike the rest; dotted lines and a red x mark malicious clients.",
    "update_norm": "Size (L2 norm) of the update each client sent: outliers are clients whose data or behaviour differs, and attackers often stand out here.",
    "partition_heatmap": "Training samples of each label held by each client: a dark diagonal or scattered dark cells mean a skewed (non-IID) split; an even shade means IID.",
    "partition_bars": "Each bar is one client's training data, split by label: unequal heights mean unequal client sizes, single-colour bars mean clients that see few labels.",
    "sampled_labels": "Bars: the labels held by the clients sampled in each round. Lines: the share of clients, labels and training samples the server has seen so far.",
    "participation": "Which clients took part in which round: gaps are clients left out; an uneven pattern means some clients shape the model more than others.",
    "compare_accuracy": "Test accuracy of each selected run by round: the higher and earlier a curve levels off, the better that setting.",
    "compare_loss": "Test loss of each selected run by round: lower is better; a curve that rises or jumps is a run that diverged.",
}

_CLIENT_PALETTE = (
    "#2E91E5", "#E15F99", "#1CA71C", "#B68100", "#750D86", "#EB663B", "#00A08B", "#222A2A",
    "#DA16FF", "#6C7C32", "#511CFB", "#862A16", "#778AAE", "#FB00D1", "#A777F1", "#620042",
    "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#B2828D", "#FC0080", "#FB0D0D",
)  # Plotly's Dark24, reordered so the first ten differ most; red comes last: it marks malicious clients
_LABEL_PALETTE = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC")
_RUN_DASHES = ("solid", "dash", "dot", "dashdot")  # runs with identical curves stay visible
_RUN_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52")
MALICIOUS_COLOR = "#D62728"


def _golden(index: int, saturation: float, lightness: float) -> str:
    """A colour for indices past a palette's end: hues spaced by the golden angle never repeat."""
    r, g, b = colorsys.hls_to_rgb((index * 0.618033988749895) % 1.0, lightness, saturation)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


def client_color(client_id: int) -> str:
    """The colour of client `client_id` in every chart."""
    client_id = int(client_id)
    if 0 <= client_id < len(_CLIENT_PALETTE):
        return _CLIENT_PALETTE[client_id]
    return _golden(client_id, 0.65, 0.42)


def label_color(label: int) -> str:
    """The colour of class `label` in every chart."""
    label = int(label)
    if 0 <= label < len(_LABEL_PALETTE):
        return _LABEL_PALETTE[label]
    return _golden(label + 7, 0.55, 0.55)


def run_color(index: int) -> str:
    """The colour of the index-th run in a comparison."""
    return _RUN_PALETTE[index % len(_RUN_PALETTE)]


# Shared layout -------------------------------------------------------------------------------
def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, *, legend_title: str | None = None, height: int = 380) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend_title_text=legend_title,
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        hovermode="closest",
    )
    return fig


def _round_axis(fig: go.Figure, total_rounds: int | None, last_round: int | None = None) -> None:
    """Rounds are whole numbers; with the run's length known, the axis spans the whole run."""
    end = total_rounds or last_round
    if end:
        fig.update_xaxes(range=[0.5, end + 0.5])
    fig.update_xaxes(tickformat="d", rangemode="tozero")
    if end and end <= 20:
        fig.update_xaxes(tickmode="array", tickvals=list(range(1, end + 1)))


def _rows_height(rows: int) -> int:
    """Height of a chart with one row per client: readable rows, but never a wall."""
    return max(380, min(700, 12 * rows + 140))


def _waiting(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14, "color": "#888"})
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def _label_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None and len(class_names) >= num_classes:
        return [str(n) for n in class_names[:num_classes]]
    return [str(i) for i in range(num_classes)]


def _client_name(client_id: int, malicious: bool = False) -> str:
    return f"client {client_id}" + (" (malicious)" if malicious else "")


def _malicious_ids(clients: pd.DataFrame) -> set[int]:
    if clients.empty or "malicious" not in clients:
        return set()
    return set(clients.loc[clients["malicious"].astype(bool), "client_id"].astype(int))


# Global metrics ------------------------------------------------------------------------------
def accuracy_chart(rounds: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Global test accuracy by round, as a percentage, over the whole run's length."""
    fig = _global_metric_chart(rounds, total_rounds, "test_accuracy", "Global test accuracy", "Test accuracy", 0, "%{y:.1%}")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def loss_chart(rounds: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Global test loss by round."""
    fig = _global_metric_chart(rounds, total_rounds, "test_loss", "Global test loss", "Test loss (cross-entropy)", 1, "%{y:.3f}")
    fig.update_yaxes(rangemode="tozero")
    return fig


def _global_metric_chart(rounds, total_rounds, column, title, y_title, color, y_format) -> go.Figure:
    """One global metric by round: a line over the rounds stored, on the run's round axis."""
    fig = go.Figure()
    _layout(fig, title, "Round", y_title)
    if rounds.empty:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    name = column.replace("_", " ")
    fig.add_trace(
        go.Scatter(
            x=rounds["round"], y=rounds[column], mode="lines+markers", name=name,
            line={"color": run_color(color), "width": 3},
            hovertemplate=f"round %{{x}}<br>{name.split()[-1]} {y_format}<extra></extra>",
        )
    )
    _round_axis(fig, total_rounds, int(rounds["round"].max()))
    return fig


# Per-client metrics --------------------------------------------------------------------------
def client_metric_chart(
    clients: pd.DataFrame,
    column: str,
    title: str,
    y_title: str,
    total_rounds: int | None = None,
    max_lines: int = MANY_CLIENTS,
) -> go.Figure:
    """One line per client of `column` by round, or a client x round heatmap for many clients.

    Malicious clients are drawn dotted (lines) or marked with a red x left of round 1 (heatmap).
    """
    fig = go.Figure()
    if clients.empty:
        _layout(fig, title, "Round", y_title)
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    malicious = _malicious_ids(clients)
    ids = sorted(clients["client_id"].astype(int).unique())
    last = int(clients["round"].max())
    if len(ids) <= max_lines:
        _layout(fig, title, "Round", y_title, legend_title="Client")
        for cid in ids:
            rows = clients[clients["client_id"] == cid].sort_values("round")
            bad = cid in malicious
            fig.add_trace(
                go.Scatter(
                    x=rows["round"], y=rows[column], mode="lines+markers", name=_client_name(cid, bad),
                    line={"color": client_color(cid), "dash": "dot" if bad else "solid", "width": 2},
                    marker={"symbol": "x" if bad else "circle", "size": 7 if bad else 5},
                    hovertemplate=f"{_client_name(cid, bad)}<br>round %{{x}}<br>{y_title.lower()} %{{y:.3g}}<extra></extra>",
                )
            )
        _round_axis(fig, total_rounds, last)
        return fig

    _layout(fig, title, "Round", "Client", height=_rows_height(len(ids)))
    grid = clients.pivot_table(index="client_id", columns="round", values=column, aggfunc="mean")
    fig.add_trace(
        go.Heatmap(
            z=grid.to_numpy(), x=grid.columns.to_numpy(), y=grid.index.to_numpy(), colorscale="Viridis",
            colorbar={"title": {"text": y_title, "side": "right"}},
            hovertemplate="client %{y}<br>round %{x}<br>" + y_title.lower() + " %{z:.3g}<extra></extra>",
        )
    )
    if malicious:
        bad = sorted(malicious)
        fig.add_trace(
            go.Scatter(
                x=[0.2] * len(bad), y=bad, mode="markers", name="malicious client",
                marker={"symbol": "x", "color": MALICIOUS_COLOR, "size": 8}, hovertemplate="client %{y} is malicious<extra></extra>",
            )
        )
        fig.update_layout(legend={"orientation": "h", "y": -0.18})
    _round_axis(fig, total_rounds, last)
    fig.update_xaxes(range=[-0.3, (total_rounds or last) + 0.5])
    fig.update_yaxes(autorange="reversed")
    return fig


def client_loss_chart(clients: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Each sampled client's local training loss by round."""
    return client_metric_chart(clients, "train_loss", "Training loss per client", "Training loss", total_rounds)


def update_norm_chart(clients: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """The L2 norm of each client's update (as sent) by round."""
    return client_metric_chart(clients, "update_norm", "Update size per client", "Update norm (L2)", total_rounds)


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


def _client_ticks(ids: Sequence[int], colored: bool) -> list[str]:
    if not colored:
        return [str(i) for i in ids]
    return [f'<span style="color:{client_color(i)}"><b>{i}</b></span>' for i in ids]


def partition_heatmap(partition: pd.DataFrame, class_names: Sequence[str] | None = None) -> go.Figure:
    """Clients x labels heatmap of training-sample counts."""
    fig = go.Figure()
    if partition.empty:
        _layout(fig, "Labels per client", "Label", "Client")
        return _waiting(fig, "The split is saved when the run starts…")
    counts = _counts_matrix(partition, len(class_names) if class_names else None)
    k, c = counts.shape
    names = _label_names(c, class_names)
    _layout(fig, "Labels per client (training samples)", "Label", "Client", height=_rows_height(k))
    fig.add_trace(
        go.Heatmap(
            z=counts, x=names, y=list(range(k)), colorscale="Blues", colorbar={"title": {"text": "Samples", "side": "right"}},
            texttemplate="%{z}" if k <= MANY_CLIENTS and c <= 12 else None,
            hovertemplate="client %{y}<br>label %{x}<br>%{z} samples<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed")
    if k <= MANY_CLIENTS:
        fig.update_yaxes(tickmode="array", tickvals=list(range(k)), ticktext=_client_ticks(range(k), True))
    return fig


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
                x=x, y=counts[:shown, label], name=names[label], marker_color=label_color(label),
                hovertemplate=f"client %{{x}}<br>label {names[label]}: %{{y}} samples<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack", bargap=0.15)
    if shown <= MANY_CLIENTS:
        fig.update_xaxes(tickmode="array", tickvals=x, ticktext=_client_ticks(x, True))
    else:  # too many for a label each: let Plotly space the client numbers
        fig.update_xaxes(tickformat="d", range=[-0.5, shown - 0.5])
    return fig


def sampled_labels_chart(
    clients: pd.DataFrame,
    partition: pd.DataFrame,
    class_names: Sequence[str] | None = None,
    total_rounds: int | None = None,
) -> go.Figure:
    """Per round: labels held by the sampled clients (stacked bars), and the cumulative share
    of clients, labels and training samples seen so far (lines, right axis)."""
    title = "Labels of the sampled clients, and what the server has seen so far"
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    _layout(fig, title, "Round", "Training samples of the sampled clients", legend_title="Label / share")
    fig.update_yaxes(title_text="Share seen so far", secondary_y=True, range=[0, 1.05], tickformat=".0%", dtick=0.25, showgrid=False)
    if clients.empty or partition.empty:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    counts = _counts_matrix(partition, len(class_names) if class_names else None)
    k, c = counts.shape
    names = _label_names(c, class_names)
    sampled = clients.groupby("round")["client_id"].apply(lambda s: sorted(set(s.astype(int)))).sort_index()
    rounds = sampled.index.to_numpy()
    per_round = np.stack([counts[ids].sum(0) for ids in sampled])  # rounds x classes
    for label in range(c):
        fig.add_trace(
            go.Bar(
                x=rounds, y=per_round[:, label], name=names[label], marker_color=label_color(label), opacity=0.85,
                hovertemplate=f"round %{{x}}<br>label {names[label]}: %{{y}} samples<extra></extra>",
            ),
            secondary_y=False,
        )
    seen = np.zeros(k, dtype=bool)
    clients_seen, labels_seen, samples_seen = [], [], []
    total_samples = max(int(counts.sum()), 1)
    present = max(int((counts.sum(0) > 0).sum()), 1)
    for ids in sampled:
        seen[[i for i in ids if i < k]] = True
        clients_seen.append(seen.mean())
        labels_seen.append((counts[seen].sum(0) > 0).sum() / present)
        samples_seen.append(counts[seen].sum() / total_samples)
    for name, values, dash in (("clients seen", clients_seen, "solid"), ("labels seen", labels_seen, "dash"), ("samples seen", samples_seen, "dot")):
        fig.add_trace(
            go.Scatter(
                x=rounds, y=values, name=name, mode="lines+markers", line={"color": "#333", "dash": dash, "width": 2},
                hovertemplate=f"round %{{x}}<br>{name}: %{{y:.0%}}<extra></extra>",
            ),
            secondary_y=True,
        )
    fig.update_layout(barmode="stack", bargap=0.2, height=460, legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    _round_axis(fig, total_rounds, int(rounds.max()))
    return fig


def participation_chart(clients: pd.DataFrame, num_clients: int, total_rounds: int | None = None, max_marks: int = MAX_MARKS) -> go.Figure:
    """Which clients were sampled in which round: one mark per (client, round) in the client's colour."""
    fig = go.Figure()
    _layout(fig, "Participation: clients sampled in each round", "Round", "Client", height=_rows_height(num_clients))
    fig.update_yaxes(autorange="reversed")
    if clients.empty:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    last = int(clients["round"].max())
    malicious = _malicious_ids(clients)
    if len(clients) <= max_marks:
        ids = clients["client_id"].astype(int).to_numpy()
        bad = np.array([i in malicious for i in ids])
        fig.add_trace(
            go.Scatter(
                x=clients["round"], y=ids, mode="markers", name="sampled",
                marker={
                    "color": [client_color(i) for i in ids], "symbol": np.where(bad, "x", "square"),
                    "size": 9 if num_clients <= 60 else 5, "line": {"width": 0},
                },
                customdata=np.where(bad, " (malicious)", ""),
                hovertemplate="client %{y}%{customdata}<br>round %{x}<extra></extra>", showlegend=False,
            )
        )
        if malicious:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="malicious client", marker={"symbol": "x", "color": "#555", "size": 9}))
            fig.update_layout(legend={"orientation": "h", "y": -0.15})
        fig.update_yaxes(range=[num_clients - 0.5, -0.5], tickformat="d")
        if num_clients <= MANY_CLIENTS:
            fig.update_yaxes(tickmode="array", tickvals=list(range(num_clients)), ticktext=_client_ticks(range(num_clients), True))
    else:
        grid = np.zeros((num_clients, last), dtype=np.int8)
        grid[clients["client_id"].astype(int).to_numpy(), clients["round"].astype(int).to_numpy() - 1] = 1
        fig.add_trace(
            go.Heatmap(
                z=grid, x=np.arange(1, last + 1), y=np.arange(num_clients), colorscale=[[0, "#F4F4F4"], [1, "#2E91E5"]],
                showscale=False, hovertemplate="client %{y}<br>round %{x}<br>sampled: %{z}<extra></extra>",
            )
        )
    _round_axis(fig, total_rounds, last)
    return fig


# Comparing runs ------------------------------------------------------------------------------
def compare_chart(curves: pd.DataFrame, metric: str = "test_accuracy") -> go.Figure:
    """Overlay one metric of several runs: `curves` has columns run, round and `metric`."""
    accuracy = metric == "test_accuracy"
    title = "Test accuracy by round" if accuracy else "Test loss by round"
    fig = go.Figure()
    _layout(fig, title, "Round", "Test accuracy" if accuracy else "Test loss (cross-entropy)", legend_title="Run")
    if accuracy:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if curves.empty:
        return _waiting(fig, "Pick runs that have finished at least one round")
    for i, (run, rows) in enumerate(curves.groupby("run", sort=False)):
        rows = rows.sort_values("round")
        fig.add_trace(
            go.Scatter(
                x=rows["round"], y=rows[metric], mode="lines+markers", name=str(run),
                line={"color": run_color(i), "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                marker={"size": 4}, hovertemplate=f"{run}<br>round %{{x}}<br>%{{y:{'.1%' if accuracy else '.3f'}}}<extra></extra>",
            )
        )
    _round_axis(fig, None, int(curves["round"].max()))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig
