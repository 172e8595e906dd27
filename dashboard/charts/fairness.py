"""The Run page's "Every client" tab: how well each client is served, by the global model and by
its own model (`flcore.federation.personalization`); Compare draws each run's last round of it.

Every `eval_every` rounds the engine evaluates every client on its own held-out test data
(`RunStore.evaluations_frame`) and stores the round's fairness summaries as round metrics
(`client_accuracy_*` for the global model, `personal_accuracy_*` for each client's own model).
The global model is drawn in the colour of the global accuracy chart, the clients' own models in
one other colour, and a client's point in its colour everywhere (`client_color`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    MANY_CLIENTS,
    _fill,
    _layout,
    _round_axis,
    _waiting,
    client_color,
    run_color,
)
from dashboard.charts.registry import chart
from flcore.federation.personalization import FAIRNESS_PREFIXES

MODELS = (  # (column of the evaluations frame, round-metric prefix, name, colour)
    ("test_accuracy", FAIRNESS_PREFIXES["global"], "global model", run_color(0)),
    ("personal_accuracy", FAIRNESS_PREFIXES["personal"], "own model", run_color(2)),
)
MAX_BOX_ROUNDS = 30  # the distribution chart shows at most this many evaluated rounds (evenly spread, the last kept)
OFFSET = 0.2  # a round's global-model box sits this far left of the round, its own-model box this far right


def _threshold_line(fig: go.Figure, threshold: float | None) -> None:
    if threshold is not None:
        fig.add_hline(
            y=threshold,
            line={"dash": "dot", "color": "#888", "width": 1},
            annotation_text=f"threshold {threshold:.0%}",
            annotation_position="bottom right",
        )


def _shown_models(evaluations: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """The models the frame has numbers for: the global one, and the own ones under a personalized method."""
    return [m for m in MODELS if m[0] in evaluations and np.isfinite(evaluations[m[0]].to_numpy(dtype=np.float64)).any()]


@chart(
    "client_accuracy_distribution",
    caption="Each box spans the clients' accuracies on their own test data in one evaluated round (whiskers: worst and best "
    "client), the global model's left, each client's own model's right: a box that is high and short serves every client well.",
    example=lambda s: (s.evaluations, s.total_rounds, 0.5),
)
def client_accuracy_distribution_chart(
    evaluations: pd.DataFrame, total_rounds: int | None = None, threshold: float | None = None
) -> go.Figure:
    """Per evaluated round, a box of the clients' accuracies with the global model and one with
    their own models, side by side; with few clients each client is a point in its colour too."""
    fig = go.Figure()
    _layout(fig, "Accuracy of every client on its own test data", "Round", "Client test accuracy", legend_title="Model")
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    rows = evaluations[np.isfinite(evaluations["test_accuracy"].to_numpy(dtype=np.float64))] if len(evaluations) else evaluations
    models = _shown_models(rows)
    if rows.empty or not models:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round that evaluates every client…")
    evaluated = np.sort(rows["round"].unique())
    if len(evaluated) > MAX_BOX_ROUNDS:  # evenly spread, always with the last
        keep = np.unique(np.linspace(0, len(evaluated) - 1, MAX_BOX_ROUNDS).round().astype(np.int64))
        evaluated = evaluated[keep]
        fig.update_layout(title_text=f"Accuracy of every client on its own test data ({len(evaluated)} of the evaluated rounds)")
        rows = rows[rows["round"].isin(evaluated)]
    width = 0.8 * min(1.0, float(np.diff(evaluated).min()) if len(evaluated) > 1 else 1.0)
    offset = OFFSET * width / 0.8 if len(models) > 1 else 0.0
    for i, (column, _, name, color) in enumerate(models):
        shift = (2 * i - 1) * offset if len(models) > 1 else 0.0
        stats = rows.groupby("round")[column].describe()[["min", "25%", "50%", "75%", "max", "mean", "count"]].dropna()
        fig.add_trace(
            go.Box(
                x=stats.index.to_numpy(dtype=np.float64) + shift,
                q1=stats["25%"], median=stats["50%"], q3=stats["75%"], lowerfence=stats["min"], upperfence=stats["max"],
                mean=stats["mean"], width=width / (2.4 if len(models) > 1 else 1.2), name=name, legendgroup=name,
                line={"color": color}, fillcolor=_fill(color, 0.25), boxpoints=False, hoverinfo="y",
            )
        )  # fmt: skip
    clients = sorted(rows["client_id"].astype(int).unique())
    if len(clients) <= MANY_CLIENTS:  # each client a point in its colour: a circle for the global model, a diamond for its own
        spread = np.linspace(-0.5, 0.5, len(clients)) * (offset or width / 2) * 0.6
        for j, cid in enumerate(clients):
            mine = rows[rows["client_id"] == cid].sort_values("round")
            xs, ys, symbols, texts = [], [], [], []
            for i, (column, _, name, _) in enumerate(models):
                shift = (2 * i - 1) * offset if len(models) > 1 else 0.0
                finite = mine[np.isfinite(mine[column].to_numpy(dtype=np.float64))]
                xs += list(finite["round"].to_numpy(dtype=np.float64) + shift + spread[j])
                ys += list(finite[column])
                symbols += ["circle" if i == 0 else "diamond"] * len(finite)
                texts += [f"round {r}, {name}" for r in finite["round"]]
            fig.add_trace(
                go.Scatter(
                    x=xs, y=ys, mode="markers", name=f"client {cid}", legendgroup="clients", showlegend=False, text=texts,
                    marker={"color": client_color(cid), "symbol": symbols, "size": 6, "line": {"width": 0.5, "color": "white"}},
                    hovertemplate=f"client {cid}<br>%{{text}}<br>accuracy %{{y:.1%}}<extra></extra>",
                )
            )  # fmt: skip
    _threshold_line(fig, threshold)
    _round_axis(fig, total_rounds, int(evaluated[-1]))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})
    return fig


@chart(
    "fairness_lines",
    caption="Mean accuracy over clients (solid) and of the worst 10% of clients (dashed), with the global model and with "
    "each client's own model: the gap between solid and dashed is how unevenly the clients are served.",
    example=lambda s: (s.rounds, s.total_rounds, 0.5),
)
def fairness_lines_chart(rounds: pd.DataFrame, total_rounds: int | None = None, threshold: float | None = None) -> go.Figure:
    """Mean and worst-10% client accuracy by evaluated round, for the global model and the
    clients' own models (dashed: worst 10%), with the fairness threshold as a line."""
    fig = go.Figure()
    _layout(fig, "Mean and worst-10% client accuracy", "Round", "Client test accuracy", legend_title="Clients")
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    drawn = 0
    for _, prefix, name, color in MODELS:
        mean, worst, below = f"{prefix}_mean", f"{prefix}_worst10", f"{prefix}_below"
        if rounds.empty or mean not in rounds:
            continue
        rows = rounds[np.isfinite(rounds[mean].to_numpy(dtype=np.float64))].sort_values("round")
        if rows.empty:
            continue
        share = rows[below] if below in rows else pd.Series(np.nan, index=rows.index)
        for column, label, dash in ((mean, "mean", "solid"), (worst, "worst 10%", "dash")):
            if column not in rows:
                continue
            fig.add_trace(
                go.Scatter(
                    x=rows["round"], y=rows[column], mode="lines+markers", name=f"{name}: {label}", customdata=share,
                    line={"color": color, "dash": dash, "width": 2}, marker={"size": 5},
                    hovertemplate=f"{name}, {label}<br>round %{{x}}<br>%{{y:.1%}}<br>%{{customdata:.0%}} of clients below threshold"
                    "<extra></extra>",
                )
            )  # fmt: skip
            drawn += 1
    if not drawn:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round that evaluates every client…")
    _threshold_line(fig, threshold)
    _round_axis(fig, total_rounds, int(rounds["round"].max()))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})
    return fig
