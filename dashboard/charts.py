"""Chart builders: pure functions from the store's frames to Plotly figures.

Every function takes the DataFrames that `flcore.store.RunStore` returns (`rounds_frame`,
`clients_frame`, `partition_frame`, `offline_frame`) or a partition preview in the same long form, and returns a
`plotly.graph_objects.Figure` with a title and labelled axes; `CAPTIONS` holds the one line the
page shows under each chart saying what to look for. Nothing here imports Streamlit, so the
charts are unit-tested on their own. A client has one colour everywhere (`client_color`), a
label one colour everywhere (`label_color`), so a reader can follow client 3 from the partition
to its loss curve. Per-client charts switch from one line per client to a client x round
heatmap above `MANY_CLIENTS` clients, where lines would be unreadable.
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from flcore.federation.metrics import CLIENT_METRICS
from flcore.registry import Entry

MANY_CLIENTS = 20  # above this many clients, per-client lines become a heatmap
MAX_BARS = 100  # the stacked bar chart of a partition shows at most this many clients
MAX_MARKS = 4000  # the participation chart switches from marks to a heatmap above this many
# What a browser is sent, whatever the size of the run: a line has at most MAX_POINTS points
# (longer runs are thinned evenly, the last round always kept), a heatmap at most MAX_COLUMNS
# rounds by MAX_ROWS clients (more are averaged in equal bins, and the title says so), a bar
# chart over rounds at most MAX_ROUND_BARS bars. More than that is more than a chart has pixels.
MAX_POINTS = 600
MAX_COLUMNS = 240
MAX_ROWS = 200
MAX_ROUND_BARS = 120

# The one line under each chart, saying what to look for.
CAPTIONS = {
    "accuracy": "Accuracy of the global model on the held-out test set after each round: look for how fast it climbs and where it levels off.",
    "loss": "Loss of the global model on the test set after each round: it should fall; a rise means the clients are pulling the model apart.",
    "client_loss": CLIENT_METRICS.get("train_loss").caption,  # per-client metrics say it where they are registered
    "update_norm": CLIENT_METRICS.get("update_norm").caption,
    "partition_heatmap": "Training samples of each label held by each client: a dark diagonal or scattered dark cells mean a skewed (non-IID) split; an even shade means IID.",
    "partition_bars": "Each bar is one client's training data, split by label: unequal heights mean unequal client sizes, single-colour bars mean clients that see few labels.",
    "sampled_labels": "Bars: the labels held by the clients sampled in each round. Lines: the share of clients, labels and training samples the server has seen so far.",
    "participation": "Which clients took part in which round: gaps are clients left out; an uneven pattern means some clients shape the model more than others.",
    "time_accuracy": "Accuracy of the global model against the simulated time at the end of each round: what a deployment would see on the wall clock; slow or missing clients stretch it to the right.",
    "round_time": "How long each round took on the simulated clock: until the slowest client whose update was used had uploaded, or the deadline (dashed) when some did not report by then.",
    "client_timeline": "What became of each client in each round: trained, sent partial work, came too late, dropped out, online but not sampled, or offline; a column is one round.",
    "compare_accuracy": "Test accuracy of each selected run by round: the higher and earlier a curve levels off, the better that setting.",
    "compare_loss": "Test loss of each selected run by round: lower is better; a curve that rises or jumps is a run that diverged.",
    "sweep_accuracy": "Each line is one setting's test accuracy averaged over its seeds; the band spans one standard deviation either side. Settings whose bands overlap are not told apart by these seeds.",
    "sweep_loss": "Each line is one setting's test loss averaged over its seeds, with a band of one standard deviation either side: a wide band means the result depends on the seed as much as on the setting.",
    "epsilon": "Privacy spent so far (epsilon at the run's delta, from Opacus's accountant): it only grows; lower is more private, and a dashed line marks the budget.",
    "accuracy_bytes": "Test accuracy against everything the clients have sent so far: compression moves the curve left; a curve that climbs early is cheap accuracy.",
    "drift_cosine": CLIENT_METRICS.get("drift_cosine").caption,
    "drift_distance": CLIENT_METRICS.get("drift_distance").caption,
    "drift": "Each client, averaged over the rounds it took part in: those to the left disagree with where the model went and those high up end far from it; attackers (x) and clients with unusual data pull away.",
    "drift_spread": "How much the clients agree with the global update in each round: the line is the mean over the sampled clients, the band one standard deviation; a wide band means clients pulling in different directions.",
    "compare_bytes": "Test accuracy of each run against what its clients had sent so far: further left for the same accuracy means cheaper communication.",
    "compare_epsilon": "Test accuracy of each private run against the privacy it had spent: higher and further left is a better trade of accuracy for privacy.",
}

_CLIENT_PALETTE = (
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#00A08B",
    "#222A2A",
    "#DA16FF",
    "#6C7C32",
    "#511CFB",
    "#862A16",
    "#778AAE",
    "#FB00D1",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
    "#B2828D",
    "#FC0080",
    "#FB0D0D",
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
        uirevision="keep",  # a user's zoom survives the redraw after each new round
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


def plain(text: object) -> str:
    """`text` people typed (a run name, a label of an uploaded file) as Plotly shows it, exactly as
    typed: Plotly renders tags such as `<a href>`, `<b>` and `<br>` in trace names, tick labels and
    hover text, and `%{...}` in a hover template, so `<`, `>`, `&` and `%` become character
    references (which Plotly shows as the characters, never as a link or a template field)."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


def _label_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None and len(class_names) >= num_classes:
        return [plain(n) for n in class_names[:num_classes]]
    return [str(i) for i in range(num_classes)]


def _client_name(client_id: int, malicious: bool = False) -> str:
    return f"client {client_id}" + (" (malicious)" if malicious else "")


def _malicious_ids(clients: pd.DataFrame) -> set[int]:
    if clients.empty or "malicious" not in clients:
        return set()
    return set(clients.loc[clients["malicious"].astype(bool), "client_id"].astype(int))


def thin(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """At most `max_points` rows, evenly spaced, always with the first and the last."""
    if len(frame) <= max_points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(np.int64))
    return frame.iloc[keep]


def bin_width(count: int, limit: int) -> int:
    """How many consecutive items share a bin so that `count` items fill at most `limit` bins."""
    return max(1, -(-count // limit))


def _binned_sums(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None, shape: tuple[int, int], widths: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Grids of the sum of `values` (or of ones) and of the number of entries at
    (rows // row width, cols // column width), for a `shape` grid binned by `widths`."""
    binned = (-(-shape[0] // widths[0]), -(-shape[1] // widths[1]))
    cell = (rows // widths[0]) * binned[1] + cols // widths[1]
    counts = np.bincount(cell, minlength=binned[0] * binned[1]).reshape(binned)
    sums = counts if values is None else np.bincount(cell, weights=values, minlength=binned[0] * binned[1]).reshape(binned)
    return sums, counts


def _binned_mean(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int], widths: tuple[int, int]) -> np.ndarray:
    """A grid of the mean of `values` in each bin; NaN where a bin is empty."""
    sums, counts = _binned_sums(rows, cols, values, shape, widths)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)


def _bin_centers(width: int, bins: int, first: int) -> np.ndarray:
    """The middle of each bin of `width` consecutive integers starting at `first`."""
    return first + width * np.arange(bins) + (width - 1) / 2


def _binned_note(row_width: int, col_width: int, rows: str) -> str:
    parts = [f"{row_width} {rows}" if row_width > 1 else "", f"{col_width} rounds" if col_width > 1 else ""]
    parts = [p for p in parts if p]
    return f" (each cell: mean over {' x '.join(parts)})" if parts else ""


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
    shown = thin(rounds)
    fig.add_trace(
        go.Scatter(
            x=shown["round"],
            y=shown[column],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name=name,
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
            rows = thin(clients[clients["client_id"] == cid].sort_values("round"))
            bad = cid in malicious
            fig.add_trace(
                go.Scatter(
                    x=rows["round"],
                    y=rows[column],
                    mode="lines+markers",
                    name=_client_name(cid, bad),
                    line={"color": client_color(cid), "dash": "dot" if bad else "solid", "width": 2},
                    marker={"symbol": "x" if bad else "circle", "size": 7 if bad else 5},
                    hovertemplate=f"{_client_name(cid, bad)}<br>round %{{x}}<br>{y_title.lower()} %{{y:.3g}}<extra></extra>",
                )
            )
        _round_axis(fig, total_rounds, last)
        return fig

    # One row per client that took part (in id order), one column per round; bins past the limits.
    row_of = {cid: i for i, cid in enumerate(ids)}
    rows = clients["client_id"].astype(int).map(row_of).to_numpy()
    cols = clients["round"].astype(int).to_numpy() - 1
    widths = (bin_width(len(ids), MAX_ROWS), bin_width(last, MAX_COLUMNS))
    z = _binned_mean(rows, cols, clients[column].to_numpy(dtype=np.float64), (len(ids), last), widths)
    if widths == (1, 1):
        y, x, hover = list(ids), np.arange(1, last + 1), "client %{y}<br>round %{x}<br>"
    else:  # a row is a group of clients, named by its first and last; a column the middle of its rounds
        groups = [ids[i : i + widths[0]] for i in range(0, len(ids), widths[0])]
        y = [f"{g[0]}–{g[-1]}" if len(g) > 1 else str(g[0]) for g in groups]
        x, hover = _bin_centers(widths[1], z.shape[1], 1), "clients %{y}<br>rounds around %{x:.0f}<br>"
    _layout(fig, title + _binned_note(*widths, "clients"), "Round", "Client", height=_rows_height(len(y)))
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale="Viridis",
            colorbar={"title": {"text": y_title, "side": "right"}},
            hovertemplate=hover + y_title.lower() + " %{z:.3g}<extra></extra>",
        )
    )
    if malicious:
        bad = sorted({y[row_of[c] // widths[0]] for c in malicious if c in row_of}, key=y.index)
        fig.add_trace(
            go.Scatter(
                x=[0.2] * len(bad),
                y=bad,
                mode="markers",
                name="malicious client",
                marker={"symbol": "x", "color": MALICIOUS_COLOR, "size": 8},
                hovertemplate=("client %{y} is malicious" if widths[0] == 1 else "clients %{y} include a malicious one")
                + "<extra></extra>",
            )
        )
        fig.update_layout(legend={"orientation": "h", "y": -0.18})
    _round_axis(fig, total_rounds, last)
    fig.update_xaxes(range=[-0.3, (total_rounds or last) + 0.5])
    fig.update_yaxes(autorange="reversed")
    return fig


def registered_client_chart(clients: pd.DataFrame, entry: Entry, total_rounds: int | None = None) -> go.Figure:
    """The chart of a registered client metric (`flcore.federation.metrics`): its label is the title, its
    axis the y-axis title."""
    return client_metric_chart(clients, entry.name, entry.label, entry.obj.axis, total_rounds)


def client_loss_chart(clients: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Each sampled client's local training loss by round."""
    return registered_client_chart(clients, CLIENT_METRICS.entry("train_loss"), total_rounds)


def update_norm_chart(clients: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """The L2 norm of each client's update (as sent) by round."""
    return registered_client_chart(clients, CLIENT_METRICS.entry("update_norm"), total_rounds)


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


def participation_chart(clients: pd.DataFrame, num_clients: int, total_rounds: int | None = None, max_marks: int = MAX_MARKS) -> go.Figure:
    """Which clients were sampled in which round: one mark per (client, round) in the client's
    colour; a client x round heatmap above `max_marks` marks (binned past MAX_ROWS x MAX_COLUMNS,
    each cell then the share of its client-rounds that took part)."""
    fig = go.Figure()
    _layout(fig, "Participation: clients sampled in each round", "Round", "Client", height=_rows_height(min(num_clients, MAX_ROWS)))
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
                x=clients["round"],
                y=ids,
                mode="markers",
                name="sampled",
                marker={
                    "color": [client_color(i) for i in ids],
                    "symbol": np.where(bad, "x", "square"),
                    "size": 9 if num_clients <= 60 else 5,
                    "line": {"width": 0},
                },
                customdata=np.where(bad, " (malicious)", ""),
                hovertemplate="client %{y}%{customdata}<br>round %{x}<extra></extra>",
                showlegend=False,
            )
        )
        if malicious:
            fig.add_trace(
                go.Scatter(x=[None], y=[None], mode="markers", name="malicious client", marker={"symbol": "x", "color": "#555", "size": 9})
            )
            fig.update_layout(legend={"orientation": "h", "y": -0.15})
        fig.update_yaxes(range=[num_clients - 0.5, -0.5], tickformat="d")
        if num_clients <= MANY_CLIENTS:
            fig.update_yaxes(tickmode="array", tickvals=list(range(num_clients)), ticktext=_client_ticks(range(num_clients), True))
    else:
        widths = (bin_width(num_clients, MAX_ROWS), bin_width(last, MAX_COLUMNS))
        rows, cols = clients["client_id"].astype(int).to_numpy(), clients["round"].astype(int).to_numpy() - 1
        sampled, _ = _binned_sums(rows, cols, None, (num_clients, last), widths)
        share = sampled / (widths[0] * widths[1])  # of the bin's client-rounds, those that took part
        binned = widths != (1, 1)
        fig.update_layout(title_text="Participation: clients sampled in each round" + _binned_note(*widths, "clients"))
        fig.add_trace(
            go.Heatmap(
                z=share.astype(np.float32),
                x=_bin_centers(widths[1], share.shape[1], 1),
                y=_bin_centers(widths[0], share.shape[0], 0),
                colorscale=[[0, "#F4F4F4"], [1, "#2E91E5"]],
                showscale=binned,
                zmin=0,
                zmax=1,
                colorbar={"title": {"text": "Share sampled", "side": "right"}, "tickformat": ".0%"},
                hovertemplate=(
                    "client %{y}<br>round %{x}<br>sampled: %{z}"
                    if not binned
                    else "clients around %{y:.0f}<br>rounds around %{x:.0f}<br>share sampled: %{z:.0%}"
                )
                + "<extra></extra>",
            )  # fmt: skip
        )
    _round_axis(fig, total_rounds, last)
    return fig


# Clients that come and go, and the simulated clock ---------------------------------------------
# A client's state in a round, in the timeline's order, and its colour there: blues for updates
# the server used, orange for one that came too late, black for none, white and grey for clients
# that were not in the round (red stays with malicious clients).
TIMELINE = {
    "trained": ("trained", "#4C78A8"),
    "partial": ("partial work", "#9ECAE9"),
    "late": ("late (not used)", "#F58518"),
    "dropped": ("dropped out", "#222A2A"),
    "idle": ("online, not sampled", "#FFFFFF"),
    "offline": ("offline", "#C9C9C9"),
}
MAX_TIMELINE_TEXT = 12_000  # cells of the exact timeline that carry a hover text; past it, the colours alone


def _time_unit(seconds: float) -> tuple[str, float]:
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 3 * size:
            return unit, size
    return "s", 1.0


def time_accuracy_chart(rounds: pd.DataFrame) -> go.Figure:
    """Global test accuracy against the simulated time at the end of each round."""
    fig = go.Figure()
    _layout(fig, "Test accuracy against simulated time", "Simulated time", "Test accuracy")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if rounds.empty:
        return _waiting(fig, "Waiting for the first round…")
    if "sim_clock_s" not in rounds or rounds["sim_clock_s"].isna().all():
        return _waiting(fig, "This run was made before flcore had a simulated clock")
    shown = thin(rounds.dropna(subset=["sim_clock_s"]))
    unit, size = _time_unit(float(shown["sim_clock_s"].max()))
    fig.add_trace(
        go.Scatter(
            x=shown["sim_clock_s"] / size,
            y=shown["test_accuracy"],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name="test accuracy",
            line={"color": run_color(0), "width": 3},
            customdata=shown["round"],
            hovertemplate=f"round %{{customdata}}<br>%{{x:.3g}} {unit}<br>accuracy %{{y:.1%}}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=f"Simulated time ({unit})", rangemode="tozero")
    return fig


def round_time_chart(rounds: pd.DataFrame, total_rounds: int | None = None, deadline_s: float | None = None) -> go.Figure:
    """The simulated duration of each round (bars, the mean over bins of rounds past
    MAX_ROUND_BARS), with the deadline as a dashed line when there is one."""
    title = "Simulated duration of each round"
    fig = go.Figure()
    _layout(fig, title, "Round", "Simulated duration (s)")
    if rounds.empty or "sim_round_s" not in rounds or rounds["sim_round_s"].isna().all():
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…" if rounds.empty else "This run was made before flcore had a simulated clock")
    timed = rounds.dropna(subset=["sim_round_s"])
    last = int(timed["round"].max())
    width = bin_width(last, MAX_ROUND_BARS)
    x, y = timed["round"].to_numpy(), timed["sim_round_s"].to_numpy()
    if width > 1:
        sums, counts = _binned_sums(np.zeros(len(x), dtype=np.int64), x - 1, y, (1, last), (1, width))
        keep = counts[0] > 0
        x, y = _bin_centers(width, sums.shape[1], 1)[keep], (sums[0] / np.maximum(counts[0], 1))[keep]
        fig.update_layout(title_text=f"{title} (mean over {width} rounds)")
    fig.add_trace(go.Bar(x=x, y=y, name="round", marker_color=run_color(0), hovertemplate="round %{x:.0f}<br>%{y:.3g} s<extra></extra>"))
    if deadline_s is not None:
        fig.add_hline(y=deadline_s, line={"dash": "dash", "color": "#555"}, annotation_text="deadline", annotation_position="top left")
    fig.update_yaxes(rangemode="tozero")
    _round_axis(fig, total_rounds, last)
    return fig


def _statuses(clients: pd.DataFrame) -> pd.Series:
    """Each client row's status (a run stored before statuses existed: every client trained)."""
    return clients["status"] if "status" in clients else pd.Series("trained", index=clients.index)


def client_timeline_chart(clients: pd.DataFrame, offline: pd.DataFrame, num_clients: int, total_rounds: int | None = None) -> go.Figure:
    """What became of each client in each round (`TIMELINE`): a client x round grid while it
    fits MAX_ROWS x MAX_COLUMNS and the offline clients are stored exactly; past that, stacked
    bars of how many clients were in each state per round (the mean over bins of rounds past
    MAX_ROUND_BARS). `offline` is `RunStore.offline_frame`."""
    fig = go.Figure()
    title = "Client timeline: who trained, was late, dropped out or was offline"
    if clients.empty and offline.empty:
        _layout(fig, title, "Round", "Client")
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    last = int(max(clients["round"].max() if len(clients) else 0, offline["round"].max() if len(offline) else 0))
    exact = num_clients <= MAX_ROWS and last <= MAX_COLUMNS and (offline.empty or (offline["group"] == 1).all())
    if exact:
        return _timeline_grid(fig, title, clients, offline, num_clients, last, total_rounds)
    return _timeline_bars(fig, clients, offline, num_clients, last, total_rounds)


def _timeline_grid(fig, title, clients, offline, num_clients, last, total_rounds) -> go.Figure:
    states = list(TIMELINE)
    code = {name: i for i, name in enumerate(states)}
    z = np.full((num_clients, last), code["idle"], dtype=np.int8)
    for r, counts in zip(offline["round"], offline["counts"]):
        z[np.flatnonzero(np.asarray(counts[:num_clients])), r - 1] = code["offline"]
    ids, rounds = clients["client_id"].astype(int).to_numpy(), clients["round"].astype(int).to_numpy()
    inside = ids < num_clients
    z[ids[inside], rounds[inside] - 1] = _statuses(clients)[inside].map(code).to_numpy()
    n = len(states)
    scale = [[edge, TIMELINE[name][1]] for i, name in enumerate(states) for edge in (i / n, (i + 1) / n)]
    words = np.array([TIMELINE[name][0] for name in states])
    text = words[z] if z.size <= MAX_TIMELINE_TEXT else None
    _layout(fig, title, "Round", "Client", legend_title="Client was", height=_rows_height(num_clients))
    fig.add_trace(
        go.Heatmap(
            z=z, x=np.arange(1, last + 1), y=np.arange(num_clients), colorscale=scale, zmin=-0.5, zmax=n - 0.5, showscale=False,
            text=text, hovertemplate="client %{y}<br>round %{x}<br>%{text}<extra></extra>" if text is not None else None,
            hoverinfo=None if text is not None else "x+y", xgap=1 if last <= 60 else 0, ygap=1 if num_clients <= 60 else 0,
        )
    )  # fmt: skip
    present = set(np.unique(z).tolist())
    for name in states:
        if code[name] in present:  # the legend: one square per state that occurs
            label, color = TIMELINE[name]
            fig.add_trace(
                go.Scatter(
                    x=[None], y=[None], mode="markers", name=label,
                    marker={"symbol": "square", "size": 12, "color": color, "line": {"width": 1, "color": "#888"}},
                )
            )  # fmt: skip
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0}, plot_bgcolor="#FFFFFF")
    fig.update_yaxes(autorange="reversed", tickformat="d")
    if num_clients <= MANY_CLIENTS:
        fig.update_yaxes(tickmode="array", tickvals=list(range(num_clients)), ticktext=_client_ticks(range(num_clients), True))
    _round_axis(fig, total_rounds, last)
    return fig


def _timeline_bars(fig, clients, offline, num_clients, last, total_rounds) -> go.Figure:
    rounds = clients["round"].astype(int).to_numpy() - 1
    statuses = _statuses(clients).to_numpy()
    per_round = {
        name: np.bincount(rounds[statuses == name], minlength=last).astype(float) for name in ("trained", "partial", "late", "dropped")
    }
    per_round["offline"] = np.zeros(last)
    for r, counts in zip(offline["round"], offline["counts"]):
        per_round["offline"][r - 1] = sum(counts)
    sampled = np.bincount(rounds, minlength=last)
    per_round["idle"] = np.maximum(num_clients - sampled - per_round["offline"], 0)
    width = bin_width(last, MAX_ROUND_BARS)
    title = "Clients by what became of them in each round"
    x = np.arange(1, last + 1)
    if width > 1:
        starts = np.arange(0, last, width)
        x = _bin_centers(width, len(starts), 1)
        lengths = np.diff(np.append(starts, last))
        per_round = {k: np.add.reduceat(v, starts) / lengths for k, v in per_round.items()}
        title += f" (mean over {width} rounds)"
    _layout(fig, title, "Round", "Clients", legend_title="Client was")
    for name, (label, color) in TIMELINE.items():
        fig.add_trace(
            go.Bar(
                x=x, y=per_round[name], name=label, marker={"color": color, "line": {"width": 0.5, "color": "#AAA"}},
                hovertemplate=f"round %{{x:.0f}}<br>{label}: %{{y:.1f}} clients<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(barmode="stack", bargap=0.1, legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    _round_axis(fig, total_rounds, last)
    return fig


# Privacy and communication -------------------------------------------------------------------
def epsilon_chart(
    rounds: pd.DataFrame,
    total_rounds: int | None = None,
    delta: float | None = None,
    target: float | None = None,
    kind: str | None = None,
) -> go.Figure:
    """Epsilon spent after each round (the `epsilon` round metric), with the budget, if any,
    dashed; the title says its `kind` (central or local, `flcore.federation.privacy.EPSILON_KINDS`) and delta."""
    fig = go.Figure()
    what = f"{kind} epsilon" if kind else "epsilon"
    _layout(fig, f"Privacy spent: {what}" + (f" at delta = {delta:g}" if delta else ""), "Round", "Epsilon (lower is more private)")
    _round_axis(fig, total_rounds, int(rounds["round"].max()) if len(rounds) else None)
    if rounds.empty or "epsilon" not in rounds:
        return _waiting(fig, "Waiting for the first round…")
    finite = rounds[np.isfinite(rounds["epsilon"].to_numpy(dtype=np.float64))]
    if finite.empty:
        return _waiting(fig, "No noise (dp_noise_multiplier = 0): epsilon is infinite…")
    shown = thin(finite)
    fig.add_trace(
        go.Scatter(
            x=shown["round"],
            y=shown["epsilon"],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name="epsilon",
            line={"color": run_color(3), "width": 3},
            hovertemplate="round %{x}<br>epsilon %{y:.3g}<extra></extra>",
        )
    )
    if target is not None:
        fig.add_hline(y=target, line={"dash": "dash", "color": MALICIOUS_COLOR}, annotation_text=f"budget {target:g}")
    fig.update_yaxes(rangemode="tozero")
    return fig


def _cumulative_bytes(rows: pd.DataFrame) -> pd.Series:
    return rows.sort_values("round")["bytes_received"].astype(np.float64).cumsum()


def accuracy_bytes_chart(rounds: pd.DataFrame) -> go.Figure:
    """Global test accuracy against the bytes the clients have sent so far."""
    fig = go.Figure()
    _layout(fig, "Accuracy against data sent by clients", "Sent by clients so far (bytes)", "Test accuracy")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_xaxes(tickformat="~s", ticksuffix="B", rangemode="tozero")
    if rounds.empty:
        return _waiting(fig, "Waiting for the first round…")
    ordered = rounds.sort_values("round").assign(sent=_cumulative_bytes(rounds))
    shown = thin(ordered)
    fig.add_trace(
        go.Scatter(
            x=shown["sent"],
            y=shown["test_accuracy"],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name="test accuracy",
            line={"color": run_color(0), "width": 3},
            customdata=shown["round"],
            hovertemplate="round %{customdata}<br>%{x:.3s}B sent<br>accuracy %{y:.1%}<extra></extra>",
        )
    )
    return fig


def drift_chart(clients: pd.DataFrame, max_points: int = MAX_POINTS) -> go.Figure:
    """One point per client: its mean cosine with the global update (x) and mean distance from
    the new global model (y) over the rounds it took part in, in its colour; attackers as an x.
    Past `max_points` clients, the farthest are shown (the title says so)."""
    title = "Client drift: who pulls away"
    fig = go.Figure()
    _layout(fig, title, "Agreement with the global update (mean cosine)", "Distance from the global model (mean L2)", legend_title="Client")
    fig.update_xaxes(range=[-1.08, 1.08], zeroline=True, zerolinecolor="#999")
    if clients.empty or "drift_cosine" not in clients:
        return _waiting(fig, "Waiting for the first round…")
    per = clients.groupby("client_id").agg(
        cosine=("drift_cosine", "mean"), distance=("drift_distance", "mean"), rounds=("round", "size"), malicious=("malicious", "max")
    )
    per = per.reset_index()
    if len(per) > max_points:
        fig.update_layout(title_text=f"{title} (the {max_points} farthest of {len(per)} clients)")
        per = per.nlargest(max_points, "distance")
    fig.update_yaxes(rangemode="tozero")
    hover = "%{text}<br>cosine %{x:.2f}<br>distance %{y:.3g}<br>in %{customdata} rounds<extra></extra>"
    if len(per) <= MANY_CLIENTS:  # one legend entry per client, labelled on the chart
        for row in per.itertuples():
            bad = bool(row.malicious)
            fig.add_trace(
                go.Scatter(
                    x=[row.cosine], y=[row.distance], mode="markers+text", name=_client_name(row.client_id, bad),
                    text=[str(row.client_id)], textposition="top center", customdata=[row.rounds],
                    marker={"color": client_color(row.client_id), "size": 14 if bad else 11, "symbol": "x" if bad else "circle",
                            "line": {"width": 1, "color": "white"}},
                    hovertext=[_client_name(row.client_id, bad)],
                    hovertemplate=hover.replace("%{text}", "%{hovertext}"),
                )
            )  # fmt: skip
        return fig
    bad = per["malicious"].astype(bool).to_numpy()
    fig.add_trace(
        go.Scatter(
            x=per["cosine"], y=per["distance"], mode="markers", name="clients", showlegend=False,
            text=[_client_name(c, b) for c, b in zip(per["client_id"], bad)], customdata=per["rounds"],
            marker={"color": [client_color(c) for c in per["client_id"]], "symbol": np.where(bad, "x", "circle"), "size": 7},
            hovertemplate=hover,
        )
    )  # fmt: skip
    if bad.any():
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", name="malicious client", marker={"symbol": "x", "color": "#555", "size": 9})
        )
        fig.update_layout(legend={"orientation": "h", "y": -0.18})
    return fig


def drift_spread_chart(rounds: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """The round metrics drift_cosine_mean and drift_cosine_std: a line and a band of one standard deviation."""
    fig = go.Figure()
    _layout(fig, "Client agreement per round", "Round", "Cosine with the global update (mean ± std)")
    fig.update_yaxes(range=[-1.05, 1.05])
    _round_axis(fig, total_rounds, int(rounds["round"].max()) if len(rounds) else None)
    if rounds.empty or "drift_cosine_mean" not in rounds:
        return _waiting(fig, "Waiting for the first round…")
    shown = thin(rounds.sort_values("round"))
    mean, std = shown["drift_cosine_mean"], shown["drift_cosine_std"]
    x = shown["round"].tolist()
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1], y=(mean + std).clip(upper=1).tolist() + (mean - std).clip(lower=-1).tolist()[::-1],
            mode="lines", fill="toself", fillcolor="rgba(99, 110, 250, 0.18)", line={"width": 0}, name="± one std", hoverinfo="skip",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=x, y=mean, mode="lines+markers" if len(shown) <= 100 else "lines", name="mean over clients",
            line={"color": run_color(0), "width": 3}, customdata=std,
            hovertemplate="round %{x}<br>mean %{y:.2f} ± %{customdata:.2f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})
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
        rows = thin(rows.sort_values("round"))
        fig.add_trace(
            go.Scatter(
                x=rows["round"],
                y=rows[metric],
                mode="lines+markers",
                name=plain(run),
                line={"color": run_color(i), "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                marker={"size": 4},
                hovertemplate=f"{plain(run)}<br>round %{{x}}<br>%{{y:{'.1%' if accuracy else '.3f'}}}<extra></extra>",
            )
        )
    _round_axis(fig, None, int(curves["round"].max()))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig


def sweep_bands(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per setting and round: the mean of `metric` over the seeds that reached that round, its
    standard deviation (sample; 0 with one seed), mean -/+ std, and how many seeds there are.

    `curves` has columns setting, seed, round and `metric`; settings keep their order."""
    columns = ["setting", "round", "mean", "std", "low", "high", "seeds"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    grouped = curves.groupby(["setting", "round"], sort=False)[metric]
    bands = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, seeds="count").reset_index()
    order = {s: i for i, s in enumerate(curves["setting"].drop_duplicates())}
    bands = bands.sort_values(["setting", "round"], key=lambda c: c.map(order) if c.name == "setting" else c, kind="stable")
    bands["low"], bands["high"] = bands["mean"] - bands["std"], bands["mean"] + bands["std"]
    return bands[columns].reset_index(drop=True)


def _fill(color: str, alpha: float = 0.18) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def sweep_chart(curves: pd.DataFrame, metric: str = "test_accuracy") -> go.Figure:
    """One mean line per setting of a sweep, with a band of one standard deviation over seeds.

    `curves` has columns setting, seed, round and `metric` (one row per run and round)."""
    accuracy = metric == "test_accuracy"
    fig = go.Figure()
    _layout(
        fig,
        "Test accuracy by round: mean over seeds, ± 1 std" if accuracy else "Test loss by round: mean over seeds, ± 1 std",
        "Round",
        "Test accuracy" if accuracy else "Test loss (cross-entropy)",
        legend_title="Setting",
    )
    if accuracy:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    bands = sweep_bands(curves, metric)
    if bands.empty:
        return _waiting(fig, "Waiting for the sweep's first round…")
    shown = ".1%" if accuracy else ".3f"
    for i, (setting, rows) in enumerate(bands.groupby("setting", sort=False)):
        rows, color = thin(rows), run_color(i)
        fig.add_trace(
            go.Scatter(
                x=pd.concat([rows["round"], rows["round"][::-1]]),
                y=pd.concat([rows["high"], rows["low"][::-1]]),
                mode="lines",
                fill="toself",
                fillcolor=_fill(color),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(setting),
                name=f"{plain(setting)} ± 1 std",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=rows["round"],
                y=rows["mean"],
                mode="lines",
                name=plain(setting),
                legendgroup=str(setting),
                line={"color": color, "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                customdata=np.stack([rows["std"], rows["seeds"]], axis=1),
                hovertemplate=f"{plain(setting)}<br>round %{{x}}<br>mean %{{y:{shown}}} ± %{{customdata[0]:{shown}}}"
                "<br>%{customdata[1]} seeds<extra></extra>",
            )
        )
    _round_axis(fig, None, int(bands["round"].max()))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig


def compare_tradeoff_chart(curves: pd.DataFrame, x: str, epsilon_kinds: dict[str, tuple[str, float]] | None = None) -> go.Figure:
    """Test accuracy of several runs against the bytes their clients sent so far (x="bytes") or
    the epsilon they had spent (x="epsilon"; runs without differential privacy are left out).
    `epsilon_kinds` (run -> (kind, delta)) marks each run's epsilon in its name and its marker:
    a central and a local epsilon are different guarantees and are never drawn unmarked."""
    epsilon = x == "epsilon"
    kinds = epsilon_kinds or {}
    mixed = len({kind for kind, _ in kinds.values()}) > 1
    title = "Test accuracy against privacy spent" if epsilon else "Test accuracy against data sent by clients"
    x_title = "Sent by clients so far (bytes)"
    if epsilon:
        x_title = "Epsilon spent (lower is more private)" + ("; central and local epsilons are different guarantees" if mixed else "")
    fig = go.Figure()
    _layout(fig, title, x_title, "Test accuracy", legend_title="Run")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if not epsilon:
        fig.update_xaxes(tickformat="~s", ticksuffix="B")
    fig.update_xaxes(rangemode="tozero")
    if curves.empty:
        return _waiting(fig, "Pick runs that have finished at least one round")
    drawn = 0
    for i, (run, rows) in enumerate(curves.groupby("run", sort=False)):
        rows = rows.sort_values("round")
        if epsilon:
            if "epsilon" not in rows or not np.isfinite(rows["epsilon"].to_numpy(dtype=np.float64)).any():
                continue
            rows = rows[np.isfinite(rows["epsilon"].to_numpy(dtype=np.float64))]
            xs = rows["epsilon"]
        else:
            xs = _cumulative_bytes(rows)
        rows = thin(rows.assign(_x=xs.to_numpy()))
        kind, delta = kinds.get(run, (None, None))
        name = f"{plain(run)} ({kind} epsilon, delta {delta:g})" if epsilon and kind else plain(run)
        symbol = "diamond" if kind and kind.startswith("local") else "circle"
        fig.add_trace(
            go.Scatter(
                x=rows["_x"], y=rows["test_accuracy"], mode="lines+markers", name=name, customdata=rows["round"],
                line={"color": run_color(i), "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                marker={"size": 4 if symbol == "circle" else 7, "symbol": symbol},
                hovertemplate=f"{plain(run)}<br>round %{{customdata}}<br>" + ("epsilon %{x:.3g}" if epsilon else "%{x:.3s}B sent")
                + "<br>%{y:.1%}<extra></extra>",
            )
        )  # fmt: skip
        drawn += 1
    if not drawn:
        return _waiting(fig, "Pick runs with differential privacy on: these have no epsilon…")
    fig.update_layout(showlegend=True, legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})  # named even when alone
    return fig


def warm_up() -> None:
    """Build (and serialize) one figure of every kind from a tiny made-up run.

    Plotly imports the validators of each trace type on first use, which made the first Run
    page after a server start take about a second more of server CPU, taken from the run it
    showed. The server calls this in the background when it starts."""
    import plotly.io as pio

    from flcore.data.partition import counts_frame

    rounds = pd.DataFrame({"round": [1, 2], "test_loss": [1.0, 0.5], "test_accuracy": [0.5, 0.7], "wall_time_s": [0.1, 0.1]})
    clients = pd.DataFrame({
        "round": [1, 1, 2, 2], "client_id": [0, 1, 0, 1], "train_loss": [1.0, 2.0, 0.5, 1.5],
        "update_norm": [1.0, 1.0, 0.5, 0.5], "malicious": [False, True, False, True],
    })  # fmt: skip
    partition = counts_frame(np.array([[3, 1], [0, 4]]))
    timed = rounds.assign(sim_round_s=[2.0, 3.0], sim_clock_s=[2.0, 5.0])
    offline = pd.DataFrame({"round": [2], "group": [1], "counts": [[0, 1]]})
    figures = [
        time_accuracy_chart(timed), round_time_chart(timed, 2, 2.5), client_timeline_chart(clients, offline, 2, 2),
        client_timeline_chart(clients, offline.assign(group=2), 2, 2),
        accuracy_chart(rounds, 2), loss_chart(rounds, 2), client_loss_chart(clients, 2),
        client_metric_chart(clients, "update_norm", "t", "y", 2, max_lines=1), partition_heatmap(partition),
        partition_bars(partition), sampled_labels_chart(clients, partition, None, 2),
        participation_chart(clients, 2, 2), participation_chart(clients, 2, 2, max_marks=1),
        compare_chart(rounds.assign(run="a")),
        sweep_chart(pd.concat([rounds.assign(setting="a", seed=0), rounds.assign(setting="a", seed=1)])),
    ]  # fmt: skip
    for fig in figures:
        pio.to_json(fig, validate=False)
