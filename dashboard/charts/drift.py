"""The Run page's "Drift" tab: how far each client's update pulls away from where the global
model went, per client and per round. The per-round drift metrics of each client
(`drift_cosine`, `drift_distance`) are registered client metrics, drawn by the clients' chart.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    MANY_CLIENTS,
    MAX_POINTS,
    _client_name,
    _layout,
    _round_axis,
    _symbols,
    _waiting,
    client_color,
    run_color,
    thin,
)
from dashboard.charts.clients import registered_client_chart
from dashboard.charts.registry import chart
from flcore.federation.metrics import CLIENT_METRICS


@chart(
    "drift",
    caption="Each client, averaged over the rounds it took part in: those to the left disagree with where the model went and those high up end far from it; attackers (x) and clients with unusual data pull away.",
    example=lambda s: (s.clients,),
)
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
            marker={"color": [client_color(c) for c in per["client_id"]], "symbol": _symbols(bad, "circle"), "size": 7},
            hovertemplate=hover,
        )
    )  # fmt: skip
    if bad.any():
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", name="malicious client", marker={"symbol": "x", "color": "#555", "size": 9})
        )
        fig.update_layout(legend={"orientation": "h", "y": -0.18})
    return fig


@chart(
    "drift_spread",
    caption="How much the clients agree with the global update in each round: the line is the mean over the sampled clients, the band one standard deviation; a wide band means clients pulling in different directions.",
    example=lambda s: (s.rounds, s.total_rounds),
)
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


# The drift of each client by round: registered client metrics (their captions are registered
# with them), drawn by the clients' chart.
for _metric in ("drift_cosine", "drift_distance"):
    chart(
        _metric,
        caption=CLIENT_METRICS.get(_metric).caption,
        example=lambda s, metric=_metric: (s.clients, CLIENT_METRICS.entry(metric), s.total_rounds),
    )(registered_client_chart)
