"""The Run page's "Clients" tab: each client's metrics by round (a line per client, a heatmap
for many), which clients took part in which round, and what became of each client in each round
(trained, late, dropped out, offline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    MALICIOUS_COLOR,
    MANY_CLIENTS,
    MAX_COLUMNS,
    MAX_MARKS,
    MAX_ROUND_BARS,
    MAX_ROWS,
    _bin_centers,
    _binned_mean,
    _binned_note,
    _binned_sums,
    _client_name,
    _client_ticks,
    _layout,
    _malicious_ids,
    _round_axis,
    _rows_height,
    _symbols,
    _waiting,
    bin_width,
    client_color,
    thin,
)
from dashboard.charts.registry import chart
from flcore.federation.metrics import CLIENT_METRICS
from flcore.registry import Entry


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


@chart(
    "client_loss",
    caption=CLIENT_METRICS.get("train_loss").caption,
    example=lambda s: (s.clients, s.total_rounds),
)
def client_loss_chart(clients: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Each sampled client's local training loss by round."""
    return registered_client_chart(clients, CLIENT_METRICS.entry("train_loss"), total_rounds)


@chart(
    "update_norm",
    caption=CLIENT_METRICS.get("update_norm").caption,
    example=lambda s: (s.clients, s.total_rounds),
)
def update_norm_chart(clients: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """The L2 norm of each client's update (as sent) by round."""
    return registered_client_chart(clients, CLIENT_METRICS.entry("update_norm"), total_rounds)


# Participation ---------------------------------------------------------------------------------
@chart(
    "participation",
    caption="Which clients took part in which round: gaps are clients left out; an uneven pattern means some clients shape the model more than others.",
    example=lambda s: (s.clients, s.num_clients, s.total_rounds),
)
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
                    "symbol": _symbols(bad, "square"),
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


# Clients that come and go ----------------------------------------------------------------------
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


def _statuses(clients: pd.DataFrame) -> pd.Series:
    """Each client row's status (a run stored before statuses existed: every client trained)."""
    return clients["status"] if "status" in clients else pd.Series("trained", index=clients.index)


@chart(
    "client_timeline",
    caption="What became of each client in each round: trained, sent partial work, came too late, dropped out, online but not sampled, or offline; a column is one round.",
    example=lambda s: (s.clients, s.offline, s.num_clients, s.total_rounds),
)
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
